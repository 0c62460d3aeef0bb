//! The teams function (`/api/teams`): create, read, rename and delete teams; invite by email
//! (a token stored hashed, valid for seven days, accepted once by the invited address); change
//! roles, remove members, leave, transfer ownership.
//!
//! Every route decides with `feen_core::authz::decide`: someone outside a team gets the same
//! 404 as for a team that does not exist; a member whose role is too low gets 403
//! `insufficient_role`. Changes take effect on the next request: roles are read per request.

use feen_core::audit::Action;
use feen_core::authz::{self, Owner, Role};
use feen_core::crypto::token::{self, TokenKind};
use feen_core::ids::{InviteId, TeamId, UserId};
use feen_core::timefmt::to_rfc3339;
use feen_core::{Error, validate};
use feen_service::audit::{self, Event, Origin};
use feen_service::auth::{Caller, authenticate};
use feen_service::request::{MAX_JSON_BODY, json_body, segments};
use feen_service::response::no_content;
use feen_service::{Ctx, Req, Resp, cache, json, respond};
use feen_store::shares::HashScope;
use feen_store::teams::{self, Invite, Member, Team};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// The path prefix this function serves.
pub const PREFIX: &str = "/api/teams";

/// How long an invitation can be accepted.
pub const INVITE_TTL_MS: i64 = 7 * 86_400_000;

/// Serves `/api/teams*`.
pub async fn handle(req: Req, ctx: &Ctx) -> Resp {
    respond(route(req, ctx).await)
}

async fn route(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let path = req.uri().path().to_owned();
    let segs = segments(&path, PREFIX).ok_or(Error::NotFound("route"))?;
    let method = req.method().clone();
    match (segs.as_slice(), &method) {
        ([], &Method::GET) => list(req, ctx).await,
        ([], &Method::POST) => create(req, ctx).await,
        (["invites", "accept"], &Method::POST) => accept(req, ctx).await,
        ([id], &Method::GET) => get(req, ctx, id).await,
        ([id], &Method::PATCH) => rename(req, ctx, id).await,
        ([id], &Method::DELETE) => delete(req, ctx, id).await,
        ([id, "invites"], &Method::GET) => invites(req, ctx, id).await,
        ([id, "invites"], &Method::POST) => invite(req, ctx, id).await,
        ([id, "invites", invite], &Method::DELETE) => cancel(req, ctx, id, invite).await,
        ([id, "members", user], &Method::PATCH) => change_role(req, ctx, id, user).await,
        ([id, "members", user], &Method::DELETE) => remove(req, ctx, id, user).await,
        ([id, "leave"], &Method::POST) => leave(req, ctx, id).await,
        ([id, "transfer"], &Method::POST) => transfer(req, ctx, id).await,
        ([] | [_] | [_, "invites" | "leave" | "transfer"], _)
        | (["invites", "accept"] | [_, "invites" | "members", _], _) => {
            Err(Error::MethodNotAllowed)
        }
        _ => Err(Error::NotFound("route")),
    }
}

fn team_json(team: &Team, role: Role) -> serde_json::Value {
    json!({
        "id": team.id,
        "name": team.name,
        "ownerId": team.owner,
        "role": role.as_str(),
        "createdAt": to_rfc3339(team.created_at),
        "updatedAt": to_rfc3339(team.updated_at),
    })
}

fn member_json(m: &Member) -> serde_json::Value {
    json!({
        "userId": m.user,
        "email": m.email,
        "name": m.name,
        "role": m.role.as_str(),
        "joinedAt": to_rfc3339(m.joined_at),
    })
}

fn invite_json(i: &Invite) -> serde_json::Value {
    json!({
        "id": i.id,
        "teamId": i.team,
        "email": i.email,
        "role": i.role.as_str(),
        "invitedBy": i.invited_by,
        "createdAt": to_rfc3339(i.created_at),
        "expiresAt": to_rfc3339(i.expires_at),
    })
}

/// The team `id` names and the caller's role in it, once `action` is allowed.
async fn membership(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    action: authz::Action,
) -> Result<(TeamId, Role), Error> {
    let team = TeamId::parse(id).ok_or(Error::NotFound("team"))?;
    let role = teams::role_of(ctx.db.as_ref(), &team, &caller.user).await?;
    let owner = Owner::Team(team.clone());
    authz::decide(&caller.user, role, action, &owner).map_err(|d| d.into_error("team"))?;
    let role = role.ok_or(Error::NotFound("team"))?;
    Ok((team, role))
}

/// Records an action on a team in the team's audit chain.
async fn record(
    ctx: &Ctx,
    origin: &Origin,
    caller: &Caller,
    team: &TeamId,
    action: Action,
    resource: (&str, &str),
    details: serde_json::Value,
) {
    let owner = Owner::Team(team.clone());
    audit::act(ctx, origin, &caller.user, &owner, action, resource, details).await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

async fn create(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let body: NameBody = json_body(req, MAX_JSON_BODY).await?;
    let name = validate::name("name", &body.name)?;
    let now = ctx.now_ms();
    let team = Team {
        id: TeamId::new(now, ctx.random()),
        name,
        owner: caller.user.clone(),
        created_at: now,
        updated_at: now,
    };
    teams::insert(ctx.db.as_ref(), &team).await?;
    let details = json!({ "name": team.name });
    let target = ("team", team.id.as_str());
    record(
        ctx,
        &origin,
        &caller,
        &team.id,
        Action::TeamCreated,
        target,
        details,
    )
    .await;
    Ok(json(StatusCode::CREATED, &team_json(&team, Role::Owner)))
}

async fn list(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let items: Vec<_> = teams::of_user(ctx.db.as_ref(), &caller.user)
        .await?
        .iter()
        .map(|(team, role)| team_json(team, *role))
        .collect();
    Ok(json(StatusCode::OK, &json!({ "teams": items })))
}

async fn get(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, role) = membership(ctx, &caller, id, authz::Action::ReadTeam).await?;
    team_with_members(ctx, &team, role).await
}

async fn team_with_members(ctx: &Ctx, id: &TeamId, role: Role) -> Result<Resp, Error> {
    let team = teams::get(ctx.db.as_ref(), id)
        .await?
        .ok_or(Error::NotFound("team"))?;
    let members = teams::members(ctx.db.as_ref(), id).await?;
    let mut body = team_json(&team, role);
    body["members"] = members.iter().map(member_json).collect();
    Ok(json(StatusCode::OK, &body))
}

async fn rename(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (team, role) = membership(ctx, &caller, id, authz::Action::RenameTeam).await?;
    let body: NameBody = json_body(req, MAX_JSON_BODY).await?;
    let name = validate::name("name", &body.name)?;
    if !teams::rename(ctx.db.as_ref(), &team, &name, ctx.now_ms()).await? {
        return Err(Error::NotFound("team"));
    }
    let target = ("team", team.as_str());
    let details = json!({ "name": name });
    record(
        ctx,
        &origin,
        &caller,
        &team,
        Action::TeamRenamed,
        target,
        details,
    )
    .await;
    team_with_members(ctx, &team, role).await
}

async fn delete(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, _) = membership(ctx, &caller, id, authz::Action::DeleteTeam).await?;
    let owner = Owner::Team(team.clone());
    let hashes = feen_store::shares::token_hashes(ctx.db.as_ref(), &owner, HashScope::All).await?;
    if !teams::delete(ctx.db.as_ref(), &team).await? {
        return Err(Error::NotFound("team"));
    }
    cache::tombstone(ctx, &hashes).await?;
    // The team's chain has no reader any more: the deletion joins the owner's own chain.
    let event = Event {
        owner: caller.user.as_str(),
        actor: Some(caller.user.as_str()),
        action: Action::TeamDeleted,
        resource: Some(("team", team.as_str())),
        details: json!({ "sharesRevoked": hashes.len() }),
    };
    audit::record(ctx, &Origin::of(&req), event).await;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: Option<String>,
}

fn parse_role(text: &str) -> Result<Role, Error> {
    Role::parse(text)
        .ok_or_else(|| Error::invalid("role", "must be viewer, member, admin or owner"))
}

async fn invite(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (team, role) = membership(ctx, &caller, id, authz::Action::ReadTeam).await?;
    let body: InviteBody = json_body(req, MAX_JSON_BODY).await?;
    let email = validate::email(&body.email)?;
    let granted = body.role.as_deref().map_or(Ok(Role::Member), parse_role)?;
    let owner = Owner::Team(team.clone());
    authz::decide(
        &caller.user,
        Some(role),
        authz::Action::Invite(granted),
        &owner,
    )
    .map_err(|d| d.into_error("team"))?;
    let members = teams::members(ctx.db.as_ref(), &team).await?;
    if members.iter().any(|m| m.email == email) {
        return Err(Error::Conflict("this address is already a member".into()));
    }
    let now = ctx.now_ms();
    let (token, hash) = token::issue(TokenKind::Invite, ctx.random());
    let invite = Invite {
        id: InviteId::new(now, ctx.random()),
        team: team.clone(),
        email,
        role: granted,
        invited_by: caller.user.clone(),
        created_at: now,
        expires_at: now + INVITE_TTL_MS,
        accepted_at: None,
    };
    teams::insert_invite(ctx.db.as_ref(), &invite, &hash).await?;
    let target = ("invite", invite.id.as_str());
    let details = json!({ "email": invite.email, "role": granted.as_str() });
    record(
        ctx,
        &origin,
        &caller,
        &team,
        Action::MemberInvited,
        target,
        details,
    )
    .await;
    invite_email(ctx, &caller, &team, &invite, token.expose()).await;
    let mut body = invite_json(&invite);
    body["token"] = token.expose().into();
    Ok(json(StatusCode::CREATED, &body))
}

/// Emails the invitation (with its token) to the invited address.
async fn invite_email(ctx: &Ctx, caller: &Caller, team: &TeamId, invite: &Invite, token: &str) {
    let db = ctx.db.as_ref();
    let team_name = match teams::get(db, team).await {
        Ok(Some(t)) => t.name,
        _ => "a team".into(),
    };
    let inviter = match feen_store::users::by_id(db, &caller.user).await {
        Ok(Some(u)) => format!("{} ({})", u.name, u.email),
        _ => "A Feen user".into(),
    };
    let message = feen_service::mail::Message {
        kind: "team_invite",
        dedupe_key: format!("invite:{}", invite.id),
        to: invite.email.clone(),
        subject: format!("You are invited to the team \"{team_name}\" on Feen"),
        body: format!(
            "{inviter} invited you to join the team \"{team_name}\" on Feen as {role}.\n\n\
             Sign in to Feen with this address ({email}) and accept the invitation with this \
             code (POST /api/teams/invites/accept with {{\"token\": \"...\"}}):\n\n{token}\n\n\
             It can be used once, until {expires}. If you did not expect it, ignore this email.",
            role = invite.role.as_str(),
            email = invite.email,
            expires = to_rfc3339(invite.expires_at),
        ),
    };
    feen_service::mail::notify(ctx, message).await;
}

async fn invites(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, _) = membership(ctx, &caller, id, authz::Action::ManageInvites).await?;
    let items: Vec<_> = teams::pending_invites(ctx.db.as_ref(), &team, ctx.now_ms())
        .await?
        .iter()
        .map(invite_json)
        .collect();
    Ok(json(StatusCode::OK, &json!({ "invites": items })))
}

async fn cancel(req: Req, ctx: &Ctx, id: &str, invite: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, _) = membership(ctx, &caller, id, authz::Action::ManageInvites).await?;
    let invite = InviteId::parse(invite).ok_or(Error::NotFound("invite"))?;
    if !teams::cancel_invite(ctx.db.as_ref(), &team, &invite).await? {
        return Err(Error::NotFound("invite"));
    }
    let target = ("invite", invite.as_str());
    let action = Action::InviteCancelled;
    record(
        ctx,
        &Origin::of(&req),
        &caller,
        &team,
        action,
        target,
        json!({}),
    )
    .await;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: feen_core::secret::SecretString,
}

async fn accept(req: Req, ctx: &Ctx) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let body: AcceptBody = json_body(req, MAX_JSON_BODY).await?;
    let now = ctx.now_ms();
    let invalid = || Error::NotFound("invite");
    let hash = token::verify(TokenKind::Invite, body.token.expose()).ok_or_else(invalid)?;
    let invite = teams::invite_by_token(ctx.db.as_ref(), &hash, now)
        .await?
        .ok_or_else(invalid)?;
    let user = feen_store::users::by_id(ctx.db.as_ref(), &caller.user)
        .await?
        .ok_or(Error::unauthenticated())?;
    if user.email != invite.email {
        return Err(Error::Forbidden {
            code: "invite_not_for_you",
            message: "this invitation was sent to another address".into(),
        });
    }
    if teams::role_of(ctx.db.as_ref(), &invite.team, &caller.user)
        .await?
        .is_some()
    {
        return Err(Error::Conflict(
            "you are already a member of this team".into(),
        ));
    }
    if !teams::consume_invite(ctx.db.as_ref(), &invite.id, &caller.user, now).await? {
        return Err(invalid());
    }
    teams::add_member(
        ctx.db.as_ref(),
        &invite.team,
        &caller.user,
        invite.role,
        now,
    )
    .await?;
    let target = ("user", caller.user.as_str());
    let details = json!({ "inviteId": invite.id, "role": invite.role.as_str() });
    let action = Action::MemberJoined;
    record(ctx, &origin, &caller, &invite.team, action, target, details).await;
    team_with_members(ctx, &invite.team, invite.role).await
}

/// Why a compare-and-swap on a member's role found nothing to change: they are gone (404), or
/// their role changed since it was read (409: decide again on what it is now).
async fn changed_meanwhile(ctx: &Ctx, team: &TeamId, user: &UserId) -> Error {
    match teams::role_of(ctx.db.as_ref(), team, user).await {
        Ok(Some(_)) => Error::Conflict(
            "this member's role changed meanwhile; reload the team and try again".into(),
        ),
        Ok(None) => Error::NotFound("member"),
        Err(e) => e.into(),
    }
}

/// A member of `team` named in the path, with their role.
async fn member(ctx: &Ctx, team: &TeamId, user: &str) -> Result<(UserId, Role), Error> {
    let user = UserId::parse(user).ok_or(Error::NotFound("member"))?;
    let role = teams::role_of(ctx.db.as_ref(), team, &user)
        .await?
        .ok_or(Error::NotFound("member"))?;
    Ok((user, role))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn change_role(req: Req, ctx: &Ctx, id: &str, user: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (team, role) = membership(ctx, &caller, id, authz::Action::ReadTeam).await?;
    let body: RoleBody = json_body(req, MAX_JSON_BODY).await?;
    let to = parse_role(&body.role)?;
    let (target, from) = member(ctx, &team, user).await?;
    let action = authz::Action::ChangeRole { from, to };
    let owner = Owner::Team(team.clone());
    authz::decide(&caller.user, Some(role), action, &owner).map_err(|d| d.into_error("team"))?;
    if from != to && !teams::set_role(ctx.db.as_ref(), &team, &target, from, to).await? {
        return Err(changed_meanwhile(ctx, &team, &target).await);
    }
    let resource = ("user", target.as_str());
    let details = json!({ "from": from.as_str(), "to": to.as_str() });
    record(
        ctx,
        &origin,
        &caller,
        &team,
        Action::RoleChanged,
        resource,
        details,
    )
    .await;
    team_with_members(ctx, &team, role).await
}

async fn remove(req: Req, ctx: &Ctx, id: &str, user: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, role) = membership(ctx, &caller, id, authz::Action::ReadTeam).await?;
    let (target, held) = member(ctx, &team, user).await?;
    let owner = Owner::Team(team.clone());
    let action = authz::Action::RemoveMember(held);
    authz::decide(&caller.user, Some(role), action, &owner).map_err(|d| d.into_error("team"))?;
    if !teams::remove_member(ctx.db.as_ref(), &team, &target, held).await? {
        return Err(changed_meanwhile(ctx, &team, &target).await);
    }
    let resource = ("user", target.as_str());
    let details = json!({ "role": held.as_str() });
    let action = Action::MemberRemoved;
    record(
        ctx,
        &Origin::of(&req),
        &caller,
        &team,
        action,
        resource,
        details,
    )
    .await;
    Ok(no_content())
}

async fn leave(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let (team, role) = membership(ctx, &caller, id, authz::Action::Leave).await?;
    if !teams::remove_member(ctx.db.as_ref(), &team, &caller.user, role).await? {
        return Err(Error::NotFound("team"));
    }
    let resource = ("user", caller.user.as_str());
    let details = json!({ "role": role.as_str() });
    let action = Action::MemberLeft;
    record(
        ctx,
        &Origin::of(&req),
        &caller,
        &team,
        action,
        resource,
        details,
    )
    .await;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TransferBody {
    user_id: String,
}

async fn transfer(req: Req, ctx: &Ctx, id: &str) -> Result<Resp, Error> {
    let caller = authenticate(&req, ctx).await?;
    let origin = Origin::of(&req);
    let (team, _) = membership(ctx, &caller, id, authz::Action::TransferOwnership).await?;
    let body: TransferBody = json_body(req, MAX_JSON_BODY).await?;
    if body.user_id == caller.user.as_str() {
        return Err(Error::invalid("userId", "is already the owner"));
    }
    let (target, _) = member(ctx, &team, &body.user_id).await?;
    let now = ctx.now_ms();
    if !teams::transfer(ctx.db.as_ref(), &team, &caller.user, &target, now).await? {
        // Ownership or membership changed meanwhile.
        return Err(Error::Conflict(
            "the team changed; read it and try again".into(),
        ));
    }
    let resource = ("user", target.as_str());
    let action = Action::OwnershipTransferred;
    let details = json!({ "from": caller.user, "to": target });
    record(ctx, &origin, &caller, &team, action, resource, details).await;
    team_with_members(ctx, &team, Role::Admin).await
}

// The Cloudflare Workers entry point: this function as a Worker of its own.
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
feen_workers::fetch_entry!(handle);

// The Spin entry point: this function as a component of its own.
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
feen_spin::http_entry!(handle);
