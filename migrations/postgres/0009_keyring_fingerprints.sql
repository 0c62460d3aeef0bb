-- The fingerprint of each key-ring version that has sealed (or may seal) this database's provider
-- keys: a MAC of a fixed text under the key, which names the key without revealing it. Every
-- process checks its ring against these at start and refuses to run with a different key under a
-- known version (replicas that disagree would each fail to open what the other sealed). The
-- SQLite twin is ../sqlite/0009_keyring_fingerprints.sql.

CREATE TABLE keyring_versions (
    version BIGINT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
