//! Check-in tokens: issued and verified, and every kind of bad token refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use kasm_scale_core::Secret;
use kasm_scale_core::engine::ServerId;
use kasm_scale_core::template::checkin_jwt_max_len;
use kasm_scale_core::token::{TokenError, TokenKeys};

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn server(n: u128) -> ServerId {
    ServerId(uuid::Uuid::from_u128(n))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn issued_tokens_verify_for_their_live_server() {
    let keys = TokenKeys::generate().unwrap();
    let token = keys
        .issue(server(1), "windows-rdp-aws", "default", now())
        .unwrap();
    let claims = keys
        .verify(token.expose(), now(), server(1), |_| true)
        .unwrap();
    assert_eq!(
        (claims.sub, claims.cfg.as_str(), claims.zone.as_str()),
        (server(1), "windows-rdp-aws", "default")
    );
    assert_eq!(claims.exp - claims.iat, 4 * 3600);
    // Within the lifetime and the leeway.
    let later = now() + SignedDuration::from_secs(4 * 3600 + 59);
    assert!(
        keys.verify(token.expose(), later, server(1), |_| true)
            .is_ok()
    );
    assert!(format!("{keys:?}").contains("EdDSA") && !format!("{keys:?}").contains("der"));
}

#[test]
fn tokens_fit_the_length_the_script_check_assumes() {
    for (keys, name) in [
        (TokenKeys::generate().unwrap(), "EdDSA"),
        (
            TokenKeys::hs256(&Secret::new("k".repeat(32))).unwrap(),
            "HS256",
        ),
    ] {
        let config = "a-rather-long-autoscale-config-name";
        let token = keys
            .issue(server(u128::MAX), config, "zone-name", now())
            .unwrap();
        assert!(
            token.expose().len() <= checkin_jwt_max_len(config, "zone-name"),
            "{name}: {}",
            token.expose().len()
        );
    }
}

#[test]
fn bad_tokens_are_refused() {
    let keys = TokenKeys::generate().unwrap();
    let token = keys.issue(server(1), "cfg", "default", now()).unwrap();
    let t = token.expose();
    let verify = |tok: &str| keys.verify(tok, now(), server(1), |_| true);

    // Expired, and issued in the future.
    let late = now() + SignedDuration::from_secs(4 * 3600 + 61);
    assert!(matches!(
        keys.verify(t, late, server(1), |_| true),
        Err(TokenError::Expired(_))
    ));
    let early = now() - SignedDuration::from_secs(120);
    assert!(matches!(
        keys.verify(t, early, server(1), |_| true),
        Err(TokenError::NotYetValid(_))
    ));
    // Another server's token, and the token of a destroyed server.
    assert_eq!(
        keys.verify(t, now(), server(2), |_| true),
        Err(TokenError::WrongServer(server(1)))
    );
    assert_eq!(
        keys.verify(t, now(), server(1), |_| false),
        Err(TokenError::WrongServer(server(1)))
    );
    // Another key.
    let other = TokenKeys::generate().unwrap();
    assert_eq!(
        other.verify(t, now(), server(1), |_| true),
        Err(TokenError::BadSignature)
    );
    // `alg: none` and an HS256 token signed with the public part's bytes (algorithm confusion).
    let parts: Vec<&str> = t.split('.').collect();
    let none = format!("{}.{}.", b64(br#"{"typ":"JWT","alg":"none"}"#), parts[1]);
    assert!(
        matches!(
            verify(&none),
            Err(TokenError::WrongAlgorithm | TokenError::Malformed(_))
        ),
        "{:?}",
        verify(&none)
    );
    let hs = TokenKeys::hs256(&Secret::new("s".repeat(32)))
        .unwrap()
        .issue(server(1), "cfg", "default", now())
        .unwrap();
    assert_eq!(verify(hs.expose()), Err(TokenError::WrongAlgorithm));
    // Tampered payload (another server id) and tampered signature.
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap())
        .unwrap()
        .replace(
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
        );
    let forged = format!("{}.{}.{}", parts[0], b64(payload.as_bytes()), parts[2]);
    assert_eq!(
        keys.verify(&forged, now(), server(2), |_| true),
        Err(TokenError::BadSignature)
    );
    let mut sig: Vec<char> = parts[2].chars().collect();
    sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
    let bad_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        sig.into_iter().collect::<String>()
    );
    assert_eq!(verify(&bad_sig), Err(TokenError::BadSignature));
    // Garbage.
    assert!(matches!(
        verify("not-a-token"),
        Err(TokenError::Malformed(_))
    ));
    // No error message quotes the token.
    for e in [
        verify(&bad_sig).unwrap_err(),
        verify(&none).unwrap_err(),
        verify("x.y.z").unwrap_err(),
    ] {
        assert!(!e.to_string().contains(parts[1]), "{e}");
    }
}

#[test]
fn keys_from_pem_and_hs256_rules() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHWm4pCI2cM6A3JRU1v1tHw7qZSSJ8G5eBHTPWkm1yY6\n-----END PRIVATE KEY-----\n";
    let keys = TokenKeys::ed25519_pem(&Secret::new(pem)).unwrap();
    let token = keys.issue(server(3), "c", "z", now()).unwrap();
    assert!(
        TokenKeys::ed25519_pem(&Secret::new(pem))
            .unwrap()
            .verify(token.expose(), now(), server(3), |_| true)
            .is_ok()
    );
    assert!(matches!(
        TokenKeys::ed25519_pem(&Secret::new("nope")),
        Err(TokenError::InvalidKey(_))
    ));
    assert!(
        matches!(TokenKeys::hs256(&Secret::new("short")), Err(TokenError::InvalidKey(m)) if m.contains("32 bytes"))
    );
}

#[test]
fn keys_from_a_config_section_file_or_environment() {
    use kasm_scale_core::config::CheckinTokenConfig;
    use kasm_scale_core::token::TokenAlgorithm;
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHWm4pCI2cM6A3JRU1v1tHw7qZSSJ8G5eBHTPWkm1yY6\n-----END PRIVATE KEY-----\n";
    let dir = std::env::temp_dir().join(format!("kasm-scale-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("checkin.pem");
    std::fs::write(&file, pem).unwrap();
    let from_file = TokenKeys::from_config(&CheckinTokenConfig {
        key_file: Some(file.display().to_string()),
        ..Default::default()
    })
    .unwrap();
    let inline = TokenKeys::from_config(&CheckinTokenConfig {
        key: Some(Secret::new(pem)),
        ..Default::default()
    })
    .unwrap();
    let token = from_file.issue(server(9), "c", "z", now()).unwrap();
    assert!(
        inline
            .verify(token.expose(), now(), server(9), |_| true)
            .is_ok(),
        "the same key either way"
    );
    let missing = CheckinTokenConfig {
        algorithm: TokenAlgorithm::HS256,
        key_env: Some("KASM_SCALE_TEST_UNSET_VARIABLE".into()),
        ..Default::default()
    };
    let err = TokenKeys::from_config(&missing).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid token key: environment variable KASM_SCALE_TEST_UNSET_VARIABLE is not set"
    );
    // A key file that is not a regular file is refused, not read without end.
    let zero = dir.join("zero.pem");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let err = TokenKeys::from_config(&CheckinTokenConfig {
        key_file: Some(zero.display().to_string()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!(
            "invalid token key: cannot read {}: not a regular file (a character device); \
             kasm-scale reads only regular files",
            zero.display()
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A verified token is remembered (a repeated check-in costs a digest, not a signature check),
/// but every use still checks its time, its server and that the server lives; an altered copy
/// is checked in full.
#[test]
fn a_remembered_token_is_still_checked_for_time_server_and_life() {
    let keys = TokenKeys::generate().unwrap();
    let token = keys.issue(server(1), "c", "default", now()).unwrap();
    let token = token.expose();
    assert!(keys.verify(token, now(), server(1), |_| true).is_ok());
    // Again: from memory.
    assert!(keys.verify(token, now(), server(1), |_| true).is_ok());
    let late = now() + SignedDuration::from_secs(5 * 3600);
    assert!(matches!(
        keys.verify(token, late, server(1), |_| true),
        Err(TokenError::Expired(_))
    ));
    assert_eq!(
        keys.verify(token, now(), server(2), |_| true),
        Err(TokenError::WrongServer(server(1)))
    );
    assert_eq!(
        keys.verify(token, now(), server(1), |_| false),
        Err(TokenError::WrongServer(server(1))),
        "a destroyed server's token is refused"
    );
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let flipped = if &parts[2][5..6] == "A" { "B" } else { "A" };
    parts[2].replace_range(5..6, flipped);
    assert_eq!(
        keys.verify(&parts.join("."), now(), server(1), |_| true),
        Err(TokenError::BadSignature)
    );
    // A clone shares what was verified, another key does not accept it.
    let other = TokenKeys::generate().unwrap();
    assert_eq!(
        other.verify(token, now(), server(1), |_| true),
        Err(TokenError::BadSignature)
    );
}

const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGgzqUJeSDDl1P4gqelrWTsNCCUmIt3j7KCDLx/8PNym\n-----END PRIVATE KEY-----\n";
const PUBLIC_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnGX8idhsJWF/p/P+mXYs1XQmeQFPQwcfys9iSJJgPIg=\n-----END PUBLIC KEY-----\n";
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEhaY4F4ftaplnARKb+iG/5FWAzBGEnHn2ktrn7kw7OW\n-----END PRIVATE KEY-----\n";

fn pem_keys(pem: &str) -> TokenKeys {
    TokenKeys::ed25519_pem(&Secret::new(pem)).unwrap()
}

/// A token is a function of its server, issue time, lifetime and key: issued again for a
/// resumed create it is the same token. Its lifetime is the one asked for, its header names
/// its key.
#[test]
fn a_token_issued_again_is_the_same_and_lives_as_long_as_asked() {
    use kasm_scale_core::token::lifetime_for;
    let keys = pem_keys(KEY_A);
    let thirty_days = std::time::Duration::from_secs(30 * 24 * 3600);
    assert_eq!(lifetime_for(thirty_days), thirty_days);
    assert_eq!(
        lifetime_for(std::time::Duration::from_secs(600)),
        kasm_scale_core::token::TOKEN_LIFETIME
    );
    let issue = |k: &TokenKeys, n| {
        k.issue_lasting(server(n), "c", "z", now(), thirty_days)
            .unwrap()
    };
    let token = issue(&keys, 1);
    assert_eq!(token.expose(), issue(&keys, 1).expose(), "the same token");
    assert_eq!(
        token.expose(),
        issue(&pem_keys(KEY_A), 1).expose(),
        "the same key loaded again"
    );
    assert_ne!(token.expose(), issue(&keys, 2).expose());
    let claims = keys
        .verify(
            token.expose(),
            now() + SignedDuration::from_hours(29 * 24),
            server(1),
            |_| true,
        )
        .unwrap();
    assert_eq!(claims.exp - claims.iat, 30 * 24 * 3600);
    let other = keys
        .verify(issue(&keys, 2).expose(), now(), server(2), |_| true)
        .unwrap();
    assert_ne!(claims.jti, other.jti, "one jti per server");
    assert!(matches!(
        keys.verify(
            token.expose(),
            now() + SignedDuration::from_hours(30 * 24) + SignedDuration::from_secs(61),
            server(1),
            |_| true
        ),
        Err(TokenError::Expired(_))
    ));
    let header = jsonwebtoken::decode_header(token.expose()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(keys.key_id()));
}

/// Rotation: the new key signs, a previous key (public or private PEM, or an HS256 secret)
/// verifies what it signed; a token of an unknown key, or whose `kid` was swapped, is refused.
#[test]
fn previous_keys_verify_and_never_sign() {
    let old = pem_keys(KEY_A);
    let old_token = old.issue(server(1), "c", "z", now()).unwrap();
    for previous in [PUBLIC_A, KEY_A] {
        let mut keys = pem_keys(KEY_B);
        keys.add_previous(&Secret::new(previous)).unwrap();
        assert!(keys.knows_key(old.key_id()));
        assert_eq!(keys.previous_key_ids().collect::<Vec<_>>(), [old.key_id()]);
        assert!(
            keys.verify(old_token.expose(), now(), server(1), |_| true)
                .is_ok()
        );
        let new_token = keys.issue(server(2), "c", "z", now()).unwrap();
        assert_eq!(
            old.verify(new_token.expose(), now(), server(2), |_| true),
            Err(TokenError::BadSignature),
            "signed by the new key"
        );
        // The header names the old key, the signature is the new key's.
        let parts: Vec<&str> = new_token.expose().split('.').collect();
        let header = format!(r#"{{"typ":"JWT","alg":"EdDSA","kid":"{}"}}"#, old.key_id());
        let swapped = format!("{}.{}.{}", b64(header.as_bytes()), parts[1], parts[2]);
        assert_eq!(
            keys.verify(&swapped, now(), server(2), |_| true),
            Err(TokenError::BadSignature)
        );
        // A token of a key neither signs nor verifies, with or without a kid.
        let stranger = TokenKeys::generate().unwrap();
        let foreign = stranger.issue(server(3), "c", "z", now()).unwrap();
        assert_eq!(
            keys.verify(foreign.expose(), now(), server(3), |_| true),
            Err(TokenError::BadSignature)
        );
        let fparts: Vec<&str> = foreign.expose().split('.').collect();
        let no_kid = format!(
            "{}.{}.{}",
            b64(br#"{"typ":"JWT","alg":"EdDSA"}"#),
            fparts[1],
            fparts[2]
        );
        assert_eq!(
            keys.verify(&no_kid, now(), server(3), |_| true),
            Err(TokenError::BadSignature)
        );
    }
    // HS256.
    let old = TokenKeys::hs256(&Secret::new("o".repeat(32))).unwrap();
    let token = old.issue(server(1), "c", "z", now()).unwrap();
    let mut keys = TokenKeys::hs256(&Secret::new("n".repeat(32))).unwrap();
    keys.add_previous(&Secret::new("o".repeat(32))).unwrap();
    assert!(
        keys.verify(token.expose(), now(), server(1), |_| true)
            .is_ok()
    );
    // Mistakes, each named.
    let mut keys = pem_keys(KEY_B);
    let err = |k: &mut TokenKeys, text: &str| k.add_previous(&Secret::new(text)).unwrap_err();
    assert!(
        err(&mut keys, KEY_B)
            .to_string()
            .contains("the signing key itself")
    );
    assert!(
        err(&mut keys, "nope")
            .to_string()
            .contains("not a PEM document")
    );
    keys.add_previous(&Secret::new(PUBLIC_A)).unwrap();
    assert!(err(&mut keys, KEY_A).to_string().contains("listed twice"));
    let mut hs = TokenKeys::hs256(&Secret::new("n".repeat(32))).unwrap();
    assert!(err(&mut hs, "short").to_string().contains("32 bytes"));
    assert!(!format!("{keys:?}").contains("MC4C"), "{keys:?}");
}

/// A sealed secret opens with its key and for its server only; a previous private key opens
/// it after a rotation, a previous public key cannot. Nothing shows the secret.
#[test]
fn sealed_secrets_open_for_their_server_and_key() {
    let keys = pem_keys(KEY_A);
    let secret = Secret::new("Join-Pa55word!x");
    let sealed = keys.seal(server(1), &secret).unwrap();
    assert_eq!(sealed.key_id, keys.key_id());
    assert!(!sealed.data.contains("Join"));
    assert!(!format!("{sealed:?}").contains(&sealed.data));
    assert_ne!(
        keys.seal(server(1), &secret).unwrap().data,
        sealed.data,
        "fresh nonce"
    );
    assert_eq!(
        keys.unseal(server(1), &sealed).unwrap().expose(),
        secret.expose()
    );
    assert!(matches!(
        keys.unseal(server(2), &sealed),
        Err(TokenError::Unsealable(_))
    ));
    let mut altered = sealed.clone();
    altered.data.replace_range(
        20..21,
        if &altered.data[20..21] == "A" {
            "B"
        } else {
            "A"
        },
    );
    assert!(matches!(
        keys.unseal(server(1), &altered),
        Err(TokenError::Unsealable(_))
    ));
    let mut kept = pem_keys(KEY_B);
    kept.add_previous(&Secret::new(KEY_A)).unwrap();
    assert_eq!(
        kept.unseal(server(1), &sealed).unwrap().expose(),
        secret.expose()
    );
    let mut public_only = pem_keys(KEY_B);
    public_only.add_previous(&Secret::new(PUBLIC_A)).unwrap();
    let err = public_only.unseal(server(1), &sealed).unwrap_err();
    assert!(err.to_string().contains(keys.key_id()), "{err}");
    assert!(!err.to_string().contains("Join"), "{err}");
    // HS256 seals too.
    let hs = TokenKeys::hs256(&Secret::new("s".repeat(32))).unwrap();
    let sealed = hs.seal(server(1), &secret).unwrap();
    assert_eq!(
        hs.unseal(server(1), &sealed).unwrap().expose(),
        secret.expose()
    );
}
