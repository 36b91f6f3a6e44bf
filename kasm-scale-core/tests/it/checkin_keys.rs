//! Check-in tokens through the controller: a token lives as long as its server may take to check
//! in (`checkin_timeout`, up to 30 days), and a check-in key is rotated with an overlap (the
//! new key signs, the previous one still verifies the tokens it signed).

use std::sync::Arc;
use std::time::Duration;

use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, Event};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryCloud, token_in};

use crate::fixture::Fixture;

const EPOCH: &str = "2026-11-30T12:00:00Z";

fn config(checkin_timeout: u32, token_section: &str) -> Config {
    Fixture::memory_pool("p")
        .startup_script("TOKEN={checkin_jwt}")
        .boot_latency(60)
        // The guests never check in by themselves: the test does it with their tokens.
        .checkin_delay(604800)
        .minimum_standby(1)
        .require_checkin(true)
        .checkin_timeout(checkin_timeout)
        .toml(token_section)
        .config()
}

fn build(config: &Config, cloud: &Arc<MemoryCloud>, store: &MemoryStore) -> Autoscaler {
    Autoscaler::builder(config.clone())
        .provider(cloud.clone())
        .store(Arc::new(store.clone()))
        .epoch(EPOCH.parse().unwrap())
        .build()
        .unwrap()
}

fn cloud(config: &Config) -> Arc<MemoryCloud> {
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("a memory provider")
    };
    Arc::new(MemoryCloud::new(m, 1))
}

/// The check-in token the startup script of each server's VM carries.
fn tokens(scaler: &Autoscaler, cloud: &MemoryCloud) -> Vec<String> {
    scaler
        .servers()
        .iter()
        .filter_map(|s| s.vm_id.as_deref())
        .filter_map(|vm| cloud.startup_script(vm))
        .map(|script| token_in(script.expose()).expect("a token").to_owned())
        .collect()
}

/// A guest that boots slowly checks in late but within `checkin_timeout` (30 days): its token
/// is still good. (It was valid for 4 hours whatever the timeout, and such a guest was refused.)
#[tokio::test(start_paused = true)]
async fn a_token_lives_as_long_as_the_check_in_timeout() {
    let thirty_days = 30 * 24 * 3600;
    let config = config(thirty_days, "");
    let cloud = cloud(&config);
    let scaler = build(&config, &cloud, &MemoryStore::default());
    scaler.tick().await;
    scaler.settle().await;
    let tokens = tokens(&scaler, &cloud);
    assert_eq!(tokens.len(), 1, "one server with its VM");
    // Ten days later: within the check-in timeout.
    tokio::time::advance(Duration::from_secs(10 * 24 * 3600)).await;
    let late = scaler
        .check_in_token(&tokens[0], &CheckinStatus::running())
        .await;
    assert!(
        late.is_ok(),
        "a check-in 10 days into a 30-day check-in timeout: {late:?}"
    );
    // Past the timeout (and the leeway) the token is refused.
    tokio::time::advance(Duration::from_secs(20 * 24 * 3600 + 120)).await;
    let expired = scaler
        .check_in_token(&tokens[0], &CheckinStatus::running())
        .await;
    assert!(
        expired
            .as_ref()
            .is_err_and(|e| e.to_string().contains("expired")),
        "{expired:?}"
    );
}

/// With a short check-in timeout the token keeps its 4-hour floor.
#[tokio::test(start_paused = true)]
async fn a_short_check_in_timeout_keeps_the_four_hour_token() {
    let config = config(600, "");
    let cloud = cloud(&config);
    let scaler = build(&config, &cloud, &MemoryStore::default());
    scaler.tick().await;
    scaler.settle().await;
    let tokens = tokens(&scaler, &cloud);
    tokio::time::advance(Duration::from_secs(3 * 3600)).await;
    // The server itself is still there (no tick ran to time it out): the token decides.
    let checked = scaler
        .check_in_token(&tokens[0], &CheckinStatus::running())
        .await;
    assert!(checked.is_ok(), "{checked:?}");
}

/// Two Ed25519 keys of the tests (not secrets of anything), with their public halves.
const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGgzqUJeSDDl1P4gqelrWTsNCCUmIt3j7KCDLx/8PNym\n-----END PRIVATE KEY-----\n";
const PUBLIC_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnGX8idhsJWF/p/P+mXYs1XQmeQFPQwcfys9iSJJgPIg=\n-----END PUBLIC KEY-----\n";
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEhaY4F4ftaplnARKb+iG/5FWAzBGEnHn2ktrn7kw7OW\n-----END PRIVATE KEY-----\n";

fn section(key: &str, previous: &[&str]) -> String {
    let list: Vec<String> = previous.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[checkin_token]\nkey = {key:?}\nprevious_keys = [{}]\n",
        list.join(", ")
    )
}

/// The key is rotated across a restart: the new controller signs with the new key, still
/// accepts the tokens the old key signed (servers booting across the rotation check in), says
/// nothing alarming about the saved key, and a controller without the previous key refuses
/// those tokens.
#[tokio::test(start_paused = true)]
async fn a_rotated_key_still_verifies_the_tokens_of_the_previous_one() {
    let store = MemoryStore::default();
    let before = config(3600, &section(KEY_A, &[]));
    let cloud = cloud(&before);
    let first = build(&before, &cloud, &store);
    first.tick().await;
    first.settle().await;
    first.save().await;
    let old_tokens = tokens(&first, &cloud);
    assert_eq!(old_tokens.len(), 1);
    drop(first);

    let rotated = config(3600, &section(KEY_B, &[PUBLIC_A]));
    let second = build(&rotated, &cloud, &store);
    let mut events = second.subscribe();
    second.start().await.unwrap();
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(&e, Event::Failed { config, .. } if config == "checkin_token"),
            "the previous key is known: {e:?}"
        );
    }
    let checked = second
        .check_in_token(&old_tokens[0], &CheckinStatus::running())
        .await;
    assert!(
        checked.is_ok(),
        "the old key's token after the rotation: {checked:?}"
    );
    // A new server gets a token of the new key.
    second
        .request_session("p", &Default::default())
        .await
        .unwrap();
    second.tick().await;
    second.settle().await;
    let new_tokens: Vec<String> = tokens(&second, &cloud)
        .into_iter()
        .filter(|t| !old_tokens.contains(t))
        .collect();
    assert_eq!(new_tokens.len(), 1, "a second server");
    second.save().await;
    drop(second);

    // The overlap ends: only the new key. The new token still checks in, the old one is
    // refused.
    let only_b = config(3600, &section(KEY_B, &[]));
    let third = build(&only_b, &cloud, &store);
    let new = third
        .check_in_token(&new_tokens[0], &CheckinStatus::running())
        .await;
    assert!(new.is_ok(), "{new:?}");
    let old = third
        .check_in_token(&old_tokens[0], &CheckinStatus::running())
        .await;
    assert!(
        old.as_ref()
            .is_err_and(|e| e.to_string().contains("signature")),
        "{old:?}"
    );
}

/// A previous key that is not a key is refused at build, naming its place.
#[test]
fn a_bad_previous_key_is_refused_with_its_position() {
    let config = config(3600, &section(KEY_B, &[PUBLIC_A, "not a key"]));
    let cloud = cloud(&config);
    let err = Autoscaler::builder(config)
        .provider(cloud)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkin_token.previous_keys[1]") && err.contains("PEM"),
        "{err}"
    );
    // The signing key itself as a previous key: a mistake.
    let config = self::config(3600, &section(KEY_A, &[PUBLIC_A]));
    let cloud = self::cloud(&config);
    let err = Autoscaler::builder(config)
        .provider(cloud)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkin_token.previous_keys[0]") && err.contains("the signing key"),
        "{err}"
    );
}

/// The same rotation on a running controller, by reloads instead of restarts: tokens of the old
/// key keep checking in during the overlap, new servers get the new key's, and once the old key
/// leaves the configuration its tokens are refused.
#[tokio::test(start_paused = true)]
async fn a_key_rotated_by_a_reload_keeps_the_old_tokens_during_the_overlap() {
    let before = config(3600, &section(KEY_A, &[]));
    let cloud = cloud(&before);
    let scaler = build(&before, &cloud, &MemoryStore::default());
    scaler.tick().await;
    scaler.settle().await;
    let old_tokens = tokens(&scaler, &cloud);
    assert_eq!(old_tokens.len(), 1);

    let changes = scaler
        .reconfigure(config(3600, &section(KEY_B, &[PUBLIC_A])))
        .await
        .unwrap();
    assert!(changes.checkin_key_rotated, "{changes:?}");
    assert!(changes.new_generations.is_empty(), "a key steers only");
    let checked = scaler
        .check_in_token(&old_tokens[0], &CheckinStatus::running())
        .await;
    assert!(
        checked.is_ok(),
        "the old key's token in the overlap: {checked:?}"
    );
    scaler
        .request_session("p", &Default::default())
        .await
        .unwrap();
    scaler.tick().await;
    scaler.settle().await;
    let new_tokens: Vec<String> = tokens(&scaler, &cloud)
        .into_iter()
        .filter(|t| !old_tokens.contains(t))
        .collect();
    assert_eq!(
        new_tokens.len(),
        1,
        "a second server, with the new key's token"
    );

    scaler
        .reconfigure(config(3600, &section(KEY_B, &[])))
        .await
        .unwrap();
    let new = scaler
        .check_in_token(&new_tokens[0], &CheckinStatus::running())
        .await;
    assert!(new.is_ok(), "{new:?}");
    let old = scaler
        .check_in_token(&old_tokens[0], &CheckinStatus::running())
        .await;
    assert!(old.is_err(), "the old key left the configuration: {old:?}");
}
