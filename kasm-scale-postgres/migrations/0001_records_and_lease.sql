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

-- Bumped by every save: a writer whose last read is older is refused (no blind overwrite).
CREATE TABLE IF NOT EXISTS kasm_scale_version (
    name    text   PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0
);

INSERT INTO kasm_scale_version (name) VALUES ('records') ON CONFLICT (name) DO NOTHING;
