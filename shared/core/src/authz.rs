//! Who may do what: one pure decision, `actor × action × resource owner → allow / deny`, used by
//! every management handler. Resources (keys, shares, their usage and audit chains) belong to
//! an [`Owner`]: a user, or a team whose members hold a [`Role`].
//!
//! Deny comes in two kinds. An actor with no relation to the owner gets [`Denied::NotFound`],
//! the same answer as for an id that does not exist, so nobody learns what others have. A
//! team member whose role is too low gets [`Denied::Forbidden`] with a reason: they can see the
//! resource, so hiding it would only confuse.

use crate::Error;
use crate::ids::{TeamId, UserId};

/// Who a resource belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A user's own resource.
    User(UserId),
    /// A team's resource.
    Team(TeamId),
}

impl Owner {
    /// The owner's id (the prefix tells the kinds apart).
    pub fn as_str(&self) -> &str {
        match self {
            Owner::User(id) => id.as_str(),
            Owner::Team(id) => id.as_str(),
        }
    }

    /// The owner named by a stored user id and an optional team id: the team when there is one.
    pub fn from_columns(user: UserId, team: Option<TeamId>) -> Self {
        team.map_or(Owner::User(user), Owner::Team)
    }

    /// The team, for a team's resource.
    pub fn team(&self) -> Option<&TeamId> {
        match self {
            Owner::Team(id) => Some(id),
            Owner::User(_) => None,
        }
    }
}

/// A member's role in a team, from least to most powerful. Every team has exactly one owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the team's keys, shares, usage and members.
    Viewer,
    /// A viewer who also mints, changes and revokes the team's shares.
    Member,
    /// A member who also manages the team's keys, invites, members below admin, and reads the
    /// team's audit log.
    Admin,
    /// An admin who also manages admins, transfers ownership and deletes the team.
    Owner,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// The role with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// Something an actor wants to do to resources of an owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// List or read keys.
    ReadKeys,
    /// Add, rename, rotate or delete keys.
    ManageKeys,
    /// List or read shares and their usage.
    ReadShares,
    /// Mint, change, revoke or regenerate shares.
    ManageShares,
    /// Read usage figures and analytics.
    ReadUsage,
    /// Read and verify the audit log.
    ReadAudit,
    /// Read a team and its members.
    ReadTeam,
    /// Rename a team.
    RenameTeam,
    /// Delete a team with all its keys and shares.
    DeleteTeam,
    /// Invite someone with a role.
    Invite(Role),
    /// List or cancel pending invites.
    ManageInvites,
    /// Remove a member who holds a role.
    RemoveMember(Role),
    /// Change a member's role.
    ChangeRole {
        /// The role they hold.
        from: Role,
        /// The role they would hold.
        to: Role,
    },
    /// Hand the team to another member.
    TransferOwnership,
    /// Leave the team.
    Leave,
}

/// Why an action is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The actor has no relation to the owner: answer as if nothing were there.
    NotFound,
    /// The actor's role does not allow it; the reason is safe to show.
    Forbidden(&'static str),
}

impl Denied {
    /// The error a handler answers with; `what` names the resource kind for a not-found.
    pub fn into_error(self, what: &'static str) -> Error {
        match self {
            Denied::NotFound => Error::NotFound(what),
            Denied::Forbidden(message) => Error::Forbidden {
                code: "insufficient_role",
                message: message.into(),
            },
        }
    }
}

/// Whether `actor`, who holds `role` in the owning team (`None`: not a member; ignored for a
/// user owner), may do `action` to resources of `owner`.
pub fn decide(
    actor: &UserId,
    role: Option<Role>,
    action: Action,
    owner: &Owner,
) -> Result<(), Denied> {
    match owner {
        Owner::User(user) if user == actor => match action {
            ReadKeys | ManageKeys | ReadShares | ManageShares | ReadUsage | ReadAudit => Ok(()),
            // Team actions make no sense on a user: nothing to find.
            _ => Err(Denied::NotFound),
        },
        Owner::User(_) => Err(Denied::NotFound),
        Owner::Team(_) => match role {
            None => Err(Denied::NotFound),
            Some(role) => team_decision(role, action),
        },
    }
}

use Action::*;

fn at_least(role: Role, needed: Role, reason: &'static str) -> Result<(), Denied> {
    if role >= needed {
        Ok(())
    } else {
        Err(Denied::Forbidden(reason))
    }
}

fn team_decision(role: Role, action: Action) -> Result<(), Denied> {
    match action {
        ReadKeys | ReadShares | ReadUsage | ReadTeam => Ok(()),
        ManageShares => at_least(role, Role::Member, "managing shares needs the member role"),
        ManageKeys => at_least(role, Role::Admin, "managing keys needs the admin role"),
        ReadAudit => at_least(role, Role::Admin, "the audit log needs the admin role"),
        RenameTeam | ManageInvites => at_least(role, Role::Admin, "this needs the admin role"),
        DeleteTeam => at_least(role, Role::Owner, "only the owner can delete the team"),
        TransferOwnership => at_least(role, Role::Owner, "only the owner can transfer the team"),
        Invite(Role::Owner) => Err(Denied::Forbidden(
            "nobody is invited as owner: transfer ownership to a member",
        )),
        Invite(granted) => manage_role(role, granted),
        RemoveMember(Role::Owner) => Err(Denied::Forbidden(
            "the owner cannot be removed: transfer ownership first",
        )),
        RemoveMember(held) => manage_role(role, held),
        ChangeRole { from, to } if from == Role::Owner || to == Role::Owner => Err(
            Denied::Forbidden("ownership changes hands only by a transfer"),
        ),
        ChangeRole { from, to } => manage_role(role, from.max(to)),
        Leave if role == Role::Owner => Err(Denied::Forbidden(
            "the owner cannot leave: transfer ownership first",
        )),
        Leave => Ok(()),
    }
}

/// Admins manage members and viewers; only the owner manages admins.
fn manage_role(role: Role, target: Role) -> Result<(), Denied> {
    if target == Role::Admin {
        at_least(role, Role::Owner, "only the owner manages admins")
    } else {
        at_least(role, Role::Admin, "managing members needs the admin role")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Admin, Member, Owner as O, Viewer};

    fn user(n: u8) -> UserId {
        UserId::new(1_700_000_000_000, [n; 10])
    }

    fn team() -> crate::authz::Owner {
        crate::authz::Owner::Team(TeamId::new(1_700_000_000_000, [9; 10]))
    }

    /// `Y`: allowed; `F`: forbidden (403); `N`: not found (404).
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Cell {
        Y,
        F,
        N,
    }
    use Cell::{F, N, Y};

    fn cell(result: Result<(), Denied>) -> Cell {
        match result {
            Ok(()) => Y,
            Err(Denied::Forbidden(_)) => F,
            Err(Denied::NotFound) => N,
        }
    }

    /// The whole team table: each action against each role (none, viewer, member, admin, owner).
    #[test]
    fn the_team_permission_table() {
        let table: Vec<(Action, [Cell; 5])> = vec![
            (ReadKeys, [N, Y, Y, Y, Y]),
            (ReadShares, [N, Y, Y, Y, Y]),
            (ReadUsage, [N, Y, Y, Y, Y]),
            (ReadTeam, [N, Y, Y, Y, Y]),
            (ManageShares, [N, F, Y, Y, Y]),
            (ManageKeys, [N, F, F, Y, Y]),
            (ReadAudit, [N, F, F, Y, Y]),
            (RenameTeam, [N, F, F, Y, Y]),
            (ManageInvites, [N, F, F, Y, Y]),
            (DeleteTeam, [N, F, F, F, Y]),
            (TransferOwnership, [N, F, F, F, Y]),
            (Invite(Viewer), [N, F, F, Y, Y]),
            (Invite(Member), [N, F, F, Y, Y]),
            (Invite(Admin), [N, F, F, F, Y]),
            (Invite(O), [N, F, F, F, F]),
            (RemoveMember(Viewer), [N, F, F, Y, Y]),
            (RemoveMember(Member), [N, F, F, Y, Y]),
            (RemoveMember(Admin), [N, F, F, F, Y]),
            (RemoveMember(O), [N, F, F, F, F]),
            (
                ChangeRole {
                    from: Viewer,
                    to: Member,
                },
                [N, F, F, Y, Y],
            ),
            (
                ChangeRole {
                    from: Member,
                    to: Viewer,
                },
                [N, F, F, Y, Y],
            ),
            (
                ChangeRole {
                    from: Member,
                    to: Admin,
                },
                [N, F, F, F, Y],
            ),
            (
                ChangeRole {
                    from: Admin,
                    to: Viewer,
                },
                [N, F, F, F, Y],
            ),
            (ChangeRole { from: Admin, to: O }, [N, F, F, F, F]),
            (ChangeRole { from: O, to: Admin }, [N, F, F, F, F]),
            (Leave, [N, Y, Y, Y, F]),
        ];
        let roles = [None, Some(Viewer), Some(Member), Some(Admin), Some(O)];
        for (action, expected) in table {
            for (role, want) in roles.iter().zip(expected) {
                let got = cell(decide(&user(1), *role, action, &team()));
                assert_eq!(got, want, "{action:?} as {role:?}");
            }
        }
    }

    #[test]
    fn a_user_reaches_only_their_own_resources_and_no_team_actions() {
        let me = crate::authz::Owner::User(user(1));
        let other = crate::authz::Owner::User(user(2));
        let resource_actions = [
            ReadKeys,
            ManageKeys,
            ReadShares,
            ManageShares,
            ReadUsage,
            ReadAudit,
        ];
        for action in resource_actions {
            assert_eq!(decide(&user(1), None, action, &me), Ok(()), "{action:?}");
            // A role in some team says nothing about another user's resources.
            for role in [None, Some(O)] {
                let got = decide(&user(1), role, action, &other);
                assert_eq!(got, Err(Denied::NotFound), "{action:?}");
            }
        }
        for action in [
            ReadTeam,
            DeleteTeam,
            Leave,
            Invite(Member),
            TransferOwnership,
        ] {
            assert_eq!(decide(&user(1), None, action, &me), Err(Denied::NotFound));
        }
    }

    #[test]
    fn roles_round_trip_by_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("Owner"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn denials_become_the_right_errors() {
        let e = Denied::NotFound.into_error("key");
        assert_eq!(e.status(), http::StatusCode::NOT_FOUND);
        let e = Denied::Forbidden("x").into_error("key");
        assert_eq!((e.status().as_u16(), e.code()), (403, "insufficient_role"));
    }
}
