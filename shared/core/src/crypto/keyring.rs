//! The key ring and AES-256-GCM sealing of provider keys.
//!
//! A sealed secret is `v{version}.{base64(nonce ‖ ciphertext ‖ tag)}`. The additional data names
//! the row the secret belongs to, so a ciphertext copied to another row fails to open.

use std::collections::BTreeMap;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// Bytes of a GCM nonce. Nonces are random (96 bits); with at most a few million seals per key
/// version the collision probability stays far below 2^-32.
pub const NONCE_LEN: usize = 12;

/// A provider key as stored: sealed, with the key-ring version that sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Wraps the stored text.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The text to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key-ring version that sealed it.
    pub fn version(&self) -> Option<u32> {
        self.0.strip_prefix('v')?.split_once('.')?.0.parse().ok()
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(v{:?})", self.version())
    }
}

/// Why a key ring could not be built or a secret not opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    /// The configuration text is not `version:base64key[,version:base64key...]` with 32-byte keys.
    #[error("malformed key ring: {0}")]
    Malformed(&'static str),
    /// The sealed text names a version the ring does not hold.
    #[error("sealed with key version {0}, which the key ring does not hold")]
    UnknownVersion(u32),
    /// The ciphertext is corrupt, was tampered with, or belongs to another row.
    #[error("sealed secret failed to open")]
    OpenFailed,
}

/// Versioned 256-bit keys. New secrets are sealed with the highest version; any held version
/// opens.
pub struct KeyRing {
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
}

impl KeyRing {
    /// Parses `1:BASE64,2:BASE64` (the `FEEN_KEYRING` format).
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (version, key) = entry
                .split_once(':')
                .ok_or(KeyRingError::Malformed("each entry is version:base64key"))?;
            let version: u32 = version
                .trim()
                .parse()
                .map_err(|_| KeyRingError::Malformed("version is not a number"))?;
            let bytes = Zeroizing::new(
                B64.decode(key.trim())
                    .map_err(|_| KeyRingError::Malformed("key is not base64"))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyRingError::Malformed("key is not 32 bytes"))?;
            if keys.insert(version, Zeroizing::new(key)).is_some() {
                return Err(KeyRingError::Malformed("a version appears twice"));
            }
        }
        if keys.is_empty() {
            return Err(KeyRingError::Malformed("no keys"));
        }
        Ok(Self { keys })
    }

    /// A ring with one key, version 1, from 32 fresh random bytes (first start of `feen serve`).
    pub fn from_single(key: [u8; 32]) -> Self {
        Self {
            keys: BTreeMap::from([(1, Zeroizing::new(key))]),
        }
    }

    /// The ring in `FEEN_KEYRING` format, for writing to the data directory.
    pub fn to_config_text(&self) -> Zeroizing<String> {
        let entries: Vec<String> = self
            .keys
            .iter()
            .map(|(v, k)| format!("{v}:{}", B64.encode(k.as_slice())))
            .collect();
        Zeroizing::new(entries.join(","))
    }

    /// The version new secrets are sealed with.
    pub fn current_version(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(0)
    }

    /// Seals `secret` for the row named by `binding`, with a fresh random `nonce`.
    pub fn seal(
        &self,
        secret: &SecretString,
        binding: &str,
        nonce: [u8; NONCE_LEN],
    ) -> SealedSecret {
        let version = self.current_version();
        let Some(key) = self.keys.get(&version) else {
            // `parse` and `from_single` never build an empty ring.
            return SealedSecret(String::new());
        };
        let cipher = Aes256Gcm::new(&(**key).into());
        let aad = aad(version, binding);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: aad.as_bytes(),
        };
        let sealed = cipher
            .encrypt(&Nonce::<U12>::from(nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        SealedSecret(format!("v{version}.{}", B64.encode(out)))
    }

    /// Opens a sealed secret that must belong to the row named by `binding`.
    pub fn open(&self, sealed: &SealedSecret, binding: &str) -> Result<SecretString, KeyRingError> {
        let (version, body) = sealed
            .0
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('.'))
            .ok_or(KeyRingError::OpenFailed)?;
        let version: u32 = version.parse().map_err(|_| KeyRingError::OpenFailed)?;
        let key = self
            .keys
            .get(&version)
            .ok_or(KeyRingError::UnknownVersion(version))?;
        let bytes = B64.decode(body).map_err(|_| KeyRingError::OpenFailed)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(KeyRingError::OpenFailed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyRingError::OpenFailed)?;
        let cipher = Aes256Gcm::new(&(**key).into());
        let aad = aad(version, binding);
        let plain = cipher
            .decrypt(
                &Nonce::<U12>::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyRingError::OpenFailed)?;
        let text = String::from_utf8(plain).map_err(|_| KeyRingError::OpenFailed)?;
        Ok(SecretString::new(text))
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aad(version: u32, binding: &str) -> String {
    format!("feen/sealed-secret/v{version}/{binding}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).expect("valid ring")
    }

    const K1: &str = "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn sealed_secret_opens_for_its_own_row_only() {
        let ring = ring(K1);
        let secret = SecretString::new("sk-test-abc".into());
        let sealed = ring.seal(&secret, "key_A", [9; NONCE_LEN]);
        assert!(!sealed.as_str().contains("sk-test"));
        assert_eq!(
            ring.open(&sealed, "key_A").map(|s| s.expose().to_owned()),
            Ok("sk-test-abc".into())
        );
        assert!(matches!(
            ring.open(&sealed, "key_B"),
            Err(KeyRingError::OpenFailed)
        ));
    }

    #[test]
    fn newest_version_seals_and_old_versions_still_open() {
        let old = ring(K1);
        let sealed_old = old.seal(&SecretString::new("a".into()), "row", [1; NONCE_LEN]);
        let both = ring(&format!("{K1},{K2}"));
        assert_eq!(both.current_version(), 2);
        let sealed_new = both.seal(&SecretString::new("b".into()), "row", [2; NONCE_LEN]);
        assert_eq!(sealed_new.version(), Some(2));
        assert_eq!(
            both.open(&sealed_old, "row").map(|s| s.expose().to_owned()),
            Ok("a".into())
        );
        assert!(matches!(
            old.open(&sealed_new, "row"),
            Err(KeyRingError::UnknownVersion(2))
        ));
    }

    #[test]
    fn tampered_ciphertext_fails_to_open() {
        let ring = ring(K1);
        let sealed = ring.seal(&SecretString::new("secret".into()), "row", [3; NONCE_LEN]);
        let mut text = sealed.as_str().to_owned();
        let last = text
            .pop()
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .unwrap_or('A');
        text.push(last);
        assert!(ring.open(&SealedSecret::from_stored(text), "row").is_err());
        for junk in ["", "v1.", "v1.!!!", "vX.AAAA", "1.AAAA"] {
            assert!(
                ring.open(&SealedSecret::from_stored(junk.into()), "row")
                    .is_err(),
                "{junk}"
            );
        }
    }

    #[test]
    fn malformed_rings_are_refused() {
        for text in [
            "",
            "1",
            "x:AAAA",
            "1:notbase64!",
            "1:AAAA",
            &format!("{K1},{K1}"),
        ] {
            assert!(KeyRing::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn ring_round_trips_through_its_config_text() {
        let original = ring(&format!("{K1},{K2}"));
        let again = ring(&original.to_config_text());
        let sealed = original.seal(&SecretString::new("x".into()), "r", [0; NONCE_LEN]);
        assert!(again.open(&sealed, "r").is_ok());
        assert!(!format!("{original:?}").contains("AQEB"));
    }
}
