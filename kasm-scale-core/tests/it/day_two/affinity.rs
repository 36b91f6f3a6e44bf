//! User affinity: a user's second request returns their session; a broker can ask for another.

use kasm_scale_core::controller::{DrainRequest, DrainTarget, SessionOutcome};
use kasm_scale_core::engine::{DrainThen, SessionRequest};

use super::{fixture, world};

fn alice(second: bool) -> SessionRequest {
    SessionRequest {
        user: Some("alice".into()),
        second_session: second,
        ..SessionRequest::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_returns_the_users_session_on_its_server() {
    let w = world(fixture().minimum_standby(3).config(), 21);
    w.run(120).await;
    let first = w
        .scaler
        .request_session_once("p", &alice(false))
        .await
        .unwrap();
    assert!(!first.reconnected);
    let again = w
        .scaler
        .request_session_once("p", &alice(false))
        .await
        .unwrap();
    assert!(again.reconnected);
    assert_eq!(again.outcome, first.outcome);
    // Explicitly a second one.
    let second = w
        .scaler
        .request_session_once("p", &alice(true))
        .await
        .unwrap();
    assert!(!second.reconnected);
    assert_ne!(second.outcome.session(), first.outcome.session());
    // Once both end, a new request makes a new session.
    w.scaler.end_session(first.outcome.session()).await.unwrap();
    w.scaler
        .end_session(second.outcome.session())
        .await
        .unwrap();
    let later = w
        .scaler
        .request_session_once("p", &alice(false))
        .await
        .unwrap();
    assert!(!later.reconnected);
    assert_ne!(later.outcome.session(), first.outcome.session());
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_goes_to_a_drained_server() {
    let w = world(fixture().config(), 22);
    w.run(120).await;
    let first = w.scaler.request_session("p", &alice(false)).await.unwrap();
    let SessionOutcome::Assigned { server, .. } = first else {
        panic!("{first:?}")
    };
    w.scaler
        .drain(DrainRequest {
            target: DrainTarget::Server(server),
            by: "ops".into(),
            reason: "maintenance".into(),
            until: None,
            then: DrainThen::Destroy,
        })
        .await
        .unwrap();
    w.run(60).await;
    let again = w
        .scaler
        .request_session_once("p", &alice(false))
        .await
        .unwrap();
    assert!(again.reconnected);
    assert_eq!(again.outcome, first);
}

#[tokio::test(start_paused = true)]
async fn without_affinity_a_user_gets_a_second_session() {
    let w = world(fixture().minimum_standby(3).toml("").config(), 23);
    let mut config = (*w.scaler.config()).clone();
    config.pools[0].user_affinity = Some(false);
    w.scaler.reconfigure(config).await.unwrap();
    w.run(120).await;
    let first = w.scaler.request_session("p", &alice(false)).await.unwrap();
    let again = w
        .scaler
        .request_session_once("p", &alice(false))
        .await
        .unwrap();
    assert!(!again.reconnected);
    assert_ne!(again.outcome.session(), first.session());
}

#[tokio::test(start_paused = true)]
async fn names_compare_without_case_and_an_empty_name_is_nobody() {
    let w = world(fixture().minimum_standby(4).config(), 24);
    w.run(120).await;
    let named = |user: &str| SessionRequest {
        user: Some(user.into()),
        ..SessionRequest::default()
    };
    let first = w
        .scaler
        .request_session_once("p", &named("Alice"))
        .await
        .unwrap();
    let again = w
        .scaler
        .request_session_once("p", &named(" alice "))
        .await
        .unwrap();
    assert!(again.reconnected, "one Windows account, one profile");
    assert_eq!(again.outcome, first.outcome);
    // Anonymous requests are never each other's reconnect.
    let a = w
        .scaler
        .request_session_once("p", &named(""))
        .await
        .unwrap();
    let b = w
        .scaler
        .request_session_once("p", &named("  "))
        .await
        .unwrap();
    assert!(!a.reconnected && !b.reconnected);
    assert_ne!(a.outcome.session(), b.outcome.session());
    // A name that cannot be one is refused, and nothing is made.
    let before = w.scaler.servers().iter().map(|s| s.sessions).sum::<u32>();
    for (bad, says) in [
        ("x".repeat(257), "at most 256 characters"),
        ("bob\u{7}".to_owned(), "control characters"),
    ] {
        let e = w
            .scaler
            .request_session("p", &named(&bad))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let after = w.scaler.servers().iter().map(|s| s.sessions).sum::<u32>();
    assert_eq!(before, after);
}
