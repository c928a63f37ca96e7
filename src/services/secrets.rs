//! Secrets at rest (the API keys of bot tools): sealed with XChaCha20-Poly1305 under a key
//! that never enters the database, so a copy of the database (a backup, a dump) does not
//! give the keys away.
//!
//! The key comes from `secret_key` in the config (any text; on PostgreSQL it must be set,
//! the same on every node, since one node seals what another opens), or else from
//! `<data_dir>/secret_key`, made on first use. Losing it loses the secrets only: the tools
//! then fail with a message that says to enter the keys again.

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};

/// What a sealed value starts with: the scheme, so a later one can be told apart.
const SEALED_PREFIX: &str = "xc1:";
/// XChaCha20's nonce: random, long enough to never repeat by chance.
const NONCE_BYTES: usize = 24;

/// Seals and opens secrets.
#[derive(Debug)]
pub struct SecretBox {
    source: KeySource,
    key: OnceLock<[u8; 32]>,
}

#[derive(Debug)]
enum KeySource {
    /// Derived from the configured text.
    Configured([u8; 32]),
    /// Kept in this file, made on first use.
    File(PathBuf),
    /// No key can be had; why.
    Missing(String),
}

impl SecretBox {
    /// The box the config gives.
    pub fn new(config: &Config) -> Self {
        let source = if !config.secret_key.is_empty() {
            KeySource::Configured(derive(&config.secret_key))
        } else if config.uses_postgres() {
            KeySource::Missing(
                "on PostgreSQL secrets are encrypted with the configured secret_key, the same on every node: set secret_key in the config file or ZHIKU_SECRET_KEY (for example `openssl rand -hex 32`)".into(),
            )
        } else {
            KeySource::File(config.data_dir.join("secret_key"))
        };
        Self {
            source,
            key: OnceLock::new(),
        }
    }

    /// A box with a fixed key (tests).
    pub fn with_key(text: &str) -> Self {
        Self {
            source: KeySource::Configured(derive(text)),
            key: OnceLock::new(),
        }
    }

    /// `plain` sealed, as printable text.
    pub fn seal(&self, plain: &str) -> Result<String> {
        let cipher = XChaCha20Poly1305::new(self.key()?.into());
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", BASE64.encode(bytes)))
    }

    /// The secret in `sealed`.
    pub fn open(&self, sealed: &str) -> Result<String> {
        let unreadable = || {
            Error::InvalidInput(
                "a stored secret cannot be decrypted with this server's secret key (was the key changed?): enter the secret again".into(),
            )
        };
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or_else(unreadable)?;
        let (nonce, text) = bytes.split_at(NONCE_BYTES);
        let cipher = XChaCha20Poly1305::new(self.key()?.into());
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), text)
            .map_err(|_| unreadable())?;
        String::from_utf8(plain).map_err(|_| unreadable())
    }

    fn key(&self) -> Result<&[u8; 32]> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let key = match &self.source {
            KeySource::Configured(key) => *key,
            KeySource::File(path) => file_key(path)?,
            KeySource::Missing(why) => return Err(Error::Config(why.clone())),
        };
        Ok(self.key.get_or_init(|| key))
    }
}

/// A key from any text: the text's SHA-256 under a label of its own.
fn derive(text: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"zhiku secret key v1\0");
    hash.update(text.as_bytes());
    hash.finalize().into()
}

/// The key kept in `path`, made there (readable by the owner alone) if absent.
fn file_key(path: &std::path::Path) -> Result<[u8; 32]> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let text = existing.trim();
        if !text.is_empty() {
            return Ok(derive(text));
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = hex::encode(rand::random::<[u8; 32]>());
    crate::app::write_private(path, &text)?;
    Ok(derive(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_only() {
        let a = SecretBox::with_key("one");
        let sealed = a.seal("sk-live-123").unwrap();
        assert!(!sealed.contains("sk-live-123"));
        assert_ne!(sealed, a.seal("sk-live-123").unwrap(), "nonces differ");
        assert_eq!(a.open(&sealed).unwrap(), "sk-live-123");
        let b = SecretBox::with_key("two");
        let e = b.open(&sealed).unwrap_err().to_string();
        assert!(e.contains("enter the secret again"), "{e}");
        assert!(a.open("xc1:!!").is_err());
    }

    #[test]
    fn a_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret_key");
        let first = file_key(&path).unwrap();
        assert_eq!(file_key(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
