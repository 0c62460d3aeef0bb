-- Teams: keys and shares can belong to a team instead of a user. A team's owner is the one
-- `teams.owner_id` (a compare-and-swap on that column transfers it, so there is never a second
-- owner); every other member holds a role in `team_members`. Invitations are stored hashed and
-- expire. The SQLite twin is ../sqlite/0005_teams.sql.

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    owner_id   TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The owner has a row here too (role 'admin', which their ownership outranks), so that
-- membership is one lookup and a transfer leaves the former owner an admin.
CREATE TABLE team_members (
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE team_invites (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT
);
CREATE INDEX team_invites_team ON team_invites (team_id);

-- A team's key or share: `user_id` is then the member who created it.
ALTER TABLE api_keys ADD COLUMN team_id TEXT REFERENCES teams (id) ON DELETE CASCADE;
ALTER TABLE shares ADD COLUMN team_id TEXT REFERENCES teams (id) ON DELETE CASCADE;
ALTER TABLE usage_events ADD COLUMN team_id TEXT;
CREATE INDEX api_keys_team ON api_keys (team_id);
CREATE INDEX shares_team ON shares (team_id);
CREATE INDEX usage_events_team ON usage_events (team_id, started_at);
