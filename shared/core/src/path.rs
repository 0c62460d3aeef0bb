//! The upstream path of a proxied request, normalised once before anything looks at it, so that
//! the path the policy checks (allowed endpoints, the model named in the path) is byte for byte
//! the path sent to the provider.
//!
//! The rules (RFC 3986's normalisation, plus refusals where servers disagree):
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and every other
//!   escape is written with upper-case hex;
//! - escapes of `/`, `\`, `%` itself and control characters are refused: servers differ on
//!   whether `%2F` separates segments, so no answer would be safe;
//! - dot segments (`.`, `..`, and the same before a `;` parameter) are refused rather than
//!   resolved: no SDK sends them, and a path that climbs is an attempt to leave an allow-list;
//! - empty segments (`//`) are removed;
//! - characters a URI path may not hold literally are refused.

use crate::Error;

/// The longest upstream path accepted, in bytes.
pub const MAX_PATH: usize = 2048;

fn refuse(message: &str) -> Error {
    Error::Invalid {
        code: "invalid_path",
        message: format!("the request path {message}"),
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may hold literally besides unreserved ones: sub-delimiters, `:`
/// and `@` (RFC 3986 `pchar`).
fn literal(b: u8) -> bool {
    unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Normalises `raw` (the path after the proxy's prefix, starting with `/`, without a query).
pub fn normalise(raw: &str) -> Result<String, Error> {
    if raw.len() > MAX_PATH {
        return Err(refuse(&format!("is longer than {MAX_PATH} bytes")));
    }
    if !raw.starts_with('/') {
        return Err(refuse("must start with /"));
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut segment = String::new();
    let mut i = 0;
    let flush = |segment: &mut String, out: &mut String| -> Result<(), Error> {
        let bare = segment.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." {
            return Err(refuse("must not contain dot segments (. or ..)"));
        }
        if !segment.is_empty() {
            out.push('/');
            out.push_str(segment);
        }
        segment.clear();
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                flush(&mut segment, &mut out)?;
                i += 1;
            }
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(refuse("has a malformed percent escape"));
                };
                let decoded = hi * 16 + lo;
                if unreserved(decoded) {
                    segment.push(char::from(decoded));
                } else if matches!(decoded, b'/' | b'\\' | b'%') || !(0x20..0x7f).contains(&decoded)
                {
                    return Err(refuse("must not encode /, \\, % or control characters"));
                } else {
                    segment.push('%');
                    segment.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                    segment.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
                }
                i += 3;
            }
            b if literal(b) => {
                segment.push(char::from(b));
                i += 1;
            }
            _ => return Err(refuse("holds a character a URL path may not")),
        }
    }
    let trailing = raw.ends_with('/');
    flush(&mut segment, &mut out)?;
    if out.is_empty() {
        return Err(refuse("names no upstream path"));
    }
    if trailing {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_once() {
        let cases = [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1//chat///completions", "/v1/chat/completions"),
            ("/v1/%63hat/completions", "/v1/chat/completions"),
            ("/v1/files/file%2dabc", "/v1/files/file-abc"),
            (
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "/v1beta/models/gemini-2.0-flash:generateContent",
            ),
            ("/v1/x%3ay", "/v1/x%3Ay"),
            ("/v1/models/", "/v1/models/"),
            ("/v1/a.b/c..d/...", "/v1/a.b/c..d/..."),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise(raw).ok().as_deref(), Some(expected), "{raw}");
        }
    }

    #[test]
    fn every_spelling_of_climbing_or_hiding_a_slash_is_refused() {
        for raw in [
            "/v1/chat/../../v1/images/generations",
            "/v1/chat/./completions",
            "/v1/chat/%2e%2e/%2e%2e/v1/images/generations",
            "/v1/chat/%2E%2E/images",
            "/v1/chat/.%2e/images",
            "/v1/chat/%2e./images",
            "/v1/chat/..;/images",
            "/v1/chat%2f..%2fimages",
            "/v1/chat%2F..%2Fimages",
            "/v1/chat%5c..%5cimages",
            "/v1/chat\\..\\images",
            "/v1/%00",
            "/v1/%25",
            "/v1/%zz",
            "/v1/%2",
            "/v1/a b",
            "/..",
            "//",
            "",
            "v1/x",
        ] {
            let err = normalise(raw).expect_err(raw);
            assert_eq!(err.code(), "invalid_path", "{raw}");
            assert_eq!(err.status().as_u16(), 400, "{raw}");
        }
        assert!(normalise(&format!("/{}", "a".repeat(MAX_PATH))).is_err());
    }
}
