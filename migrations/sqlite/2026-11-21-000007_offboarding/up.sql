-- The end of a tenant's contract: started, exported (returned), then confirmed (deleted).
CREATE TABLE offboardings (
    tenant_id TEXT PRIMARY KEY NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    exported_at TIMESTAMP,
    exported_records BIGINT,
    confirmed_by TEXT,
    confirmed_at TIMESTAMP,
    certificate_hash TEXT
);
