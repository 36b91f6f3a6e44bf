//! LdapDirectory against a real Samba AD domain controller on loopback. `.ci/run` provisions it
//! and sets `KASM_SCALE_LDAP_URL` (ldaps://127.0.0.1:636), `KASM_SCALE_LDAP_CA` (the CA of its
//! certificate), `KASM_SCALE_LDAP_BIND_DN` and `KASM_SCALE_LDAP_PASSWORD` (the administrator);
//! without them the tests fail (`KASM_SCALE_SKIP_LDAP=1` skips them outside CI). Each test works in
//! an OU of its own, which a guard deletes (with its contents) when the test ends, failed or not.

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

/// An OU made for one test, `OU=<name>-<random>,DC=example,DC=local`, deleted with everything
/// in it when the guard is dropped (at the end of the test, or while a failed assertion unwinds).
struct TempOu {
    dn: String,
    url: String,
    ca: String,
    bind_dn: String,
    password: String,
}

impl TempOu {
    async fn new(dc: &Dc, name: &str) -> TempOu {
        let dn = format!(
            "OU={name}-{},DC=example,DC=local",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut admin = connect(dc, &dc.bind_dn, &dc.password).await.unwrap();
        admin
            .add(
                &dn,
                vec![("objectClass", HashSet::from(["organizationalUnit"]))],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        TempOu {
            dn,
            url: dc.url.clone(),
            ca: dc.ca.clone(),
            bind_dn: dc.bind_dn.clone(),
            password: dc.password.clone(),
        }
    }
}

impl Drop for TempOu {
    fn drop(&mut self) {
        // Drop cannot await: a thread of its own with a runtime of its own deletes the OU.
        let dc = Dc {
            url: self.url.clone(),
            ca: self.ca.clone(),
            bind_dn: self.bind_dn.clone(),
            password: self.password.clone(),
        };
        let dn = self.dn.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = connect(&dc, &dc.bind_dn, &dc.password)
                    .await
                    .map_err(|e| e.to_string())?;
                let tree = ldap3::controls::RawControl {
                    ctype: kasm_scale_ldap::TREE_DELETE_OID.into(),
                    crit: true,
                    val: None,
                };
                let r = admin
                    .with_controls(tree)
                    .delete(&dn)
                    .await
                    .map_err(|e| e.to_string())?;
                match r.rc {
                    0 | 32 => Ok(()),
                    _ => Err(r.to_string()),
                }
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot delete the test OU {}: {e}", self.dn),
            Err(_) => eprintln!(
                "cannot delete the test OU {}: the cleanup panicked",
                self.dn
            ),
        }
    }
}

/// Whether `dn` exists, seen by the administrator.
async fn exists(dc: &Dc, dn: &str) -> bool {
    let mut admin = connect(dc, &dc.bind_dn, &dc.password).await.unwrap();
    let r = admin
        .search(dn, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .unwrap();
    match r.1.rc {
        0 => !r.0.is_empty(),
        32 => false,
        rc => panic!("cannot look {dn} up: {rc}"),
    }
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
    let ou_guard = TempOu::new(&dc, "conformance").await;
    let ou = ou_guard.dn.clone();
    let d = directory(&dc);
    assert_eq!(d.domain(), "example.local");
    directory_contract(&d, &format!("ldap-{}", uuid::Uuid::new_v4()), &ou).await;
}

#[tokio::test]
async fn the_computer_binds_with_its_one_time_password_and_not_with_another() {
    let Some(dc) = dc() else { return };
    let ou_guard = TempOu::new(&dc, "bind").await;
    let ou = ou_guard.dn.clone();
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
    let ou_guard = TempOu::new(&dc, "tree").await;
    let ou = ou_guard.dn.clone();
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
    // The refusal names what is in the way.
    assert!(
        err.to_string().contains(&key),
        "the child's DN is named: {err}"
    );
    d.delete_computer(&ou, &name, true).await.unwrap();
    assert!(
        d.list_computers("ldap-tree", std::slice::from_ref(&ou))
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
    let ou_guard = TempOu::new(&dc, "inject").await;
    let ou = ou_guard.dn.clone();
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
    let mine = d
        .list_computers(evil, std::slice::from_ref(&ou))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0].owner.owner_id, evil);
    assert!(
        d.list_computers("o", std::slice::from_ref(&ou))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        d.list_computers("o*", std::slice::from_ref(&ou))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        d.list_computers("*", std::slice::from_ref(&ou))
            .await
            .unwrap()
            .is_empty()
    );
    d.delete_computer(&ou, &name, false).await.unwrap();
}

#[tokio::test]
async fn tls_and_credentials_are_checked() {
    let Some(dc) = dc() else { return };
    let mut wrong = config(&dc, "");
    wrong.service_account_password = kasm_scale_core::Secret::new("not-the-password");
    let d = LdapDirectory::builder(wrong).build().unwrap();
    let err = probe(&d).await.unwrap_err();
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
            let err = probe(&d).await.unwrap_err();
            assert!(err.to_string().contains("cannot connect"), "{err}");
            assert_certificate_error(&err, "not signed by a CA");
        }
        Err(e) => assert!(e.to_string().contains("no system root certificates"), "{e}"),
    }

    let mut plain = config(&dc, "");
    plain.url = "ldap://127.0.0.1:389".into();
    let err = LdapDirectory::builder(plain.clone()).build().unwrap_err();
    assert!(err.to_string().contains("start_tls"), "{err}");
    plain.start_tls = true;
    let d = LdapDirectory::builder(plain).build().unwrap();
    assert!(probe(&d).await.is_ok(), "StartTLS works");
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
        Self::start_on("127.0.0.1", target_url).await
    }

    /// A forwarder listening on loopback address `listen`.
    async fn start_on(listen: &str, target_url: &str) -> Forwarder {
        let target = target_url.trim_start_matches("ldaps://").to_owned();
        let listener = tokio::net::TcpListener::bind(format!("{listen}:0"))
            .await
            .unwrap();
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
    let ou_guard = TempOu::new(&dc, "pool").await;
    let ou = ou_guard.dn.clone();
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
    assert_eq!(
        d.list_computers(&owner, std::slice::from_ref(&ou))
            .await
            .unwrap()
            .len(),
        12
    );

    forwarder.cut();
    let before = forwarder.accepted();
    assert_eq!(
        d.list_computers(&owner, std::slice::from_ref(&ou))
            .await
            .unwrap()
            .len(),
        12,
        "the next operation reconnects"
    );
    assert!(forwarder.accepted() > before, "a new connection was made");
    for name in &names {
        d.delete_computer(&ou, name, false).await.unwrap();
    }
    assert!(
        d.list_computers(&owner, std::slice::from_ref(&ou))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_account_without_rights_gets_permission_denied() {
    let Some(dc) = dc() else { return };
    let ou_guard = TempOu::new(&dc, "rights").await;
    let ou = ou_guard.dn.clone();
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
    let ou_guard = TempOu::new(&dc, "conflict").await;
    let ou = ou_guard.dn.clone();
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
    assert_eq!(
        d.list_computers(&b, std::slice::from_ref(&ou))
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        d.list_computers(&a, std::slice::from_ref(&ou))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_test_ou_goes_with_its_contents_when_its_guard_drops() {
    let Some(dc) = dc() else { return };
    let ou = TempOu::new(&dc, "guard").await;
    let dn = ou.dn.clone();
    let name = unique("KG");
    directory(&dc)
        .create_computer(&spec("ldap-guard", 1, &name, &dn))
        .await
        .unwrap();
    assert!(exists(&dc, &format!("CN={name},{dn}")).await);
    drop(ou);
    assert!(!exists(&dc, &dn).await, "{dn} is gone");
}

#[tokio::test]
async fn records_are_found_in_their_container_even_outside_the_search_base() {
    let Some(dc) = dc() else { return };
    let base = TempOu::new(&dc, "base").await;
    let outside = TempOu::new(&dc, "outside").await;
    let mut c = config(&dc, "");
    c.search_base = base.dn.clone();
    let d = LdapDirectory::builder(c).build().unwrap();
    let owner = format!("ldap-outside-{}", uuid::Uuid::new_v4().simple());
    let name = unique("KO");
    let first = d
        .create_computer(&spec(&owner, 1, &name, &outside.dn))
        .await
        .unwrap();
    // Created again (a repeat after a lost answer): the record is found where it was made and
    // taken over, not reported as someone else's.
    let again = d
        .create_computer(&spec(&owner, 1, &name, &outside.dn))
        .await
        .expect("the record is found in its container");
    assert_ne!(first.expose(), again.expose());
    let listed = d
        .list_computers(&owner, std::slice::from_ref(&outside.dn))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].dn, format!("CN={name},{}", outside.dn));
    // Only the containers asked for are searched, one level deep.
    assert!(
        d.list_computers(&owner, std::slice::from_ref(&base.dn))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        d.list_computers(&owner, &["DC=example,DC=local".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
}

/// One call that needs a connection.
async fn probe(d: &LdapDirectory) -> Result<(), BackendError> {
    d.list_computers("probe", &["CN=Computers,DC=example,DC=local".to_owned()])
        .await
        .map(drop)
}

/// A certificate verification failure: not retryable, reported as the configuration problem it
/// is, with what failed.
fn assert_certificate_error(err: &BackendError, reason: &str) {
    assert!(!err.is_retryable(), "not retried: {err}");
    assert!(matches!(err, BackendError::Auth(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS certificate"), "{text}");
    assert!(text.contains(reason), "`{reason}` in: {text}");
}

/// A PEM file with a CA that signed nothing of the DC's; removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "kasm-scale-ldap-test-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A CA of our own, and a server certificate it signed for `names` valid in `[from, until]`.
fn ca_and_server_cert(
    names: &[&str],
    from: (i32, u8, u8),
    until: (i32, u8, u8),
) -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rcgen::KeyPair,
) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kasm-scale other test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut server =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    server.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    server.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
    let cert = server.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.der().clone(), key)
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_configuration_error() {
    let Some(dc) = dc() else { return };
    let (other_ca, _, _) = ca_and_server_cert(&["127.0.0.1"], (2020, 1, 1), (2100, 1, 1));
    let other_ca = TempFile::new(&other_ca);
    let mut c = config(&dc, "");
    c.ca_certificate_file = Some(other_ca.path());
    let d = LdapDirectory::builder(c).build().unwrap();
    let err = probe(&d).await.unwrap_err();
    assert_certificate_error(&err, "not signed by a CA in ca_certificate_file");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_configuration_error() {
    let Some(dc) = dc() else { return };
    // The DC's certificate names 127.0.0.1 and localhost; 127.0.0.2 reaches it too.
    let forwarder = Forwarder::start_on("127.0.0.2", &dc.url).await;
    let mut c = config(&dc, "");
    c.url = forwarder.url.clone();
    let d = LdapDirectory::builder(c).build().unwrap();
    let err = probe(&d).await.unwrap_err();
    assert_certificate_error(&err, "not valid for the name in the url");
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
}

#[tokio::test]
async fn an_expired_certificate_is_a_configuration_error() {
    // A TLS server of our own that shows an expired certificate (the DC's cannot be changed
    // per test): the handshake fails before any LDAP is spoken.
    let (ca, cert, key) = ca_and_server_cert(&["127.0.0.1"], (2020, 1, 1), (2020, 1, 2));
    let ca = TempFile::new(&ca);
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let server = std::sync::Arc::new(server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldaps://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            let Ok(mut stream) = stream else { return };
            let mut tls = rustls::ServerConnection::new(server.clone()).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut stream).is_err() {
                    break;
                }
            }
        }
    });
    let text = format!(
        r#"
name = "ad"
url = "{url}"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "unused"
ca_certificate_file = "{ca}"
"#,
        ca = ca.path()
    );
    let c: LdapConfig = toml::from_str(&text).unwrap();
    let d = LdapDirectory::builder(c).build().unwrap();
    let err = probe(&d).await.unwrap_err();
    assert_certificate_error(&err, "expired");
}
