-- Email notifications go through an outbox: a row per email, written once per event (the
-- unique `dedupe_key`), claimed by one sender at a time (`claimed_until`, a lease), retried with
-- backoff until the mail API accepts it, then marked sent and its body cleared (an invitation's
-- body holds its token). The row's id is the idempotency key the mail API sees. The PostgreSQL
-- original is ../postgres/0007_email_outbox.sql.

CREATE TABLE email_outbox (
    id              TEXT PRIMARY KEY,
    dedupe_key      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    sent_at         INTEGER,
    last_error      TEXT
);
CREATE INDEX email_outbox_due ON email_outbox (sent_at, next_attempt_at);

-- The devices (a hash of the User-Agent) each user has signed in from, to tell a new one.
CREATE TABLE known_devices (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (user_id, device)
);
