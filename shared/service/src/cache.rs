//! The share cache: what the proxy needs for a token (policy and still-sealed key), kept in the
//! counter store so every replica sees the same entry.
//!
//! Correctness rule: a cache fill uses `set_if_absent`, while every write path (update, rotate,
//! revoke, regenerate, delete) first changes the database and then *overwrites* the entry (with
//! the new record or a tombstone). A fill that read the database before the write therefore can
//! never replace what the write put there, and a revocation is effective on the very next
//! request on every replica.

use feen_core::Error;
use feen_core::crypto::token::TokenHash;
use feen_core::ids::UserId;
use feen_store::shares::{self, HashScope, ProxyTarget};

use crate::Ctx;

/// How long an entry lives. Only a safety net: every change overwrites its entries at once.
pub const TTL_MS: u64 = 5 * 60_000;
const TOMBSTONE: &str = "-";

/// The cache key for a token hash.
pub fn key(hash: &TokenHash) -> String {
    format!("cache:share:{}", hash.as_str())
}

/// The live share for a token hash: from the cache, or from the database (then cached).
pub async fn load(ctx: &Ctx, hash: &TokenHash) -> Result<Option<ProxyTarget>, Error> {
    let key = key(hash);
    if let Some(text) = ctx.kv.get(&key).await? {
        if text == TOMBSTONE {
            return Ok(None);
        }
        if let Ok(target) = serde_json::from_str::<ProxyTarget>(&text) {
            return Ok(Some(target));
        }
    }
    let target = shares::proxy_target(ctx.db.as_ref(), hash).await?;
    let text = match &target {
        Some(t) => serde_json::to_string(t).map_err(|e| Error::internal(e.to_string()))?,
        None => TOMBSTONE.to_owned(),
    };
    ctx.kv.set_if_absent(&key, &text, TTL_MS).await?;
    Ok(target)
}

/// Rewrites the entries of the shares in `scope` from the database (after a change to them).
pub async fn refresh_shares(ctx: &Ctx, user: &UserId, scope: HashScope<'_>) -> Result<(), Error> {
    for hash in shares::token_hashes(ctx.db.as_ref(), user, scope).await? {
        let text = match shares::proxy_target(ctx.db.as_ref(), &hash).await? {
            Some(t) => serde_json::to_string(&t).map_err(|e| Error::internal(e.to_string()))?,
            None => TOMBSTONE.to_owned(),
        };
        ctx.kv.set(&key(&hash), &text, TTL_MS).await?;
    }
    Ok(())
}

/// Marks tokens as no longer valid (revoked, regenerated, key deleted).
pub async fn tombstone(ctx: &Ctx, hashes: &[TokenHash]) -> Result<(), Error> {
    for hash in hashes {
        ctx.kv.set(&key(hash), TOMBSTONE, TTL_MS).await?;
    }
    Ok(())
}
