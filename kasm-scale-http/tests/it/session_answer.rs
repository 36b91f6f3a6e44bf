//! A session's answer costs the same whatever the fleet's size: `GET /api/v1/sessions/{id}`
//! looks up the session's own server, not a copy of every server. Counted in heap allocations
//! on the test's thread (the router, the controller and the answer all run on it: a
//! current-thread runtime), for a fleet of 2 and of 200 servers.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{NEW_KEY, OLD_KEY, World, broker_keys, fixture, world_with};

/// The heap allocations of one `GET /api/v1/sessions/{id}` of a seated session, in a pool
/// of `servers` ready single-session servers.
fn lookup_allocations(servers: u32) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let config = fixture()
        .max_instances(servers)
        .minimum_standby(servers)
        .require_checkin(false)
        .toml(&broker_keys(&[OLD_KEY, NEW_KEY]))
        .to_toml();
    let (w, session) = rt.block_on(async {
        let w = world_with(&config).await;
        w.tick().await;
        w.tick().await;
        let free = w.scaler.pools()[0].free_sessions;
        assert_eq!(free, servers, "every server is ready");
        let (status, answer) = w.send(broker("POST", "/api/v1/pools/p/sessions")).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        (w, answer["session"].as_u64().unwrap())
    });
    let lookup = |w: &World| {
        rt.block_on(async {
            let (status, answer) = w
                .send(broker("GET", &format!("/api/v1/sessions/{session}")))
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["state"], "assigned");
            assert!(answer["server"]["hostname"].is_string(), "{answer}");
        });
    };
    // Once first: what is set up on a first call (tracing call sites, …) is not counted.
    lookup(&w);
    allocation_counter::measure(|| lookup(&w)).count_total
}

fn broker(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {NEW_KEY}"))
        .body(Body::empty())
        .unwrap()
}

#[test]
fn a_session_lookup_does_not_copy_the_fleet() {
    let small = lookup_allocations(2);
    let large = lookup_allocations(200);
    println!("allocations of one session lookup: {small} with 2 servers, {large} with 200");
    assert!(small > 0, "the counting allocator is installed");
    assert!(
        large <= small + 4,
        "a lookup costs {small} allocations with 2 servers and {large} with 200"
    );
}
