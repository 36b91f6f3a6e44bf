-- kasm-scale's state: one row per record, and the leader lease.
CREATE TABLE IF NOT EXISTS kasm_scale_records (
    kind  text  NOT NULL,
    key   text  NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE TABLE IF NOT EXISTS kasm_scale_lease (
    name       text        PRIMARY KEY,
    holder     text,
    address    text,
    epoch      bigint      NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
);

INSERT INTO kasm_scale_lease (name) VALUES ('leader') ON CONFLICT (name) DO NOTHING;
