-- A key's "last used" is read from what its shares recorded: the newest forwarded request among
-- the raw events, or (once those are past retention) the newest hour rolled up with requests.
-- These indexes make both a short backward scan. The PostgreSQL twin is ../postgres/0008_key_last_used.sql.

CREATE INDEX usage_events_key ON usage_events (api_key_id, started_at);
CREATE INDEX usage_rollups_key ON usage_rollups (api_key_id, period, bucket_start);
