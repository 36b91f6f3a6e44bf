//! [`CheckinTokenConfig`]: where the check-in token key comes from.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::token::TokenAlgorithm;

/// The broker API's settings (section `broker_api`, ours): the bearer keys a broker presents
/// (`Authorization: Bearer <key>`). Several keys can be valid at once, so a key is rotated by
/// adding the new one, moving the brokers over, then removing the old one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerApiConfig {
    /// The keys, each at least 32 characters.
    #[serde(default)]
    pub keys: Vec<Secret>,
}

/// The shortest broker API key accepted.
pub const MIN_BROKER_KEY_LEN: usize = 32;

/// The check-in token settings (section `checkin_token`, ours). Give the key in exactly one
/// way; without any, a fresh key is made at start, and tokens of servers still booting do not
/// survive a restart of the controller.
///
/// A key is rotated with an overlap: the new key signs, and the old one, listed in
/// `previous_keys` (or `previous_key_files`), still verifies the tokens it signed until they
/// expire (4 hours after their server's creation, or its config's `checkin_timeout` when that
/// is longer: guests keep posting their status with the token after they checked in); then it
/// is removed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinTokenConfig {
    /// `EdDSA` (default) or `HS256`.
    #[serde(default)]
    pub algorithm: TokenAlgorithm,
    /// The key itself: an Ed25519 `PRIVATE KEY` PEM, or an HS256 secret of at least 32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// A file holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// An environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
    /// Keys that signed tokens before this one: they verify, never sign. For `EdDSA` an Ed25519
    /// `PUBLIC KEY` PEM (`openssl pkey -pubout`), or the old `PRIVATE KEY` PEM (which also
    /// opens the AD join passwords it sealed for creates still under way); for `HS256` the old
    /// secret. At most [`MAX_PREVIOUS_KEYS`] with the files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<Secret>,
    /// Files, each holding one previous key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_key_files: Vec<String>,
}

/// The most previous keys a `checkin_token` section may list.
pub const MAX_PREVIOUS_KEYS: usize = 16;
