-- Staff access to tenant data (DESIGN.md "Actors and roles"): platform staff have no standing
-- access to visitor PII. A staff member files a justified, time-boxed request; the tenant's
-- admin approves or denies it (or, for break-glass, a second staff member approves); reads
-- under the approved grant are audited in the tenant's chain with the grant id.

-- What the platform tells a tenant: a staff access request, a break-glass activation, later a
-- new subprocessor. `message` is prose built from ids and codes only, never a visitor's data.
-- `respond_by` opens an objection window (subprocessor changes); `objected_*` records the
-- tenant's objection. `flagged` marks what needs the tenant's attention (break-glass).
CREATE TABLE notices (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject_id TEXT,
    message TEXT NOT NULL,
    flagged BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    respond_by TIMESTAMP,
    objected_at TIMESTAMP,
    objected_by TEXT,
    PRIMARY KEY (tenant_id, id)
);

-- A staff member's request for access to one tenant's data, and the grant it becomes once
-- approved. `scope_visitor_ids` is a sorted, comma-separated list of visitor ids ('' when
-- `scope_all`). The request expires unanswered at `respond_by` (created_at + 48 h); the grant
-- runs from `grant_starts_at` to `grant_ends_at` unless revoked first.
CREATE TABLE access_requests (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    requester_id TEXT NOT NULL,
    requester_role TEXT NOT NULL,
    justification_code TEXT NOT NULL,
    ticket TEXT NOT NULL,
    reason TEXT NOT NULL,
    scope_all BOOLEAN NOT NULL,
    scope_visitor_ids TEXT NOT NULL,
    duration_minutes BIGINT NOT NULL,
    break_glass BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    respond_by TIMESTAMP NOT NULL,
    decided_by TEXT,
    decided_role TEXT,
    decided_at TIMESTAMP,
    decision_comment TEXT,
    grant_starts_at TIMESTAMP,
    grant_ends_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX access_requests_status ON access_requests (tenant_id, status);
