//! Partition: a loopback TCP proxy between the leader and PostgreSQL holds every byte back. The
//! old leader stops acting before the new one starts (from the event log's timestamps: no
//! moment with two actors), and the write it had sent before the cut, delivered after the new
//! leader took over, is refused by epoch: the session it was for is not recorded anywhere.

use crate::common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::replicas::{Replica, World, leader};
use kasm_scale_core::controller::{ControllerError, Event};
use kasm_scale_core::engine::SessionRequest;

const TTL: Duration = Duration::from_millis(1500);
const TICK: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_stops_before_the_next_starts_and_its_late_write_is_refused() {
    let Some(server) = common::server() else {
        return;
    };
    for seed in 0..3 {
        let database = common::fresh_database(&server).await;
        let (proxy, via_proxy) = Proxy::in_front_of(&database).await;

        let world = World::new(seed, Duration::from_millis(100));
        let a = Replica::start(0, &world, &via_proxy, TTL, TICK).await;
        leader(std::slice::from_ref(&a), TTL * 3)
            .await
            .expect("the first replica leads");
        // Its servers come up (the state it saves is what the next leader loads).
        tokio::time::sleep(TICK * 5).await;
        let b = Replica::start(1, &world, &database, TTL, TICK).await;
        tokio::time::sleep(TICK * 3).await;
        assert!(a.leads() && !b.leads(), "seed {seed}: a leads, b follows");

        // The cut, with a broker call on its way: its save is held in the network.
        proxy.partition(true);
        let cut_at = Instant::now();
        let late = tokio::spawn({
            let scaler = a.scaler.clone();
            async move {
                scaler
                    .request_session("p", &SessionRequest::default())
                    .await
            }
        });
        let new = leader(std::slice::from_ref(&b), TTL * 4)
            .await
            .map(|_| Instant::now())
            .unwrap_or_else(|| panic!("seed {seed}: b never took over"));
        assert!(!a.leads(), "seed {seed}: a still acts after b took over");
        proxy.partition(false);
        let outcome = tokio::time::timeout(Duration::from_secs(40), late)
            .await
            .expect("the late call ends")
            .expect("task");
        assert!(
            matches!(outcome, Err(ControllerError::NotLeader { .. })),
            "seed {seed}: the late write was not refused: {outcome:?}"
        );

        // The listeners log asynchronously.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let events = world.events();
        let stepped_down = events
            .iter()
            .find(|(at, who, e)| {
                *who == 0 && *at > cut_at && matches!(e, Event::SteppedDown { .. })
            })
            .map(|(at, _, _)| *at)
            .unwrap_or_else(|| panic!("seed {seed}: a never stepped down"));
        let took_over = events
            .iter()
            .find(|(_, who, e)| *who == 1 && matches!(e, Event::Leading { .. }))
            .map(|(at, _, _)| *at)
            .unwrap_or_else(|| panic!("seed {seed}: b never led"));
        assert!(
            stepped_down < took_over,
            "seed {seed}: two actors for {} ms",
            took_over.duration_since(stepped_down).as_millis()
        );
        assert!(
            took_over <= new + TICK,
            "seed {seed}: events and roles disagree"
        );
        // Refused by the database, for its epoch (not only by a's own step-down).
        assert!(
            events.iter().any(|(_, who, e)| *who == 0
                && matches!(e, Event::Failed { error, .. }
                    if error.contains("the lease is at epoch") && error.contains("another replica leads"))),
            "seed {seed}: no write of a was refused by epoch: {:?}",
            events.iter().map(|(at, who, e)| (at.checked_duration_since(cut_at), who, e)).collect::<Vec<_>>()
        );
        // The refused write left nothing: b (and the database) know no session.
        b.scaler.tick().await;
        assert_eq!(
            b.scaler
                .pools()
                .iter()
                .map(|p| p.used_sessions + p.waiting)
                .sum::<u32>(),
            0,
            "seed {seed}: the refused session is recorded"
        );
        a.kill();
        b.stop().await;
    }
}
