//! Crash safety: in 200 seeded runs a controller is dropped at a random moment of a burst (its
//! background work cut off mid-way), a new one starts on the same cloud and directory — with the
//! saved state, or, every third run, with the state store lost — and in the end nothing has
//! leaked, the minimum holds, busy servers whose sessions became unknown were not destroyed and
//! used single-use servers were not handed out again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Distribution, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, Event, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::deliver_checkins;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory};
use kasm_scale_core::token::TokenKeys;
use kasm_scale_core::traits::{DirectoryService, VmProvider};
use rand::{Rng, SeedableRng};

use crate::fixture::Fixture;

fn config() -> kasm_scale_core::config::Config {
    Fixture::memory_pool("p")
        .max_instances(30)
        .provider("rate_limit_per_second", 2.0)
        .active_directory()
        .minimum_standby(2)
        .require_checkin(true)
        .checkin_timeout(900)
        .downscale_backoff(300)
        .config()
}

fn build(
    seed: u64,
    cloud: &Arc<MemoryCloud>,
    directory: &Arc<MemoryDirectory>,
    store: &MemoryStore,
    keys: &TokenKeys,
    epoch: jiff::Timestamp,
) -> Autoscaler {
    let config = config();
    Autoscaler::builder(config)
        .provider(cloud.clone())
        .directory(directory.clone())
        .store(Arc::new(store.clone()))
        .tokens(keys.clone())
        .seed(seed)
        .rate_limit("mem", 2.0)
        .reconcile_every(5)
        .orphan_grace(Duration::from_secs(120))
        .epoch(epoch)
        .build()
        .unwrap()
}

async fn step(scaler: &Autoscaler, cloud: &MemoryCloud) {
    scaler.tick().await;
    scaler.settle().await;
    // A guest whose server is gone gets a refusal, as it would from Kasm.
    deliver_checkins(scaler, cloud).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_leaks_when_the_controller_dies_during_a_burst() {
    let keys = TokenKeys::generate().unwrap();
    let (mut crashed_mid_work, mut adopted, mut unknown_kept) = (0, 0, 0);
    for seed in 0..200u64 {
        let config = config();
        let VmProviderConfig::Memory(mut mem) = config.vm_providers[0].clone() else {
            panic!()
        };
        mem.boot_latency = Distribution::Uniform([30.0, 90.0]);
        mem.checkin_delay = Distribution::Uniform([5.0, 30.0]);
        mem.create_failure_rate = 0.1;
        let cloud = Arc::new(MemoryCloud::new(mem, seed));
        let directory = Arc::new(MemoryDirectory::new("ad", "example.local", seed));
        let store = MemoryStore::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let store_lost = seed % 3 == 0;

        let first = build(
            seed,
            &cloud,
            &directory,
            &store,
            &keys,
            "2026-11-30T12:00:00Z".parse().unwrap(),
        );
        for _ in 0..rng.random_range(0..15) {
            step(&first, &cloud).await;
        }
        // A burst of requests, then the controller dies while its work runs.
        let mut busy = BTreeSet::new();
        for _ in 0..rng.random_range(5..20) {
            if let SessionOutcome::Assigned { server, .. } = first
                .request_session("p", &SessionRequest::default())
                .await
                .unwrap()
            {
                busy.insert(server);
            }
        }
        let cut = Duration::from_millis(rng.random_range(0..8_000));
        let work = async {
            first.tick().await;
            first.settle().await;
        };
        if tokio::time::timeout(cut, work).await.is_err() {
            crashed_mid_work += 1;
        }
        // Sessions seated by queued requests during the burst's tick.
        busy.extend(
            first
                .servers()
                .iter()
                .filter(|s| s.sessions > 0)
                .map(|s| s.id),
        );
        // The wall clock goes on across the restart.
        let restart_at = first.now();
        drop(first);
        if store_lost {
            store.clear();
        }

        let second = build(seed + 10_000, &cloud, &directory, &store, &keys, restart_at);
        let mut events = second.subscribe();
        for i in 0..120 {
            step(&second, &cloud).await;
            // New users come while the restarted controller runs.
            if i % 30 == 10 {
                let outcome = second
                    .request_session("p", &SessionRequest::default())
                    .await
                    .unwrap();
                if let SessionOutcome::Assigned { server, .. } = outcome {
                    assert!(
                        !busy.contains(&server),
                        "seed {seed}: used single-use server {server} handed out again"
                    );
                }
            }
        }
        while let Ok(e) = events.try_recv() {
            if let Event::Adopted { .. } = e {
                adopted += 1;
            }
            if let Event::SessionAssigned { server, .. } = e {
                assert!(
                    !busy.contains(&server),
                    "seed {seed}: used single-use server {server} handed out again"
                );
            }
        }
        if store_lost {
            // Busy servers whose sessions are unknown are kept (the broker never reported).
            let live: BTreeSet<_> = second.servers().iter().map(|s| s.id).collect();
            for server in &busy {
                assert!(
                    live.contains(server),
                    "seed {seed}: busy server {server} destroyed while its sessions were unknown"
                );
                unknown_kept += 1;
            }
        }
        // Every VM and AD record belongs to a server the new controller knows.
        let servers = second.servers();
        let known_vms: BTreeSet<String> = servers.iter().filter_map(|s| s.vm_id.clone()).collect();
        let vms: BTreeSet<String> = cloud
            .list("kasm-scale")
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.vm_id)
            .collect();
        assert_eq!(vms, known_vms, "seed {seed}: leaked or lost VMs");
        let known_ids: BTreeSet<_> = servers.iter().map(|s| s.id).collect();
        for record in directory
            .list_computers("kasm-scale", &["OU=Kasm,DC=example,DC=local".to_owned()])
            .await
            .unwrap()
        {
            assert!(
                known_ids.contains(&record.owner.server_id),
                "seed {seed}: leaked AD record {}",
                record.name
            );
        }
        assert_eq!(
            directory.record_count(),
            servers.len(),
            "seed {seed}: one AD record per server"
        );
        // The minimum holds: two free sessions on ready servers.
        let free: u32 = servers
            .iter()
            .filter(|s| s.state == ServerState::Running && (s.reusable || !s.used))
            .map(|s| s.capacity - s.sessions)
            .sum();
        assert!(
            free >= 2,
            "seed {seed}: {free} free < minimum 2: {:?} {} servers",
            second.bookkeeping("c"),
            servers.len()
        );
    }
    eprintln!(
        "{crashed_mid_work} of 200 controllers died with work running; {adopted} VMs adopted after a lost store; {unknown_kept} busy servers kept while unknown"
    );
    assert!(
        crashed_mid_work > 50,
        "most runs must die with work running ({crashed_mid_work})"
    );
    assert!(
        adopted > 20,
        "restarts with a lost store must adopt the VMs they find ({adopted})"
    );
    assert!(
        unknown_kept > 20,
        "store-loss runs must have busy servers ({unknown_kept})"
    );
}
