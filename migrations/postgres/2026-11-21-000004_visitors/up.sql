-- Visitors: each PII field sealed on its own (AES-256-GCM, AAD naming tenant, record and
-- field) so a reader can open only the fields it needs. Blind indexes (HMAC under the tenant's
-- index key) make e-mail and phone searchable without storing them. An erased visitor keeps
-- only its id, status and erased_at.
CREATE TABLE visitors (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    external_ref TEXT,
    status TEXT NOT NULL,
    legal_hold BOOLEAN NOT NULL,
    legal_hold_reason TEXT,
    key_version BIGINT NOT NULL,
    name_sealed BYTEA,
    email_sealed BYTEA,
    phone_sealed BYTEA,
    address_sealed BYTEA,
    attributes_sealed BYTEA,
    email_index BYTEA,
    phone_index BYTEA,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_activity_at TIMESTAMP NOT NULL,
    erased_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX visitors_external_ref ON visitors (tenant_id, external_ref);
CREATE INDEX visitors_email ON visitors (tenant_id, email_index);
CREATE INDEX visitors_phone ON visitors (tenant_id, phone_index);
CREATE INDEX visitors_activity ON visitors (tenant_id, last_activity_at);
CREATE INDEX visitors_key_version ON visitors (tenant_id, key_version);

-- Consent history, append-only: the current state of a purpose is its highest seq.
CREATE TABLE consents (
    tenant_id TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, visitor_id, purpose, seq)
);

-- Idempotency-Key of visitor creation: the key, a keyed fingerprint of the body (never the
-- body: it is PII) and the visitor it created.
CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, idem_key)
);
