//! Password hashing with argon2id.
//!
//! Parameters: m = 19 MiB (19456 KiB), t = 2, p = 1: the OWASP minimum for argon2id. One hash
//! costs about 60 ms native and 80–90 ms in a wasm runtime on our 2-core reference machine,
//! which fits the Workers paid plan's CPU budget; the free plan's 10 ms cannot hold any
//! memory-hard hash worth having. Sequential (one lane) so it runs the same on every host.

use argon2::{Config, Variant, Version};

use crate::secret::SecretString;

/// Bytes of salt per password.
pub const SALT_LEN: usize = 16;

fn config() -> Config<'static> {
    Config {
        variant: Variant::Argon2id,
        version: Version::Version13,
        mem_cost: 19_456,
        time_cost: 2,
        lanes: 1,
        hash_length: 32,
        ..Config::default()
    }
}

/// The PHC string to store for `password`, with a fresh random `salt`.
pub fn hash(password: &SecretString, salt: [u8; SALT_LEN]) -> String {
    argon2::hash_encoded(password.expose().as_bytes(), &salt, &config()).unwrap_or_default()
}

/// Whether `password` matches the stored PHC string. A malformed stored string never matches.
pub fn verify(stored: &str, password: &SecretString) -> bool {
    argon2::verify_encoded(stored, password.expose().as_bytes()).unwrap_or(false)
}

/// A hash of a password nobody knows, with the same parameters as every stored hash, verified
/// against when an email is unknown: an unknown email costs exactly one hash, as a wrong password
/// does, and gets the same answer. Precomputed (a test checks it is what [`hash`] makes), so the
/// decoy itself costs nothing.
pub const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$WlpaWlpaWlpaWlpaWlpaWg$tNPUMeY2Qd247WEWIc41u1j7t6kWNBjX1Jtpn34XnzM";

/// Hashing on the calling task: for the wasm hosts, where an isolate or instance has one thread
/// and nothing to hand the work to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

#[cfg_attr(not(target_family = "wasm"), async_trait::async_trait)]
#[cfg_attr(target_family = "wasm", async_trait::async_trait(?Send))]
impl crate::ports::Passwords for Inline {
    async fn hash(&self, password: SecretString, salt: [u8; SALT_LEN]) -> String {
        hash(&password, salt)
    }

    async fn verify(&self, stored: String, password: SecretString) -> bool {
        verify(&stored, &password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_is_a_real_hash_with_the_same_parameters() {
        let made = hash(
            &SecretString::new("feen-decoy-password".into()),
            [0x5a; SALT_LEN],
        );
        assert_eq!(DECOY_HASH, made);
        assert!(!verify(DECOY_HASH, &SecretString::new("".into())));
    }

    #[test]
    fn right_password_verifies_and_wrong_does_not() {
        let stored = hash(&SecretString::new("correct horse".into()), [7; SALT_LEN]);
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&stored, &SecretString::new("correct horse".into())));
        assert!(!verify(&stored, &SecretString::new("correct horsE".into())));
        assert!(!verify("not a phc string", &SecretString::new("x".into())));
    }
}
