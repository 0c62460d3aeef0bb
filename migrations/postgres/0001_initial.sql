-- Feen's initial schema (PostgreSQL). Times are BIGINT milliseconds since the Unix epoch; ids
-- are prefixed ULIDs; secrets are stored only sealed (provider keys) or hashed (tokens).
-- The SQLite twin in ../sqlite/0001_initial.sql must describe the same tables and columns.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- One row per refresh token; a login starts a family, each refresh adds a row to it.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX sessions_family ON sessions (family_id);

CREATE TABLE personal_access_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX personal_access_tokens_user ON personal_access_tokens (user_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    provider      TEXT NOT NULL,
    base_url      TEXT,
    sealed_secret TEXT NOT NULL,
    key_version   BIGINT NOT NULL,
    hint          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE shares (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    token_hash     TEXT NOT NULL UNIQUE,
    token_hint     TEXT NOT NULL,
    rate_limit     BIGINT,
    daily_limit    BIGINT,
    expires_at     BIGINT,
    allowed_models TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX shares_user ON shares (user_id);
CREATE INDEX shares_api_key ON shares (api_key_id);

-- Exactly one row per proxied request: the request id makes writes idempotent.
CREATE TABLE usage_events (
    request_id    TEXT PRIMARY KEY,
    share_id      TEXT NOT NULL,
    api_key_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT,
    endpoint      TEXT NOT NULL,
    status        BIGINT NOT NULL,
    streamed      BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    outcome       TEXT NOT NULL
);
CREATE INDEX usage_events_share ON usage_events (share_id, started_at);
CREATE INDEX usage_events_user ON usage_events (user_id, started_at);
