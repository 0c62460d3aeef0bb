//! Values that must never be printed: provider keys, tokens, passwords.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret string. Its `Debug` prints `[redacted]`, it has no `Display`, and its memory is
/// wiped when dropped. Read it only with [`SecretString::expose`], at the point of use.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret itself. Call this only where the value is actually needed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for comparing a presented secret with a stored one.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString::new)
    }
}

/// The hint shown for a provider key instead of the key: its first three characters and last
/// four (`sk-...wxyz`), or only the last four for keys too short to show more without
/// revealing most of them.
pub fn key_hint(secret: &SecretString) -> String {
    let chars: Vec<char> = secret.expose().chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    if chars.len() >= 16 {
        let head: String = chars[..3].iter().collect();
        format!("{head}...{tail}")
    } else {
        format!("...{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = SecretString::new("sk-live-123456".into());
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret)), "Some([redacted])");
    }

    #[test]
    fn hints_reveal_little() {
        let cases = [
            ("sk-proj-abcdefghijklmnopwxyz", "sk-...wxyz"),
            ("short-key-1234", "...1234"),
            ("abc", "...abc"),
        ];
        for (key, hint) in cases {
            assert_eq!(key_hint(&SecretString::new(key.into())), hint);
        }
    }

    #[test]
    fn constant_time_comparison_is_equality() {
        let secret = SecretString::new("abc".into());
        assert!(secret.ct_eq("abc"));
        assert!(!secret.ct_eq("abd"));
        assert!(!secret.ct_eq("ab"));
    }
}
