-- Every limit a share can have, and the cost of each request (integer micro-USD; NULL when the
-- model has no known price). The PostgreSQL original is ../postgres/0002_limits_and_cost.sql.

ALTER TABLE shares ADD COLUMN tokens_per_minute INTEGER;
ALTER TABLE shares ADD COLUMN tokens_per_day INTEGER;
ALTER TABLE shares ADD COLUMN budget_micros INTEGER;
ALTER TABLE shares ADD COLUMN budget_period TEXT;
ALTER TABLE shares ADD COLUMN max_uses INTEGER;
ALTER TABLE shares ADD COLUMN reserve_tokens INTEGER;
ALTER TABLE shares ADD COLUMN allowed_endpoints TEXT NOT NULL DEFAULT '[]';
ALTER TABLE shares ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '[]';

ALTER TABLE usage_events ADD COLUMN cost_micros INTEGER;
