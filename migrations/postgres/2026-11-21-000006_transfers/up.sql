-- Onward transfers (DESIGN.md "Actors and roles": subprocessor clients pull what the tenant
-- authorized). Nothing here holds a visitor's data: ids, field NAMES, purposes and times only.

-- The platform's registry of subprocessors (not tenant-owned). `contact` is the company's
-- e-mail or URL; `transfer_mechanism` is adequacy | scc | bcr | none_needed; `status` is
-- active | retired.
CREATE TABLE subprocessors (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    legal_name TEXT NOT NULL,
    country TEXT NOT NULL,
    contact TEXT NOT NULL,
    transfer_mechanism TEXT NOT NULL,
    dpa_reference TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- What a tenant allowed a subprocessor to pull: purposes and field names (comma-separated,
-- sorted), optionally only visitors who did not withdraw `require_consent`, until `expires_at`
-- or `revoked_at`.
CREATE TABLE subprocessor_authorizations (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    purposes TEXT NOT NULL,
    fields TEXT NOT NULL,
    require_consent TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX subprocessor_authorizations_subprocessor ON subprocessor_authorizations (tenant_id, subprocessor_id);

-- The onward-transfer ledger: one row per pull, written before the data is sent.
-- `visitor_ids` is the comma-separated list of the (at most 1,000) visitors of the pull.
CREATE TABLE transfers (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    authorization_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    visitor_ids TEXT NOT NULL,
    record_count BIGINT NOT NULL,
    request_id TEXT,
    occurred_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, authorization_id) REFERENCES subprocessor_authorizations (tenant_id, id)
);
CREATE INDEX transfers_subprocessor ON transfers (tenant_id, subprocessor_id, occurred_at);

-- Per visitor, who received its data: the union of field names ever sent and when. Kept after
-- erasure (it holds no PII) as the record of who must be told.
CREATE TABLE transfer_recipients (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    visitor_id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    fields TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, visitor_id, subprocessor_id)
);

-- What a subprocessor must act on: a visitor it received was erased (`erasure`), or withdrew
-- the consent its authorization requires (`consent_withdrawn`, with the purpose). The
-- subprocessor acknowledges each; `due_at` is when an unacknowledged notice becomes overdue.
CREATE TABLE erasure_notices (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    visitor_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    purpose TEXT,
    created_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    acknowledged_at TIMESTAMP,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX erasure_notices_subprocessor ON erasure_notices (subprocessor_id, acknowledged_at);
CREATE INDEX erasure_notices_visitor ON erasure_notices (tenant_id, visitor_id);
