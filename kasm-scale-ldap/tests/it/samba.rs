//! LdapDirectory against a real Samba AD domain controller on loopback (see `common` for the
//! environment `.ci/run` sets). Each test works in an OU of its own, which a guard deletes (with
//! its contents) when the test ends, failed or not.

use crate::common;

use std::collections::HashSet;

use common::{Forwarder, TempOu, config, connect, dc, directory, exists, spec, unique};
use kasm_scale_core::testkit::directory_contract;
use kasm_scale_core::traits::{BackendError, DirectoryService, Owner};
use kasm_scale_ldap::LdapDirectory;

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
