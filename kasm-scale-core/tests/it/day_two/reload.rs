//! `Autoscaler::reconfigure`: what may change live, what is refused, and the rollout a new
//! generation starts.

use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{ControllerError, Event, RolloutPhase, SetupError};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::{Format, load_str};

use super::{fixture, memory, world};

fn with_script(config: &Config, script: &str) -> Config {
    let mut next = config.clone();
    let VmProviderConfig::Memory(m) = &mut next.vm_providers[0] else {
        panic!()
    };
    m.startup_script = script.into();
    next
}

/// `config` with a second pool `q` of config `qc` (no check-in) keeping `minimum` free slots.
fn with_pool_q(config: &Config, minimum: u32) -> Config {
    let mut next = config.clone();
    let mut q = next.pools[0].clone();
    q.server_pool_name = "q".into();
    q.autoscale[0].autoscale_config_name = "qc".into();
    q.autoscale[0].minimum_pool_standby_sessions = minimum;
    q.autoscale[0].require_checkin = false;
    next.pools.push(q);
    next
}

#[tokio::test(start_paused = true)]
async fn a_raised_minimum_takes_effect_at_the_next_tick_without_a_restart() {
    let mut w = world(fixture().config(), 1);
    w.run(120).await;
    assert_eq!(w.free(), 2);
    let before = w.scaler.config().generation("c");
    let raised = fixture().minimum_standby(5).config();
    let changes = w.scaler.reconfigure(raised).await.unwrap();
    assert!(changes.new_generations.is_empty(), "{changes:?}");
    assert_eq!(
        w.scaler.config().generation("c"),
        before,
        "a minimum steers only"
    );
    assert!(
        w.drain_events()
            .iter()
            .any(|e| matches!(e, Event::Reconfigured { .. }))
    );
    w.run(120).await;
    assert_eq!(w.free(), 5);
    // Nothing was replaced: the two first servers are still there.
    assert_eq!(w.scaler.servers().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_configuration_is_refused_with_every_problem_and_nothing_changes() {
    let mut w = world(fixture().config(), 2);
    w.run(120).await;
    let running = w.scaler.config();
    // Two problems: an unknown provider, and a config name used twice.
    let mut bad = (*running).clone();
    let mut second = bad.pools[0].autoscale[0].clone();
    second.autoscale_config_name = "d".into();
    second.vm_provider_config_id = "nowhere".into();
    bad.pools[0].autoscale.push(second);
    let mut twice = bad.pools[0].autoscale[0].clone();
    twice.minimum_pool_standby_sessions = 1;
    bad.pools[0].autoscale.push(twice);
    let e = w.scaler.reconfigure(bad).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ControllerError::Config(_)), "{e:?}");
    assert!(text.contains("pools[0].autoscale[2]"), "{text}");
    assert!(text.contains("nowhere"), "{text}");
    assert_eq!(
        *w.scaler.config(),
        *running,
        "the running configuration stays"
    );
    let refused = w
        .drain_events()
        .into_iter()
        .find_map(|e| match e {
            Event::ReloadRefused { problems } => Some(problems),
            _ => None,
        })
        .expect("a refusal is evented");
    assert!(refused.len() >= 2, "every problem: {refused:?}");
    // And the controller goes on as before.
    w.run(60).await;
    assert_eq!(w.free(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_changed_provider_without_a_new_provider_is_refused_and_with_one_rolls_out() {
    let mut w = world(fixture().config(), 3);
    w.run(120).await;
    let old: Vec<_> = w.live();
    assert_eq!(old.len(), 2);
    let next = with_script(&w.scaler.config(), "new image {checkin_jwt}");
    let e = w.scaler.reconfigure(next.clone()).await.unwrap_err();
    match &e {
        ControllerError::Setup(problems) => assert_eq!(
            problems,
            &[SetupError::StaleProvider {
                provider: "mem".into()
            }]
        ),
        other => panic!("{other:?}"),
    }
    let changes = w
        .scaler
        .reconfiguration(next.clone())
        .provider(std::sync::Arc::new(w.cloud.with_config(memory(&next))))
        .apply()
        .await
        .unwrap();
    assert_eq!(changes.new_generations, ["c"]);
    assert_eq!(changes.providers_replaced, ["mem"]);
    let status = &w.scaler.generations()[0];
    assert_eq!((status.current, status.outdated), (0, 2));
    // Replacements first (canary, then the rest), then the old servers go; the pool never has
    // fewer free slots than it keeps.
    let mut lowest = u32::MAX;
    for _ in 0..60 {
        w.run(10).await;
        lowest = lowest.min(w.free());
    }
    assert!(
        lowest >= 2,
        "free slots fell to {lowest} during the rollout"
    );
    let status = &w.scaler.generations()[0];
    assert_eq!((status.current, status.outdated), (2, 0), "{status:?}");
    assert!(w.live().iter().all(|id| !old.contains(id)));
    let phases: Vec<RolloutPhase> = w
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Rollout { phase, .. } => Some(phase),
            _ => None,
        })
        .collect();
    assert_eq!(
        phases,
        [
            RolloutPhase::Started,
            RolloutPhase::CanaryReady,
            RolloutPhase::Finished
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_removed_config_drains_and_a_removed_pool_refuses_requests() {
    let one = fixture().config();
    let w = world(with_pool_q(&one, 2), 4);
    w.run(120).await;
    assert_eq!(w.live().len(), 4);
    let (session, busy) = w.seat("q", "alice").await;
    // Pool q (and its config) removed.
    let changes = w.scaler.reconfigure(one).await.unwrap();
    assert_eq!(changes.pools_removed, ["q"]);
    assert_eq!(changes.configs_removed, ["qc"]);
    let e = w
        .scaler
        .request_session("q", &SessionRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ControllerError::UnknownPool(_)), "{e:?}");
    w.run(30).await;
    // Its idle server went at once; the busy one stays until its session ends.
    let q: Vec<_> = w
        .scaler
        .servers()
        .into_iter()
        .filter(|s| s.pool == "q" && s.state != ServerState::Destroying)
        .collect();
    assert_eq!(q.iter().map(|s| s.id).collect::<Vec<_>>(), [busy]);
    assert_eq!(q[0].sessions, 1, "no session ended by us");
    w.scaler.end_session(session).await.unwrap();
    w.run(30).await;
    assert!(w.scaler.servers().iter().all(|s| s.pool != "q"));
    // Pool p kept its servers throughout.
    assert_eq!(w.free(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_added_config_and_pool_scale_at_the_next_tick() {
    let w = world(fixture().config(), 5);
    w.run(120).await;
    // Through text, as a file would bring it.
    let next = with_pool_q(&w.scaler.config(), 1);
    let text = toml::to_string(&next).unwrap();
    let next = load_str(&text, Format::Toml).unwrap().config;
    let changes = w.scaler.reconfigure(next).await.unwrap();
    assert_eq!(changes.pools_added, ["q"]);
    assert_eq!(changes.configs_added, ["qc"]);
    w.run(120).await;
    let q = w
        .scaler
        .pools()
        .into_iter()
        .find(|p| p.pool == "q")
        .unwrap();
    assert_eq!(q.free_sessions, 1);
    w.seat("q", "bob").await;
}

#[tokio::test(start_paused = true)]
async fn reloading_the_old_configuration_rolls_back_without_tearing_the_old_servers_down() {
    // The new generation's servers never check in: the canary fails and the rollout pauses.
    let w = world(fixture().config(), 6);
    w.run(120).await;
    let old = w.live();
    let original = (*w.scaler.config()).clone();
    let broken = with_script(&original, "broken image {checkin_jwt}");
    let mut never = memory(&broken);
    never.never_checkin_rate = 1.0;
    w.scaler
        .reconfiguration(broken)
        .provider(std::sync::Arc::new(w.cloud.with_config(never)))
        .apply()
        .await
        .unwrap();
    w.run(900).await;
    let status = w.scaler.generations().remove(0);
    let rollout = status.rollout.expect("a rollout");
    assert!(rollout.paused.is_some(), "{rollout:?}");
    // Only the canary was built; the old servers all stay.
    assert!(old.iter().all(|id| w.live().contains(id)));
    // Back to the original: its servers are current again.
    w.scaler
        .reconfiguration(original.clone())
        .provider(std::sync::Arc::new(w.cloud.with_config(memory(&original))))
        .apply()
        .await
        .unwrap();
    w.run(120).await;
    let status = &w.scaler.generations()[0];
    assert_eq!(status.outdated, 0, "{status:?}");
    assert!(
        old.iter().all(|id| w.live().contains(id)),
        "no old server was destroyed"
    );
    // The broken generation's rollout is over: nothing shows it paused any more (alerts clear).
    assert!(
        status.rollout.as_ref().is_none_or(|r| r.paused.is_none()),
        "{status:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_on_another_file_says_so_at_its_first_plan() {
    let store: std::sync::Arc<dyn kasm_scale_core::traits::StateStore> =
        std::sync::Arc::new(kasm_scale_core::memory::MemoryStore::default());
    let first = super::world_on(fixture().config(), 7, Some(store.clone()));
    first.run(60).await;
    first.scaler.save().await;
    drop(first);
    // Another replica (or a restart) with an edited file: its plans use another generation.
    let edited = with_script(&fixture().config(), "edited {checkin_jwt}");
    let mut second = super::world_on(edited, 7, Some(store));
    second.step().await;
    assert!(
        second.drain_events().iter().any(|e| matches!(
            e,
            Event::Note { text, .. } if text.contains("c: acting on generation")
        )),
        "the first plan on another file's generation says so"
    );
}

#[tokio::test(start_paused = true)]
async fn a_config_moved_to_another_pool_with_servers_is_refused() {
    let w = world(fixture().config(), 8);
    w.run(120).await;
    let mut moved = (*w.scaler.config()).clone();
    let mut other = moved.pools[0].clone();
    other.server_pool_name = "elsewhere".into();
    moved.pools[0].autoscale.clear();
    moved.pools.push(other);
    let e = w.scaler.reconfigure(moved).await.unwrap_err();
    assert!(
        e.to_string().contains("moved from pool `p` to `elsewhere`"),
        "{e}"
    );
    assert_eq!(w.scaler.config().pools.len(), 1, "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn a_server_whose_provider_is_gone_is_kept_with_the_reason_not_forgotten() {
    let store: std::sync::Arc<dyn kasm_scale_core::traits::StateStore> =
        std::sync::Arc::new(kasm_scale_core::memory::MemoryStore::default());
    let first = super::world_on(fixture().config(), 9, Some(store.clone()));
    first.run(120).await;
    first.scaler.save().await;
    let before: Vec<_> = first.live();
    assert_eq!(before.len(), 2);
    let cloud = first.cloud.clone();
    drop(first);
    // Restarted with another provider config only: the saved servers' `mem` has no provider.
    let mut other = fixture().config();
    if let VmProviderConfig::Memory(m) = &mut other.vm_providers[0] {
        m.name = "mem2".into();
    }
    other.pools[0].autoscale[0].vm_provider_config_id = "mem2".into();
    other.pools[0].autoscale[0].autoscale_config_name = "c2".into();
    let second = super::world_on(other, 10, Some(store));
    second.run(60).await;
    for id in &before {
        let s = second
            .scaler
            .server(*id)
            .expect("a server whose VM cannot be destroyed is not forgotten");
        assert!(
            s.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no provider for VM provider config `mem`")),
            "{s:?}"
        );
    }
    // And its VM is still there, in the old cloud, for an operator to deal with.
    assert_eq!(cloud.vm_count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_removed_pools_waiting_requests_end_at_the_reload() {
    let one = fixture().config();
    let mut w = world(with_pool_q(&one, 0), 11);
    w.run(60).await;
    // Pool q keeps no free slot: a request waits for a server being made.
    let waiting = w
        .scaler
        .request_session("q", &SessionRequest::default())
        .await
        .unwrap();
    let kasm_scale_core::controller::SessionOutcome::Queued { session } = waiting else {
        panic!("{waiting:?}")
    };
    w.drain_events();
    w.scaler.reconfigure(one).await.unwrap();
    let ended = w.drain_events().into_iter().any(|e| {
        matches!(e, Event::RequestExpired { session: s, ref pool, .. } if s == session && pool == "q")
    });
    assert!(ended, "the waiting request ends with its pool");
    assert!(w.scaler.session(session).is_none());
}
