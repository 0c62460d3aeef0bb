-- The audit log: one row per sensitive action, chained per owner by SHA-256 (see
-- shared/core/src/audit.rs). Rows are only ever inserted. The PostgreSQL
-- original is ../postgres/0004_audit_log.sql.

CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    actor_id      TEXT,
    action        TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    at            INTEGER NOT NULL,
    client_ip     TEXT,
    user_agent    TEXT,
    details       TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (owner_id, seq)
);
CREATE INDEX audit_log_owner_at ON audit_log (owner_id, at);
