-- Every limit a share can have, and the cost of each request (integer micro-USD; NULL when the
-- model has no known price). The SQLite twin is ../sqlite/0002_limits_and_cost.sql.

ALTER TABLE shares ADD COLUMN tokens_per_minute BIGINT;
ALTER TABLE shares ADD COLUMN tokens_per_day BIGINT;
ALTER TABLE shares ADD COLUMN budget_micros BIGINT;
ALTER TABLE shares ADD COLUMN budget_period TEXT;
ALTER TABLE shares ADD COLUMN max_uses BIGINT;
ALTER TABLE shares ADD COLUMN reserve_tokens BIGINT;
ALTER TABLE shares ADD COLUMN allowed_endpoints TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '[]';

ALTER TABLE usage_events ADD COLUMN cost_micros BIGINT;
