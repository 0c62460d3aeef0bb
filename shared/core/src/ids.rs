//! Typed identifiers. Each id is a prefix plus a ULID (48 bits of milliseconds, 80 random bits),
//! so ids sort by creation time, say what they name, and cannot be guessed.

use serde::{Deserialize, Serialize};

use crate::encoding::crockford_u128;

/// Builds the text of a new id from the time and 10 random bytes.
pub fn new_ulid(now_ms: i64, random: [u8; 10]) -> String {
    let millis = u128::from(u64::try_from(now_ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let mut rand = 0u128;
    for b in random {
        rand = (rand << 8) | u128::from(b);
    }
    crockford_u128((millis << 80) | rand)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id from the time and 10 random bytes.
            pub fn new(now_ms: i64, random: [u8; 10]) -> Self {
                Self(format!("{}{}", $prefix, new_ulid(now_ms, random)))
            }

            /// Parses an id from text (a path segment, a body field, a database column).
            /// Returns `None` for anything that is not an id of this kind.
            pub fn parse(text: &str) -> Option<Self> {
                let rest = text.strip_prefix($prefix)?;
                let well_formed = rest.len() == 26
                    && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
                well_formed.then(|| Self(text.to_owned()))
            }

            /// Wraps a value read back from our own database without re-checking it.
            pub fn from_db(text: String) -> Self {
                Self(text)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId, "usr_"
);
id_type!(
    /// A stored provider key.
    KeyId, "key_"
);
id_type!(
    /// A share: a Feen token with limits, minted for one key.
    ShareId, "shr_"
);
id_type!(
    /// A refresh-token session (one per login; rotation keeps the family).
    SessionId, "ses_"
);
id_type!(
    /// A personal access token.
    PatId, "pat_"
);
id_type!(
    /// One proxied request, and the usage event it produced.
    RequestId, "req_"
);
id_type!(
    /// One row of the audit log.
    AuditId, "aud_"
);
id_type!(
    /// A team: an owner of keys and shares shared by its members.
    TeamId, "team_"
);
id_type!(
    /// An invitation to join a team.
    InviteId, "inv_"
);
id_type!(
    /// An email in the outbox (also the idempotency key sent to the mail API).
    EmailId, "eml_"
);

/// Ten bytes derived from `text` (SHA-256), for an id that must be the same whoever makes it
/// for the same thing, in place of random bytes.
pub fn derived(text: &str) -> [u8; 10] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let mut out = [0; 10];
    out.copy_from_slice(&digest[..10]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_kinds() {
        let id = KeyId::new(1_700_000_000_000, [7; 10]);
        assert!(id.as_str().starts_with("key_"));
        assert_eq!(KeyId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(ShareId::parse(id.as_str()), None);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for text in [
            "",
            "key_",
            "key_short",
            "key_01HZZZZZZZZZZZZZZZZZZZZZZ!",
            "KEY_01HZZZZZZZZZZZZZZZZZZZZZZZ",
            "key_01hzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(KeyId::parse(text), None, "{text}");
        }
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = UserId::new(1_000, [0xff; 10]);
        let b = UserId::new(1_001, [0; 10]);
        assert!(a < b);
    }
}
