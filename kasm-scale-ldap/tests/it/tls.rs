//! TLS against the Samba DC and a TLS server of our own: a server certificate that fails
//! verification is a configuration error (not retried) that says which check failed.

use crate::common;

use common::{
    Forwarder, TempFile, assert_certificate_error, ca_and_server_cert, config, dc, probe,
};
use kasm_scale_core::config::LdapConfig;
use kasm_scale_core::traits::BackendError;
use kasm_scale_ldap::LdapDirectory;

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
