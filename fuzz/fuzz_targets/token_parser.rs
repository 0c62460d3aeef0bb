//! Fuzzes the Feen token parser: arbitrary text never panics, and never verifies unless it is a
//! token with a valid checksum.
#![no_main]

use feen_core::crypto::token::{self, TokenKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in [TokenKind::Share, TokenKind::Pat, TokenKind::Refresh, TokenKind::Invite] {
        if let Some(hash) = token::verify(kind, &text) {
            assert!(text.starts_with(kind.prefix()));
            assert_eq!(hash, token::hash(&text));
        }
    }
});
