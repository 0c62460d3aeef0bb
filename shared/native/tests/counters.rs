//! The counter-store conformance suite: the in-process store and Redis must behave the same,
//! including under concurrency.

mod common;

use std::sync::Arc;
use std::time::Duration;

use feen_core::ports::{Admission, Counter, Kv};
use feen_native::kv_memory::MemoryKv;
use feen_native::kv_redis::RedisKv;

fn counter(key: &str, limit: u64, cost: u64) -> Counter {
    Counter {
        key: key.into(),
        limit,
        cost,
        ttl_ms: 60_000,
    }
}

async fn admit_bumps_every_counter_or_none(kv: Arc<dyn Kv>) {
    let a = counter("ratelimit:rpm:a", 3, 1);
    let b = counter("ratelimit:rpd:a", 2, 1);
    let both = [a.clone(), b.clone()];
    assert_eq!(
        kv.admit(&both).await.expect("admit"),
        Admission::Admitted { values: vec![1, 1] }
    );
    assert_eq!(
        kv.admit(&both).await.expect("admit"),
        Admission::Admitted { values: vec![2, 2] }
    );
    // The second counter is full: nothing moves, and the refusal names it.
    assert_eq!(
        kv.admit(&both).await.expect("admit"),
        Admission::Refused { index: 1, value: 2 }
    );
    assert_eq!(
        kv.admit(std::slice::from_ref(&a)).await.expect("admit"),
        Admission::Admitted { values: vec![3] }
    );
    assert_eq!(
        kv.admit(&[a]).await.expect("admit"),
        Admission::Refused { index: 0, value: 3 }
    );
    assert_eq!(
        kv.admit(&[]).await.expect("admit"),
        Admission::Admitted { values: vec![] }
    );
}

async fn costs_larger_than_one_count_fully(kv: Arc<dyn Kv>) {
    let c = counter("ratelimit:tpm:x", 100, 60);
    assert_eq!(
        kv.admit(std::slice::from_ref(&c)).await.expect("admit"),
        Admission::Admitted { values: vec![60] }
    );
    assert_eq!(
        kv.admit(std::slice::from_ref(&c)).await.expect("admit"),
        Admission::Refused {
            index: 0,
            value: 60
        }
    );
    assert_eq!(
        kv.add("ratelimit:tpm:x", -30, 60_000).await.expect("add"),
        30
    );
    assert_eq!(
        kv.admit(&[c]).await.expect("admit"),
        Admission::Admitted { values: vec![90] }
    );
}

async fn counters_expire_with_their_window(kv: Arc<dyn Kv>) {
    let c = Counter {
        key: "ratelimit:rpm:short".into(),
        limit: 1,
        cost: 1,
        ttl_ms: 150,
    };
    assert!(matches!(
        kv.admit(std::slice::from_ref(&c)).await.expect("admit"),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        kv.admit(std::slice::from_ref(&c)).await.expect("admit"),
        Admission::Refused { .. }
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        kv.admit(&[c]).await.expect("admit"),
        Admission::Admitted { .. }
    ));
}

async fn cache_entries_set_get_and_delete(kv: Arc<dyn Kv>) {
    assert_eq!(kv.get("cache:share:h").await.expect("get"), None);
    assert!(
        kv.set_if_absent("cache:share:h", "first", 60_000)
            .await
            .expect("set")
    );
    assert!(
        !kv.set_if_absent("cache:share:h", "second", 60_000)
            .await
            .expect("set")
    );
    assert_eq!(
        kv.get("cache:share:h").await.expect("get").as_deref(),
        Some("first")
    );
    kv.set("cache:share:h", "third", 60_000).await.expect("set");
    assert_eq!(
        kv.get("cache:share:h").await.expect("get").as_deref(),
        Some("third")
    );
    kv.delete(&["cache:share:h".into(), "cache:share:other".into()])
        .await
        .expect("delete");
    assert_eq!(kv.get("cache:share:h").await.expect("get"), None);
    kv.set("cache:share:brief", "x", 100).await.expect("set");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kv.get("cache:share:brief").await.expect("get"), None);
    assert!(
        kv.set_if_absent("cache:share:brief", "again", 60_000)
            .await
            .expect("set")
    );
}

async fn concurrent_admits_never_exceed_the_limit(kv: Arc<dyn Kv>) {
    let limit = 50;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move { kv.admit(&[counter("ratelimit:rpm:busy", limit, 1)]).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if matches!(
            task.await.expect("task").expect("admit"),
            Admission::Admitted { .. }
        ) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, limit);
}

async fn memory() -> Arc<dyn Kv> {
    Arc::new(MemoryKv::new())
}

async fn redis() -> Arc<dyn Kv> {
    let prefix = format!("{}:", common::unique("test"));
    Arc::new(
        RedisKv::connect(&common::redis_url(), &prefix)
            .await
            .expect("connect to Redis (run scripts/services.sh)"),
    )
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::memory().await).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::redis().await).await })*
        }
    };
}

on_both!(
    admit_bumps_every_counter_or_none,
    costs_larger_than_one_count_fully,
    counters_expire_with_their_window,
    cache_entries_set_get_and_delete,
    concurrent_admits_never_exceed_the_limit,
);

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_pass() {
    // Nothing listens on port 1: connecting must fail rather than hand out a store that admits.
    let result = RedisKv::connect("redis://127.0.0.1:1", "x:").await;
    assert!(result.is_err());
}

#[tokio::test]
async fn redis_prefixes_keep_deployments_apart() {
    let (a, b) = (redis().await, redis().await);
    a.set("cache:share:same", "a", 60_000).await.expect("set");
    assert_eq!(b.get("cache:share:same").await.expect("get"), None);
    let c = counter("ratelimit:rpm:same", 1, 1);
    assert!(matches!(
        a.admit(std::slice::from_ref(&c)).await.expect("admit"),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        b.admit(&[c]).await.expect("admit"),
        Admission::Admitted { .. }
    ));
}
