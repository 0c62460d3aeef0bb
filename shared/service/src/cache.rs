//! The share cache: what the proxy needs for a token (policy and still-sealed key), in two
//! layers: the counter store (Redis when configured, so every replica sees the same entry) and
//! a small in-process memo in front of it.
//!
//! Every entry carries an HMAC under the key ring ([`encode`]): whoever can write to Redis cannot
//! forge or move one, and an entry that does not verify is read as a miss.
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

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::net::IpAddr;

use feen_core::Error;
use feen_core::authz::Owner;
use feen_core::crypto::token::TokenHash;
use feen_core::ports::{Adjustment, Admission, Counter};
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

/// What the MAC of a cache entry is for (the key ring derives a key per purpose).
const MAC_PURPOSE: &str = "share-cache";
/// How an entry's MAC is appended to its JSON: the last member of the object.
const MAC_FIELD: &str = ",\"mac\":\"";

/// The message a cache entry's MAC covers: the cache key (so an entry cannot be moved to another
/// token) and the entry's JSON without the MAC.
fn mac_message(key: &str, json: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(key.len() + 1 + json.len());
    message.extend_from_slice(key.as_bytes());
    message.push(0);
    message.extend_from_slice(json.as_bytes());
    message
}

/// A cache entry: the share as JSON, with an HMAC under the key ring appended as its last member
/// (`"mac":"v{version}.{base64}"`), so that whoever can write to Redis cannot point a key at
/// another server or lift a share's limits. Replicas that predate the MAC read the same JSON and
/// ignore the extra member.
fn encode(ctx: &Ctx, key: &str, target: &ProxyTarget) -> Result<String, Error> {
    let json = serde_json::to_string(target).map_err(|e| Error::internal(e.to_string()))?;
    let ring = &ctx.config.keyring;
    let version = ring.current_version();
    let mac = ring
        .mac(version, MAC_PURPOSE, &mac_message(key, &json))
        .ok_or_else(|| Error::internal("the key ring has no current version"))?;
    let body = json
        .strip_suffix('}')
        .ok_or_else(|| Error::internal("a share did not serialise as an object"))?;
    Ok(format!(
        "{body}{MAC_FIELD}v{version}.{}\"}}",
        B64.encode(mac)
    ))
}

/// The share in a cache entry, if its MAC is valid under this key ring (`None`: written without
/// a MAC, by a ring this process does not hold, or by someone else; the caller reads the
/// database instead).
fn decode(ctx: &Ctx, key: &str, text: &str) -> Option<ProxyTarget> {
    let at = text.rfind(MAC_FIELD)?;
    let (version, tag) = text[at + MAC_FIELD.len()..]
        .strip_suffix("\"}")?
        .strip_prefix('v')?
        .split_once('.')?;
    let version: u32 = version.parse().ok()?;
    let tag = B64.decode(tag).ok()?;
    let json = format!("{}}}", &text[..at]);
    if !ctx
        .config
        .keyring
        .verify_mac(version, MAC_PURPOSE, &mac_message(key, &json), &tag)
    {
        return None;
    }
    serde_json::from_str(&json).ok()
}

/// The live share for a token hash from the shared entry (or the database, which then fills
/// it), bypassing the memo, which it refreshes. An entry whose MAC does not hold is never
/// trusted: the share is read from the database, and the entry is left for the guard (a newer
/// replica may have written it with a key-ring version this one does not hold yet). A token the
/// database does not know leaves nothing behind in the counter store.
///
/// Lookups of tokens the database does not know are counted per client address (`client`) and
/// refused past [`UNKNOWN_TOKENS_PER_MINUTE`] before the database is asked, so a flood of
/// made-up tokens costs neither a query each nor a counter-store key each.
pub async fn fetch(
    ctx: &Ctx,
    hash: &TokenHash,
    client: Option<IpAddr>,
) -> Result<Option<Arc<Cached>>, Error> {
    let key = key(hash);
    let shared = ctx.kv.get(&key).await?;
    if shared.as_deref() == Some(TOMBSTONE) {
        SHARED_HITS.fetch_add(1, Ordering::Relaxed);
        ctx.memo.forget(hash);
        return Ok(None);
    }
    if let Some(text) = shared.as_deref()
        && let Some(target) = decode(ctx, &key, text)
    {
        SHARED_HITS.fetch_add(1, Ordering::Relaxed);
        return Ok(Some(remember(ctx, hash, text.to_owned(), target)));
    }
    let unknown = unknown_tokens(ctx, client);
    if !matches!(
        ctx.kv.admit(None, std::slice::from_ref(&unknown)).await?,
        Admission::Admitted { .. }
    ) {
        return Err(Error::RateLimited {
            code: "too_many_invalid_tokens",
            message: "too many unknown Feen tokens from this address; try again later".into(),
            retry_after_secs: 60
                - u64::try_from(ctx.now_ms().rem_euclid(60_000) / 1000).unwrap_or(0),
        });
    }
    DATABASE_LOOKUPS.fetch_add(1, Ordering::Relaxed);
    let Some(target) = shares::proxy_target(ctx.db.as_ref(), hash, ctx.now_ms()).await? else {
        ctx.memo.forget(hash);
        return Ok(None);
    };
    // A token that exists is no guess: its lookup is given back.
    let refund = Adjustment {
        key: unknown.key,
        delta: -1,
        ttl_ms: unknown.ttl_ms,
    };
    ctx.kv.settle(&[refund]).await?;
    let text = match shared {
        // Unauthenticated: guard on it as it is, trust only the database.
        Some(unverified) => unverified,
        None => {
            let fresh = encode(ctx, &key, &target)?;
            if ctx.kv.set_if_absent(&key, &fresh, TTL_MS).await? {
                fresh
            } else {
                // Someone else filled (or changed) it first: theirs is the entry to guard on.
                match ctx.kv.get(&key).await? {
                    Some(theirs) if theirs == TOMBSTONE => {
                        ctx.memo.forget(hash);
                        return Ok(None);
                    }
                    Some(theirs) => match decode(ctx, &key, &theirs) {
                        Some(target) => return Ok(Some(remember(ctx, hash, theirs, target))),
                        None => theirs,
                    },
                    None => fresh,
                }
            }
        }
    };
    Ok(Some(remember(ctx, hash, text, target)))
}

/// Lookups of unknown tokens one address may cause per minute.
pub const UNKNOWN_TOKENS_PER_MINUTE: u64 = 60;

/// The counter of a client address's lookups of unknown tokens this minute (IPv6 by /64: one
/// host usually holds a whole /64).
fn unknown_tokens(ctx: &Ctx, client: Option<IpAddr>) -> Counter {
    let address = match client {
        None => "-".to_owned(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    };
    let now = ctx.now_ms();
    Counter {
        key: format!(
            "ratelimit:unknown-token:{address}:{}",
            now.div_euclid(60_000)
        ),
        limit: UNKNOWN_TOKENS_PER_MINUTE,
        cost: 1,
        ttl_ms: 61_000,
        seed: 0,
    }
}

fn remember(ctx: &Ctx, hash: &TokenHash, text: String, target: ProxyTarget) -> Arc<Cached> {
    let cached = Arc::new(Cached { text, target });
    ctx.memo.put(hash, cached.clone(), ctx.now_ms());
    cached
}

/// The share for a token: the memo's entry when it has one (the caller then guards on it), or
/// a fetch. On the native host fetches of one token take turns within the process: a burst of
/// first requests for a share (or for a hot share whose memo entry just aged) costs one lookup,
/// and the others find its result in the memo.
pub async fn load(
    ctx: &Ctx,
    hash: &TokenHash,
    client: Option<IpAddr>,
) -> Result<Option<Arc<Cached>>, Error> {
    if let Some(cached) = memo_hit(ctx, hash) {
        return Ok(Some(cached));
    }
    // Only natively: on Spin a task may not wait on another task of its instance (wit-bindgen's
    // `inter-task-wakeup` is off), and Worker isolates see few concurrent requests each.
    if cfg!(target_arch = "wasm32") {
        return fetch(ctx, hash, client).await;
    }
    let Some(gate) = ctx.memo.gate(hash) else {
        return fetch(ctx, hash, client).await;
    };
    let turn = gate.lock().await;
    let result = match memo_hit(ctx, hash) {
        Some(cached) => Ok(Some(cached)),
        None => fetch(ctx, hash, client).await,
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
        let key = key(&hash);
        let text = match shares::proxy_target(ctx.db.as_ref(), &hash, ctx.now_ms()).await? {
            Some(t) => encode(ctx, &key, &t)?,
            None => TOMBSTONE.to_owned(),
        };
        ctx.kv.set(&key, &text, TTL_MS).await?;
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
