//! The counter-store conformance suite: the in-process store, Redis over RESP and Redis over the
//! Upstash REST protocol must behave the same, including under concurrency.

mod common;

use std::sync::Arc;
use std::time::Duration;

use feen_core::ports::{Adjustment, Admission, Counter, Guard, Kv};
use feen_native::kv_memory::MemoryKv;
use feen_native::kv_redis::RedisKv;

fn counter(key: &str, limit: u64, cost: u64) -> Counter {
    Counter {
        key: key.into(),
        limit,
        cost,
        ttl_ms: 60_000,
        seed: 0,
    }
}

async fn admit_bumps_every_counter_or_none(kv: Arc<dyn Kv>) {
    let a = counter("ratelimit:rpm:a", 3, 1);
    let b = counter("ratelimit:rpd:a", 2, 1);
    let both = [a.clone(), b.clone()];
    assert_eq!(
        kv.admit(None, &both).await.expect("admit"),
        Admission::Admitted { values: vec![1, 1] }
    );
    assert_eq!(
        kv.admit(None, &both).await.expect("admit"),
        Admission::Admitted { values: vec![2, 2] }
    );
    // The second counter is full: nothing moves, and the refusal names it.
    assert_eq!(
        kv.admit(None, &both).await.expect("admit"),
        Admission::Refused { index: 1, value: 2 }
    );
    assert_eq!(
        kv.admit(None, std::slice::from_ref(&a))
            .await
            .expect("admit"),
        Admission::Admitted { values: vec![3] }
    );
    assert_eq!(
        kv.admit(None, &[a]).await.expect("admit"),
        Admission::Refused { index: 0, value: 3 }
    );
    assert_eq!(
        kv.admit(None, &[]).await.expect("admit"),
        Admission::Admitted { values: vec![] }
    );
}

async fn costs_larger_than_one_count_fully(kv: Arc<dyn Kv>) {
    let c = counter("ratelimit:tpm:x", 100, 60);
    assert_eq!(
        kv.admit(None, std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Admitted { values: vec![60] }
    );
    assert_eq!(
        kv.admit(None, std::slice::from_ref(&c))
            .await
            .expect("admit"),
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
        kv.admit(None, &[c]).await.expect("admit"),
        Admission::Admitted { values: vec![90] }
    );
}

async fn counters_expire_with_their_window(kv: Arc<dyn Kv>) {
    let c = Counter {
        key: "ratelimit:rpm:short".into(),
        limit: 1,
        cost: 1,
        ttl_ms: 150,
        seed: 0,
    };
    assert!(matches!(
        kv.admit(None, std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        kv.admit(None, std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Refused { .. }
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        kv.admit(None, &[c]).await.expect("admit"),
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

async fn many_values_are_read_at_once_in_order(kv: Arc<dyn Kv>) {
    assert_eq!(
        kv.get_many(&[]).await.expect("get_many"),
        Vec::<Option<String>>::new()
    );
    kv.set("cache:share:m1", "one", 60_000).await.expect("set");
    kv.add("ratelimit:m2", 7, 60_000).await.expect("add");
    let keys = [
        "ratelimit:m2".to_owned(),
        "cache:share:absent".to_owned(),
        "cache:share:m1".to_owned(),
    ];
    assert_eq!(
        kv.get_many(&keys).await.expect("get_many"),
        vec![Some("7".to_owned()), None, Some("one".to_owned())]
    );
}

async fn concurrent_admits_never_exceed_the_limit(kv: Arc<dyn Kv>) {
    let limit = 50;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                kv.admit(None, &[counter("ratelimit:rpm:busy", limit, 1)])
                    .await
            })
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

async fn a_guard_must_hold_for_anything_to_move(kv: Arc<dyn Kv>) {
    kv.set("cache:share:g", "v1", 60_000).await.expect("set");
    let c = counter("ratelimit:rpm:guarded", 5, 1);
    let good = Guard {
        key: "cache:share:g",
        value: "v1",
    };
    let stale = Guard {
        key: "cache:share:g",
        value: "v0",
    };
    let missing = Guard {
        key: "cache:share:none",
        value: "v1",
    };
    assert_eq!(
        kv.admit(Some(good), std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Admitted { values: vec![1] }
    );
    assert_eq!(
        kv.admit(Some(stale), std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Stale
    );
    assert_eq!(
        kv.admit(Some(missing), std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Stale
    );
    assert_eq!(
        kv.admit(Some(good), &[]).await.expect("admit"),
        Admission::Admitted { values: vec![] }
    );
    kv.set("cache:share:g", "-", 60_000)
        .await
        .expect("tombstone");
    assert_eq!(
        kv.admit(Some(good), std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Stale
    );
    assert_eq!(
        kv.admit(None, &[c]).await.expect("admit"),
        Admission::Admitted { values: vec![2] },
        "nothing moved while stale"
    );
}

async fn lifetime_counters_start_from_their_seed(kv: Arc<dyn Kv>) {
    let uses = Counter {
        key: "ratelimit:uses:s".into(),
        limit: 10,
        cost: 1,
        ttl_ms: 60_000,
        seed: 8,
    };
    assert_eq!(
        kv.admit(None, std::slice::from_ref(&uses))
            .await
            .expect("admit"),
        Admission::Admitted { values: vec![9] }
    );
    // Once the key exists, the seed is ignored.
    let reseeded = Counter {
        seed: 0,
        ..uses.clone()
    };
    assert_eq!(
        kv.admit(None, std::slice::from_ref(&reseeded))
            .await
            .expect("admit"),
        Admission::Admitted { values: vec![10] }
    );
    assert_eq!(
        kv.admit(None, &[uses]).await.expect("admit"),
        Admission::Refused {
            index: 0,
            value: 10
        }
    );
    let full = Counter {
        key: "ratelimit:uses:t".into(),
        limit: 3,
        cost: 1,
        ttl_ms: 60_000,
        seed: 3,
    };
    assert_eq!(
        kv.admit(None, &[full]).await.expect("admit"),
        Admission::Refused { index: 0, value: 3 }
    );
}

async fn settlements_correct_counters_in_one_call(kv: Arc<dyn Kv>) {
    let tokens = counter("ratelimit:tpm:settle", 1000, 600);
    let budget = counter("ratelimit:budget-day:settle", 1000, 500);
    assert!(matches!(
        kv.admit(None, &[tokens.clone(), budget.clone()])
            .await
            .expect("admit"),
        Admission::Admitted { .. }
    ));
    kv.settle(&[
        Adjustment {
            key: tokens.key.clone(),
            delta: -550,
            ttl_ms: 60_000,
        },
        Adjustment {
            key: budget.key.clone(),
            delta: 100,
            ttl_ms: 60_000,
        },
    ])
    .await
    .expect("settle");
    let next = counter("ratelimit:tpm:settle", 1000, 900);
    assert_eq!(
        kv.admit(None, &[next]).await.expect("admit"),
        Admission::Admitted { values: vec![950] }
    );
    assert_eq!(
        kv.admit(None, &[budget]).await.expect("admit"),
        Admission::Refused {
            index: 0,
            value: 600
        }
    );
    kv.settle(&[]).await.expect("nothing to settle");
}

async fn lists_are_queues_read_and_trimmed_from_the_front(kv: Arc<dyn Kv>) {
    assert_eq!(
        kv.list_front("queue:q", 10).await.expect("empty"),
        Vec::<String>::new()
    );
    kv.list_drop_front("queue:q", 5)
        .await
        .expect("trim nothing");
    for (i, value) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(
            kv.list_push("queue:q", value).await.expect("push"),
            i as u64 + 1
        );
    }
    assert_eq!(
        kv.list_front("queue:q", 2).await.expect("front"),
        ["a", "b"]
    );
    assert_eq!(
        kv.list_front("queue:q", 0).await.expect("none"),
        Vec::<String>::new()
    );
    kv.list_drop_front("queue:q", 2).await.expect("trim");
    assert_eq!(kv.list_front("queue:q", 10).await.expect("rest"), ["c"]);
    kv.list_push("queue:q", "d").await.expect("push");
    kv.list_drop_front("queue:q", 10).await.expect("trim all");
    assert_eq!(
        kv.list_front("queue:q", 10).await.expect("empty"),
        Vec::<String>::new()
    );
    assert_eq!(kv.list_push("queue:q", "e").await.expect("push"), 1);
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

/// Redis through the Upstash REST protocol: Feen's REST client, the stand-in, the real Redis.
async fn upstash() -> Arc<dyn Kv> {
    let token = common::unique("token");
    let config = feen_standins::upstash::Config {
        token: token.clone(),
        readonly_token: None,
    };
    let addr = feen_standins::upstash::spawn("127.0.0.1:0", &common::redis_url(), config)
        .await
        .expect("stand-in");
    let http = Arc::new(feen_native::outbound::ReqwestHttp::new(true).expect("http client"));
    let prefix = format!("{}:", common::unique("rest"));
    Arc::new(
        feen_upstash::UpstashKv::new(http, &format!("http://{addr}"), &token, &prefix)
            .expect("client"),
    )
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::memory().await).await })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::redis().await).await })*
        }
        mod upstash_rest {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::upstash().await).await })*
        }
    };
}

on_every_backend!(
    admit_bumps_every_counter_or_none,
    costs_larger_than_one_count_fully,
    counters_expire_with_their_window,
    cache_entries_set_get_and_delete,
    many_values_are_read_at_once_in_order,
    concurrent_admits_never_exceed_the_limit,
    a_guard_must_hold_for_anything_to_move,
    lifetime_counters_start_from_their_seed,
    settlements_correct_counters_in_one_call,
    lists_are_queues_read_and_trimmed_from_the_front,
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
        a.admit(None, std::slice::from_ref(&c))
            .await
            .expect("admit"),
        Admission::Admitted { .. }
    ));
    assert!(matches!(
        b.admit(None, &[c]).await.expect("admit"),
        Admission::Admitted { .. }
    ));
}

#[tokio::test]
async fn a_wrong_upstash_token_is_an_error_not_a_pass() {
    let config = feen_standins::upstash::Config {
        token: "right".into(),
        readonly_token: None,
    };
    let addr = feen_standins::upstash::spawn("127.0.0.1:0", &common::redis_url(), config)
        .await
        .expect("stand-in");
    let http = Arc::new(feen_native::outbound::ReqwestHttp::new(true).expect("http client"));
    let kv = feen_upstash::UpstashKv::new(http, &format!("http://{addr}"), "wrong", "x:")
        .expect("client");
    let err = kv
        .admit(None, &[counter("ratelimit:rpm:x", 1, 1)])
        .await
        .expect_err("refused");
    assert!(err.0.contains("401"), "{err}");
}
