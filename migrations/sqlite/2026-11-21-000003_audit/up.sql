-- The audit log (DESIGN.md "Audit"): one hash chain per tenant (chain_id = the tenant id) and
-- one for the platform (chain_id = 'platform'). Rows are only ever inserted; verify recomputes
-- every hash, so an edited, deleted or reordered row is detected.
-- Columns hold ids, names and codes only, never values: `fields` lists field NAMES
-- (comma-separated, sorted, deduplicated, '' for none) and `detail` is a short non-PII note
-- such as a count or a ticket reference.
-- SQLite only: WITHOUT ROWID stores rows in (chain_id, seq) order, so verify's walk and the
-- audit API's pages read one b-tree in order instead of an index plus the table. Same columns
-- as the PostgreSQL migration.
CREATE TABLE audit_events (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id TEXT,
    fields TEXT NOT NULL,
    purpose TEXT,
    justification TEXT,
    grant_id TEXT,
    request_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (chain_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX audit_events_id ON audit_events (id);
CREATE INDEX audit_events_occurred ON audit_events (chain_id, occurred_at);
CREATE INDEX audit_events_target ON audit_events (chain_id, target_id);

-- The current head of each chain. An append locks this row (PostgreSQL: SELECT ... FOR UPDATE)
-- so two server processes on one database never fork a chain; verify compares it with the
-- last event, which catches a deleted tail.
CREATE TABLE audit_heads (
    chain_id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash BLOB NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Ed25519-signed heads: a tenant keeps a copy and can later prove the chain was not truncated
-- or rewritten before it.
CREATE TABLE audit_checkpoints (
    chain_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    head_hash BLOB NOT NULL,
    signature BLOB NOT NULL,
    key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
