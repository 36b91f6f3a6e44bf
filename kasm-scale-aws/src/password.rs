//! The Windows administrator password of an EC2 instance: `GetPasswordData` answers it encrypted
//! (RSA PKCS#1 v1.5, base64) with the public key of the instance's key pair; the private key
//! (`aws_ec2_private_key`, PEM) decrypts it.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine;
use kasm_scale_core::Secret;

/// The key pair's private key, ready to decrypt. Its `Debug` shows nothing of it.
pub(crate) struct PasswordKey(Pkcs1PrivateDecryptingKey);

impl fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordKey(<redacted>)")
    }
}

/// Reads an RSA private key in PEM: `RSA PRIVATE KEY` (PKCS#1, what EC2 hands out for a new
/// key pair) or `PRIVATE KEY` (PKCS#8). Errors never quote the key.
pub(crate) fn private_key(pem_text: &str) -> Result<PrivateDecryptingKey, String> {
    let block = pem::parse(pem_text.trim())
        .map_err(|_| "aws_ec2_private_key: is not a PEM-encoded private key".to_string())?;
    let rejected = |e: aws_lc_rs::error::KeyRejected| {
        format!("aws_ec2_private_key: not a usable RSA private key ({e})")
    };
    match block.tag() {
        "RSA PRIVATE KEY" => {
            let pair = KeyPair::from_der(block.contents()).map_err(rejected)?;
            let pkcs8 = pair
                .as_der()
                .map_err(|_| "aws_ec2_private_key: cannot re-encode the key".to_string())?;
            PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).map_err(rejected)
        }
        "PRIVATE KEY" => PrivateDecryptingKey::from_pkcs8(block.contents()).map_err(rejected),
        other => Err(format!(
            "aws_ec2_private_key: a PEM `{other}` block is not an RSA private key"
        )),
    }
}

impl PasswordKey {
    /// Reads the key (see [`private_key`]).
    pub(crate) fn from_pem(pem_text: &str) -> Result<Self, String> {
        let key = private_key(pem_text)?;
        Pkcs1PrivateDecryptingKey::new(key)
            .map(Self)
            .map_err(|_| "aws_ec2_private_key: cannot decrypt with this key".into())
    }

    /// Decrypts `GetPasswordData`'s `PasswordData` (base64, possibly with line breaks).
    pub(crate) fn decrypt(&self, password_data: &str) -> Result<Secret, String> {
        let compact: String = password_data.split_whitespace().collect();
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| format!("the password data is not base64: {e}"))?;
        let mut out = vec![0u8; self.0.min_output_size()];
        let plain = self.0.decrypt(&ciphertext, &mut out).map_err(|_| {
            "cannot decrypt the password data with aws_ec2_private_key (another key pair?)"
                .to_string()
        })?;
        let text = std::str::from_utf8(plain)
            .map_err(|_| "the decrypted password is not UTF-8".to_string())?;
        let secret = Secret::new(text);
        out.fill(0);
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::Pkcs1PublicEncryptingKey;

    const KEY: &str = include_str!("../tests/fixtures/test-key-pair.pem");

    /// What EC2 does: encrypt with the key pair's public key, base64 with line breaks.
    fn encrypt(key: &PrivateDecryptingKey, password: &str) -> String {
        let public = Pkcs1PublicEncryptingKey::new(key.public_key()).unwrap();
        let mut out = vec![0u8; public.ciphertext_size()];
        let c = public.encrypt(password.as_bytes(), &mut out).unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(c);
        text.as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn decrypts_with_a_pkcs1_and_a_pkcs8_key() {
        let data = encrypt(&private_key(KEY).unwrap(), "Xy7&pQ!2zz");
        let key = PasswordKey::from_pem(KEY).unwrap();
        assert_eq!(key.decrypt(&data).unwrap().expose(), "Xy7&pQ!2zz");
        let pkcs8 = private_key(KEY).unwrap();
        let der: aws_lc_rs::encoding::Pkcs8V1Der = pkcs8.as_der().unwrap();
        let pem8 = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref()));
        let key8 = PasswordKey::from_pem(&pem8).unwrap();
        assert_eq!(key8.decrypt(&data).unwrap().expose(), "Xy7&pQ!2zz");
        assert_eq!(format!("{key8:?}"), "PasswordKey(<redacted>)");
    }

    #[test]
    fn bad_keys_and_data_are_named_without_quoting_the_key() {
        let err = PasswordKey::from_pem("not a key").unwrap_err();
        assert_eq!(err, "aws_ec2_private_key: is not a PEM-encoded private key");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = PasswordKey::from_pem(cert).unwrap_err();
        assert!(err.contains("`CERTIFICATE` block"), "{err}");
        let key = PasswordKey::from_pem(KEY).unwrap();
        assert!(key.decrypt("%%%").unwrap_err().contains("not base64"));
        let other = PrivateDecryptingKey::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let err = key.decrypt(&encrypt(&other, "pw")).unwrap_err();
        assert!(err.contains("another key pair"), "{err}");
    }
}
