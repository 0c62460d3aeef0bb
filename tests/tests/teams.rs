//! Teams end to end: invitations, roles, transfer, leave and delete as a user sees them; and the
//! authorisation matrix: every management endpoint, called by every role, on a resource of the
//! caller's team (allowed or forbidden as `feen_core::authz` says, and then it really worked) and
//! on resources of another user and another team (always 404, and nothing changed).

use std::time::Duration;

use feen_e2e::api::{Api, Reply, User};
use feen_e2e::feen::Feen;
use feen_e2e::mock::MockProvider;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "sk-team-secret-0123456789abcdef";

fn ok(reply: &Reply, what: &str) -> Value {
    assert!(
        reply.status.is_success(),
        "{what}: {} {}",
        reply.status,
        reply.text
    );
    reply.body.clone()
}

async fn create_team(api: &Api, owner: &User, name: &str) -> String {
    let reply = api
        .post("/api/teams", Some(&owner.token), json!({ "name": name }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.str("/role"), "owner");
    reply.str("/id")
}

async fn accept(api: &Api, user: &User, token: &str) -> Reply {
    let body = json!({ "token": token });
    api.post("/api/teams/invites/accept", Some(&user.token), body)
        .await
}

/// Invites `who` with `role` and has them accept; returns the invitation's id.
async fn join(api: &Api, admin: &User, team: &str, who: &User, role: &str) -> String {
    let path = format!("/api/teams/{team}/invites");
    let body = json!({ "email": who.email.to_uppercase(), "role": role });
    let invite = api.post(&path, Some(&admin.token), body).await;
    assert_eq!(invite.status, StatusCode::CREATED, "{}", invite.text);
    assert_eq!(
        invite.str("/email"),
        who.email,
        "addresses are compared lower-cased"
    );
    let token = invite.str("/token");
    assert!(token.starts_with("feeninv_"));
    let accepted = api
        .post(
            "/api/teams/invites/accept",
            Some(&who.token),
            json!({ "token": token }),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(accepted.str("/role"), role);
    invite.str("/id")
}

async fn team_key(api: &Api, user: &User, team: &str, base_url: &str) -> String {
    let body = json!({"name": "team key", "provider": "openai", "apiKey": SECRET, "baseUrl": base_url, "teamId": team});
    let reply = api.post("/api/keys", Some(&user.token), body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.str("/teamId"), team);
    reply.str("/id")
}

fn roles_of(team: &Value) -> Vec<(String, String)> {
    team["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let field = |f: &str| m[f].as_str().unwrap_or_default().to_owned();
                    (field("userId"), field("role"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The team's audit actions, newest first, once there are at least `n`.
async fn team_log(api: &Api, admin: &User, team: &str, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let reply = api
            .get(&format!("/api/audit?teamId={team}&limit=200"), &admin.token)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let actions: Vec<String> = reply.body["entries"]
            .as_array()
            .map(|es| {
                es.iter()
                    .filter_map(|e| e["action"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if actions.len() >= n {
            return actions;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the team's audit log never reached {n} rows");
}

#[tokio::test]
async fn a_team_from_invitation_to_deletion() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let ann = api.signup("team-ann").await;
    let bob = api.signup("team-bob").await;
    let cat = api.signup("team-cat").await;
    let eve = api.signup("team-eve").await;
    let team = create_team(&api, &ann, "Research").await;

    // An invitation is for one address, is used once, and expires.
    let path = format!("/api/teams/{team}/invites");
    let invite = api
        .post(
            &path,
            Some(&ann.token),
            json!({ "email": bob.email, "role": "member" }),
        )
        .await;
    assert_eq!(invite.status, StatusCode::CREATED, "{}", invite.text);
    let token = invite.str("/token");
    let pending = api.get(&path, &ann.token).await;
    assert_eq!(pending.body["invites"].as_array().map(Vec::len), Some(1));
    assert!(
        !pending.text.contains(&token),
        "a listed invitation shows no token"
    );
    let wrong = accept(&api, &eve, &token).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::FORBIDDEN, "invite_not_for_you")
    );
    assert_eq!(accept(&api, &bob, &token).await.status, StatusCode::OK);
    let again = accept(&api, &bob, &token).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
    let forged = accept(
        &api,
        &bob,
        "feeninv_0000000000000000000000000000000000000000000000000",
    )
    .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);
    let twice = api
        .post(&path, Some(&ann.token), json!({ "email": bob.email }))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.text);
    join(&api, &ann, &team, &cat, "viewer").await;

    let listed = api.get("/api/teams", &bob.token).await;
    assert_eq!(listed.body["teams"][0]["id"], team.as_str());
    assert_eq!(listed.body["teams"][0]["role"], "member");
    assert_eq!(
        api.get("/api/teams", &eve.token).await.body["teams"],
        json!([])
    );
    let read = api.get(&format!("/api/teams/{team}"), &cat.token).await;
    assert_eq!(
        roles_of(&read.body),
        vec![
            (ann.id.clone(), "owner".into()),
            (bob.id.clone(), "member".into()),
            (cat.id.clone(), "viewer".into())
        ]
    );

    // A member mints a share of a team key; the team's owner sees and revokes it.
    let key = team_key(&api, &ann, &team, &mock.base_url()).await;
    let (share, share_token) = api.mint(&bob, &key, json!({})).await;
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        api.chat(&share_token, chat.clone()).await.status,
        StatusCode::OK
    );
    let seen = api.get("/api/shared", &ann.token).await;
    assert!(
        seen.text.contains(&share),
        "the owner sees the member's team share"
    );
    assert_eq!(seen.body["shares"][0]["teamId"], team.as_str());
    assert_eq!(seen.body["shares"][0]["createdBy"], bob.id.as_str());
    let usage = api.wait_for_usage(&cat, &share, 1).await;
    assert_eq!(
        usage.body["totals"]["requests"], 1,
        "a viewer reads team usage"
    );

    // Roles change at once: the viewer cannot revoke, promoted to member they can.
    let revoke = api
        .delete(&format!("/api/shared/{share}"), &cat.token)
        .await;
    assert_eq!(
        (revoke.status, revoke.code()),
        (StatusCode::FORBIDDEN, "insufficient_role")
    );
    let member = format!("/api/teams/{team}/members/{}", cat.id);
    let promoted = api
        .patch(&member, &bob.token, json!({"role": "member"}))
        .await;
    assert_eq!(
        promoted.status,
        StatusCode::FORBIDDEN,
        "a member manages nobody"
    );
    ok(
        &api.patch(&member, &ann.token, json!({"role": "member"}))
            .await,
        "promote",
    );
    ok(
        &api.delete(&format!("/api/shared/{share}"), &cat.token)
            .await,
        "revoke",
    );
    assert_eq!(
        api.chat(&share_token, chat.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Removal is effective on the next request.
    let (_, second_token) = api.mint(&cat, &key, json!({})).await;
    ok(&api.delete(&member, &ann.token).await, "remove");
    assert_eq!(
        api.get(&format!("/api/keys/{key}"), &cat.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.chat(&second_token, chat.clone()).await.status,
        StatusCode::OK,
        "a removed member's share stays the team's"
    );

    // Ownership moves only by transfer, to a member; the former owner becomes an admin.
    let transfer = format!("/api/teams/{team}/transfer");
    let to_eve = api
        .post(&transfer, Some(&ann.token), json!({"userId": eve.id}))
        .await;
    assert_eq!(to_eve.status, StatusCode::NOT_FOUND, "{}", to_eve.text);
    let by_bob = api
        .post(&transfer, Some(&bob.token), json!({"userId": bob.id}))
        .await;
    assert_eq!(by_bob.status, StatusCode::FORBIDDEN);
    let owner_leaves = api
        .post(
            &format!("/api/teams/{team}/leave"),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(
        owner_leaves.status,
        StatusCode::FORBIDDEN,
        "{}",
        owner_leaves.text
    );
    let moved = api
        .post(&transfer, Some(&ann.token), json!({"userId": bob.id}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(
        roles_of(&moved.body),
        vec![
            (bob.id.clone(), "owner".into()),
            (ann.id.clone(), "admin".into())
        ]
    );
    let as_admin = api.delete(&format!("/api/teams/{team}"), &ann.token).await;
    assert_eq!(
        as_admin.status,
        StatusCode::FORBIDDEN,
        "only the owner deletes"
    );
    ok(
        &api.post(
            &format!("/api/teams/{team}/leave"),
            Some(&ann.token),
            json!({}),
        )
        .await,
        "leave",
    );
    assert_eq!(
        api.get(&format!("/api/teams/{team}"), &ann.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // The team's audit chain holds every step, readable by its admins, and verifies.
    let log = team_log(&api, &bob, &team, 13).await;
    let expected = [
        "team.member_left",
        "team.ownership_transferred",
        "team.member_removed",
        "share.minted",
        "share.revoked",
        "team.role_changed",
        "share.minted",
        "key.added",
        "team.member_joined",
        "team.member_invited",
        "team.member_joined",
        "team.member_invited",
        "team.created",
    ];
    assert_eq!(log, expected);
    let verify = api
        .get(&format!("/api/audit/verify?teamId={team}"), &bob.token)
        .await;
    assert_eq!(verify.body["valid"], true, "{}", verify.text);
    for text in [&log.join(","), &verify.text] {
        assert!(!text.contains(SECRET));
    }

    // Deleting the team deletes its keys and shares: the token is refused at once.
    ok(
        &api.delete(&format!("/api/teams/{team}"), &bob.token).await,
        "delete",
    );
    assert_eq!(
        api.chat(&second_token, chat).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get(&format!("/api/keys/{key}"), &bob.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/teams", &bob.token).await.body["teams"],
        json!([])
    );
}

/// Who acts in the matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Viewer,
    Member,
    Admin,
    Owner,
}

/// Whether a role may: `Y` allowed, `F` forbidden (by role, inside the team).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Y,
    F,
}
use Cell::{F, Y};

/// The least role an endpoint needs inside the team.
fn cell(needs: Role, role: Role) -> Cell {
    let rank = |r: Role| match r {
        Role::Viewer => 0,
        Role::Member => 1,
        Role::Admin => 2,
        Role::Owner => 3,
    };
    if rank(role) >= rank(needs) { Y } else { F }
}

/// Whose resources a call targets.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// The caller's own team.
    OwnTeam,
    /// Another user's personal resources.
    OtherUser,
    /// Another team's.
    OtherTeam,
}

/// The ids a call needs, for one target.
struct Ids {
    team: String,
    key: String,
    share: String,
    invite: String,
}

struct World {
    api: Api,
    owner: User,
    /// The caller's team, T; the other user, X, owns their key and share and the team U.
    t: String,
    x: User,
    x_ids: Ids,
    u_ids: Ids,
    base_url: String,
}

impl World {
    /// Fresh resources of T, made by its owner: destructive calls each get their own.
    async fn fresh_own(&self) -> Ids {
        let key = team_key(&self.api, &self.owner, &self.t, &self.base_url).await;
        let (share, _) = self.api.mint(&self.owner, &key, json!({})).await;
        let body = json!({"email": feen_e2e::feen::unique("invitee") + "@example.com"});
        let invite = self
            .api
            .post(
                &format!("/api/teams/{}/invites", self.t),
                Some(&self.owner.token),
                body,
            )
            .await
            .str("/id");
        Ids {
            team: self.t.clone(),
            key,
            share,
            invite,
        }
    }
}

/// Every management endpoint that acts on an owner's resources: method, path and body for a
/// set of ids, and the least team role it needs.
fn endpoints(ids: &Ids) -> Vec<(&'static str, Method, String, Option<Value>, Role)> {
    let (t, k, s, i) = (&ids.team, &ids.key, &ids.share, &ids.invite);
    let new_key = json!({"name": "k", "provider": "openai", "apiKey": "sk-new-0123456789", "baseUrl": "https://api.openai.com/v1", "teamId": t});
    vec![
        (
            "read key",
            Method::GET,
            format!("/api/keys/{k}"),
            None,
            Role::Viewer,
        ),
        (
            "rename key",
            Method::PATCH,
            format!("/api/keys/{k}"),
            Some(json!({"name": "renamed"})),
            Role::Admin,
        ),
        (
            "rotate key",
            Method::POST,
            format!("/api/keys/{k}/rotate"),
            Some(json!({"apiKey": "sk-rotated-0123456789"})),
            Role::Admin,
        ),
        (
            "delete key",
            Method::DELETE,
            format!("/api/keys/{k}"),
            None,
            Role::Admin,
        ),
        (
            "add key",
            Method::POST,
            "/api/keys".into(),
            Some(new_key),
            Role::Admin,
        ),
        (
            "read share",
            Method::GET,
            format!("/api/shared/{s}"),
            None,
            Role::Viewer,
        ),
        (
            "share usage",
            Method::GET,
            format!("/api/shared/{s}/usage"),
            None,
            Role::Viewer,
        ),
        (
            "update share",
            Method::PATCH,
            format!("/api/shared/{s}"),
            Some(json!({"name": "changed", "rateLimit": 5})),
            Role::Member,
        ),
        (
            "regenerate share",
            Method::POST,
            format!("/api/shared/{s}/regenerate"),
            Some(json!({})),
            Role::Member,
        ),
        (
            "revoke share",
            Method::DELETE,
            format!("/api/shared/{s}"),
            None,
            Role::Member,
        ),
        (
            "mint share",
            Method::POST,
            "/api/shared".into(),
            Some(json!({"apiKeyId": k, "name": "minted"})),
            Role::Member,
        ),
        (
            "audit log",
            Method::GET,
            format!("/api/audit?teamId={t}"),
            None,
            Role::Admin,
        ),
        (
            "audit verify",
            Method::GET,
            format!("/api/audit/verify?teamId={t}"),
            None,
            Role::Admin,
        ),
        (
            "read team",
            Method::GET,
            format!("/api/teams/{t}"),
            None,
            Role::Viewer,
        ),
        (
            "rename team",
            Method::PATCH,
            format!("/api/teams/{t}"),
            Some(json!({"name": "renamed"})),
            Role::Admin,
        ),
        (
            "list invites",
            Method::GET,
            format!("/api/teams/{t}/invites"),
            None,
            Role::Admin,
        ),
        (
            "invite",
            Method::POST,
            format!("/api/teams/{t}/invites"),
            Some(json!({"email": "new@example.com", "role": "viewer"})),
            Role::Admin,
        ),
        (
            "cancel invite",
            Method::DELETE,
            format!("/api/teams/{t}/invites/{i}"),
            None,
            Role::Admin,
        ),
    ]
}

async fn call(api: &Api, user: &User, method: &Method, path: &str, body: Option<Value>) -> Reply {
    api.call(method.clone(), path, Some(&user.token), body)
        .await
}

/// What another user's and another team's resources look like to their owner, to prove the
/// matrix changed nothing of them.
async fn foreign_state(w: &World) -> Vec<Value> {
    let mut out = Vec::new();
    for ids in [&w.x_ids, &w.u_ids] {
        for path in [
            format!("/api/keys/{}", ids.key),
            format!("/api/shared/{}", ids.share),
            format!("/api/teams/{}/invites", w.u_ids.team),
            format!("/api/teams/{}", w.u_ids.team),
        ] {
            out.push(w.api.get(&path, &w.x.token).await.body);
        }
    }
    out
}

#[tokio::test]
async fn every_role_meets_the_authorisation_matrix_and_no_idor() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let owner = api.signup("matrix-owner").await;
    let admin = api.signup("matrix-admin").await;
    let member = api.signup("matrix-member").await;
    let viewer = api.signup("matrix-viewer").await;
    let x = api.signup("matrix-x").await;
    let t = create_team(&api, &owner, "T").await;
    join(&api, &owner, &t, &admin, "admin").await;
    join(&api, &owner, &t, &member, "member").await;
    join(&api, &owner, &t, &viewer, "viewer").await;

    // X's personal key and share, and X's team U with a key, a share and an invitation.
    let x_key = api.add_key(&x, "openai", SECRET, &mock.base_url()).await;
    let (x_share, x_token) = api.mint(&x, &x_key, json!({})).await;
    let u = create_team(&api, &x, "U").await;
    let u_key = team_key(&api, &x, &u, &mock.base_url()).await;
    let (u_share, u_token) = api.mint(&x, &u_key, json!({})).await;
    let u_invite = api
        .post(
            &format!("/api/teams/{u}/invites"),
            Some(&x.token),
            json!({"email": "someone@example.com"}),
        )
        .await
        .str("/id");
    let x_ids = Ids {
        team: u.clone(),
        key: x_key,
        share: x_share,
        invite: u_invite.clone(),
    };
    let u_ids = Ids {
        team: u.clone(),
        key: u_key,
        share: u_share,
        invite: u_invite,
    };
    let w = World {
        api: api.clone(),
        owner: owner.clone(),
        t,
        x,
        x_ids,
        u_ids,
        base_url: mock.base_url(),
    };
    let before = foreign_state(&w).await;

    let mut cells = 0;
    let cast = [
        (Role::Owner, &owner),
        (Role::Admin, &admin),
        (Role::Member, &member),
        (Role::Viewer, &viewer),
    ];
    for (role, user) in cast {
        for target in [Target::OwnTeam, Target::OtherUser, Target::OtherTeam] {
            let count = endpoints(&w.x_ids).len();
            for n in 0..count {
                let own;
                let ids = match target {
                    Target::OwnTeam => {
                        own = w.fresh_own().await;
                        &own
                    }
                    Target::OtherUser => &w.x_ids,
                    Target::OtherTeam => &w.u_ids,
                };
                let (what, method, path, body, needs) = endpoints(ids).swap_remove(n);
                if target == Target::OtherUser && path.contains("/api/teams") {
                    continue; // A user has no team endpoints: U covers them.
                }
                let reply = call(&api, user, &method, &path, body).await;
                let context = format!("{role:?} {what} on {target:?}: {method} {path}");
                cells += 1;
                match (target, cell(needs, role)) {
                    (Target::OwnTeam, Y) => {
                        assert!(
                            reply.status.is_success(),
                            "{context}: {} {}",
                            reply.status,
                            reply.text
                        );
                    }
                    (Target::OwnTeam, F) => {
                        assert_eq!(
                            reply.status,
                            StatusCode::FORBIDDEN,
                            "{context}: {}",
                            reply.text
                        );
                        assert_eq!(reply.code(), "insufficient_role", "{context}");
                    }
                    _ => {
                        assert_eq!(
                            reply.status,
                            StatusCode::NOT_FOUND,
                            "{context}: {}",
                            reply.text
                        );
                        assert_eq!(reply.code(), "not_found", "{context}");
                    }
                }
            }
        }
        // Listings show only what the caller may see.
        for path in ["/api/keys", "/api/shared", "/api/teams"] {
            let listed = api.get(path, &user.token).await;
            for foreign in [
                &w.x_ids.key,
                &w.x_ids.share,
                &w.u_ids.key,
                &w.u_ids.share,
                &w.u_ids.team,
            ] {
                assert!(
                    !listed.text.contains(foreign.as_str()),
                    "{role:?} {path} lists {foreign}"
                );
            }
        }
    }
    assert!(cells > 150, "the matrix ran {cells} cells");
    assert_eq!(
        foreign_state(&w).await,
        before,
        "the matrix changed another owner's resources"
    );
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for token in [&x_token, &u_token] {
        assert_eq!(
            api.chat(token, chat.clone()).await.status,
            StatusCode::OK,
            "a foreign share still works"
        );
    }
}

#[tokio::test]
async fn the_periodic_jobs_clean_up_old_invitations_only() {
    // Needs the database behind the host, so a Feen of its own.
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let ann = api.signup("invites-ann").await;
    let team = create_team(&api, &ann, "Cleanup").await;
    let mut ids = Vec::new();
    for who in ["old", "recent", "live"] {
        let body = json!({ "email": format!("{who}@example.com") });
        let path = format!("/api/teams/{team}/invites");
        ids.push(api.post(&path, Some(&ann.token), body).await.str("/id"));
    }
    let db = feen.db().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let day = 86_400_000_i64;
    for (id, expired) in [(&ids[0], now - 31 * day), (&ids[1], now - day)] {
        let n = db
            .execute(
                "UPDATE team_invites SET expires_at = $1 WHERE id = $2",
                &[expired.into(), id.as_str().into()],
            )
            .await
            .expect("age an invitation");
        assert_eq!(n, 1);
    }
    let left = || async {
        let rows = db
            .query(
                "SELECT id FROM team_invites WHERE team_id = $1 ORDER BY id",
                &[team.as_str().into()],
            )
            .await
            .expect("count invitations");
        rows.iter()
            .map(|r| r.text(0).expect("id"))
            .collect::<Vec<_>>()
    };
    assert_eq!(left().await.len(), 3);
    feen.run_jobs().await;
    assert_eq!(left().await, vec![ids[1].clone(), ids[2].clone()]);
    feen.run_jobs().await;
    assert_eq!(left().await.len(), 2, "a second run finds nothing more");
    // Only the live one is still listed as pending.
    let pending = api
        .get(&format!("/api/teams/{team}/invites"), &ann.token)
        .await;
    assert_eq!(pending.body["invites"][0]["id"], ids[2].as_str());
    assert_eq!(pending.body["invites"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_removed_member_loses_the_team_at_once_even_with_a_personal_access_token() {
    let feen = Feen::start().await;
    let api = Api::new(&feen.base);
    let mock = MockProvider::start(SECRET).await;
    let owner = api.signup("owner").await;
    let member = api.signup("member").await;
    let team = create_team(&api, &owner, "pat team").await;
    join(&api, &owner, &team, &member, "member").await;
    let key = team_key(&api, &owner, &team, &mock.base_url()).await;
    let pat = api
        .post(
            "/api/auth/tokens",
            Some(&member.token),
            json!({"name": "ci", "password": member.password}),
        )
        .await
        .str("/token");
    let read = |path: String| {
        let (api, pat) = (api.clone(), pat.clone());
        async move { api.get(&path, &pat).await }
    };
    assert_eq!(
        read(format!("/api/keys/{key}")).await.status,
        StatusCode::OK
    );
    let minted = api
        .post(
            "/api/shared",
            Some(&pat),
            json!({"apiKeyId": key, "name": "by pat"}),
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED, "{}", minted.text);
    let removed = api
        .delete(
            &format!("/api/teams/{team}/members/{}", member.id),
            &owner.token,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    // The very next request with the same token: the team is no longer theirs to see.
    for path in [
        format!("/api/keys/{key}"),
        format!("/api/teams/{team}"),
        format!("/api/shared/{}", minted.str("/id")),
    ] {
        let reply = read(path.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
    }
    let again = api
        .post(
            "/api/shared",
            Some(&pat),
            json!({"apiKeyId": key, "name": "after removal"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
}
