//! The audit log's rows and the hash chain that makes them tamper-evident. Each owner (a user
//! or a team) has one chain: row `n` stores `hash(n) = SHA-256(hash(n-1) ‖ fields of row n)`,
//! so editing, deleting or reordering a row breaks every hash after it. The fields are hashed
//! length-prefixed, so no two different rows serialise alike.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::encoding::hex;

/// The `prev_hash` of an owner's first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done. The stored name is stable; new actions are added, none renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Action {
    /// A successful login.
    #[serde(rename = "auth.login")]
    Login,
    /// A login with a wrong password for this account.
    #[serde(rename = "auth.login_failed")]
    LoginFailed,
    /// A logout: the session ended everywhere.
    #[serde(rename = "auth.logout")]
    Logout,
    /// Every session of the user ended at once ("sign out everywhere").
    #[serde(rename = "auth.logout_all")]
    LogoutAll,
    /// The password changed (and every session with it).
    #[serde(rename = "auth.password_changed")]
    PasswordChanged,
    /// A refresh token presented twice: the session was ended.
    #[serde(rename = "auth.refresh_reused")]
    RefreshReused,
    /// A personal access token created.
    #[serde(rename = "pat.created")]
    PatCreated,
    /// A personal access token revoked.
    #[serde(rename = "pat.revoked")]
    PatRevoked,
    /// A provider key added.
    #[serde(rename = "key.added")]
    KeyAdded,
    /// A provider key renamed.
    #[serde(rename = "key.renamed")]
    KeyRenamed,
    /// A provider key's secret replaced.
    #[serde(rename = "key.rotated")]
    KeyRotated,
    /// A provider key deleted (and its shares with it).
    #[serde(rename = "key.deleted")]
    KeyDeleted,
    /// A share minted.
    #[serde(rename = "share.minted")]
    ShareMinted,
    /// A share's name or limits changed.
    #[serde(rename = "share.updated")]
    ShareUpdated,
    /// A share revoked.
    #[serde(rename = "share.revoked")]
    ShareRevoked,
    /// A share's token replaced.
    #[serde(rename = "share.regenerated")]
    ShareRegenerated,
    /// A team created.
    #[serde(rename = "team.created")]
    TeamCreated,
    /// A team renamed.
    #[serde(rename = "team.renamed")]
    TeamRenamed,
    /// A team deleted with its keys and shares (recorded in the deleting owner's chain).
    #[serde(rename = "team.deleted")]
    TeamDeleted,
    /// Someone invited to a team.
    #[serde(rename = "team.member_invited")]
    MemberInvited,
    /// A pending invitation withdrawn.
    #[serde(rename = "team.invite_cancelled")]
    InviteCancelled,
    /// An invitation accepted: a new member.
    #[serde(rename = "team.member_joined")]
    MemberJoined,
    /// A member removed by an admin or the owner.
    #[serde(rename = "team.member_removed")]
    MemberRemoved,
    /// A member left the team.
    #[serde(rename = "team.member_left")]
    MemberLeft,
    /// A member's role changed.
    #[serde(rename = "team.role_changed")]
    RoleChanged,
    /// A team handed to another member.
    #[serde(rename = "team.ownership_transferred")]
    OwnershipTransferred,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 26] = [
        Action::Login,
        Action::LoginFailed,
        Action::Logout,
        Action::LogoutAll,
        Action::PasswordChanged,
        Action::RefreshReused,
        Action::PatCreated,
        Action::PatRevoked,
        Action::KeyAdded,
        Action::KeyRenamed,
        Action::KeyRotated,
        Action::KeyDeleted,
        Action::ShareMinted,
        Action::ShareUpdated,
        Action::ShareRevoked,
        Action::ShareRegenerated,
        Action::TeamCreated,
        Action::TeamRenamed,
        Action::TeamDeleted,
        Action::MemberInvited,
        Action::InviteCancelled,
        Action::MemberJoined,
        Action::MemberRemoved,
        Action::MemberLeft,
        Action::RoleChanged,
        Action::OwnershipTransferred,
    ];

    /// The stored name (`key.rotated`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "auth.login",
            Action::LoginFailed => "auth.login_failed",
            Action::Logout => "auth.logout",
            Action::LogoutAll => "auth.logout_all",
            Action::PasswordChanged => "auth.password_changed",
            Action::RefreshReused => "auth.refresh_reused",
            Action::PatCreated => "pat.created",
            Action::PatRevoked => "pat.revoked",
            Action::KeyAdded => "key.added",
            Action::KeyRenamed => "key.renamed",
            Action::KeyRotated => "key.rotated",
            Action::KeyDeleted => "key.deleted",
            Action::ShareMinted => "share.minted",
            Action::ShareUpdated => "share.updated",
            Action::ShareRevoked => "share.revoked",
            Action::ShareRegenerated => "share.regenerated",
            Action::TeamCreated => "team.created",
            Action::TeamRenamed => "team.renamed",
            Action::TeamDeleted => "team.deleted",
            Action::MemberInvited => "team.member_invited",
            Action::InviteCancelled => "team.invite_cancelled",
            Action::MemberJoined => "team.member_joined",
            Action::MemberRemoved => "team.member_removed",
            Action::MemberLeft => "team.member_left",
            Action::RoleChanged => "team.role_changed",
            Action::OwnershipTransferred => "team.ownership_transferred",
        }
    }

    /// The action with this stored name.
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// The hashed content of a row (everything but its own hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The chain's owner.
    pub owner: &'a str,
    /// The row's place in the owner's chain, from 1.
    pub seq: i64,
    /// The row's id.
    pub id: &'a str,
    /// Who acted (`None`: the system, or an anonymous caller).
    pub actor: Option<&'a str>,
    /// What was done.
    pub action: &'a str,
    /// The kind of resource acted on (`key`, `share`, `pat`, `session`, `user`).
    pub resource_type: Option<&'a str>,
    /// Its id.
    pub resource_id: Option<&'a str>,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The client's address.
    pub client_ip: Option<&'a str>,
    /// The client's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// Further facts as JSON (never a secret).
    pub details: &'a str,
}

/// The hash of a row, chained to the previous row's hash.
pub fn chain_hash(prev_hash: &str, f: &Fields<'_>) -> String {
    let mut h = Sha256::new();
    let mut put = |field: Option<&str>| match field {
        None => h.update([0u8]),
        Some(text) => {
            h.update([1u8]);
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
    };
    put(Some(prev_hash));
    put(Some(f.owner));
    put(Some(&f.seq.to_string()));
    put(Some(f.id));
    put(f.actor);
    put(Some(f.action));
    put(f.resource_type);
    put(f.resource_id);
    put(Some(&f.at_ms.to_string()));
    put(f.client_ip);
    put(f.user_agent);
    put(Some(f.details));
    hex(&h.finalize())
}

/// Where a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Break {
    /// The first row whose position or hash is not what the chain says.
    pub seq: i64,
    /// Why: `gap` (a row is missing), `hash` (a row was changed), `link` (a row does not follow
    /// the one before it), `truncated` (the newest rows are gone: the chain ends before the head
    /// anchored outside the database).
    pub reason: &'static str,
}

/// A stored row as the verifier sees it: its fields, the hash it links to, the hash it has.
pub struct Stored<'a> {
    /// The hashed content.
    pub fields: Fields<'a>,
    /// The previous row's hash, as stored.
    pub prev_hash: &'a str,
    /// This row's hash, as stored.
    pub hash: &'a str,
}

/// Checks consecutive rows of one chain (ascending `seq`, starting anywhere): each must follow
/// the one before, link to its hash and carry the hash of its own content. The first row's link
/// is taken as given unless it is row 1, which must link to [`GENESIS`].
pub fn verify(rows: &[Stored<'_>]) -> Result<(), Break> {
    let mut expected: Option<(i64, &str)> = None;
    for row in rows {
        let seq = row.fields.seq;
        match expected {
            Some((next, _)) if seq != next => {
                return Err(Break {
                    seq: next,
                    reason: "gap",
                });
            }
            Some((_, prev)) if row.prev_hash != prev => {
                return Err(Break {
                    seq,
                    reason: "link",
                });
            }
            None if seq == 1 && row.prev_hash != GENESIS => {
                return Err(Break {
                    seq,
                    reason: "link",
                });
            }
            _ => {}
        }
        if chain_hash(row.prev_hash, &row.fields) != row.hash {
            return Err(Break {
                seq,
                reason: "hash",
            });
        }
        expected = Some((seq + 1, row.hash));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: i64, action: &'static str) -> Fields<'static> {
        Fields {
            owner: "usr_1",
            seq,
            id: "aud_1",
            actor: Some("usr_1"),
            action,
            resource_type: Some("key"),
            resource_id: Some("key_1"),
            at_ms: 1_800_000_000_000 + seq,
            client_ip: Some("127.0.0.1"),
            user_agent: None,
            details: "{}",
        }
    }

    fn chain(n: i64) -> Vec<(Fields<'static>, String, String)> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let f = fields(seq, "key.added");
                let hash = chain_hash(&prev, &f);
                let row = (f, prev.clone(), hash.clone());
                prev = hash;
                row
            })
            .collect()
    }

    fn stored<'a>(rows: &'a [(Fields<'static>, String, String)]) -> Vec<Stored<'a>> {
        rows.iter()
            .map(|(f, prev, hash)| Stored {
                fields: f.clone(),
                prev_hash: prev,
                hash,
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_from_anywhere() {
        let rows = chain(5);
        assert_eq!(verify(&stored(&rows)), Ok(()));
        assert_eq!(verify(&stored(&rows[2..])), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn edits_deletions_and_forged_rows_are_found() {
        let mut rows = chain(5);
        rows[2].0.action = "key.deleted";
        assert_eq!(
            verify(&stored(&rows)),
            Err(Break {
                seq: 3,
                reason: "hash"
            })
        );

        let mut rows = chain(5);
        rows.remove(3);
        assert_eq!(
            verify(&stored(&rows)),
            Err(Break {
                seq: 4,
                reason: "gap"
            })
        );

        // A row rewritten with a fresh, self-consistent hash still breaks the next link.
        let mut rows = chain(5);
        rows[1].0.user_agent = Some("forged");
        rows[1].2 = chain_hash(&rows[1].1, &rows[1].0);
        assert_eq!(
            verify(&stored(&rows)),
            Err(Break {
                seq: 3,
                reason: "link"
            })
        );

        let mut rows = chain(2);
        rows[0].1 = "f".repeat(64);
        rows[0].2 = chain_hash(&rows[0].1, &rows[0].0);
        assert_eq!(
            verify(&stored(&rows)),
            Err(Break {
                seq: 1,
                reason: "link"
            })
        );
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut a = fields(1, "x");
        a.user_agent = None;
        let mut b = a.clone();
        b.user_agent = Some("");
        assert_ne!(chain_hash(GENESIS, &a), chain_hash(GENESIS, &b));
    }

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(
                serde_json::to_value(action).ok(),
                Some(serde_json::Value::from(action.as_str()))
            );
        }
    }
}
