//! The repository suite: every repository function against the real PostgreSQL (directly, and
//! over SQL over HTTP through the stand-in) and SQLite, the same assertions on all three.

mod common;

use std::sync::Arc;

use feen_core::authz::Owner;
use feen_core::authz::Role;
use feen_core::crypto::keyring::{KeyRing, SealedSecret};
use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{InviteId, KeyId, PatId, RequestId, SessionId, ShareId, TeamId, UserId};
use feen_core::limits::{Budget, Period, Policy, Recent, Used};
use feen_core::ports::{Db, DbError};
use feen_core::providers::CustomAuth;
use feen_core::secret::SecretString;
use feen_core::usage::{Outcome, UsageEvent};
use feen_store::keys::ApiKey;
use feen_store::sessions::Session;
use feen_store::shares::{HashScope, Share};
use feen_store::tokens::Pat;
use feen_store::{keys, sessions, shares, teams, tokens, usage, users};

const NOW: i64 = 1_800_000_000_000;

fn rand10(n: u8) -> [u8; 10] {
    [n; 10]
}

async fn user(db: &dyn Db, n: u8) -> UserId {
    let user = users::User {
        id: UserId::new(NOW, rand10(n)),
        email: format!("user{n}@example.com"),
        name: format!("User {n}"),
        password_hash: "$argon2id$stub".into(),
        created_at: NOW,
    };
    users::insert(db, &user).await.expect("insert user");
    user.id
}

/// A user as the owner of their own resources.
fn of(user: &UserId) -> Owner {
    Owner::User(user.clone())
}

fn ring() -> KeyRing {
    KeyRing::from_single([7; 32])
}

async fn key(db: &dyn Db, owner: &UserId, n: u8) -> (KeyId, SealedSecret) {
    key_of(db, &of(owner), owner, n).await
}

async fn key_of(db: &dyn Db, owner: &Owner, by: &UserId, n: u8) -> (KeyId, SealedSecret) {
    let key = ApiKey {
        id: KeyId::new(NOW, rand10(n)),
        owner: owner.clone(),
        created_by: by.clone(),
        name: format!("key {n}"),
        provider: "openai".into(),
        base_url: None,
        custom_auth: Some(CustomAuth {
            header: "X-Token".into(),
            template: "Token {key}".into(),
        }),
        hint: "sk-...abcd".into(),
        created_at: NOW,
        updated_at: NOW,
    };
    let sealed = ring().seal(
        &SecretString::new(format!("sk-secret-{n}")),
        &key.destination(),
        [n; 12],
    );
    keys::insert(db, &key, &sealed).await.expect("insert key");
    (key.id, sealed)
}

async fn share(db: &dyn Db, owner: &UserId, key: &KeyId, n: u8) -> (ShareId, token::TokenHash) {
    share_of(db, &of(owner), owner, key, n).await
}

async fn share_of(
    db: &dyn Db,
    owner: &Owner,
    by: &UserId,
    key: &KeyId,
    n: u8,
) -> (ShareId, token::TokenHash) {
    let (_, hash) = token::issue(TokenKind::Share, [n; 32]);
    let share = Share {
        id: ShareId::new(NOW, rand10(n)),
        owner: owner.clone(),
        created_by: by.clone(),
        key: key.clone(),
        name: format!("share {n}"),
        token_hint: "feen_abcd...".into(),
        policy: Policy {
            rate_limit: Some(5),
            allowed_models: vec!["gpt-*".into()],
            ..Policy::default()
        },
        created_at: NOW,
        updated_at: NOW,
        revoked_at: None,
    };
    shares::insert(db, &share, &hash)
        .await
        .expect("insert share");
    (share.id, hash)
}

async fn users_are_unique_by_email(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let id = user(db, 1).await;
    let found = users::by_email(db, "user1@example.com")
        .await
        .expect("query")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.name, "User 1");
    assert_eq!(
        users::by_id(db, &id).await.expect("query").map(|u| u.email),
        Some("user1@example.com".into())
    );
    assert!(
        users::by_email(db, "nobody@example.com")
            .await
            .expect("query")
            .is_none()
    );
    let twin = users::User {
        id: UserId::new(NOW, rand10(2)),
        ..found
    };
    assert!(matches!(
        users::insert(db, &twin).await,
        Err(DbError::UniqueViolation)
    ));
}

async fn keys_belong_to_their_owner(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob) = (user(db, 1).await, user(db, 2).await);
    let (k, _) = key(db, &ann, 1).await;
    assert_eq!(keys::list(db, &of(&ann)).await.expect("list").len(), 1);
    assert!(keys::list(db, &of(&bob)).await.expect("list").is_empty());
    assert!(keys::get(db, &of(&bob), &k).await.expect("get").is_none());
    assert!(
        !keys::rename(db, &of(&bob), &k, "stolen", NOW)
            .await
            .expect("rename")
    );
    assert!(
        keys::rename(db, &of(&ann), &k, "renamed", NOW + 1)
            .await
            .expect("rename")
    );
    let got = keys::get(db, &of(&ann), &k)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        (got.name.as_str(), got.updated_at, got.base_url.clone()),
        ("renamed", NOW + 1, None)
    );
    assert_eq!(
        got.custom_auth.as_ref().map(|c| c.template.clone()),
        Some("Token {key}".into())
    );
    let sealed = ring().seal(
        &SecretString::new("sk-new".into()),
        &got.destination(),
        [9; 12],
    );
    assert!(
        !keys::rotate(db, &of(&bob), &k, &sealed, "...new", NOW)
            .await
            .expect("rotate")
    );
    assert!(
        keys::rotate(db, &of(&ann), &k, &sealed, "...new", NOW + 2)
            .await
            .expect("rotate")
    );
    assert!(!keys::delete(db, &of(&bob), &k).await.expect("delete"));
    assert!(keys::delete(db, &of(&ann), &k).await.expect("delete"));
    assert!(keys::get(db, &of(&ann), &k).await.expect("get").is_none());
}

async fn shares_resolve_for_the_proxy_until_revoked(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob) = (user(db, 1).await, user(db, 2).await);
    let (k, sealed) = key(db, &ann, 1).await;
    let (s, hash) = share(db, &ann, &k, 1).await;
    let target = shares::proxy_target(db, &hash, 0)
        .await
        .expect("query")
        .expect("live share");
    assert_eq!(target.share, s);
    assert_eq!(target.sealed(), sealed);
    assert_eq!(target.policy.rate_limit, Some(5));
    assert_eq!(target.policy.daily_limit, None);
    assert_eq!(target.policy.allowed_models, vec!["gpt-*".to_owned()]);
    assert_eq!(
        ring()
            .open(&target.sealed(), &target.destination())
            .map(|s| s.expose().to_owned())
            .ok(),
        Some("sk-secret-1".into())
    );

    let mut updated = shares::get(db, &of(&ann), &s)
        .await
        .expect("get")
        .expect("found");
    // Every limit a share can have survives the round trip.
    updated.policy = Policy {
        rate_limit: None,
        daily_limit: Some(100),
        tokens_per_minute: Some(10_000),
        tokens_per_day: Some(1_000_000),
        budget: Some(Budget {
            usd_micros: 2_500_000,
            period: Period::Week,
        }),
        max_uses: Some(42),
        reserve_tokens: Some(256),
        expires_at_ms: Some(NOW + 5),
        allowed_models: vec![],
        allowed_endpoints: vec!["/v1/chat/*".into()],
        allowed_ips: vec![
            "10.0.0.0/8".parse().expect("cidr"),
            "2001:db8::/32".parse().expect("cidr"),
        ],
    };
    let mut stolen = updated.clone();
    stolen.owner = of(&bob);
    assert!(!shares::update(db, &stolen, NOW).await.expect("update"));
    assert!(shares::update(db, &updated, NOW + 3).await.expect("update"));
    let target = shares::proxy_target(db, &hash, 0)
        .await
        .expect("query")
        .expect("live");
    assert_eq!(target.policy, updated.policy);

    assert_eq!(
        shares::token_hashes(db, &of(&ann), HashScope::Key(&k))
            .await
            .expect("hashes"),
        vec![hash.clone()]
    );
    assert!(
        shares::token_hashes(db, &of(&bob), HashScope::Share(&s))
            .await
            .expect("hashes")
            .is_empty()
    );

    let (_, new_hash) = token::issue(TokenKind::Share, [77; 32]);
    assert!(
        shares::replace_token(db, &of(&ann), &s, &new_hash, "feen_new...", NOW + 4)
            .await
            .expect("replace")
    );
    assert!(
        shares::proxy_target(db, &hash, 0)
            .await
            .expect("query")
            .is_none()
    );
    assert!(
        shares::proxy_target(db, &new_hash, 0)
            .await
            .expect("query")
            .is_some()
    );

    assert!(
        !shares::revoke(db, &of(&bob), &s, NOW)
            .await
            .expect("revoke")
    );
    assert!(
        shares::revoke(db, &of(&ann), &s, NOW + 5)
            .await
            .expect("revoke")
    );
    assert!(
        !shares::revoke(db, &of(&ann), &s, NOW + 6)
            .await
            .expect("second revoke is a no-op")
    );
    assert!(
        shares::proxy_target(db, &new_hash, 0)
            .await
            .expect("query")
            .is_none()
    );
    let revoked = shares::get(db, &of(&ann), &s)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    assert!(
        !shares::update(db, &revoked, NOW)
            .await
            .expect("revoked shares cannot change")
    );
}

async fn deleting_a_key_deletes_its_shares(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let ann = user(db, 1).await;
    let (k, _) = key(db, &ann, 1).await;
    let (_, hash) = share(db, &ann, &k, 1).await;
    assert!(keys::delete(db, &of(&ann), &k).await.expect("delete"));
    assert!(shares::list(db, &of(&ann)).await.expect("list").is_empty());
    assert!(
        shares::proxy_target(db, &hash, 0)
            .await
            .expect("query")
            .is_none()
    );
}

async fn refresh_tokens_rotate_once(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let ann = user(db, 1).await;
    let family = SessionId::new(NOW, rand10(1));
    let (_, hash) = token::issue(TokenKind::Refresh, [1; 32]);
    let session = Session {
        id: family.clone(),
        family: family.clone(),
        user: ann,
        expires_at: NOW + 1000,
        rotated_at: None,
        revoked_at: None,
    };
    sessions::insert(db, &session, &hash, NOW)
        .await
        .expect("insert");
    assert_eq!(
        sessions::by_token(db, &hash).await.expect("query"),
        Some(session.clone())
    );
    assert!(
        sessions::mark_rotated(db, &session.id, NOW + 1)
            .await
            .expect("rotate")
    );
    assert!(
        !sessions::mark_rotated(db, &session.id, NOW + 2)
            .await
            .expect("second rotation loses")
    );
    let next = Session {
        id: SessionId::new(NOW, rand10(2)),
        ..session.clone()
    };
    let (_, next_hash) = token::issue(TokenKind::Refresh, [2; 32]);
    sessions::insert(db, &next, &next_hash, NOW + 1)
        .await
        .expect("insert next");
    sessions::revoke_family(db, &family, NOW + 3)
        .await
        .expect("revoke");
    for h in [&hash, &next_hash] {
        assert_eq!(
            sessions::by_token(db, h)
                .await
                .expect("query")
                .and_then(|s| s.revoked_at),
            Some(NOW + 3)
        );
    }
    assert!(
        !sessions::mark_rotated(db, &next.id, NOW + 4)
            .await
            .expect("revoked tokens do not rotate")
    );
}

async fn personal_access_tokens_expire_and_revoke(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob) = (user(db, 1).await, user(db, 2).await);
    let (_, h1) = token::issue(TokenKind::Pat, [1; 32]);
    let (_, h2) = token::issue(TokenKind::Pat, [2; 32]);
    let forever = Pat {
        id: PatId::new(NOW, rand10(1)),
        user: ann.clone(),
        name: "cli".into(),
        created_at: NOW,
        expires_at: None,
    };
    let brief = Pat {
        id: PatId::new(NOW, rand10(2)),
        user: ann.clone(),
        name: "ci".into(),
        created_at: NOW,
        expires_at: Some(NOW + 10),
    };
    tokens::insert(db, &forever, &h1).await.expect("insert");
    tokens::insert(db, &brief, &h2).await.expect("insert");
    assert_eq!(tokens::list(db, &ann).await.expect("list").len(), 2);
    assert!(
        tokens::by_token(db, &h2, NOW + 5)
            .await
            .expect("query")
            .is_some()
    );
    assert!(
        tokens::by_token(db, &h2, NOW + 10)
            .await
            .expect("query")
            .is_none()
    );
    assert!(
        !tokens::revoke(db, &bob, &forever.id, NOW)
            .await
            .expect("revoke")
    );
    assert!(
        tokens::revoke(db, &ann, &forever.id, NOW)
            .await
            .expect("revoke")
    );
    assert!(
        tokens::by_token(db, &h1, NOW)
            .await
            .expect("query")
            .is_none()
    );
    assert_eq!(tokens::list(db, &ann).await.expect("list"), vec![brief]);
}

fn event(n: u8, share: &ShareId, key: &KeyId, user: &UserId, tokens: (u64, u64)) -> UsageEvent {
    UsageEvent {
        request_id: RequestId::new(NOW + i64::from(n), rand10(n)),
        share_id: share.clone(),
        key_id: key.clone(),
        user_id: user.clone(),
        team_id: None,
        provider: "openai".into(),
        model: n.is_multiple_of(2).then(|| "gpt-4o".to_owned()),
        endpoint: "/v1/chat/completions".into(),
        status: 200,
        streamed: !n.is_multiple_of(2),
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cost_micros: n.is_multiple_of(2).then_some(7),
        started_at_ms: NOW + i64::from(n),
        duration_ms: 12,
        outcome: if n == 3 {
            Outcome::ClientDisconnected
        } else {
            Outcome::Completed
        },
    }
}

async fn usage_events_are_written_once(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob) = (user(db, 1).await, user(db, 2).await);
    let (k, _) = key(db, &ann, 1).await;
    let (s, _) = share(db, &ann, &k, 1).await;
    let events: Vec<_> = (1..=120).map(|n| event(n, &s, &k, &ann, (10, 3))).collect();
    assert_eq!(usage::insert_batch(db, &events).await.expect("insert"), 120);
    assert_eq!(
        usage::insert_batch(db, &events[..60])
            .await
            .expect("replay"),
        0
    );
    let totals = usage::share_totals(db, &of(&ann), &s, 0)
        .await
        .expect("totals");
    assert_eq!(
        totals,
        usage::Totals {
            requests: 120,
            input_tokens: 1200,
            output_tokens: 360,
            cost_micros: 60 * 7,
        }
    );
    assert_eq!(
        usage::share_totals(db, &of(&bob), &s, 0)
            .await
            .expect("totals"),
        usage::Totals::default()
    );
    let recent = usage::recent(db, &of(&ann), &s, 5).await.expect("recent");
    assert_eq!(recent.len(), 5);
    assert_eq!(recent[0], events[119]);
    assert_eq!(
        shares::used(db, &s).await.expect("used"),
        Used {
            uses: 120,
            spent: 60 * 7,
            recent: Default::default(),
        }
    );
    // What the windows current at a moment hold, for the counters a restart forgot.
    let policy = Policy {
        rate_limit: Some(1000),
        daily_limit: Some(1000),
        budget: Some(Budget {
            usd_micros: 1_000_000,
            period: Period::Day,
        }),
        ..Policy::default()
    };
    let now = shares::recent(db, &s, &policy, NOW + 200)
        .await
        .expect("recent");
    assert_eq!(
        now,
        Recent {
            at_ms: NOW + 200,
            minute_requests: 120,
            minute_tokens: 120 * 13,
            day_requests: 120,
            day_tokens: 120 * 13,
            budget_spent: 60 * 7,
        }
    );
    let next_minute = shares::recent(db, &s, &policy, NOW + 61_000)
        .await
        .expect("recent");
    assert_eq!(
        (next_minute.minute_requests, next_minute.day_requests),
        (0, 120)
    );
    let no_budget = Policy {
        budget: None,
        ..policy
    };
    let recent_without = shares::recent(db, &s, &no_budget, NOW + 200)
        .await
        .expect("recent");
    assert_eq!(recent_without.budget_spent, 0);
    let third = usage::recent(db, &of(&ann), &s, 200)
        .await
        .expect("recent")
        .into_iter()
        .find(|e| e.request_id == events[2].request_id);
    assert_eq!(third, Some(events[2].clone()));
}

/// The verdict on Ann's chain, places 1 to 9.
async fn chain_of_ann(db: &dyn Db) -> Result<(), feen_core::audit::Break> {
    let rows = feen_store::audit::range(db, "usr_ann", 1, 9)
        .await
        .expect("range");
    let stored: Vec<_> = rows.iter().map(|r| r.stored()).collect();
    feen_core::audit::verify(&stored)
}

async fn the_audit_chain_links_every_row_and_shows_tampering(db: Arc<dyn Db>) {
    use feen_core::audit::{self, Action};
    use feen_core::ids::AuditId;
    use feen_store::audit::{Filter, NewEntry};
    let db = db.as_ref();
    let details = serde_json::json!({ "name": "prod key" });
    let append = |n: u8, owner: &'static str, action: Action, at: i64| {
        let id = AuditId::new(NOW + at, rand10(n));
        let details = details.clone();
        async move {
            feen_store::audit::append(
                db,
                &NewEntry {
                    id: &id,
                    owner,
                    actor: Some(owner),
                    action,
                    resource: Some(("key", "key_1")),
                    at_ms: NOW + at,
                    client_ip: Some("203.0.113.9"),
                    user_agent: Some("curl/8"),
                    details: &details,
                },
            )
            .await
            .expect("append")
        }
    };
    append(1, "usr_ann", Action::KeyAdded, 1).await;
    append(2, "usr_bob", Action::Login, 2).await;
    // Concurrent appends to one chain each get a place of their own.
    let entries = futures_util::future::join_all(
        (3..11u8).map(|n| append(n, "usr_ann", Action::KeyRotated, i64::from(n))),
    )
    .await;
    let mut seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=9).collect::<Vec<_>>());
    assert_eq!(
        feen_store::audit::head(db, "usr_ann").await.expect("head"),
        9
    );
    assert_eq!(
        feen_store::audit::head(db, "usr_bob").await.expect("head"),
        1
    );

    assert_eq!(chain_of_ann(db).await, Ok(()));
    let rows = feen_store::audit::range(db, "usr_ann", 1, 9)
        .await
        .expect("range");
    assert_eq!(rows[0].prev_hash, audit::GENESIS);

    let page = feen_store::audit::list(db, "usr_ann", &Filter::default(), 3)
        .await
        .expect("list");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [9, 8, 7]);
    let next = Filter {
        before_seq: Some(7),
        ..Filter::default()
    };
    let page = feen_store::audit::list(db, "usr_ann", &next, 100)
        .await
        .expect("list");
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1]
    );
    let added = Filter {
        action: Some("key.added".into()),
        ..Filter::default()
    };
    let only = feen_store::audit::list(db, "usr_ann", &added, 100)
        .await
        .expect("list");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].user_agent.as_deref(), Some("curl/8"));
    let window = Filter {
        from_ms: Some(NOW + 4),
        to_ms: Some(NOW + 6),
        ..Filter::default()
    };
    assert_eq!(
        feen_store::audit::list(db, "usr_ann", &window, 100)
            .await
            .expect("list")
            .len(),
        2
    );
    assert!(
        feen_store::audit::list(db, "usr_carl", &Filter::default(), 100)
            .await
            .expect("list")
            .is_empty()
    );

    // Someone with database access edits a row, then deletes one.
    db.execute(
        "UPDATE audit_log SET action = 'key.added' WHERE owner_id = 'usr_ann' AND seq = 4",
        &[],
    )
    .await
    .expect("tamper");
    assert_eq!(
        chain_of_ann(db).await,
        Err(audit::Break {
            seq: 4,
            reason: "hash"
        })
    );
    db.execute(
        "DELETE FROM audit_log WHERE owner_id = 'usr_ann' AND seq = 4",
        &[],
    )
    .await
    .expect("delete");
    assert_eq!(
        chain_of_ann(db).await,
        Err(audit::Break {
            seq: 4,
            reason: "gap"
        })
    );
}

async fn team(db: &dyn Db, owner: &UserId, n: u8) -> TeamId {
    let team = teams::Team {
        id: TeamId::new(NOW, rand10(n)),
        name: format!("team {n}"),
        owner: owner.clone(),
        created_at: NOW,
        updated_at: NOW,
    };
    teams::insert(db, &team).await.expect("insert team");
    team.id
}

async fn teams_have_one_owner_and_roles(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob, cat) = (user(db, 1).await, user(db, 2).await, user(db, 3).await);
    let t = team(db, &ann, 1).await;
    let role = |u: &UserId| {
        let u = u.clone();
        let t = t.clone();
        async move { teams::role_of(db, &t, &u).await.expect("role") }
    };
    assert_eq!(role(&ann).await, Some(Role::Owner));
    assert_eq!(role(&bob).await, None);
    assert!(
        teams::add_member(db, &t, &bob, Role::Viewer, NOW)
            .await
            .expect("add")
    );
    assert!(
        !teams::add_member(db, &t, &bob, Role::Admin, NOW)
            .await
            .expect("again")
    );
    assert_eq!(role(&bob).await, Some(Role::Viewer));
    assert!(
        teams::set_role(db, &t, &bob, Role::Viewer, Role::Member)
            .await
            .expect("set")
    );
    assert_eq!(role(&bob).await, Some(Role::Member));
    // A change decided on a role that is no longer the member's changes nothing.
    assert!(
        !teams::set_role(db, &t, &bob, Role::Viewer, Role::Admin)
            .await
            .expect("stale")
    );
    assert!(
        !teams::remove_member(db, &t, &bob, Role::Viewer)
            .await
            .expect("stale")
    );
    assert_eq!(role(&bob).await, Some(Role::Member));
    // The owner's role is ownership: it cannot be set, and the owner cannot be removed.
    for stored in [Role::Admin, Role::Owner] {
        assert!(
            !teams::set_role(db, &t, &ann, stored, Role::Viewer)
                .await
                .expect("set")
        );
        assert!(
            !teams::remove_member(db, &t, &ann, stored)
                .await
                .expect("remove")
        );
    }
    assert_eq!(role(&ann).await, Some(Role::Owner));
    let listed: Vec<_> = teams::of_user(db, &bob).await.expect("of user");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].0.id.clone(), listed[0].1),
        (t.clone(), Role::Member)
    );
    let members = teams::members(db, &t).await.expect("members");
    let roles: Vec<_> = members.iter().map(|m| (m.user.clone(), m.role)).collect();
    assert_eq!(
        roles,
        vec![(ann.clone(), Role::Owner), (bob.clone(), Role::Member)]
    );

    // A transfer is a compare-and-swap: to a member only, from the current owner only.
    assert!(
        !teams::transfer(db, &t, &ann, &cat, NOW)
            .await
            .expect("to outsider")
    );
    assert!(
        !teams::transfer(db, &t, &bob, &ann, NOW)
            .await
            .expect("not owner")
    );
    assert!(
        teams::transfer(db, &t, &ann, &bob, NOW + 1)
            .await
            .expect("transfer")
    );
    assert!(
        !teams::transfer(db, &t, &ann, &bob, NOW + 2)
            .await
            .expect("twice")
    );
    assert_eq!(role(&bob).await, Some(Role::Owner));
    assert_eq!(role(&ann).await, Some(Role::Admin));
    let got = teams::get(db, &t).await.expect("get").expect("team");
    assert_eq!((got.owner, got.updated_at), (bob.clone(), NOW + 1));
    assert!(
        !teams::remove_member(db, &t, &ann, Role::Member)
            .await
            .expect("stale")
    );
    assert!(
        teams::remove_member(db, &t, &ann, Role::Admin)
            .await
            .expect("remove")
    );
    assert_eq!(role(&ann).await, None);

    // Deleting the team deletes its keys and shares with it, and nothing of anyone else's.
    let owner = Owner::Team(t.clone());
    let (tk, _) = key_of(db, &owner, &bob, 5).await;
    let (_, team_hash) = share_of(db, &owner, &bob, &tk, 5).await;
    let (own_key, _) = key(db, &bob, 6).await;
    assert_eq!(keys::list(db, &owner).await.expect("list").len(), 1);
    assert!(
        keys::list(db, &of(&bob))
            .await
            .expect("list")
            .iter()
            .all(|k| k.id == own_key)
    );
    let visible: Vec<_> = keys::visible(db, &bob)
        .await
        .expect("visible")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(visible, vec![own_key.clone(), tk.clone()]);
    assert!(keys::visible(db, &ann).await.expect("visible").is_empty());
    assert_eq!(
        keys::owner_of(db, &tk).await.expect("owner"),
        Some(owner.clone())
    );
    assert!(keys::get(db, &of(&bob), &tk).await.expect("get").is_none());
    let target = shares::proxy_target(db, &team_hash, 0)
        .await
        .expect("target")
        .expect("live");
    assert_eq!((target.team, target.user), (Some(t.clone()), bob.clone()));
    assert_eq!(
        shares::token_hashes(db, &owner, HashScope::All)
            .await
            .expect("hashes"),
        vec![team_hash.clone()]
    );
    assert!(teams::delete(db, &t).await.expect("delete"));
    assert!(keys::owner_of(db, &tk).await.expect("owner").is_none());
    assert!(
        shares::proxy_target(db, &team_hash, 0)
            .await
            .expect("target")
            .is_none()
    );
    assert_eq!(keys::list(db, &of(&bob)).await.expect("list").len(), 1);
}

async fn invitations_are_accepted_once_before_they_expire(db: Arc<dyn Db>) {
    let db = db.as_ref();
    let (ann, bob) = (user(db, 1).await, user(db, 2).await);
    let t = team(db, &ann, 1).await;
    let invite = |n: u8, expires_at: i64| teams::Invite {
        id: InviteId::new(NOW, rand10(n)),
        team: t.clone(),
        email: "user2@example.com".into(),
        role: Role::Member,
        invited_by: ann.clone(),
        created_at: NOW,
        expires_at,
        accepted_at: None,
    };
    let (_, live_hash) = token::issue(TokenKind::Invite, [1; 32]);
    let (_, old_hash) = token::issue(TokenKind::Invite, [2; 32]);
    let live = invite(1, NOW + 1_000);
    teams::insert_invite(db, &live, &live_hash)
        .await
        .expect("insert");
    teams::insert_invite(db, &invite(2, NOW - 1), &old_hash)
        .await
        .expect("insert");
    assert_eq!(
        teams::pending_invites(db, &t, NOW).await.expect("pending"),
        vec![live.clone()]
    );
    assert!(
        teams::invite_by_token(db, &old_hash, NOW)
            .await
            .expect("by token")
            .is_none()
    );
    assert_eq!(
        teams::invite_by_token(db, &live_hash, NOW)
            .await
            .expect("by token"),
        Some(live.clone())
    );
    assert!(
        teams::consume_invite(db, &live.id, &bob, NOW)
            .await
            .expect("consume")
    );
    assert!(
        !teams::consume_invite(db, &live.id, &bob, NOW)
            .await
            .expect("twice")
    );
    assert!(
        teams::invite_by_token(db, &live_hash, NOW)
            .await
            .expect("by token")
            .is_none()
    );
    assert!(
        teams::pending_invites(db, &t, NOW)
            .await
            .expect("pending")
            .is_empty()
    );
    // Cancelling needs the right team, and a used invitation cannot be cancelled.
    let other = team(db, &bob, 2).await;
    let third = invite(3, NOW + 1_000);
    let (_, third_hash) = token::issue(TokenKind::Invite, [3; 32]);
    teams::insert_invite(db, &third, &third_hash)
        .await
        .expect("insert");
    assert!(
        !teams::cancel_invite(db, &other, &third.id)
            .await
            .expect("cancel")
    );
    assert!(
        !teams::cancel_invite(db, &t, &live.id)
            .await
            .expect("cancel used")
    );
    assert!(
        teams::cancel_invite(db, &t, &third.id)
            .await
            .expect("cancel")
    );
    // The cleanup removes what expired or was used before the cut-off, nothing else.
    let fourth = invite(4, NOW + 1_000);
    let (_, fourth_hash) = token::issue(TokenKind::Invite, [4; 32]);
    teams::insert_invite(db, &fourth, &fourth_hash)
        .await
        .expect("insert");
    assert_eq!(teams::purge_invites(db, NOW + 1).await.expect("purge"), 2);
    assert_eq!(
        teams::pending_invites(db, &t, NOW).await.expect("pending"),
        vec![fourth]
    );
}

async fn every_process_holds_the_same_key_ring(db: Arc<dyn Db>) {
    use feen_store::keyring::{KeyRingCheck, check};
    let db = db.as_ref();
    const K1: &str = "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K1_OTHER: &str = "1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    const K2: &str = "2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    const K2_OTHER: &str = "2:CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";
    let ring = |text: &str| KeyRing::parse(text).expect("ring");
    assert_eq!(check(db, &ring(K1), NOW).await, Ok(()));
    assert_eq!(check(db, &ring(K1), NOW + 1).await, Ok(()), "again");
    assert_eq!(
        check(db, &ring(K1_OTHER), NOW).await,
        Err(KeyRingCheck::Mismatch(1))
    );
    // A rotation adds a version; the old one must still be the same key.
    assert_eq!(check(db, &ring(&format!("{K1},{K2}")), NOW).await, Ok(()));
    assert_eq!(
        check(db, &ring(&format!("{K1},{K2_OTHER}")), NOW).await,
        Err(KeyRingCheck::Mismatch(2))
    );
    assert_eq!(
        check(db, &ring(&format!("{K1_OTHER},{K2}")), NOW).await,
        Err(KeyRingCheck::Mismatch(1))
    );
    // Retiring version 1 is fine; the message names the version, never the key.
    assert_eq!(check(db, &ring(K2), NOW).await, Ok(()));
    let message = KeyRingCheck::Mismatch(2).to_string();
    assert!(message.contains("FEEN_KEYRING version 2") && !message.contains("AgIC"));
}

macro_rules! on_every_database {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(crate::common::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(crate::common::postgres().await).await })*
        }
        mod postgres_over_http {
            $(#[tokio::test] async fn $name() { super::$name(crate::common::postgres_over_http().await).await })*
        }
    };
}

on_every_database!(
    users_are_unique_by_email,
    keys_belong_to_their_owner,
    shares_resolve_for_the_proxy_until_revoked,
    deleting_a_key_deletes_its_shares,
    refresh_tokens_rotate_once,
    personal_access_tokens_expire_and_revoke,
    usage_events_are_written_once,
    the_audit_chain_links_every_row_and_shows_tampering,
    teams_have_one_owner_and_roles,
    invitations_are_accepted_once_before_they_expire,
    every_process_holds_the_same_key_ring,
);
