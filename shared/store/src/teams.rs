//! Teams, their members and invitations. A team's owner is `teams.owner_id`; a transfer is a
//! compare-and-swap on that one column, so a team never has two owners. Every member, the
//! owner included, has a `team_members` row; the owner's stored role (admin) is outranked by
//! ownership and is what they keep after a transfer.

use feen_core::authz::Role;
use feen_core::crypto::token::TokenHash;
use feen_core::ids::{InviteId, TeamId, UserId};
use feen_core::ports::{Db, DbError, Row};

use crate::decode;

/// A team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    /// The id.
    pub id: TeamId,
    /// Its name.
    pub name: String,
    /// Its one owner.
    pub owner: UserId,
    /// When it was created (ms).
    pub created_at: i64,
    /// When it was last renamed or transferred (ms).
    pub updated_at: i64,
}

/// A member as listed to the team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user: UserId,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role (the owner's is [`Role::Owner`]).
    pub role: Role,
    /// When they joined (ms).
    pub joined_at: i64,
}

/// A pending or used invitation (never its token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    /// The id.
    pub id: InviteId,
    /// The team.
    pub team: TeamId,
    /// Who is invited (lower-cased email).
    pub email: String,
    /// The role they will hold.
    pub role: Role,
    /// Who invited them.
    pub invited_by: UserId,
    /// When (ms).
    pub created_at: i64,
    /// Until when it can be accepted (ms).
    pub expires_at: i64,
    /// When it was accepted, if it was.
    pub accepted_at: Option<i64>,
}

const TEAM_COLUMNS: &str = "t.id, t.name, t.owner_id, t.created_at, t.updated_at";

fn team_from(row: &Row) -> Result<Team, DbError> {
    Ok(Team {
        id: TeamId::from_db(row.text(0)?),
        name: row.text(1)?,
        owner: UserId::from_db(row.text(2)?),
        created_at: row.int(3)?,
        updated_at: row.int(4)?,
    })
}

fn role(text: &str) -> Result<Role, DbError> {
    Role::parse(text).ok_or_else(|| DbError::Decode("unknown team role".into()))
}

/// A member's effective role: ownership outranks the stored role.
fn effective(owner: &str, user: &str, stored: &str) -> Result<Role, DbError> {
    if owner == user {
        Ok(Role::Owner)
    } else {
        role(stored)
    }
}

/// Creates a team owned by `team.owner`, who becomes its first member.
pub async fn insert(db: &dyn Db, team: &Team) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO teams (id, name, owner_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            team.id.as_str().into(),
            team.name.as_str().into(),
            team.owner.as_str().into(),
            team.created_at.into(),
            team.updated_at.into(),
        ],
    )
    .await?;
    add_member(db, &team.id, &team.owner, Role::Admin, team.created_at).await?;
    Ok(())
}

/// Adds a member; false if they already are one.
pub async fn add_member(
    db: &dyn Db,
    team: &TeamId,
    user: &UserId,
    role: Role,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id, user_id) DO NOTHING",
            &[
                team.as_str().into(),
                user.as_str().into(),
                role.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The user's role in the team; `None` when the team does not exist or they are not in it.
pub async fn role_of(db: &dyn Db, team: &TeamId, user: &UserId) -> Result<Option<Role>, DbError> {
    let rows = db
        .query(
            "SELECT t.owner_id, m.role FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE t.id = $1 AND m.user_id = $2",
            &[team.as_str().into(), user.as_str().into()],
        )
        .await?;
    rows.first()
        .map(|row| effective(&row.text(0)?, user.as_str(), &row.text(1)?))
        .transpose()
}

/// A team.
pub async fn get(db: &dyn Db, team: &TeamId) -> Result<Option<Team>, DbError> {
    let rows = db
        .query(
            &format!("SELECT {TEAM_COLUMNS} FROM teams t WHERE t.id = $1"),
            &[team.as_str().into()],
        )
        .await?;
    rows.first().map(team_from).transpose()
}

/// The teams the user belongs to, with their role in each, oldest first.
pub async fn of_user(db: &dyn Db, user: &UserId) -> Result<Vec<(Team, Role)>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {TEAM_COLUMNS}, m.role FROM teams t JOIN team_members m ON m.team_id = t.id \
                 WHERE m.user_id = $1 ORDER BY t.id"
            ),
            &[user.as_str().into()],
        )
        .await?;
    decode(rows, |row| {
        let team = team_from(row)?;
        let role = effective(team.owner.as_str(), user.as_str(), &row.text(5)?)?;
        Ok((team, role))
    })
}

/// The team's members, the owner first, then by when they joined.
pub async fn members(db: &dyn Db, team: &TeamId) -> Result<Vec<Member>, DbError> {
    let rows = db
        .query(
            "SELECT m.user_id, u.email, u.name, m.role, m.created_at, t.owner_id \
             FROM team_members m JOIN users u ON u.id = m.user_id JOIN teams t ON t.id = m.team_id \
             WHERE m.team_id = $1 ORDER BY CASE WHEN m.user_id = t.owner_id THEN 0 ELSE 1 END, m.created_at, m.user_id",
            &[team.as_str().into()],
        )
        .await?;
    decode(rows, |row| {
        let user = row.text(0)?;
        Ok(Member {
            role: effective(&row.text(5)?, &user, &row.text(3)?)?,
            user: UserId::from_db(user),
            email: row.text(1)?,
            name: row.text(2)?,
            joined_at: row.int(4)?,
        })
    })
}

/// Renames a team. False if it does not exist.
pub async fn rename(db: &dyn Db, team: &TeamId, name: &str, now: i64) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1",
            &[team.as_str().into(), name.into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes a team and, through the foreign keys, its members, invites, keys and shares.
pub async fn delete(db: &dyn Db, team: &TeamId) -> Result<bool, DbError> {
    let n = db
        .execute("DELETE FROM teams WHERE id = $1", &[team.as_str().into()])
        .await?;
    Ok(n == 1)
}

/// Sets a member's stored role from `from` to `to`: a compare-and-swap, so a decision made on
/// the role read before cannot overwrite a change made since. Never the owner's. False when the
/// member is not one, is the owner, or no longer holds `from`.
pub async fn set_role(
    db: &dyn Db,
    team: &TeamId,
    user: &UserId,
    from: Role,
    to: Role,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2 AND role = $4 \
             AND user_id <> (SELECT owner_id FROM teams WHERE id = $1)",
            &[
                team.as_str().into(),
                user.as_str().into(),
                to.as_str().into(),
                from.as_str().into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Removes a member (or lets them leave) if they still hold `role` (a compare-and-swap, as for
/// [`set_role`]). Never the owner. False when the member is not one, is the owner, or holds
/// another role by now.
pub async fn remove_member(
    db: &dyn Db,
    team: &TeamId,
    user: &UserId,
    role: Role,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2 AND role = $3 \
             AND user_id <> (SELECT owner_id FROM teams WHERE id = $1)",
            &[
                team.as_str().into(),
                user.as_str().into(),
                role.as_str().into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Hands the team from `from` to `to`, if `from` still owns it and `to` is a member; both then
/// hold the stored role admin (the new owner's is outranked). False if either condition fails.
pub async fn transfer(
    db: &dyn Db,
    team: &TeamId,
    from: &UserId,
    to: &UserId,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE teams SET owner_id = $3, updated_at = $4 WHERE id = $1 AND owner_id = $2 \
             AND EXISTS (SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $3)",
            &[
                team.as_str().into(),
                from.as_str().into(),
                to.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    db.execute(
        "UPDATE team_members SET role = 'admin' WHERE team_id = $1 AND user_id IN ($2, $3)",
        &[
            team.as_str().into(),
            from.as_str().into(),
            to.as_str().into(),
        ],
    )
    .await?;
    Ok(true)
}

const INVITE_COLUMNS: &str =
    "id, team_id, email, role, invited_by, created_at, expires_at, accepted_at";

fn invite_from(row: &Row) -> Result<Invite, DbError> {
    Ok(Invite {
        id: InviteId::from_db(row.text(0)?),
        team: TeamId::from_db(row.text(1)?),
        email: row.text(2)?,
        role: role(&row.text(3)?)?,
        invited_by: UserId::from_db(row.text(4)?),
        created_at: row.int(5)?,
        expires_at: row.int(6)?,
        accepted_at: row.opt_int(7)?,
    })
}

/// Stores an invitation with its token's hash.
pub async fn insert_invite(db: &dyn Db, invite: &Invite, hash: &TokenHash) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO team_invites (id, team_id, email, role, token_hash, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            invite.id.as_str().into(),
            invite.team.as_str().into(),
            invite.email.as_str().into(),
            invite.role.as_str().into(),
            hash.as_str().into(),
            invite.invited_by.as_str().into(),
            invite.created_at.into(),
            invite.expires_at.into(),
        ],
    )
    .await
    .map(drop)
}

/// The team's invitations that can still be accepted, newest first.
pub async fn pending_invites(db: &dyn Db, team: &TeamId, now: i64) -> Result<Vec<Invite>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {INVITE_COLUMNS} FROM team_invites WHERE team_id = $1 AND accepted_at IS NULL \
                 AND expires_at > $2 ORDER BY id DESC"
            ),
            &[team.as_str().into(), now.into()],
        )
        .await?;
    decode(rows, invite_from)
}

/// Withdraws one of the team's pending invitations. False if there is no such pending one.
pub async fn cancel_invite(db: &dyn Db, team: &TeamId, id: &InviteId) -> Result<bool, DbError> {
    let n = db
        .execute(
            "DELETE FROM team_invites WHERE id = $1 AND team_id = $2 AND accepted_at IS NULL",
            &[id.as_str().into(), team.as_str().into()],
        )
        .await?;
    Ok(n == 1)
}

/// The invitation a token belongs to, if it can still be accepted.
pub async fn invite_by_token(
    db: &dyn Db,
    hash: &TokenHash,
    now: i64,
) -> Result<Option<Invite>, DbError> {
    let rows = db
        .query(
            &format!(
                "SELECT {INVITE_COLUMNS} FROM team_invites WHERE token_hash = $1 AND accepted_at IS NULL \
                 AND expires_at > $2"
            ),
            &[hash.as_str().into(), now.into()],
        )
        .await?;
    rows.first().map(invite_from).transpose()
}

/// Marks an invitation used by `user`, once: false if it was used (or expired) meanwhile.
pub async fn consume_invite(
    db: &dyn Db,
    id: &InviteId,
    user: &UserId,
    now: i64,
) -> Result<bool, DbError> {
    let n = db
        .execute(
            "UPDATE team_invites SET accepted_at = $3, accepted_by = $2 \
             WHERE id = $1 AND accepted_at IS NULL AND expires_at > $3",
            &[id.as_str().into(), user.as_str().into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Deletes invitations that expired or were accepted before `before` (the cleanup job).
pub async fn purge_invites(db: &dyn Db, before: i64) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM team_invites WHERE expires_at < $1 OR accepted_at < $1",
        &[before.into()],
    )
    .await
}
