-- Usage rolled up per UTC hour and per UTC day, per share and model. The analytics read these
-- for what is older than today and the raw events for the rest; billing reads the days. Rows are
-- recomputed from what they summarise (never incremented), so the aggregation job may run twice
-- or concurrently. `lat_0`..`lat_12` count forwarded requests per latency bucket (bounds in
-- shared/core/src/analytics.rs). The SQLite twin is ../sqlite/0006_usage_rollups.sql.

CREATE TABLE usage_rollups (
    period        TEXT NOT NULL,
    bucket_start  BIGINT NOT NULL,
    share_id      TEXT NOT NULL,
    model         TEXT NOT NULL,
    api_key_id    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    requests      BIGINT NOT NULL,
    errors        BIGINT NOT NULL,
    rate_limited  BIGINT NOT NULL,
    refused       BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_micros   BIGINT NOT NULL,
    unpriced      BIGINT NOT NULL,
    lat_0         BIGINT NOT NULL,
    lat_1         BIGINT NOT NULL,
    lat_2         BIGINT NOT NULL,
    lat_3         BIGINT NOT NULL,
    lat_4         BIGINT NOT NULL,
    lat_5         BIGINT NOT NULL,
    lat_6         BIGINT NOT NULL,
    lat_7         BIGINT NOT NULL,
    lat_8         BIGINT NOT NULL,
    lat_9         BIGINT NOT NULL,
    lat_10        BIGINT NOT NULL,
    lat_11        BIGINT NOT NULL,
    lat_12        BIGINT NOT NULL,
    PRIMARY KEY (period, bucket_start, share_id, model)
);
CREATE INDEX usage_rollups_owner ON usage_rollups (owner_id, period, bucket_start);
CREATE INDEX usage_rollups_share ON usage_rollups (share_id, period, bucket_start);
CREATE INDEX usage_events_started ON usage_events (started_at);

-- Cost per owner, month, key and share, from the daily rollups (the billing rollups).
CREATE TABLE billing_months (
    owner_id    TEXT NOT NULL,
    month       TEXT NOT NULL,
    api_key_id  TEXT NOT NULL,
    share_id    TEXT NOT NULL,
    requests    BIGINT NOT NULL,
    cost_micros BIGINT NOT NULL,
    unpriced    BIGINT NOT NULL,
    PRIMARY KEY (owner_id, month, share_id)
);

-- Progress marks of the background jobs: `usage_rolled_to` (every hour before it is rolled up)
-- and `usage_horizon` (raw events before it were deleted; only rollups remain).
CREATE TABLE job_marks (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
