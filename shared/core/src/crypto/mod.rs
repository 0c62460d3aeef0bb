//! Feen's cryptography, all through vetted crates: AES-256-GCM sealing of provider keys with a
//! versioned key ring, Feen tokens and their hashes, argon2id passwords, signed access tokens.

pub mod jwt;
pub mod keyring;
pub mod password;
pub mod token;
