//! Bearer tokens Feen issues: share tokens, personal access tokens and refresh tokens.
//!
//! Text form: `{prefix}{body}{check}`. The body is 256 random bits in base62 (43 characters);
//! the check is the first 32 bits of SHA-256 over prefix and body, in base62 (6 characters).
//! The prefix lets secret scanners recognise a leaked token and the check lets them (and us)
//! tell a real token from a look-alike without a database lookup. Only the SHA-256 of the
//! whole token is stored; lookups are by that hash, so no comparison of secrets takes place.

use sha2::{Digest, Sha256};

use crate::encoding::{base62_encode, hex, is_base62};
use crate::secret::SecretString;

const BODY_LEN: usize = 43;
const CHECK_LEN: usize = 6;

/// What a token is for; each kind has its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A share token, used against the proxy (`feen_`).
    Share,
    /// A personal access token for the CLI and SDK (`feenpat_`).
    Pat,
    /// A refresh token (`feenrt_`).
    Refresh,
    /// A team invitation (`feeninv_`), sent by email and accepted once.
    Invite,
}

impl TokenKind {
    /// The text every token of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Share => "feen_",
            TokenKind::Pat => "feenpat_",
            TokenKind::Refresh => "feenrt_",
            TokenKind::Invite => "feeninv_",
        }
    }
}

/// The stored form of a token: hex SHA-256 of its full text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a hash read back from storage.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

/// Makes a new token of `kind` from 32 random bytes. Returns the token (to show once) and
/// its hash (to store).
pub fn issue(kind: TokenKind, random: [u8; 32]) -> (SecretString, TokenHash) {
    let body = base62_encode(&random, BODY_LEN);
    let check = checksum(kind.prefix(), &body);
    let token = format!("{}{body}{check}", kind.prefix());
    let hash = hash(&token);
    (SecretString::new(token), hash)
}

/// Checks a presented token's shape and checksum and returns its hash, or `None` if it cannot
/// be a token of `kind` (so the caller can refuse it without touching storage).
pub fn verify(kind: TokenKind, presented: &str) -> Option<TokenHash> {
    let rest = presented.strip_prefix(kind.prefix())?;
    if rest.len() != BODY_LEN + CHECK_LEN || !is_base62(rest) {
        return None;
    }
    let (body, check) = rest.split_at(BODY_LEN);
    (checksum(kind.prefix(), body) == check).then(|| hash(presented))
}

/// The hash under which a token is stored.
pub fn hash(token: &str) -> TokenHash {
    TokenHash(hex(&Sha256::digest(token.as_bytes())))
}

fn checksum(prefix: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prefix.as_bytes());
    hasher.update(body.as_bytes());
    let digest = hasher.finalize();
    base62_encode(&digest[..4], CHECK_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_to_their_hash() {
        for kind in [
            TokenKind::Share,
            TokenKind::Pat,
            TokenKind::Refresh,
            TokenKind::Invite,
        ] {
            let (token, stored) = issue(kind, [42; 32]);
            assert!(token.expose().starts_with(kind.prefix()));
            assert_eq!(token.expose().len(), kind.prefix().len() + 49);
            assert_eq!(verify(kind, token.expose()), Some(stored));
        }
    }

    #[test]
    fn tokens_of_another_kind_or_shape_are_refused() {
        let (token, _) = issue(TokenKind::Share, [1; 32]);
        let text = token.expose();
        assert_eq!(verify(TokenKind::Pat, text), None);
        let mut flipped = text.to_owned();
        let last = flipped
            .pop()
            .map(|c| if c == 'a' { 'b' } else { 'a' })
            .unwrap_or('a');
        flipped.push(last);
        let cases = [
            "",
            "feen_",
            "feen_short",
            &flipped,
            &text[..text.len() - 1],
            &format!("{text}x"),
            &text.replace("feen_", "FEEN_"),
        ];
        for case in cases {
            assert_eq!(verify(TokenKind::Share, case), None, "{case}");
        }
    }

    #[test]
    fn different_randomness_gives_different_tokens() {
        let (a, ha) = issue(TokenKind::Share, [1; 32]);
        let (b, hb) = issue(TokenKind::Share, [2; 32]);
        assert_ne!(a.expose(), b.expose());
        assert_ne!(ha, hb);
    }
}
