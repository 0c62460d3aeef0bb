//! The key ring's fingerprints in the database: every process checks that it holds the same key
//! under each version as the others do, before it seals or opens anything.

use feen_core::crypto::keyring::KeyRing;
use feen_core::ports::{Db, DbError};

/// Why a key ring may not be used with this database.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRingCheck {
    /// A version the database knows holds a different key here.
    Mismatch(u32),
    /// The database could not be asked.
    Db(String),
}

impl std::fmt::Display for KeyRingCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyRingCheck::Mismatch(version) => write!(
                f,
                "FEEN_KEYRING version {version} is not the key this database's other processes use \
                 under that version (its fingerprint differs): start every process with the same key ring"
            ),
            KeyRingCheck::Db(e) => write!(f, "checking the key ring against the database: {e}"),
        }
    }
}

impl From<DbError> for KeyRingCheck {
    fn from(e: DbError) -> Self {
        KeyRingCheck::Db(e.to_string())
    }
}

/// Records the fingerprint of each of the ring's versions the database does not know yet, and
/// checks the others against what it knows. Safe to run by many processes at once: the first to
/// record a version wins, and every process then compares against that.
pub async fn check(db: &dyn Db, ring: &KeyRing, now: i64) -> Result<(), KeyRingCheck> {
    for (version, fingerprint) in ring.fingerprints() {
        db.execute(
            "INSERT INTO keyring_versions (version, fingerprint, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (version) DO NOTHING",
            &[
                i64::from(version).into(),
                fingerprint.as_str().into(),
                now.into(),
            ],
        )
        .await?;
        let rows = db
            .query(
                "SELECT fingerprint FROM keyring_versions WHERE version = $1",
                &[i64::from(version).into()],
            )
            .await?;
        let stored = rows.first().map(|r| r.text(0)).transpose()?;
        if stored.as_deref() != Some(fingerprint.as_str()) {
            return Err(KeyRingCheck::Mismatch(version));
        }
    }
    Ok(())
}
