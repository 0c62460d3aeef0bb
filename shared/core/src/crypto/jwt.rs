//! Short-lived signed access tokens (HS256 via jwt-simple). The clock is passed in: the core
//! never reads it.

use jwt_simple::prelude::*;

use crate::ids::{SessionId, UserId};
use crate::secret::SecretString;

/// How long an access token lives.
pub const ACCESS_TTL_SECS: u64 = 15 * 60;
const ISSUER: &str = "feen";

/// What an access token says beyond the standard claims.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The session (refresh-token family) it was issued under; logging out revokes it.
    pub sid: SessionId,
}

/// A verified access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Who it was issued to.
    pub user: UserId,
    /// The session it belongs to.
    pub session: SessionId,
    /// When it expires (Unix seconds).
    pub expires_at: u64,
}

/// Signs and verifies access tokens with one secret.
pub struct AccessKeys {
    key: HS256Key,
}

impl AccessKeys {
    /// Keys from the session secret (at least 32 bytes of randomness).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: HS256Key::from_bytes(secret),
        }
    }

    /// A token for `user` in `session`, issued at `now_secs`.
    pub fn issue(&self, user: &UserId, session: &SessionId, now_secs: u64) -> Option<SecretString> {
        let now = UnixTimeStamp::from_secs(now_secs);
        let claims = JWTClaims {
            issued_at: Some(now),
            expires_at: Some(now + Duration::from_secs(ACCESS_TTL_SECS)),
            invalid_before: Some(now),
            audiences: None,
            issuer: Some(ISSUER.to_owned()),
            jwt_id: None,
            subject: Some(user.as_str().to_owned()),
            nonce: None,
            custom: AccessClaims {
                sid: session.clone(),
            },
        };
        self.key.authenticate(claims).ok().map(SecretString::new)
    }

    /// Verifies a token at `now_secs`: signature, issuer, expiry (no tolerance).
    pub fn verify(&self, token: &str, now_secs: u64) -> Option<Access> {
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
            time_tolerance: Some(Duration::from_secs(0)),
            artificial_time: Some(UnixTimeStamp::from_secs(now_secs)),
            max_token_length: Some(2048),
            ..Default::default()
        };
        let claims = self
            .key
            .verify_token::<AccessClaims>(token, Some(options))
            .ok()?;
        let user = UserId::parse(claims.subject.as_deref()?)?;
        Some(Access {
            user,
            session: claims.custom.sid,
            expires_at: claims.expires_at?.as_secs(),
        })
    }
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKeys([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn ids() -> (UserId, SessionId) {
        (UserId::new(1, [1; 10]), SessionId::new(1, [2; 10]))
    }

    #[test]
    fn token_verifies_until_it_expires() {
        let keys = AccessKeys::new(&[7; 32]);
        let (user, session) = ids();
        let token = keys.issue(&user, &session, NOW).expect("signs");
        let access = keys.verify(token.expose(), NOW + 60).expect("valid");
        assert_eq!(access.user, user);
        assert_eq!(access.session, session);
        assert_eq!(keys.verify(token.expose(), NOW + ACCESS_TTL_SECS + 1), None);
    }

    #[test]
    fn token_from_another_key_or_tampered_is_refused() {
        let (user, session) = ids();
        let token = AccessKeys::new(&[7; 32])
            .issue(&user, &session, NOW)
            .expect("signs");
        assert_eq!(AccessKeys::new(&[8; 32]).verify(token.expose(), NOW), None);
        let keys = AccessKeys::new(&[7; 32]);
        assert_eq!(keys.verify(&format!("{}x", token.expose()), NOW), None);
        assert_eq!(keys.verify("not.a.jwt", NOW), None);
        assert_eq!(keys.verify("", NOW), None);
    }
}
