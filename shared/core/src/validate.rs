//! Input checks shared by the handlers: each returns a validation error naming its field.

use crate::Error;

/// A display name: 1 to 100 characters after trimming, no control characters.
pub fn name(field: &'static str, value: &str) -> Result<String, Error> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > 100 {
        return Err(Error::invalid(field, "must be at most 100 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

/// An email address, lower-cased. Deliberately loose (one `@`, a dot in the domain, no spaces):
/// the only real check of an address is mail reaching it.
pub fn email(value: &str) -> Result<String, Error> {
    let email = value.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && email.matches('@').count() == 1
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("email", "must be an email address"))
    }
}

/// A new password: 10 to 256 characters (NIST SP 800-63B: length over composition rules).
pub fn new_password(field: &'static str, value: &str) -> Result<(), Error> {
    let len = value.chars().count();
    if len < 10 {
        return Err(Error::invalid(field, "must be at least 10 characters"));
    }
    if len > 256 {
        return Err(Error::invalid(field, "must be at most 256 characters"));
    }
    Ok(())
}

/// A provider API key as pasted by its owner: 1 to 4096 visible ASCII characters.
pub fn api_key(value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > 4096 {
        return Err(Error::invalid("apiKey", "must be 1 to 4096 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "apiKey",
            "must be printable ASCII without spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", " Ann@Example.ORG "] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            email(" Ann@Example.ORG ").ok().as_deref(),
            Some("ann@example.org")
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a b@c.co",
            "a@.co",
            "a@co.",
            &format!("{}@b.co", "a".repeat(260)),
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_passwords_and_keys() {
        assert_eq!(
            name("name", "  Team key ").ok().as_deref(),
            Some("Team key")
        );
        for bad in ["", "   ", "a\u{0}b"] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
        assert!(name("name", &"x".repeat(101)).is_err());
        assert!(new_password("password", "short").is_err());
        assert!(new_password("password", "long enough pass").is_ok());
        assert!(new_password("password", &"p".repeat(257)).is_err());
        assert!(api_key("sk-abc").is_ok());
        for bad in ["", "sk abc", "sk-\n", "ключ"] {
            assert!(api_key(bad).is_err(), "{bad:?}");
        }
    }
}
