//! Recording sensitive actions in the audit log from a handler: who, what, which resource,
//! when, from which address and client. Never a secret: callers pass names and ids only.

use feen_core::audit::Action;
use feen_core::authz::Owner;
use feen_core::ids::{AuditId, UserId};
use feen_store::audit::NewEntry;

use crate::{Ctx, Req, request};

/// What a request says about where it came from, taken before the handler consumes it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The client's address, as the host determined it.
    pub client_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

impl Origin {
    /// The origin of `req`.
    pub fn of(req: &Req) -> Self {
        Self {
            client_ip: request::client_addr(req).map(|ip| ip.to_string()),
            user_agent: req
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|agent| agent.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

/// The most of a `User-Agent` kept in audit rows (and hashed for new-device alerts).
pub const MAX_USER_AGENT: usize = 256;

/// One action to record.
pub struct Event<'a> {
    /// Whose chain the row joins (the resource's owner).
    pub owner: &'a str,
    /// Who acted (`None`: nobody authenticated, e.g. a failed login).
    pub actor: Option<&'a str>,
    /// What was done.
    pub action: Action,
    /// The kind of resource and its id.
    pub resource: Option<(&'a str, &'a str)>,
    /// Further facts (names, not secrets).
    pub details: serde_json::Value,
}

/// Appends `event` to its owner's audit chain. The action has already happened when this runs,
/// so a failure to record it is logged, not turned into an error the client would retry.
pub async fn record(ctx: &Ctx, origin: &Origin, event: Event<'_>) {
    let now = ctx.now_ms();
    let id = AuditId::new(now, ctx.random());
    let entry = NewEntry {
        id: &id,
        owner: event.owner,
        actor: event.actor,
        action: event.action,
        resource: event.resource,
        at_ms: now,
        client_ip: origin.client_ip.as_deref(),
        user_agent: origin.user_agent.as_deref(),
        details: &event.details,
    };
    match feen_store::audit::append(ctx.db.as_ref(), &entry).await {
        Ok(stored) => {
            // The chain's newest place, kept outside the database too: deleting the newest rows
            // leaves an intact chain, but not a matching head.
            let anchor = ctx
                .kv
                .set(&head_key(event.owner), &stored.seq.to_string(), HEAD_TTL_MS)
                .await;
            if let Err(e) = anchor {
                tracing::warn!(error = %e, "audit head not anchored");
            }
        }
        Err(e) => {
            tracing::error!(action = event.action.as_str(), error = %e, "audit row not written");
        }
    }
}

/// How long an owner's anchored head is kept without a new row.
const HEAD_TTL_MS: u64 = 400 * 86_400_000;

/// The counter-store key of an owner's anchored chain head.
pub fn head_key(owner: &str) -> String {
    format!("audit:head:{owner}")
}

/// The newest place of an owner's chain as last anchored outside the database, if known.
pub async fn anchored_head(ctx: &Ctx, owner: &str) -> Option<i64> {
    ctx.kv
        .get(&head_key(owner))
        .await
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
}

/// Records an action a user took on a resource of an owner (themselves or a team).
pub async fn act(
    ctx: &Ctx,
    origin: &Origin,
    actor: &UserId,
    owner: &Owner,
    action: Action,
    resource: (&str, &str),
    details: serde_json::Value,
) {
    let event = Event {
        owner: owner.as_str(),
        actor: Some(actor.as_str()),
        action,
        resource: Some(resource),
        details,
    };
    record(ctx, origin, event).await;
}
