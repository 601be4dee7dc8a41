-- People who log in. Staff have no tenant; `email_scope` is the tenant id or 'platform', so an
-- e-mail is unique per scope (a NULL tenant would defeat a unique index).
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT REFERENCES tenants (id),
    email_scope TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP
);
CREATE UNIQUE INDEX users_email ON users (email_scope, email);
CREATE INDEX users_tenant ON users (tenant_id, id);

-- A tenant's machine clients. Only a SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    scopes TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    last_used_at TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_secret ON api_keys (secret_hash);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

-- Client credentials of subprocessors (client id + secret, exchanged for a token).
CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    subprocessor_id TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX clients_subprocessor ON clients (subprocessor_id, id);

-- The platform's own secrets (token-signing and checkpoint-signing keys): each sealed under a
-- random key that is itself wrapped by the KEK, like tenant keys.
CREATE TABLE platform_keys (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    sealed_secret BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP
);
CREATE INDEX platform_keys_purpose ON platform_keys (purpose, created_at);
