//! The key ring: AES-256-GCM sealing of provider keys, and the MACs and fingerprints derived
//! from it.
//!
//! A sealed secret is `v{version}.d.{base64(nonce ‖ ciphertext ‖ tag)}`. Its additional data
//! names its destination ([`Destination`]): the row it belongs to, the provider, the base URL and
//! the custom auth header, so a ciphertext copied to another row, or a row whose destination was
//! changed by whoever can write to the database, fails to open and the key goes nowhere else.
//! Secrets sealed before destinations were bound (`v{version}.{base64}`, bound to the row only)
//! still open; the rewrap job re-seals them ([`KeyRing::needs_reseal`]).

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

    /// Whether it is bound to its destination (sealed since bindings were added).
    pub fn bound_to_destination(&self) -> bool {
        self.parts().is_some_and(|(_, bound, _)| bound)
    }

    /// (version, bound to a destination, base64 body).
    fn parts(&self) -> Option<(u32, bool, &str)> {
        let (version, rest) = self.0.strip_prefix('v')?.split_once('.')?;
        let version = version.parse().ok()?;
        Some(match rest.strip_prefix("d.") {
            Some(body) => (version, true, body),
            None => (version, false, rest),
        })
    }
}

/// Where a provider key may be sent, as stored with it: a sealed key opens only for the same
/// destination it was sealed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Destination<'a> {
    /// The key's id (its row).
    pub key: &'a str,
    /// Its provider's catalogue name.
    pub provider: &'a str,
    /// Its base URL override.
    pub base_url: Option<&'a str>,
    /// A custom provider's auth header.
    pub auth_header: Option<&'a str>,
    /// A custom provider's auth template.
    pub auth_template: Option<&'a str>,
}

impl Destination<'_> {
    /// The additional data's text: every part length-prefixed, so no two destinations share it.
    fn binding(&self) -> String {
        let mut out = String::new();
        for part in [
            Some(self.key),
            Some(self.provider),
            self.base_url,
            self.auth_header,
            self.auth_template,
        ] {
            match part {
                Some(p) => out.push_str(&format!("{}:{p};", p.len())),
                None => out.push_str("-;"),
            }
        }
        out
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

    /// Seals `secret` for `destination` with the current version and a fresh random `nonce`.
    pub fn seal(
        &self,
        secret: &SecretString,
        destination: &Destination<'_>,
        nonce: [u8; NONCE_LEN],
    ) -> SealedSecret {
        let version = self.current_version();
        let Some(key) = self.keys.get(&version) else {
            // `parse` and `from_single` never build an empty ring.
            return SealedSecret(String::new());
        };
        let cipher = Aes256Gcm::new(&(**key).into());
        let aad = aad(version, true, destination);
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
        SealedSecret(format!("v{version}.d.{}", B64.encode(out)))
    }

    /// Opens a sealed secret that must belong to `destination` (for a secret sealed before
    /// destinations were bound: to its row).
    pub fn open(
        &self,
        sealed: &SealedSecret,
        destination: &Destination<'_>,
    ) -> Result<SecretString, KeyRingError> {
        let (version, bound, body) = sealed.parts().ok_or(KeyRingError::OpenFailed)?;
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
        let aad = aad(version, bound, destination);
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

    /// Whether a sealed secret should be sealed anew: by an older version, or before
    /// destinations were bound.
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.version() != Some(self.current_version()) || !sealed.bound_to_destination()
    }

    /// The HMAC-SHA256 of `message` under a key derived from version `version` for `purpose`
    /// (`None` when the ring does not hold that version). Data Feen keeps outside the database
    /// (the share cache in Redis) carries one, so whoever can write there cannot forge it.
    pub fn mac(&self, version: u32, purpose: &str, message: &[u8]) -> Option<[u8; 32]> {
        let key = self.keys.get(&version)?;
        let derived = hmac_sha256(key.as_slice(), &[b"feen/derive/", purpose.as_bytes()]);
        Some(hmac_sha256(&derived, &[message]))
    }

    /// Whether `tag` is the MAC of `message` for `purpose` under version `version` (constant
    /// time).
    pub fn verify_mac(&self, version: u32, purpose: &str, message: &[u8], tag: &[u8]) -> bool {
        self.mac(version, purpose, message)
            .is_some_and(|mac| bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], tag)))
    }

    /// A fingerprint of each version's key (a MAC of a fixed text: it names the key without
    /// revealing it), so that processes can check they hold the same ring as the database's keys
    /// were sealed with.
    pub fn fingerprints(&self) -> Vec<(u32, String)> {
        self.keys
            .iter()
            .map(|(version, key)| {
                let mac = hmac_sha256(key.as_slice(), &[b"feen/keyring-fingerprint/v1"]);
                (*version, crate::encoding::hex(&mac[..16]))
            })
            .collect()
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC takes keys of any length.
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn aad(version: u32, bound: bool, destination: &Destination<'_>) -> String {
    if bound {
        format!(
            "feen/sealed-secret/v{version}/destination/{}",
            destination.binding()
        )
    } else {
        // Before destinations were bound: the row only.
        format!("feen/sealed-secret/v{version}/{}", destination.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).expect("valid ring")
    }

    const K1: &str = "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    fn to(key: &str) -> Destination<'_> {
        Destination {
            key,
            provider: "openai",
            base_url: None,
            auth_header: None,
            auth_template: None,
        }
    }

    /// A secret sealed the way Feen sealed them before destinations were bound (row only).
    fn legacy_seal(ring_text: &str, version: u32, secret: &str, row: &str) -> SealedSecret {
        let key = B64
            .decode(ring_text.split_once(':').map_or("", |(_, k)| k))
            .expect("base64");
        let cipher = Aes256Gcm::new_from_slice(&key).expect("32 bytes");
        let aad = format!("feen/sealed-secret/v{version}/{row}");
        let nonce = [4u8; NONCE_LEN];
        let sealed = cipher
            .encrypt(
                &Nonce::<U12>::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("encrypts");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        SealedSecret::from_stored(format!("v{version}.{}", B64.encode(out)))
    }

    #[test]
    fn sealed_secret_opens_for_its_own_destination_only() {
        let ring = ring(K1);
        let secret = SecretString::new("sk-test-abc".into());
        let home = Destination {
            key: "key_A",
            provider: "custom",
            base_url: Some("https://api.example.com"),
            auth_header: Some("X-Token"),
            auth_template: Some("Token {key}"),
        };
        let sealed = ring.seal(&secret, &home, [9; NONCE_LEN]);
        assert!(!sealed.as_str().contains("sk-test"));
        assert!(sealed.bound_to_destination());
        assert_eq!(
            ring.open(&sealed, &home).map(|s| s.expose().to_owned()),
            Ok("sk-test-abc".into())
        );
        let elsewhere = [
            Destination {
                key: "key_B",
                ..home
            },
            Destination {
                provider: "openai",
                ..home
            },
            Destination {
                base_url: Some("https://evil.example"),
                ..home
            },
            Destination {
                base_url: None,
                ..home
            },
            Destination {
                auth_header: Some("Authorization"),
                ..home
            },
            Destination {
                auth_template: Some("Bearer {key}"),
                ..home
            },
            // Parts that would run together without their lengths.
            Destination {
                base_url: Some("https://api.example.comX-Token"),
                auth_header: Some(""),
                ..home
            },
        ];
        for other in elsewhere {
            assert_eq!(
                ring.open(&sealed, &other).map(|_| ()),
                Err(KeyRingError::OpenFailed),
                "{other:?}"
            );
        }
    }

    #[test]
    fn secrets_sealed_before_destinations_were_bound_still_open_and_want_resealing() {
        let ring = ring(K1);
        let legacy = legacy_seal(K1, 1, "sk-old", "key_A");
        assert!(!legacy.bound_to_destination());
        assert_eq!(
            ring.open(&legacy, &to("key_A"))
                .map(|s| s.expose().to_owned()),
            Ok("sk-old".into())
        );
        assert!(ring.open(&legacy, &to("key_B")).is_err());
        assert!(ring.needs_reseal(&legacy));
        let fresh = ring.seal(
            &SecretString::new("sk-old".into()),
            &to("key_A"),
            [1; NONCE_LEN],
        );
        assert!(!ring.needs_reseal(&fresh));
    }

    #[test]
    fn newest_version_seals_and_old_versions_still_open() {
        let old = ring(K1);
        let sealed_old = old.seal(&SecretString::new("a".into()), &to("row"), [1; NONCE_LEN]);
        let both = ring(&format!("{K1},{K2}"));
        assert_eq!(both.current_version(), 2);
        let sealed_new = both.seal(&SecretString::new("b".into()), &to("row"), [2; NONCE_LEN]);
        assert_eq!(sealed_new.version(), Some(2));
        assert_eq!(
            both.open(&sealed_old, &to("row"))
                .map(|s| s.expose().to_owned()),
            Ok("a".into())
        );
        assert!(both.needs_reseal(&sealed_old));
        assert!(matches!(
            old.open(&sealed_new, &to("row")),
            Err(KeyRingError::UnknownVersion(2))
        ));
    }

    #[test]
    fn tampered_ciphertext_fails_to_open() {
        let ring = ring(K1);
        let sealed = ring.seal(
            &SecretString::new("secret".into()),
            &to("row"),
            [3; NONCE_LEN],
        );
        let mut text = sealed.as_str().to_owned();
        let last = text
            .pop()
            .map(|c| if c == 'A' { 'B' } else { 'A' })
            .unwrap_or('A');
        text.push(last);
        assert!(
            ring.open(&SealedSecret::from_stored(text), &to("row"))
                .is_err()
        );
        // A bound secret presented as a legacy one (the `d.` removed) does not open either.
        let unbound = sealed.as_str().replacen(".d.", ".", 1);
        assert!(
            ring.open(&SealedSecret::from_stored(unbound), &to("row"))
                .is_err()
        );
        for junk in ["", "v1.", "v1.!!!", "vX.AAAA", "1.AAAA", "v1.d.", "v1.d.!!"] {
            assert!(
                ring.open(&SealedSecret::from_stored(junk.into()), &to("row"))
                    .is_err(),
                "{junk}"
            );
        }
    }

    #[test]
    fn macs_need_the_ring_and_fingerprints_name_each_key() {
        let one = ring(K1);
        let both = ring(&format!("{K1},{K2}"));
        let tag = one.mac(1, "share-cache", b"entry").expect("version 1");
        assert!(both.verify_mac(1, "share-cache", b"entry", &tag));
        assert!(!both.verify_mac(1, "share-cache", b"entrx", &tag));
        assert!(!both.verify_mac(1, "other-purpose", b"entry", &tag));
        assert!(!both.verify_mac(2, "share-cache", b"entry", &tag));
        assert!(
            !one.verify_mac(2, "share-cache", b"entry", &tag),
            "unknown version"
        );
        assert!(!one.verify_mac(1, "share-cache", b"entry", &tag[..31]));
        let prints = both.fingerprints();
        assert_eq!(prints.len(), 2);
        assert_eq!(prints[0], one.fingerprints()[0]);
        assert_ne!(prints[0].1, prints[1].1);
        assert_eq!(prints[0].1.len(), 32);
        assert!(!prints[0].1.contains("0101"), "the key itself is not shown");
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
        let sealed = original.seal(&SecretString::new("x".into()), &to("r"), [0; NONCE_LEN]);
        assert!(again.open(&sealed, &to("r")).is_ok());
        assert!(!format!("{original:?}").contains("AQEB"));
    }
}
