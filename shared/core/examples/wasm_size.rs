//! A program whose main uses the core's crypto, tokens, passwords, access tokens,
//! usage parser, address guard, errors and time formatting: built for the wasm targets, its size
//! is the figure reported as "wasm size of the core" (see the README's benchmark section).
use feen_core::crypto::keyring::{self, KeyRing};
use feen_core::crypto::{jwt, password, token};
use feen_core::ids::{SessionId, UserId};
use feen_core::secret::SecretString;
use feen_core::usage::{Format, UsageParser};
fn exercise(seed: u8, len: usize) -> usize {
    let ring = KeyRing::from_single([seed; 32]);
    let to = keyring::Destination {
        key: "row",
        provider: "openai",
        base_url: None,
        auth_header: None,
        auth_template: None,
    };
    let s = ring.seal(&SecretString::new("sk-x".into()), &to, [seed; 12]);
    let opened = ring.open(&s, &to).map(|x| x.expose().len()).unwrap_or(0);
    let (t, _) = token::issue(token::TokenKind::Share, [seed; 32]);
    let ok = token::verify(token::TokenKind::Share, t.expose()).is_some() as usize;
    let h = password::hash(&SecretString::new("pw".repeat(len)), [seed; 16]);
    let keys = jwt::AccessKeys::new(&[seed; 32]);
    let a = keys
        .issue(
            &UserId::new(1, [seed; 10]),
            &SessionId::new(1, [seed; 10]),
            100,
        )
        .map(|t| keys.verify(t.expose(), 101).is_some() as usize)
        .unwrap_or(0);
    let mut p = UsageParser::new(Format::Sse);
    p.feed(b"data: {\"usage\":{\"prompt_tokens\":1}}\n\n");
    let u = p.finish().input_tokens.unwrap_or(0) as usize;
    let g = feen_core::netguard::is_public_host("example.com") as usize;
    let e = feen_core::Error::internal("x").to_json().to_string().len();
    opened + ok + h.len() + a + u + g + e + feen_core::timefmt::to_rfc3339(len as i64).len()
}

fn main() {
    // The inputs come from outside, so the optimiser keeps every path.
    let n = std::env::args().count();
    std::process::exit(i32::from(exercise(n as u8, n) == 0));
}
