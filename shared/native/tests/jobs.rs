//! The usage list (the usage queue of hosts without a queue service) and its drain, against the
//! real stores: events leave the list only once they are in the database, a redelivered event is
//! written once, malformed items are dropped, and one drain runs at a time. And the cleanup of
//! ended shares' entries in the counter store.

mod common;

use std::sync::Arc;

use feen_core::authz::Owner;
use feen_core::crypto::keyring::KeyRing;
use feen_core::crypto::token::{self, TokenHash, TokenKind};
use feen_core::ids::{KeyId, RequestId, ShareId, UserId};
use feen_core::limits::{self, Policy};
use feen_core::ports::{Db, Kv};
use feen_core::secret::SecretString;
use feen_core::usage::{Outcome, UsageEvent};
use feen_jobs::{USAGE_LIST, drain_usage, enqueue_usage};
use feen_native::kv_memory::MemoryKv;
use feen_native::kv_redis::RedisKv;
use feen_store::shares::Share;

fn event(n: u8) -> UsageEvent {
    UsageEvent {
        request_id: RequestId::new(1_800_000_000_000 + i64::from(n), [n; 10]),
        share_id: ShareId::new(1_800_000_000_000, [1; 10]),
        key_id: KeyId::new(1_800_000_000_000, [2; 10]),
        user_id: UserId::new(1_800_000_000_000, [3; 10]),
        team_id: None,
        provider: "openai".into(),
        model: Some("gpt-4o-mini".into()),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        streamed: false,
        input_tokens: u64::from(n) * 10,
        output_tokens: 5,
        cost_micros: Some(6),
        started_at_ms: 1_800_000_000_000,
        duration_ms: 9,
        outcome: Outcome::Completed,
    }
}

async fn rows(db: &dyn Db) -> i64 {
    db.query("SELECT COUNT(*) FROM usage_events", &[])
        .await
        .expect("count")[0]
        .int(0)
        .expect("a count")
}

async fn the_drain_moves_events_once_and_keeps_them_on_failure(db: Arc<dyn Db>, kv: Arc<dyn Kv>) {
    let (db, kv) = (db.as_ref(), kv.as_ref());
    assert!(
        enqueue_usage(kv, &event(1)).await.expect("enqueue"),
        "the first schedules a drain"
    );
    assert!(
        !enqueue_usage(kv, &event(2)).await.expect("enqueue"),
        "the second joins it"
    );
    // A redelivery of the first, and an item that is not an event.
    enqueue_usage(kv, &event(1)).await.expect("enqueue");
    kv.list_push(USAGE_LIST, "{\"not\":\"an event\"}")
        .await
        .expect("push");

    // A drain that finds another running does nothing.
    kv.set("usage:drain-lock", "1", 60_000)
        .await
        .expect("hold the lock");
    assert_eq!(drain_usage(db, kv).await.expect("skipped"), 0);
    assert_eq!(kv.list_front(USAGE_LIST, 10).await.expect("front").len(), 4);
    kv.delete(&["usage:drain-lock".to_owned()])
        .await
        .expect("release");

    assert_eq!(drain_usage(db, kv).await.expect("drain"), 3);
    assert_eq!(rows(db).await, 2, "the redelivered event is written once");
    assert!(
        kv.list_front(USAGE_LIST, 10)
            .await
            .expect("front")
            .is_empty()
    );
    assert_eq!(drain_usage(db, kv).await.expect("nothing left"), 0);
}

async fn a_failed_write_leaves_the_events_on_the_list(kv: Arc<dyn Kv>) {
    // A database without Feen's tables: every insert fails.
    let dir = std::env::temp_dir().join(common::unique("feen-nodb-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let bare = feen_native::db::SqliteDb::open(&dir.join("bare.sqlite"))
        .await
        .expect("open");
    enqueue_usage(kv.as_ref(), &event(7))
        .await
        .expect("enqueue");
    assert!(drain_usage(&bare, kv.as_ref()).await.is_err());
    assert_eq!(kv.list_front(USAGE_LIST, 10).await.expect("front").len(), 1);
    // The lock was given back: a drain into a working database takes the event.
    let db = common::sqlite().await;
    assert_eq!(
        drain_usage(db.as_ref(), kv.as_ref()).await.expect("drain"),
        1
    );
    assert_eq!(rows(db.as_ref()).await, 1);
}

async fn redis() -> Arc<dyn Kv> {
    let prefix = format!("{}:", common::unique("jobs"));
    Arc::new(
        RedisKv::connect(&common::redis_url(), &prefix)
            .await
            .expect("Redis (run scripts/services.sh)"),
    )
}

#[tokio::test]
async fn draining_from_memory_into_sqlite() {
    the_drain_moves_events_once_and_keeps_them_on_failure(
        common::sqlite().await,
        Arc::new(MemoryKv::new()),
    )
    .await;
}

#[tokio::test]
async fn draining_from_redis_into_postgres() {
    the_drain_moves_events_once_and_keeps_them_on_failure(common::postgres().await, redis().await)
        .await;
}

#[tokio::test]
async fn failed_writes_keep_the_events_in_memory() {
    a_failed_write_leaves_the_events_on_the_list(Arc::new(MemoryKv::new())).await;
}

#[tokio::test]
async fn failed_writes_keep_the_events_in_redis() {
    a_failed_write_leaves_the_events_on_the_list(redis().await).await;
}

/// A user with a key and two shares: (expired one's id and hash, live one's id and hash).
async fn two_shares(db: &dyn Db, now: i64) -> [(ShareId, TokenHash); 2] {
    let user = UserId::new(now, [4; 10]);
    let stored = feen_store::users::User {
        id: user.clone(),
        email: "forget@example.com".into(),
        name: "Forget".into(),
        password_hash: "$argon2id$stub".into(),
        created_at: now,
    };
    feen_store::users::insert(db, &stored).await.expect("user");
    let owner = Owner::User(user.clone());
    let key = feen_store::keys::ApiKey {
        id: KeyId::new(now, [5; 10]),
        owner: owner.clone(),
        created_by: user.clone(),
        name: "k".into(),
        provider: "openai".into(),
        base_url: None,
        custom_auth: None,
        hint: "sk-...abcd".into(),
        created_at: now,
        updated_at: now,
    };
    let sealed = KeyRing::from_single([7; 32]).seal(
        &SecretString::new("sk-secret".into()),
        &key.destination(),
        [1; 12],
    );
    feen_store::keys::insert(db, &key, &sealed)
        .await
        .expect("key");
    let mut out = Vec::new();
    for (n, expires_at) in [(6_u8, now - 1_000), (7, now + 86_400_000)] {
        let (_, hash) = token::issue(TokenKind::Share, [n; 32]);
        let share = Share {
            id: ShareId::new(now, [n; 10]),
            owner: owner.clone(),
            created_by: user.clone(),
            key: key.id.clone(),
            name: format!("share {n}"),
            token_hint: "feen_abcd...".into(),
            policy: Policy {
                max_uses: Some(9),
                expires_at_ms: Some(expires_at),
                ..Policy::default()
            },
            created_at: now - 10_000,
            updated_at: now - 10_000,
            revoked_at: None,
        };
        feen_store::shares::insert(db, &share, &hash)
            .await
            .expect("share");
        out.push((share.id, hash));
    }
    [out.remove(0), out.remove(0)]
}

async fn ended_shares_leave_the_counter_store(db: Arc<dyn Db>, kv: Arc<dyn Kv>) {
    let (db, kv) = (db.as_ref(), kv.as_ref());
    let now = 1_800_000_000_000;
    let [(expired, expired_hash), (live, live_hash)] = two_shares(db, now).await;
    let held = |share: &ShareId, hash: &TokenHash| {
        let mut keys = vec![feen_service::cache::key(hash)];
        keys.extend(limits::lifetime_keys(share));
        keys
    };
    for key in held(&expired, &expired_hash)
        .into_iter()
        .chain(held(&live, &live_hash))
    {
        kv.set(&key, "1", 600_000).await.expect("set");
    }
    let present = |keys: Vec<String>| async move {
        let mut n = 0;
        for key in keys {
            n += usize::from(kv.get(&key).await.expect("get").is_some());
        }
        n
    };
    assert_eq!(
        feen_jobs::forget_ended_shares(db, kv, now)
            .await
            .expect("run"),
        1
    );
    assert_eq!(
        present(held(&expired, &expired_hash)).await,
        0,
        "the expired share is forgotten"
    );
    assert_eq!(
        present(held(&live, &live_hash)).await,
        3,
        "the live one is kept"
    );
    // A second run looks only at what ended since: nothing.
    assert_eq!(
        feen_jobs::forget_ended_shares(db, kv, now + 5)
            .await
            .expect("run"),
        0
    );
    // The live share is revoked; the next run forgets it too.
    let revoked = feen_store::shares::revoke(db, &owner_of_live(db, &live).await, &live, now + 10)
        .await
        .expect("revoke");
    assert!(revoked);
    assert_eq!(
        feen_jobs::forget_ended_shares(db, kv, now + 20)
            .await
            .expect("run"),
        1
    );
    assert_eq!(present(held(&live, &live_hash)).await, 0);
}

async fn owner_of_live(db: &dyn Db, share: &ShareId) -> Owner {
    feen_store::shares::owner_of(db, share)
        .await
        .expect("owner")
        .expect("a share")
}

#[tokio::test]
async fn ended_shares_leave_memory() {
    ended_shares_leave_the_counter_store(common::sqlite().await, Arc::new(MemoryKv::new())).await;
}

#[tokio::test]
async fn ended_shares_leave_redis() {
    ended_shares_leave_the_counter_store(common::postgres().await, redis().await).await;
}
