//! Check-in tokens: a short-lived JWT per server, given to its startup script as `checkin_jwt`
//! and presented back when the server checks in.
//!
//! Claims: `iss`, `aud`, `sub` (the server id), `cfg` (auto-scale config), `zone`, `purpose`
//! (`checkin`), `iat`, `exp` (4 hours later) and `jti` (a fresh UUID). EdDSA (Ed25519) by
//! default, HS256 as an option. Verification pins the algorithm, checks the signature, issuer,
//! audience, purpose and expiry (with a small leeway) against the `now` it is given, and accepts
//! a token only for a live server that it names.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::engine::ServerId;
use crate::secret::Secret;

/// How long a check-in token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);
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

/// Signs and verifies check-in tokens. `Debug` shows the algorithm only.
#[derive(Clone)]
pub struct TokenKeys {
    algorithm: TokenAlgorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// A fingerprint of the key (see [`TokenKeys::key_id`]).
    key_id: String,
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
            decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
            key_id: fingerprint(
                "ed25519",
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pair.public_key().as_ref())
                    .as_ref(),
            ),
            verified: Arc::default(),
        })
    }

    /// An Ed25519 key from a PEM `PRIVATE KEY` (as `openssl genpkey -algorithm ed25519` writes).
    pub fn ed25519_pem(pem_text: &Secret) -> Result<TokenKeys, TokenError> {
        let block = pem::parse(pem_text.expose())
            .map_err(|_| TokenError::InvalidKey("not a PEM document".into()))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(TokenError::InvalidKey(format!(
                "expected a PRIVATE KEY PEM block, found {}",
                block.tag()
            )));
        }
        Self::ed25519_pkcs8(block.contents())
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn hs256(secret: &Secret) -> Result<TokenKeys, TokenError> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < 32 {
            return Err(TokenError::InvalidKey(format!(
                "an HS256 secret needs at least 32 bytes, got {}",
                bytes.len()
            )));
        }
        let bad = |e: jsonwebtoken::errors::Error| TokenError::InvalidKey(e.to_string());
        Ok(TokenKeys {
            algorithm: TokenAlgorithm::HS256,
            encoding: EncodingKey::from_secret(bytes).map_err(bad)?,
            decoding: DecodingKey::from_secret(bytes).map_err(bad)?,
            // An HMAC under the secret itself: it tells keys apart without helping anyone guess
            // the secret (tokens are such HMACs already).
            key_id: fingerprint(
                "hs256",
                aws_lc_rs::hmac::sign(
                    &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
                    b"kasm-scale check-in key id",
                )
                .as_ref(),
            ),
            verified: Arc::default(),
        })
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
        match config.algorithm {
            TokenAlgorithm::EdDSA => Self::ed25519_pem(&key),
            TokenAlgorithm::HS256 => Self::hs256(&key),
        }
    }

    /// A fingerprint of the key (`ed25519:` or `hs256:` and 16 hex digits), kept with the saved
    /// state: a controller (or a replica) started with another key is told that the servers'
    /// check-in tokens will be refused. It reveals nothing of a secret key.
    pub fn key_id(&self) -> &str {
        &self.key_id
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

    /// A token for `server` of `config` in `zone`, issued at `now`.
    pub fn issue(
        &self,
        server: ServerId,
        config: &str,
        zone: &str,
        now: Timestamp,
    ) -> Result<Secret, TokenError> {
        let iat = now.as_second();
        let claims = CheckinClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: server,
            cfg: config.into(),
            zone: zone.into(),
            purpose: PURPOSE.into(),
            iat,
            exp: iat + TOKEN_LIFETIME.as_secs() as i64,
            jti: uuid::Uuid::new_v4(),
        };
        jsonwebtoken::encode(&Header::new(self.jwt_algorithm()), &claims, &self.encoding)
            .map(Secret::new)
            .map_err(|e| TokenError::InvalidKey(e.to_string()))
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

    /// The signature, algorithm and claims of `token` (what does not depend on the time).
    fn verify_signature(&self, token: &str) -> Result<CheckinClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Malformed("not a JWT".into()))?;
        if header.alg != self.jwt_algorithm() {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(self.jwt_algorithm());
        // Time is checked below against the `now` we are given, not the system clock.
        validation.validate_exp = false;
        validation.required_spec_claims = ["iss", "aud", "sub", "exp"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<CheckinClaims>(token, &self.decoding, &validation)
            .map_err(|e| {
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
