//! Drains: of a server, a config and a pool; destroy or keep; expiry; undrain; a vanished
//! server; a restart.

use std::sync::Arc;

use jiff::SignedDuration;
use kasm_scale_core::controller::{ControllerError, DrainRequest, DrainTarget, Event};
use kasm_scale_core::engine::{DrainThen, ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::traits::StateStore;

use super::{fixture, world, world_on};

fn request(target: DrainTarget, then: DrainThen) -> DrainRequest {
    DrainRequest {
        target,
        by: "ops@example.com".into(),
        reason: "patch Tuesday".into(),
        until: None,
        then,
    }
}

#[tokio::test(start_paused = true)]
async fn a_drained_idle_server_is_replaced_then_destroyed() {
    let mut w = world(fixture().config(), 11);
    w.run(120).await;
    let target = w.live()[0];
    let drain = w
        .scaler
        .drain(request(DrainTarget::Server(target), DrainThen::Destroy))
        .await
        .unwrap();
    assert_eq!(drain.by, "ops@example.com");
    assert!(
        w.drain_events()
            .iter()
            .any(|e| matches!(e, Event::Drained { .. }))
    );
    w.run(120).await;
    assert!(!w.live().contains(&target), "the drained server went");
    assert_eq!(w.free(), 2, "a replacement keeps the minimum");
    // Its drain went with it.
    w.step().await;
    assert!(w.scaler.drains().is_empty());
    assert!(w.drain_events().iter().any(|e| matches!(
        e,
        Event::Undrained { reason, .. } if reason.contains("server is gone")
    )));
}

#[tokio::test(start_paused = true)]
async fn a_drained_server_with_a_session_takes_no_new_one_and_goes_when_it_ends() {
    let w = world(fixture().minimum_standby(1).config(), 12);
    w.run(120).await;
    let (session, busy) = w.seat("p", "alice").await;
    w.run(120).await;
    w.scaler
        .drain(request(DrainTarget::Server(busy), DrainThen::Destroy))
        .await
        .unwrap();
    w.run(60).await;
    assert!(w.live().contains(&busy), "a server with a session stays");
    // New sessions go elsewhere.
    for user in ["bob", "carol"] {
        let (_, server) = w.seat("p", user).await;
        assert_ne!(server, busy);
        w.run(120).await;
    }
    w.scaler.end_session(session).await.unwrap();
    w.run(30).await;
    assert!(!w.live().contains(&busy));
}

#[tokio::test(start_paused = true)]
async fn a_kept_server_stays_empty_until_undrained() {
    let w = world(fixture().config(), 13);
    w.run(120).await;
    let kept = w.live()[0];
    w.scaler
        .drain(request(DrainTarget::Server(kept), DrainThen::Keep))
        .await
        .unwrap();
    w.run(1800).await;
    assert!(w.live().contains(&kept), "kept for maintenance");
    assert_eq!(
        w.free() - 1,
        2,
        "its slot is not counted: a replacement keeps the minimum"
    );
    let pool = &w.scaler.pools()[0];
    assert_eq!(
        (pool.free_sessions, pool.drained_sessions),
        (2, 1),
        "the pool's view counts a drained slot apart: {pool:?}"
    );
    w.scaler.undrain(&DrainTarget::Server(kept)).await.unwrap();
    assert!(matches!(
        w.scaler.undrain(&DrainTarget::Server(kept)).await,
        Err(ControllerError::NotDrained(_))
    ));
    // Back in the pool: one server too many, scaled in after the downscale backoff.
    w.run(1300).await;
    assert_eq!(w.free(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_drain_with_an_expiry_ends_by_itself() {
    let mut w = world(fixture().config(), 14);
    w.run(120).await;
    let until = w.scaler.now() + SignedDuration::from_mins(30);
    let mut r = request(DrainTarget::Pool("p".into()), DrainThen::Keep);
    r.until = Some(until);
    w.scaler.drain(r).await.unwrap();
    let e = w
        .scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(
            e,
            kasm_scale_core::controller::SessionOutcome::Queued { .. }
        ),
        "a drained pool's servers take no new session: {e:?}"
    );
    w.run(1790).await;
    assert_eq!(w.scaler.drains().len(), 1);
    w.run(20).await;
    assert!(w.scaler.drains().is_empty(), "expired");
    assert!(w.drain_events().iter().any(|e| matches!(
        e,
        Event::Undrained { reason, .. } if reason.contains("time ran out")
    )));
}

#[tokio::test(start_paused = true)]
async fn a_config_drain_replaces_nothing_it_cannot_and_bad_drains_say_why() {
    let w = world(fixture().config(), 15);
    w.run(120).await;
    for (target, says) in [
        (
            DrainTarget::Config("nope".into()),
            "unknown auto-scale config",
        ),
        (DrainTarget::Pool("nope".into()), "unknown pool"),
    ] {
        let e = w
            .scaler
            .drain(request(target, DrainThen::Destroy))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let mut r = request(DrainTarget::Config("c".into()), DrainThen::Destroy);
    r.by = " ".into();
    let e = w.scaler.drain(r).await.unwrap_err();
    assert!(e.to_string().contains("`by` must be 1 to"), "{e}");
    let mut r = request(DrainTarget::Config("c".into()), DrainThen::Destroy);
    r.until = Some(w.scaler.now());
    let e = w.scaler.drain(r).await.unwrap_err();
    assert!(e.to_string().contains("`until`"), "{e}");
    assert!(w.scaler.drains().is_empty(), "nothing left behind");
    // Draining the whole config: its servers cannot be replaced by it, so the pool has no
    // free slot; they go.
    w.scaler
        .drain(request(DrainTarget::Config("c".into()), DrainThen::Destroy))
        .await
        .unwrap();
    w.run(60).await;
    assert!(w.live().is_empty(), "{:?}", w.scaler.servers());
}

#[tokio::test(start_paused = true)]
async fn drains_survive_a_restart() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let w = world_on(fixture().config(), 16, Some(store.clone()));
    w.run(120).await;
    let kept = w.live()[0];
    w.scaler
        .drain(request(DrainTarget::Server(kept), DrainThen::Keep))
        .await
        .unwrap();
    w.scaler.save().await;
    drop(w);
    let w = world_on(fixture().config(), 16, Some(store));
    w.scaler.start().await.unwrap();
    let drains = w.scaler.drains();
    assert_eq!(drains.len(), 1);
    assert_eq!(drains[0].target, DrainTarget::Server(kept));
    assert_eq!(drains[0].reason, "patch Tuesday");
    let s = w.scaler.server(kept).unwrap();
    assert_ne!(s.state, ServerState::Destroying);
}
