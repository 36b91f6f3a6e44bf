//! [`FileStore`]: the records survive a restart of the controller in a JSON file, replaced
//! atomically; a file that is not a state file is refused with its path and the reason.

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, FileStore, SessionId, SessionOutcome};
use kasm_scale_core::engine::SessionRequest;
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};
use kasm_scale_core::traits::{StateStore, StoreError};

use crate::fixture::Fixture;

fn config() -> Config {
    Fixture::memory_pool("p")
        .max_instances(2)
        .boot_latency(60)
        .checkin_delay(30)
        .minimum_standby(1)
        .require_checkin(true)
        .config()
}

fn scaler(cloud: &Arc<MemoryCloud>, store: &FileStore) -> Autoscaler {
    Autoscaler::builder(config())
        .provider(cloud.clone())
        .store(Arc::new(store.clone()))
        .epoch("2026-11-30T12:00:00Z".parse().unwrap())
        .build()
        .unwrap()
}

fn session(outcome: &SessionOutcome) -> SessionId {
    match outcome {
        SessionOutcome::Assigned { session, .. } | SessionOutcome::Queued { session } => *session,
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_finds_its_servers_sessions_and_queue_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("state.json"));
    let VmProviderConfig::Memory(m) = config().vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 5));
    let first = scaler(&cloud, &store);
    for _ in 0..12 {
        first.tick().await;
        first.settle().await;
        deliver_checkins(&first, &cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // Two servers at most: the third and fourth requests wait.
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(
            first
                .request_session("p", &SessionRequest::default())
                .await
                .unwrap(),
        );
    }
    assert!(
        matches!(outcomes[0], SessionOutcome::Assigned { .. }),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, SessionOutcome::Queued { .. })),
        "{outcomes:?}"
    );
    let before: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let id = session(o);
            (id, first.session(id))
        })
        .collect();
    let servers = first.servers();
    drop(first);

    let second = scaler(&cloud, &store);
    second.tick().await;
    for (id, status) in &before {
        assert_eq!(&second.session(*id), status, "session {id:?}");
    }
    let now = second.servers();
    for server in &servers {
        assert!(
            now.contains(server),
            "{server:?} comes back as it was: {now:?}"
        );
    }
    assert!(
        second.servers().iter().all(|s| !s.sessions_unknown),
        "nothing is adopted blind"
    );
    let next = second
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        before.iter().all(|(id, _)| *id != session(&next)),
        "session ids are not handed out twice"
    );
}

#[tokio::test]
async fn a_save_replaces_the_file_whole_with_mode_0600_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let store = FileStore::new(&path);
    assert_eq!(store.load().await.unwrap(), None, "no file: nothing saved");
    let mut records = kasm_scale_core::controller::Records {
        next_session: 41,
        ..Default::default()
    };
    store.save(&records).await.unwrap();
    records.next_session = 42;
    store.save(&records).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(records));
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // The lock file stays (it holds the lock while the store lives); no temporary does.
    assert_eq!(names, ["state.json", "state.json.lock"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_state_file_is_refused_with_its_path_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let refused = |what: &str, text: &str| {
        std::fs::write(&path, text).unwrap();
        let store = FileStore::new(&path);
        let path = path.display().to_string();
        let what = what.to_owned();
        async move {
            match store.load().await {
                Err(StoreError::Corrupt(message)) => {
                    assert!(message.contains(&path), "{message}");
                    assert!(message.contains(&what), "{what}: {message}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    };
    refused("line 1 column", "{\"format\": 1, \"records\": ").await;
    refused("format 7", r#"{"format": 7, "records": {}}"#).await;
    refused(
        "records.next_session",
        r#"{"format": 1, "records": {"servers": {}, "sessions": {}, "queued": {}, "bookkeeping": {}, "next_session": "x", "orphans": {}}}"#,
    )
    .await;
    // A directory, or a device, is not read.
    match FileStore::new(dir.path()).load().await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("not a regular file"), "{m}"),
        other => panic!("{other:?}"),
    }
    if std::path::Path::new("/dev/zero").exists() {
        match FileStore::new("/dev/zero").load().await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("not a regular file"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_save_into_a_missing_directory_fails_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("no-such-dir/state.json"));
    let records = kasm_scale_core::controller::Records::default();
    match store.save(&records).await {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("no-such-dir"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_second_writer_of_the_same_file_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let first = FileStore::new(&path);
    assert_eq!(first.load().await.unwrap(), None);
    // Another process's store: its own open of the lock file (flock locks are per open file).
    let second = FileStore::new(&path);
    match second.load().await {
        Err(StoreError::Locked(m)) => {
            assert!(m.contains(&path.display().to_string()), "{m}");
            assert!(m.contains(&format!("pid {}", std::process::id())), "{m}");
        }
        other => panic!("{other:?}"),
    }
    let records = kasm_scale_core::controller::Records::default();
    assert!(matches!(
        second.save(&records).await,
        Err(StoreError::Locked(_))
    ));
    // A clone of the first shares its lock; once every clone is gone, the file is free.
    first.clone().save(&records).await.unwrap();
    drop(first);
    assert_eq!(second.load().await.unwrap(), Some(records));
}

#[cfg(unix)]
#[tokio::test]
async fn a_link_in_place_of_the_temporary_file_is_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("state.json.new")).unwrap();
    let store = FileStore::new(&path);
    let records = kasm_scale_core::controller::Records {
        next_session: 7,
        ..Default::default()
    };
    store.save(&records).await.unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(store.load().await.unwrap(), Some(records));
    assert!(
        !std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
