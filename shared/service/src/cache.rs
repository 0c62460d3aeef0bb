//! The share cache: what the proxy needs for a token (policy and still-sealed key), in two
//! layers: the counter store (Redis when configured, so every replica sees the same entry) and
//! a small in-process memo in front of it.
//!
//! Correctness rules:
//! - A fill of the shared entry uses `set_if_absent`, while every write path (update, rotate,
//!   revoke, regenerate, delete) first changes the database and then *overwrites* the entry
//!   (with the new record or a tombstone). A fill that read the database before the write can
//!   never replace what the write put there.
//! - The memo is never trusted on its own: the proxy's admission call carries the memo's text as
//!   a guard on the shared entry, so a changed or revoked share is noticed in that same round
//!   trip, and the proxy reloads. Revocation is therefore effective on the very next request on
//!   every replica, with one round trip to the store on a warm path and no database query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use feen_core::Error;
use feen_core::authz::Owner;
use feen_core::crypto::token::TokenHash;
use feen_store::shares::{self, HashScope, ProxyTarget};

use crate::Ctx;

/// How long a shared entry lives. Only a safety net: every change overwrites its entries at once.
pub const TTL_MS: u64 = 5 * 60_000;
/// How long the memo keeps an entry before asking the store again without being told to.
const MEMO_TTL_MS: i64 = 60_000;
/// The most entries the memo holds; past that it starts over.
const MEMO_CAP: usize = 10_000;
const TOMBSTONE: &str = "-";

/// Share lookups answered by the memo, by the shared entry, and by the database (counted for the
/// hosts' monitoring).
static MEMO_HITS: AtomicU64 = AtomicU64::new(0);
static SHARED_HITS: AtomicU64 = AtomicU64::new(0);
static DATABASE_LOOKUPS: AtomicU64 = AtomicU64::new(0);

/// (memo hits, shared-entry hits, database lookups) since the process started.
pub fn stats() -> (u64, u64, u64) {
    (
        MEMO_HITS.load(Ordering::Relaxed),
        SHARED_HITS.load(Ordering::Relaxed),
        DATABASE_LOOKUPS.load(Ordering::Relaxed),
    )
}

/// The cache key for a token hash.
pub fn key(hash: &TokenHash) -> String {
    format!("cache:share:{}", hash.as_str())
}

/// A cached share: the exact text stored in the counter store (the guard value) and the share.
#[derive(Debug)]
pub struct Cached {
    /// The shared entry's text.
    pub text: String,
    /// The share.
    pub target: ProxyTarget,
}

/// The in-process memo of shares, by token hash, and the gates that let one lookup per token
/// run at a time.
#[derive(Debug, Default)]
pub struct Memo {
    entries: Mutex<HashMap<String, (Arc<Cached>, i64)>>,
    gates: Mutex<HashMap<String, Arc<futures_util::lock::Mutex<()>>>>,
}

impl Memo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// The memo's entry for a token, if fresh.
    pub fn get(&self, hash: &TokenHash, now_ms: i64) -> Option<Arc<Cached>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(hash.as_str())
            .filter(|(_, at)| now_ms - at < MEMO_TTL_MS)
            .map(|(c, _)| c.clone())
    }

    fn put(&self, hash: &TokenHash, cached: Arc<Cached>, now_ms: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MEMO_CAP {
                entries.clear();
            }
            entries.insert(hash.as_str().to_owned(), (cached, now_ms));
        }
    }

    /// The gate of a token's lookups (made on first use).
    fn gate(&self, hash: &TokenHash) -> Option<Arc<futures_util::lock::Mutex<()>>> {
        let mut gates = self.gates.lock().ok()?;
        Some(gates.entry(hash.as_str().to_owned()).or_default().clone())
    }

    /// Gives a gate back; the last holder removes it.
    fn ungate(&self, hash: &TokenHash, gate: Arc<futures_util::lock::Mutex<()>>) {
        if let Ok(mut gates) = self.gates.lock() {
            // Held by the map and by `gate` alone: nobody else is waiting on it.
            if Arc::strong_count(&gate) == 2 {
                gates.remove(hash.as_str());
            }
        }
    }

    fn forget(&self, hash: &TokenHash) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash.as_str());
        }
    }
}

fn encode(target: &ProxyTarget) -> Result<String, Error> {
    serde_json::to_string(target).map_err(|e| Error::internal(e.to_string()))
}

/// The live share for a token hash from the shared entry (or the database, which then fills
/// it), bypassing the memo, which it refreshes.
pub async fn fetch(ctx: &Ctx, hash: &TokenHash) -> Result<Option<Arc<Cached>>, Error> {
    let key = key(hash);
    let mut text = ctx.kv.get(&key).await?;
    if text.is_some() {
        SHARED_HITS.fetch_add(1, Ordering::Relaxed);
    } else {
        DATABASE_LOOKUPS.fetch_add(1, Ordering::Relaxed);
        let fresh = match shares::proxy_target(ctx.db.as_ref(), hash, ctx.now_ms()).await? {
            Some(t) => encode(&t)?,
            None => TOMBSTONE.to_owned(),
        };
        text = if ctx.kv.set_if_absent(&key, &fresh, TTL_MS).await? {
            Some(fresh)
        } else {
            // Someone else filled (or changed) it first: theirs is the entry to guard on.
            ctx.kv.get(&key).await?
        };
    }
    let Some(text) = text.filter(|t| t != TOMBSTONE) else {
        ctx.memo.forget(hash);
        return Ok(None);
    };
    let target: ProxyTarget = serde_json::from_str(&text)
        .map_err(|e| Error::internal(format!("share cache entry: {e}")))?;
    let cached = Arc::new(Cached { text, target });
    ctx.memo.put(hash, cached.clone(), ctx.now_ms());
    Ok(Some(cached))
}

/// The share for a token: the memo's entry when it has one (the caller then guards on it), or
/// a fetch. On the native host fetches of one token take turns within the process: a burst of
/// first requests for a share (or for a hot share whose memo entry just aged) costs one lookup,
/// and the others find its result in the memo.
pub async fn load(ctx: &Ctx, hash: &TokenHash) -> Result<Option<Arc<Cached>>, Error> {
    if let Some(cached) = memo_hit(ctx, hash) {
        return Ok(Some(cached));
    }
    // Only natively: on Spin a task may not wait on another task of its instance (wit-bindgen's
    // `inter-task-wakeup` is off), and Worker isolates see few concurrent requests each.
    if cfg!(target_arch = "wasm32") {
        return fetch(ctx, hash).await;
    }
    let Some(gate) = ctx.memo.gate(hash) else {
        return fetch(ctx, hash).await;
    };
    let turn = gate.lock().await;
    let result = match memo_hit(ctx, hash) {
        Some(cached) => Ok(Some(cached)),
        None => fetch(ctx, hash).await,
    };
    drop(turn);
    ctx.memo.ungate(hash, gate);
    result
}

fn memo_hit(ctx: &Ctx, hash: &TokenHash) -> Option<Arc<Cached>> {
    let cached = ctx.memo.get(hash, ctx.now_ms())?;
    MEMO_HITS.fetch_add(1, Ordering::Relaxed);
    Some(cached)
}

/// Rewrites the entries of the shares in `scope` from the database (after a change to them).
pub async fn refresh_shares(ctx: &Ctx, owner: &Owner, scope: HashScope<'_>) -> Result<(), Error> {
    for hash in shares::token_hashes(ctx.db.as_ref(), owner, scope).await? {
        let text = match shares::proxy_target(ctx.db.as_ref(), &hash, ctx.now_ms()).await? {
            Some(t) => encode(&t)?,
            None => TOMBSTONE.to_owned(),
        };
        ctx.kv.set(&key(&hash), &text, TTL_MS).await?;
        ctx.memo.forget(&hash);
    }
    Ok(())
}

/// Marks tokens as no longer valid (revoked, regenerated, key deleted).
pub async fn tombstone(ctx: &Ctx, hashes: &[TokenHash]) -> Result<(), Error> {
    for hash in hashes {
        ctx.kv.set(&key(hash), TOMBSTONE, TTL_MS).await?;
        ctx.memo.forget(hash);
    }
    Ok(())
}
