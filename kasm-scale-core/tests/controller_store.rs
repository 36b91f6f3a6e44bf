//! What the controller saves, and when: every change reaches the store, in order, and a tick
//! that changes nothing saves nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::{
    Autoscaler, MemoryStore, Records, SessionOutcome, StateStore, StoreError,
};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::load_str;
use kasm_scale_core::memory::{MemoryCloud, deliver_checkins};

const EPOCH: &str = "2026-11-30T12:00:00Z";

fn config(minimum: u32) -> Config {
    let text = format!(
        r#"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[vm_providers]]
provider = "memory"
name = "mem"
max_instances = 10
startup_script = "{{checkin_jwt}}"
boot_latency = {{ fixed = 60 }}
checkin_delay = {{ fixed = 30 }}

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "mem"
connection_type = "RDP"
minimum_pool_standby_sessions = {minimum}
require_checkin = true
"#
    );
    load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

/// A memory store that counts saves; the save numbered `slow` (from 1) takes ten seconds.
#[derive(Debug, Default)]
struct Watched {
    inner: MemoryStore,
    saves: AtomicUsize,
    slow: usize,
}

#[async_trait]
impl StateStore for Watched {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        let copy = records.clone();
        if n == self.slow {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        self.inner.save(&copy).await
    }
}

fn scaler(config: Config, store: Arc<Watched>) -> (Autoscaler, Arc<MemoryCloud>) {
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 3));
    let scaler = Autoscaler::builder(config)
        .provider(cloud.clone())
        .store(store)
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap();
    (scaler, cloud)
}

fn waiting(records: &Records) -> usize {
    records.queued.values().map(|q| q.len()).sum()
}

/// A save that is slow must not land after a later one: the store would keep the older state
/// while the controller believes it saved the newer one.
#[tokio::test(start_paused = true)]
async fn a_slow_save_never_overwrites_a_newer_one() {
    let store = Arc::new(Watched {
        slow: 1,
        ..Watched::default()
    });
    let (scaler, _cloud) = scaler(config(0), store.clone());
    // No server: both requests wait. The first one's save takes ten seconds.
    let first = tokio::spawn({
        let scaler = scaler.clone();
        async move {
            scaler
                .request_session("p", &SessionRequest::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(second, SessionOutcome::Queued { .. }),
        "{second:?}"
    );
    let first = first.await.unwrap().unwrap();
    assert!(matches!(first, SessionOutcome::Queued { .. }), "{first:?}");
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(
        waiting(&saved),
        2,
        "the store holds the newest state (both waiting requests)"
    );
}

/// Every change is saved; once the pool is steady, ticks save nothing; the next broker call
/// saves once.
#[tokio::test(start_paused = true)]
async fn every_change_is_saved_and_a_steady_tick_saves_nothing() {
    let store = Arc::new(Watched::default());
    let (scaler, cloud) = scaler(config(2), store.clone());
    for _ in 0..20 {
        scaler.tick().await;
        scaler.settle().await;
        deliver_checkins(&scaler, &cloud).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let running = |records: &Records| {
        records
            .servers
            .values()
            .filter(|s| s.state == ServerState::Running)
            .count()
    };
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(running(&saved), 2, "the ready servers are saved");
    assert_eq!(saved.servers.len(), scaler.servers().len());

    let before = store.saves.load(Ordering::SeqCst);
    for _ in 0..5 {
        scaler.tick().await;
        scaler.settle().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    assert_eq!(
        store.saves.load(Ordering::SeqCst),
        before,
        "steady ticks save nothing"
    );

    let SessionOutcome::Assigned { session, server } = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap()
    else {
        panic!("a ready server takes the session")
    };
    assert_eq!(store.saves.load(Ordering::SeqCst), before + 1);
    let saved = store.inner.load().await.unwrap().expect("saved");
    assert_eq!(saved.sessions.get(&session), Some(&server));
}
