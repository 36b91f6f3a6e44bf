//! Check-in tokens: a JWT per server, given to its startup script as `checkin_jwt` and
//! presented back when the server checks in.
//!
//! Claims: `iss`, `aud`, `sub` (the server id), `cfg` (auto-scale config), `zone`, `purpose`
//! (`checkin`), `iat`, `exp` and `jti`; the header names the signing key (`kid`). EdDSA
//! (Ed25519) by default, HS256 as an option. Verification pins the algorithm, checks the
//! signature (with the key the header names: the signing key or a previous one), issuer,
//! audience, purpose and expiry (with a small leeway) against the `now` it is given, and accepts
//! a token only for a live server that it names.
//!
//! A token is a function of its server, its issue time, its lifetime and the key (Ed25519 and
//! HMAC signatures are deterministic, and the `jti` is derived from the server and the issue
//! time): the controller issues a server's token at the server record's creation time, so a
//! create resumed after a restart renders the same startup script, which EC2's client token and
//! ARM's PUT need (see the controller's provisioning). [`TokenKeys::seal`] keeps the other
//! secret a resumed create needs (the AD join password) in the server's record, encrypted with a
//! key derived from the check-in key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::engine::ServerId;
use crate::secret::Secret;

/// How long a check-in token is valid at least (see [`lifetime_for`]).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// How long the token of a server of an auto-scale config whose `checkin_timeout` is
/// `checkin_timeout` is valid: [`TOKEN_LIFETIME`], or the timeout when it is longer, so that a
/// guest checking in late but within its timeout is not refused.
pub fn lifetime_for(checkin_timeout: Duration) -> Duration {
    TOKEN_LIFETIME.max(checkin_timeout)
}

/// How long the token of a server of `config` is valid: [`lifetime_for`] its
/// `checkin_timeout`, or, for a config with a warm tier (`warm_pool`), long enough for the check-in
/// at the last boot its server can have: `max_age + 2 × checkin_timeout` when that is longer.
///
/// The token is issued at the server record's creation and the guest keeps it for the check-in
/// at every boot. A stopped server is never started after `max_age` (counted from its build,
/// which itself may take up to `checkin_timeout` before the first check-in), and a started one
/// has `checkin_timeout` to check in again: both timeouts are added so that the bound holds
/// whether the age counts from the record's creation or from its first check-in. The result
/// depends on the config alone, so a resumed create issues the same token.
///
/// Such a token is still a check-in credential for its one server only (its `sub`, verified
/// against a live server record); see `docs/startup-scripts.md`, "Warm tier".
pub fn lifetime_for_config(config: &crate::config::AutoScaleConfig) -> Duration {
    let timeout = Duration::from_secs(config.checkin_timeout.into());
    let base = lifetime_for(timeout);
    match &config.warm_pool {
        Some(warm) => base.max(
            Duration::from_secs(warm.max_age)
                .saturating_add(timeout)
                .saturating_add(timeout),
        ),
        None => base,
    }
}

pub use crate::config::MAX_PREVIOUS_KEYS;
/// Clock difference tolerated when checking `exp` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// The `iss` of every token.
pub const ISSUER: &str = "kasm-scale";
/// The `aud` of every check-in token.
pub const AUDIENCE: &str = "kasm-scale-checkin";
/// The `purpose` of every check-in token.
pub const PURPOSE: &str = "checkin";

/// The claims of a check-in token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The server the token belongs to.
    pub sub: ServerId,
    /// The server's auto-scale config.
    pub cfg: String,
    /// The server's zone.
    pub zone: String,
    /// What the token is for: `checkin`.
    pub purpose: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Unique token id.
    pub jti: uuid::Uuid,
}

/// Why a token was refused. The token itself is never part of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, or claims missing or of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with another algorithm than the one configured (including `none`).
    #[error("token algorithm is not the configured one")]
    WrongAlgorithm,
    /// The signature does not match (wrong key, or the token was altered).
    #[error("token signature is invalid")]
    BadSignature,
    /// Issuer, audience or purpose are not a check-in token's.
    #[error("not a check-in token of this controller: {0}")]
    WrongClaims(String),
    /// Past its expiry.
    #[error("token expired at {0}")]
    Expired(Timestamp),
    /// Issued in the future.
    #[error("token issued in the future ({0})")]
    NotYetValid(Timestamp),
    /// The server it names is not the one checking in, or does not exist (any more).
    #[error("token names server {0}, which is not a live server checking in")]
    WrongServer(ServerId),
    /// The key material is unusable.
    #[error("invalid token key: {0}")]
    InvalidKey(String),
    /// A sealed secret cannot be opened (sealed with a key this controller does not hold, for
    /// another server, or altered).
    #[error("cannot open a sealed secret: {0}")]
    Unsealable(String),
}

/// The signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// Ed25519 signatures (default): servers cannot forge tokens even if they read the public key.
    #[default]
    EdDSA,
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    HS256,
}

/// One key that verifies tokens: the signing key, or a previous one.
#[derive(Clone)]
struct Verifier {
    /// Its fingerprint (see [`TokenKeys::key_id`]), the `kid` of the tokens it signs.
    key_id: String,
    decoding: DecodingKey,
    /// The key that seals and opens secrets, when the private key is known.
    seal: Option<Arc<RandomizedNonceKey>>,
}

/// Signs and verifies check-in tokens. `Debug` shows the algorithm and key ids only.
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: TokenAlgorithm,
    encoding: EncodingKey,
    /// The signing key's verifier.
    current: Verifier,
    /// Keys that signed tokens before (a rotation's overlap): they verify, never sign.
    previous: Vec<Verifier>,
    /// Tokens whose signature and claims were verified, by their SHA-256: a guest repeating its
    /// check-in (Kasm's scripts post every 30 s) costs a digest, not a signature check. Time,
    /// server and liveness are still checked on every use.
    verified: Arc<Mutex<HashMap<[u8; 32], CheckinClaims>>>,
}

/// Verified tokens remembered at most (then the expired ones go, or all).
const VERIFIED_CACHE: usize = 100_000;

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.current.key_id)
            .field(
                "previous",
                &self.previous.iter().map(|v| &v.key_id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// HKDF salt and info of the sealing key (domain separation from the signatures).
const SEAL_SALT: &[u8] = b"kasm-scale sealed server secrets v1";
const SEAL_INFO: &[u8] = b"aes-256-gcm";

/// The sealing key derived from a check-in key's secret material.
fn seal_key(secret: &[u8]) -> Result<Arc<RandomizedNonceKey>, TokenError> {
    struct Len(usize);
    impl aws_lc_rs::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let bad = |_| TokenError::InvalidKey("cannot derive the sealing key".into());
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, SEAL_SALT).extract(secret);
    let mut key = [0u8; 32];
    prk.expand(&[SEAL_INFO], Len(key.len()))
        .map_err(bad)?
        .fill(&mut key)
        .map_err(bad)?;
    let sealing = RandomizedNonceKey::new(&AES_256_GCM, &key).map_err(bad)?;
    key.fill(0);
    Ok(Arc::new(sealing))
}

/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The verifier of an Ed25519 key pair.
fn ed25519_verifier(pair: &Ed25519KeyPair) -> Result<Verifier, TokenError> {
    let seed = pair
        .seed()
        .and_then(|s| s.as_be_bytes())
        .map_err(|_| TokenError::InvalidKey("cannot read the Ed25519 seed".into()))?;
    Ok(Verifier {
        key_id: ed25519_key_id(pair.public_key().as_ref()),
        decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
        seal: Some(seal_key(seed.as_ref())?),
    })
}

fn ed25519_key_id(public: &[u8]) -> String {
    fingerprint(
        "ed25519",
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public).as_ref(),
    )
}

/// The verifier of an HS256 secret (already checked for length).
fn hs256_verifier(bytes: &[u8]) -> Result<Verifier, TokenError> {
    let bad = |e: jsonwebtoken::errors::Error| TokenError::InvalidKey(e.to_string());
    Ok(Verifier {
        // An HMAC under the secret itself: it tells keys apart without helping anyone guess the
        // secret (tokens are such HMACs already).
        key_id: fingerprint(
            "hs256",
            aws_lc_rs::hmac::sign(
                &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
                b"kasm-scale check-in key id",
            )
            .as_ref(),
        ),
        decoding: DecodingKey::from_secret(bytes).map_err(bad)?,
        seal: Some(seal_key(bytes)?),
    })
}

fn hs256_bytes(secret: &Secret) -> Result<&[u8], TokenError> {
    let bytes = secret.expose().as_bytes();
    if bytes.len() < 32 {
        return Err(TokenError::InvalidKey(format!(
            "an HS256 secret needs at least 32 bytes, got {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// A secret sealed for one server's record by [`TokenKeys::seal`]: AES-256-GCM under a key
/// derived (HKDF-SHA256) from the check-in key that sealed it, with the server id as associated
/// data, so it opens only for that server and with that key. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The fingerprint of the check-in key that sealed it.
    pub key_id: String,
    /// Base64 of the nonce, the ciphertext and the tag.
    pub data: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// A new random Ed25519 key (tokens do not survive a restart with it: configure a key for
    /// production).
    pub fn generate() -> Result<TokenKeys, TokenError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| TokenError::InvalidKey(e.to_string()))?;
        Self::ed25519_pkcs8(pkcs8.as_ref())
    }

    /// An Ed25519 key from PKCS#8 DER.
    pub fn ed25519_pkcs8(der: &[u8]) -> Result<TokenKeys, TokenError> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|e| TokenError::InvalidKey(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(TokenKeys {
            algorithm: TokenAlgorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(der),
            current: ed25519_verifier(&pair)?,
            previous: Vec::new(),
            verified: Arc::default(),
        })
    }

    /// An Ed25519 key from a PEM `PRIVATE KEY` (as `openssl genpkey -algorithm ed25519` writes).
    pub fn ed25519_pem(pem_text: &Secret) -> Result<TokenKeys, TokenError> {
        Self::ed25519_pkcs8(&private_key_der(pem_text)?)
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn hs256(secret: &Secret) -> Result<TokenKeys, TokenError> {
        let bytes = hs256_bytes(secret)?;
        let bad = |e: jsonwebtoken::errors::Error| TokenError::InvalidKey(e.to_string());
        Ok(TokenKeys {
            algorithm: TokenAlgorithm::HS256,
            encoding: EncodingKey::from_secret(bytes).map_err(bad)?,
            current: hs256_verifier(bytes)?,
            previous: Vec::new(),
            verified: Arc::default(),
        })
    }

    /// Adds a key that signed tokens before this one: it verifies them (and opens what it
    /// sealed, when it is a private key), never signs. For EdDSA an Ed25519 `PUBLIC KEY` PEM
    /// (`openssl pkey -pubout`) or the old `PRIVATE KEY` PEM; for HS256 the old secret.
    pub fn add_previous(&mut self, key: &Secret) -> Result<(), TokenError> {
        let verifier = match self.algorithm {
            TokenAlgorithm::HS256 => hs256_verifier(hs256_bytes(key)?)?,
            TokenAlgorithm::EdDSA => {
                let block = pem::parse(key.expose()).map_err(|_| {
                    TokenError::InvalidKey(
                        "not a PEM document (an EdDSA previous key is an Ed25519 PUBLIC KEY or PRIVATE KEY PEM)"
                            .into(),
                    )
                })?;
                match block.tag() {
                    "PRIVATE KEY" => {
                        let pair = Ed25519KeyPair::from_pkcs8(block.contents()).map_err(|e| {
                            TokenError::InvalidKey(format!("not an Ed25519 PKCS#8 key: {e}"))
                        })?;
                        ed25519_verifier(&pair)?
                    }
                    "PUBLIC KEY" => {
                        let der = block.contents();
                        let raw = der
                            .strip_prefix(&ED25519_SPKI_PREFIX[..])
                            .filter(|k| k.len() == 32)
                            .ok_or_else(|| {
                                TokenError::InvalidKey("not an Ed25519 public key".into())
                            })?;
                        Verifier {
                            key_id: ed25519_key_id(raw),
                            decoding: DecodingKey::from_ed_der(raw),
                            seal: None,
                        }
                    }
                    other => {
                        return Err(TokenError::InvalidKey(format!(
                            "expected a PUBLIC KEY or PRIVATE KEY PEM block, found {other}"
                        )));
                    }
                }
            }
        };
        if verifier.key_id == self.current.key_id {
            return Err(TokenError::InvalidKey(format!(
                "{} is the signing key itself, not a previous one",
                verifier.key_id
            )));
        }
        if self.previous.iter().any(|p| p.key_id == verifier.key_id) {
            return Err(TokenError::InvalidKey(format!(
                "{} is listed twice",
                verifier.key_id
            )));
        }
        self.previous.push(verifier);
        Ok(())
    }

    /// Whether `key_id` is the signing key's or a previous key's.
    pub fn knows_key(&self, key_id: &str) -> bool {
        self.current.key_id == key_id || self.previous.iter().any(|p| p.key_id == key_id)
    }

    /// The previous keys' fingerprints.
    pub fn previous_key_ids(&self) -> impl Iterator<Item = &str> {
        self.previous.iter().map(|p| p.key_id.as_str())
    }

    /// The keys a `checkin_token` section names (reading its file or environment variable), or
    /// a fresh Ed25519 key when it names none.
    pub fn from_config(
        config: &crate::config::CheckinTokenConfig,
    ) -> Result<TokenKeys, TokenError> {
        let key = match (&config.key, &config.key_file, &config.key_env) {
            (Some(k), _, _) => k.clone(),
            (_, Some(file), _) => Secret::new(
                crate::input::read_input_file(file)
                    .map_err(|e| TokenError::InvalidKey(format!("cannot read {file}: {e}")))?,
            ),
            (_, _, Some(var)) => Secret::new(std::env::var(var).map_err(|_| {
                TokenError::InvalidKey(format!("environment variable {var} is not set"))
            })?),
            (None, None, None) => return Self::generate(),
        };
        let mut keys = match config.algorithm {
            TokenAlgorithm::EdDSA => Self::ed25519_pem(&key),
            TokenAlgorithm::HS256 => Self::hs256(&key),
        }?;
        let at = |field: &str, i: usize, e: TokenError| {
            let why = match e {
                TokenError::InvalidKey(m) => m,
                other => other.to_string(),
            };
            TokenError::InvalidKey(format!("checkin_token.{field}[{i}]: {why}"))
        };
        for (i, previous) in config.previous_keys.iter().enumerate() {
            keys.add_previous(previous)
                .map_err(|e| at("previous_keys", i, e))?;
        }
        for (i, file) in config.previous_key_files.iter().enumerate() {
            let text = crate::input::read_input_file(file).map_err(|e| {
                at(
                    "previous_key_files",
                    i,
                    TokenError::InvalidKey(format!("cannot read {file}: {e}")),
                )
            })?;
            keys.add_previous(&Secret::new(text))
                .map_err(|e| at("previous_key_files", i, e))?;
        }
        if keys.previous.len() > MAX_PREVIOUS_KEYS {
            return Err(TokenError::InvalidKey(format!(
                "checkin_token: {} previous keys, at most {MAX_PREVIOUS_KEYS}",
                keys.previous.len()
            )));
        }
        Ok(keys)
    }

    /// A fingerprint of the key (`ed25519:` or `hs256:` and 16 hex digits), kept with the saved
    /// state: a controller (or a replica) started with another key is told that the servers'
    /// check-in tokens will be refused. It reveals nothing of a secret key.
    pub fn key_id(&self) -> &str {
        &self.current.key_id
    }

    /// The algorithm.
    pub fn algorithm(&self) -> TokenAlgorithm {
        self.algorithm
    }

    fn jwt_algorithm(&self) -> Algorithm {
        match self.algorithm {
            TokenAlgorithm::EdDSA => Algorithm::EdDSA,
            TokenAlgorithm::HS256 => Algorithm::HS256,
        }
    }

    /// A token for `server` of `config` in `zone`, issued at `now`, valid [`TOKEN_LIFETIME`].
    pub fn issue(
        &self,
        server: ServerId,
        config: &str,
        zone: &str,
        now: Timestamp,
    ) -> Result<Secret, TokenError> {
        self.issue_lasting(server, config, zone, now, TOKEN_LIFETIME)
    }

    /// A token for `server` of `config` in `zone`, issued at `issued_at` and valid `lifetime`
    /// (see [`lifetime_for`]). The same arguments give the same token with the same key.
    pub fn issue_lasting(
        &self,
        server: ServerId,
        config: &str,
        zone: &str,
        issued_at: Timestamp,
        lifetime: Duration,
    ) -> Result<Secret, TokenError> {
        let iat = issued_at.as_second();
        let claims = CheckinClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: server,
            cfg: config.into(),
            zone: zone.into(),
            purpose: PURPOSE.into(),
            iat,
            exp: iat.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
            jti: token_id(server, iat),
        };
        let mut header = Header::new(self.jwt_algorithm());
        header.kid = Some(self.current.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map(Secret::new)
            .map_err(|e| TokenError::InvalidKey(e.to_string()))
    }

    /// Seals `secret` for the record of `server` with the signing key (see [`Sealed`]).
    pub fn seal(&self, server: ServerId, secret: &Secret) -> Result<Sealed, TokenError> {
        let key = self
            .current
            .seal
            .as_ref()
            .ok_or_else(|| TokenError::InvalidKey("the signing key cannot seal".into()))?;
        let mut data = secret.expose().as_bytes().to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(server.0.as_bytes()), &mut data)
            .map_err(|_| TokenError::InvalidKey("cannot seal".into()))?;
        let mut out = nonce.as_ref().to_vec();
        out.append(&mut data);
        Ok(Sealed {
            key_id: self.current.key_id.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(out),
        })
    }

    /// Opens what [`TokenKeys::seal`] sealed for `server`, with the signing key or a previous
    /// private key. The error names the key, never the secret.
    pub fn unseal(&self, server: ServerId, sealed: &Sealed) -> Result<Secret, TokenError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|v| v.key_id == sealed.key_id)
            .and_then(|v| v.seal.as_ref())
            .ok_or_else(|| {
                TokenError::Unsealable(format!(
                    "sealed with check-in key {}, whose private key this controller does not hold",
                    sealed.key_id
                ))
            })?;
        let broken = || TokenError::Unsealable(format!("not sealed for server {server}"));
        let mut data = base64::engine::general_purpose::STANDARD
            .decode(&sealed.data)
            .map_err(|_| broken())?;
        let nonce_len = AES_256_GCM.nonce_len();
        if data.len() < nonce_len {
            return Err(broken());
        }
        let mut body = data.split_off(nonce_len);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| broken())?;
        let plain = key
            .open_in_place(nonce, Aad::from(server.0.as_bytes()), &mut body)
            .map_err(|_| broken())?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| broken())?;
        body.fill(0);
        Ok(Secret::new(text))
    }

    /// Verifies `token` at `now` for the server `checking_in` (which must be live, as
    /// `is_live` says) and returns its claims.
    pub fn verify(
        &self,
        token: &str,
        now: Timestamp,
        checking_in: ServerId,
        is_live: impl Fn(ServerId) -> bool,
    ) -> Result<CheckinClaims, TokenError> {
        self.verify_for(token, now, Some(checking_in), is_live)
    }

    /// Verifies `token` at `now` and returns its claims: the server it names (its `sub`) must be
    /// live, as `is_live` says, and be `expected` when given. Kasm's check-in carries the token
    /// alone, so the token names the server.
    pub fn verify_for(
        &self,
        token: &str,
        now: Timestamp,
        expected: Option<ServerId>,
        is_live: impl Fn(ServerId) -> bool,
    ) -> Result<CheckinClaims, TokenError> {
        let digest: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
                .as_ref()
                .try_into()
                .unwrap_or([0; 32]);
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                if verified.len() >= VERIFIED_CACHE {
                    let leeway = LEEWAY.as_secs() as i64;
                    verified.retain(|_, c| now.as_second() <= c.exp.saturating_add(leeway));
                    if verified.len() >= VERIFIED_CACHE {
                        verified.clear();
                    }
                }
                verified.insert(digest, claims.clone());
                claims
            }
        };
        let leeway = LEEWAY.as_secs() as i64;
        let at = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::MIN);
        if now.as_second() > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired(at(claims.exp)));
        }
        if claims.iat > now.as_second().saturating_add(leeway) {
            return Err(TokenError::NotYetValid(at(claims.iat)));
        }
        if expected.is_some_and(|e| e != claims.sub) || !is_live(claims.sub) {
            return Err(TokenError::WrongServer(claims.sub));
        }
        Ok(claims)
    }

    /// The signature, algorithm and claims of `token` (what does not depend on the time), with
    /// the key its header names (or, without a `kid`, every key in turn).
    fn verify_signature(&self, token: &str) -> Result<CheckinClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Malformed("not a JWT".into()))?;
        if header.alg != self.jwt_algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        let keys = std::iter::once(&self.current).chain(&self.previous);
        match header.kid.as_deref() {
            // A key this controller does not know signed it (or the header was altered).
            Some(kid) => match keys.clone().find(|v| v.key_id == kid) {
                Some(key) => self.verify_with(token, &key.decoding),
                None => Err(TokenError::BadSignature),
            },
            None => {
                let mut last = TokenError::BadSignature;
                for key in keys {
                    match self.verify_with(token, &key.decoding) {
                        Err(TokenError::BadSignature) => last = TokenError::BadSignature,
                        other => return other,
                    }
                }
                Err(last)
            }
        }
    }

    fn verify_with(&self, token: &str, key: &DecodingKey) -> Result<CheckinClaims, TokenError> {
        let mut validation = Validation::new(self.jwt_algorithm());
        // Time is checked below against the `now` we are given, not the system clock.
        validation.validate_exp = false;
        validation.required_spec_claims = ["iss", "aud", "sub", "exp"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<CheckinClaims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => TokenError::BadSignature,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::WrongAlgorithm,
                K::InvalidIssuer => TokenError::WrongClaims("issuer".into()),
                K::InvalidAudience => TokenError::WrongClaims("audience".into()),
                K::InvalidSubject => TokenError::WrongClaims("subject".into()),
                _ => TokenError::Malformed(e.kind_name()),
            }
        })?;
        let claims = data.claims;
        if claims.purpose != PURPOSE {
            return Err(TokenError::WrongClaims("purpose".into()));
        }
        Ok(claims)
    }
}

/// A token's `jti`: a UUID (version 8) from the SHA-256 of its server and issue time, so that a
/// token issued again for the same server and time is the same token.
fn token_id(server: ServerId, iat: i64) -> uuid::Uuid {
    let mut input = b"kasm-scale check-in jti".to_vec();
    input.extend_from_slice(server.0.as_bytes());
    input.extend_from_slice(&iat.to_be_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The DER of a PEM `PRIVATE KEY`.
fn private_key_der(pem_text: &Secret) -> Result<Vec<u8>, TokenError> {
    let block = pem::parse(pem_text.expose())
        .map_err(|_| TokenError::InvalidKey("not a PEM document".into()))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(TokenError::InvalidKey(format!(
            "expected a PRIVATE KEY PEM block, found {}",
            block.tag()
        )));
    }
    Ok(block.into_contents())
}

/// A short name for an error kind, without the token.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for jsonwebtoken::errors::Error {
    fn kind_name(&self) -> String {
        use jsonwebtoken::errors::ErrorKind as K;
        match self.kind() {
            K::MissingRequiredClaim(c) => format!("missing claim `{c}`"),
            K::Json(_) => "claims are not the check-in claims".into(),
            K::Base64(_) | K::Utf8(_) | K::InvalidToken => "not a JWT".into(),
            other => format!("{other:?}").chars().take(60).collect(),
        }
    }
}

/// `kind:` and the first 8 bytes of `digest` in hex.
fn fingerprint(kind: &str, digest: &[u8]) -> String {
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}
