-- Tenants: the controllers. Everything a tenant owns carries tenant_id first in its key.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    retention_days BIGINT,
    keys_destroyed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Per-tenant keys, stored only wrapped under a KEK that never touches the database.
CREATE TABLE tenant_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    purpose TEXT NOT NULL,
    version BIGINT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    destroyed_at TIMESTAMP,
    PRIMARY KEY (tenant_id, purpose, version)
);

-- Background jobs (re-encryption, retention purge): one worker, resumable from `cursor`.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor TEXT,
    done BIGINT NOT NULL,
    total BIGINT,
    error_code TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, created_at);
