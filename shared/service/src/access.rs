//! Authorisation for handlers: the caller's role towards a resource's owner, looked up once,
//! and the core's pure decision ([`feen_core::authz::decide`]) applied to it.

use feen_core::Error;
use feen_core::authz::{self, Action, Owner};
use feen_core::ids::TeamId;

use crate::Ctx;
use crate::auth::Caller;

/// Refuses unless `caller` may do `action` to resources of `owner`. `what` names the resource
/// in the not-found answer an outsider gets.
pub async fn authorize(
    ctx: &Ctx,
    caller: &Caller,
    owner: &Owner,
    action: Action,
    what: &'static str,
) -> Result<(), Error> {
    let role = match owner {
        Owner::Team(team) => {
            feen_store::teams::role_of(ctx.db.as_ref(), team, &caller.user).await?
        }
        Owner::User(_) => None,
    };
    authz::decide(&caller.user, role, action, owner).map_err(|denied| denied.into_error(what))
}

/// The owner a new resource is created for: the team named in the body (`teamId`), or else
/// the caller. A malformed team id is a validation error; an unknown one is `what` not found.
pub async fn new_owner(
    ctx: &Ctx,
    caller: &Caller,
    team: Option<&str>,
    action: Action,
) -> Result<Owner, Error> {
    let owner = match team {
        None => Owner::User(caller.user.clone()),
        Some(text) => Owner::Team(
            TeamId::parse(text).ok_or_else(|| Error::invalid("teamId", "is not a team id"))?,
        ),
    };
    authorize(ctx, caller, &owner, action, "team").await?;
    Ok(owner)
}
