//! LdapDirectory against a real Samba AD domain controller on loopback. `.ci/run` provisions it
//! and sets `KASM_SCALE_LDAP_URL` (ldaps://127.0.0.1:636), `KASM_SCALE_LDAP_CA` (the CA of its
//! certificate), `KASM_SCALE_LDAP_BIND_DN` and `KASM_SCALE_LDAP_PASSWORD` (the administrator);
//! without them the tests say so and skip. Each test works in an OU of its own.

use std::collections::HashSet;

use kasm_scale_core::config::LdapConfig;
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::testkit::directory_contract;
use kasm_scale_core::traits::{BackendError, ComputerSpec, DirectoryService, Owner};
use kasm_scale_ldap::LdapDirectory;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

struct Dc {
    url: String,
    ca: String,
    bind_dn: String,
    password: String,
}

/// The Samba AD DC `.ci/run` starts. Missing, the test fails, unless `KASM_SCALE_SKIP_LDAP=1`
/// opts out outside CI.
fn dc() -> Option<Dc> {
    let var = |k: &str| {
        kasm_scale_core::testkit::test_server(k, "KASM_SCALE_SKIP_LDAP", "Active Directory (Samba)")
    };
    Some(Dc {
        url: var("KASM_SCALE_LDAP_URL")?,
        ca: var("KASM_SCALE_LDAP_CA")?,
        bind_dn: var("KASM_SCALE_LDAP_BIND_DN")?,
        password: var("KASM_SCALE_LDAP_PASSWORD")?,
    })
}

fn config(dc: &Dc, extra: &str) -> LdapConfig {
    let text = format!(
        r#"
name = "ad"
url = "{url}"
search_base = "DC=example,DC=local"
service_account_dn = "{bind}"
service_account_password = "{pw}"
ca_certificate_file = "{ca}"
{extra}
"#,
        url = dc.url,
        bind = dc.bind_dn,
        pw = dc.password,
        ca = dc.ca,
    );
    toml::from_str(&text).expect("test LDAP config")
}

fn directory(dc: &Dc) -> LdapDirectory {
    LdapDirectory::builder(config(dc, ""))
        .build()
        .expect("directory")
}

/// A bound connection of our own (not the crate's), trusting the test CA.
async fn connect(dc: &Dc, bind_dn: &str, password: &str) -> Result<Ldap, ldap3::LdapError> {
    let pem = std::fs::read(&dc.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let settings = LdapConnSettings::new().set_config(std::sync::Arc::new(tls));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &dc.url).await?;
    ldap3::drive!(conn);
    ldap.simple_bind(bind_dn, password).await?.success()?;
    Ok(ldap)
}

/// A fresh OU for one test: `OU=<name>-<random>,DC=example,DC=local`.
async fn fresh_ou(dc: &Dc, name: &str) -> String {
    let ou = format!(
        "OU={name}-{},DC=example,DC=local",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut admin = connect(dc, &dc.bind_dn, &dc.password).await.unwrap();
    admin
        .add(
            &ou,
            vec![("objectClass", HashSet::from(["organizationalUnit"]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    ou
}

fn spec(owner_id: &str, n: u128, name: &str, ou: &str) -> ComputerSpec {
    ComputerSpec {
        name: name.into(),
        container_dn: ou.into(),
        owner: Owner {
            owner_id: owner_id.into(),
            pool: "p".into(),
            config: "c".into(),
            server_id: ServerId(uuid::Uuid::from_u128(n)),
        },
    }
}

/// A unique computer name (≤ 15 characters).
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..14 - prefix.len()]
    )
    .to_ascii_uppercase()
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "conformance").await;
    let d = directory(&dc);
    assert_eq!(d.domain(), "example.local");
    directory_contract(&d, &format!("ldap-{}", uuid::Uuid::new_v4()), &ou).await;
}

#[tokio::test]
async fn the_computer_binds_with_its_one_time_password_and_not_with_another() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "bind").await;
    let d = directory(&dc);
    let name = unique("KB");
    let password = d
        .create_computer(&spec("ldap-bind", 1, &name, &ou))
        .await
        .unwrap();
    assert_eq!(password.expose().len(), 24);
    let dn = format!("CN={name},{ou}");
    let mut admin = connect(&dc, &dc.bind_dn, &dc.password).await.unwrap();
    let (entries, _) = admin
        .search(
            &dn,
            ldap3::Scope::Base,
            "(objectClass=computer)",
            vec![
                "sAMAccountName",
                "userAccountControl",
                "dNSHostName",
                "description",
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let e = ldap3::SearchEntry::construct(entries.into_iter().next().unwrap());
    assert_eq!(e.attrs["sAMAccountName"], vec![format!("{name}$")]);
    assert_eq!(e.attrs["userAccountControl"], vec!["4096".to_owned()]);
    assert_eq!(
        e.attrs["dNSHostName"],
        vec![format!("{}.example.local", name.to_ascii_lowercase())]
    );
    let owner = Owner::from_marker(&e.attrs["description"][0]).unwrap();
    assert_eq!(owner, spec("ldap-bind", 1, &name, &ou).owner);

    connect(&dc, &dn, password.expose())
        .await
        .expect("the computer binds with its one-time password");
    let wrong = connect(&dc, &dn, "Wrong-Passw0rd!").await.unwrap_err();
    assert!(
        matches!(&wrong, ldap3::LdapError::LdapResult { result } if result.rc == 49),
        "{wrong}"
    );
    // Creating again resets it. (The previous password may still bind for a while: AD and Samba
    // accept a machine account's previous password during a password change.)
    let again = d
        .create_computer(&spec("ldap-bind", 1, &name, &ou))
        .await
        .unwrap();
    assert_ne!(again.expose(), password.expose());
    connect(&dc, &dn, again.expose()).await.unwrap();
    d.delete_computer(&ou, &name, false).await.unwrap();
}

#[tokio::test]
async fn a_record_with_a_child_needs_recursive_cleanup() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "tree").await;
    let d = directory(&dc);
    let name = unique("KT");
    d.create_computer(&spec("ldap-tree", 1, &name, &ou))
        .await
        .unwrap();
    // A BitLocker recovery key under the computer, as Windows would store it.
    let key = format!(
        "CN=2026-11-29T00:00:00-00:00{{11111111-2222-3333-4444-555555555555}},CN={name},{ou}"
    );
    let mut admin = connect(&dc, &dc.bind_dn, &dc.password).await.unwrap();
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
        (
            b"objectClass".to_vec(),
            HashSet::from([b"msFVE-RecoveryInformation".to_vec()]),
        ),
        (
            b"msFVE-RecoveryGuid".to_vec(),
            HashSet::from([vec![0x11u8; 16]]),
        ),
        (
            b"msFVE-RecoveryPassword".to_vec(),
            HashSet::from([b"111111-222222-333333-444444-555555-666666-777777-888888".to_vec()]),
        ),
    ];
    admin.add(&key, attrs).await.unwrap().success().unwrap();

    let err = d.delete_computer(&ou, &name, false).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Conflict(m) if m.contains("child objects") && m.contains("ad_recursive_machine_record_cleanup")),
        "{err}"
    );
    d.delete_computer(&ou, &name, true).await.unwrap();
    assert!(
        d.list_computers("ldap-tree")
            .await
            .unwrap()
            .iter()
            .all(|r| r.name != name)
    );
    d.delete_computer(&ou, &name, true)
        .await
        .expect("missing is Ok");
}

#[tokio::test]
async fn injection_in_names_containers_and_owner_values_goes_nowhere() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "inject").await;
    let d = directory(&dc);
    for name in ["A)(CN=*", "*", "A,OU=X", "A\\2C", "X=Y", "A B"] {
        let err = d
            .create_computer(&spec("ldap-inject", 1, name, &ou))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::InvalidRequest(_)),
            "{name}: {err}"
        );
        let err = d.delete_computer(&ou, name, true).await.unwrap_err();
        assert!(
            matches!(err, BackendError::InvalidRequest(_)),
            "{name}: {err}"
        );
    }
    let err = d
        .create_computer(&spec("ldap-inject", 1, "KI-1", "OU=x,DC=example,(cn=*)"))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidRequest(_)), "{err}");
    // An owner id full of filter and marker syntax is stored and matched as plain text.
    let evil = "o*)(description=*;kasm-scale:owner=\\x";
    let name = unique("KI");
    d.create_computer(&spec(evil, 2, &name, &ou)).await.unwrap();
    let mine = d.list_computers(evil).await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].owner.owner_id, evil);
    assert!(d.list_computers("o").await.unwrap().is_empty());
    assert!(d.list_computers("o*").await.unwrap().is_empty());
    assert!(d.list_computers("*").await.unwrap().is_empty());
    d.delete_computer(&ou, &name, false).await.unwrap();
}

#[tokio::test]
async fn tls_and_credentials_are_checked() {
    let Some(dc) = dc() else { return };
    let mut wrong = config(&dc, "");
    wrong.service_account_password = kasm_scale_core::Secret::new("not-the-password");
    let d = LdapDirectory::builder(wrong).build().unwrap();
    let err = d.list_computers("x").await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Auth(m) if m.contains("cannot bind")),
        "{err}"
    );
    assert!(!err.to_string().contains("not-the-password"));
    assert!(!format!("{d:?}").contains(&dc.password));

    // The system roots do not know the test CA: the connection is refused, not downgraded.
    let mut untrusted = config(&dc, "");
    untrusted.ca_certificate_file = None;
    // Either way the untrusted server is never talked to: with system roots the handshake is
    // refused; a machine without any roots refuses to build.
    match LdapDirectory::builder(untrusted).build() {
        Ok(d) => {
            let err = d.list_computers("x").await.unwrap_err();
            assert!(
                matches!(err, BackendError::Transient(ref m) if m.contains("cannot connect")),
                "{err}"
            );
        }
        Err(e) => assert!(e.to_string().contains("no system root certificates"), "{e}"),
    }

    let mut plain = config(&dc, "");
    plain.url = "ldap://127.0.0.1:389".into();
    let err = LdapDirectory::builder(plain.clone()).build().unwrap_err();
    assert!(err.to_string().contains("start_tls"), "{err}");
    plain.start_tls = true;
    let d = LdapDirectory::builder(plain).build().unwrap();
    assert!(
        d.list_computers("nobody").await.unwrap().is_empty(),
        "StartTLS works"
    );
}

/// A loopback TCP forwarder to the DC whose connections can be cut, like a firewall dropping
/// idle connections or a DC restarting.
struct Forwarder {
    url: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target_url: &str) -> Forwarder {
        let target = target_url.trim_start_matches("ldaps://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldaps://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let (count, conns) = (accepted.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let target = target.clone();
                conns.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Forwarder {
            url,
            accepted,
            connections,
            task,
        }
    }

    /// Closes every open connection.
    fn cut(&self) {
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

#[tokio::test]
async fn reconnects_after_a_dropped_connection_and_pools_concurrent_work() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "pool").await;
    let forwarder = Forwarder::start(&dc.url).await;
    let mut c = config(&dc, "");
    c.url = forwarder.url.clone();
    let d = LdapDirectory::builder(c).pool_size(3).build().unwrap();
    let owner = format!("ldap-pool-{}", uuid::Uuid::new_v4().simple());

    let names: Vec<String> = (0..12).map(|_| unique("KP")).collect();
    let creates = names
        .iter()
        .enumerate()
        .map(|(n, name)| {
            let (d, spec) = (d.clone(), spec(&owner, n as u128, name, &ou));
            tokio::spawn(async move { d.create_computer(&spec).await })
        })
        .collect::<Vec<_>>();
    for c in creates {
        c.await.unwrap().unwrap();
    }
    assert!(
        forwarder.accepted() <= 3,
        "{} connections for a pool of 3",
        forwarder.accepted()
    );
    assert_eq!(d.list_computers(&owner).await.unwrap().len(), 12);

    forwarder.cut();
    let before = forwarder.accepted();
    assert_eq!(
        d.list_computers(&owner).await.unwrap().len(),
        12,
        "the next operation reconnects"
    );
    assert!(forwarder.accepted() > before, "a new connection was made");
    for name in &names {
        d.delete_computer(&ou, name, false).await.unwrap();
    }
    assert!(d.list_computers(&owner).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_account_without_rights_gets_permission_denied() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "rights").await;
    let d = directory(&dc);
    let name = unique("KR");
    let password = d
        .create_computer(&spec("ldap-rights", 1, &name, &ou))
        .await
        .unwrap();
    // The computer account binds fine but may not create computers in this OU.
    let mut weak = config(&dc, "");
    weak.service_account_dn = format!("CN={name},{ou}");
    weak.service_account_password = password;
    let weak = LdapDirectory::builder(weak).build().unwrap();
    let err = weak
        .create_computer(&spec("ldap-rights", 2, &unique("KR"), &ou))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Permission(_)), "{err}");
    let err = d.delete_computer(&ou, &name, false).await;
    assert!(err.is_ok(), "{err:?}");
}

#[tokio::test]
async fn a_record_in_the_way_is_a_conflict_and_stays() {
    let Some(dc) = dc() else { return };
    let ou = fresh_ou(&dc, "conflict").await;
    let d = directory(&dc);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (a, b) = (
        format!("ldap-conflict-a-{run}"),
        format!("ldap-conflict-b-{run}"),
    );
    // Another server's record with the account name.
    let name = unique("KC");
    d.create_computer(&spec(&a, 1, &name, &ou)).await.unwrap();
    let err = d
        .create_computer(&spec(&b, 2, &name, &ou))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::Conflict(m) if m.contains("is not this server's")),
        "{err}"
    );
    // A record at the DN under another account name: the add finds it there, the lookup does
    // not, and the add is not sent again.
    let taken = unique("KT");
    let mut admin = connect(&dc, &dc.bind_dn, &dc.password).await.unwrap();
    let other = format!("{}$", unique("KO"));
    admin
        .add(
            &format!("CN={taken},{ou}"),
            vec![
                ("objectClass", HashSet::from(["computer"])),
                ("sAMAccountName", HashSet::from([other.as_str()])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let err = d
        .create_computer(&spec(&a, 3, &taken, &ou))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::Conflict(m) if m.contains("cannot be found by its account name")),
        "{err}"
    );
    assert_eq!(d.list_computers(&b).await.unwrap(), Vec::new());
    assert_eq!(d.list_computers(&a).await.unwrap().len(), 1);
}
