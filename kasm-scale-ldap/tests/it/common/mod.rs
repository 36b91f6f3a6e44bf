//! What the Samba tests share: the DC `.ci/run` starts (`KASM_SCALE_LDAP_URL`
//! (ldaps://127.0.0.1:636), `KASM_SCALE_LDAP_CA` (the CA of its certificate),
//! `KASM_SCALE_LDAP_BIND_DN` and `KASM_SCALE_LDAP_PASSWORD` (the administrator); without them the
//! tests fail, and `KASM_SCALE_SKIP_LDAP=1` skips them outside CI), OUs that remove themselves,
//! a loopback forwarder, and certificates of our own.

#![allow(dead_code)] // Each test file uses a part.

use std::collections::HashSet;

use kasm_scale_core::config::LdapConfig;
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::traits::{BackendError, ComputerSpec, DirectoryService, Owner};
use kasm_scale_ldap::LdapDirectory;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

pub struct Dc {
    pub url: String,
    pub ca: String,
    pub bind_dn: String,
    pub password: String,
}

/// The Samba AD DC `.ci/run` starts. Missing, the test fails, unless `KASM_SCALE_SKIP_LDAP=1`
/// opts out outside CI.
pub fn dc() -> Option<Dc> {
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

pub fn config(dc: &Dc, extra: &str) -> LdapConfig {
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

pub fn directory(dc: &Dc) -> LdapDirectory {
    LdapDirectory::builder(config(dc, ""))
        .build()
        .expect("directory")
}

/// A bound connection of our own (not the crate's), trusting the test CA.
pub async fn connect(dc: &Dc, bind_dn: &str, password: &str) -> Result<Ldap, ldap3::LdapError> {
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
pub struct TempOu {
    pub dn: String,
    pub url: String,
    pub ca: String,
    pub bind_dn: String,
    pub password: String,
}

impl TempOu {
    pub async fn new(dc: &Dc, name: &str) -> TempOu {
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
pub async fn exists(dc: &Dc, dn: &str) -> bool {
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

pub fn spec(owner_id: &str, n: u128, name: &str, ou: &str) -> ComputerSpec {
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
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..14 - prefix.len()]
    )
    .to_ascii_uppercase()
}

/// A loopback TCP forwarder to the DC whose connections can be cut, like a firewall dropping
/// idle connections or a DC restarting.
pub struct Forwarder {
    pub url: String,
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(target_url: &str) -> Forwarder {
        Self::start_on("127.0.0.1", target_url).await
    }

    /// A forwarder listening on loopback address `listen`.
    pub async fn start_on(listen: &str, target_url: &str) -> Forwarder {
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
    pub fn cut(&self) {
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// One call that needs a connection.
pub async fn probe(d: &LdapDirectory) -> Result<(), BackendError> {
    d.list_computers("probe", &["CN=Computers,DC=example,DC=local".to_owned()])
        .await
        .map(drop)
}

/// A certificate verification failure: not retryable, reported as the configuration problem it
/// is, with what failed.
pub fn assert_certificate_error(err: &BackendError, reason: &str) {
    assert!(!err.is_retryable(), "not retried: {err}");
    assert!(matches!(err, BackendError::Auth(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS certificate"), "{text}");
    assert!(text.contains(reason), "`{reason}` in: {text}");
}

/// A PEM file with a CA that signed nothing of the DC's; removed on drop.
pub struct TempFile(std::path::PathBuf);

impl TempFile {
    pub fn new(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "kasm-scale-ldap-test-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A CA of our own, and a server certificate it signed for `names` valid in `[from, until]`.
pub fn ca_and_server_cert(
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
