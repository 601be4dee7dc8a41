-- The blind indexes of e-mail and phone move out of the visitors table into one of their own.
-- A keyed hash puts each new visitor's entry on a random leaf of an index as large as the
-- tenant, and on SQLite, whose WAL logs whole pages, that was 1.2 pages of 4 KiB per imported
-- visitor for the e-mail index alone: three quarters of an import's WAL (BENCHMARKS.md,
-- "Session 14"). On SQLite new entries are appended to blind_index_pending and merged into
-- blind_index_entries a key range at a time, so a leaf takes many entries per write
-- (steward-visitors, blind_index.rs). The visitors row keeps its own blind values: a lookup
-- checks the row, and erasure and rectification know which entries to delete.
CREATE TABLE blind_index_entries (
    tenant_id TEXT NOT NULL,
    field TEXT NOT NULL,
    blind BYTEA NOT NULL,
    visitor_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, field, blind, visitor_id)
);

-- Entries not merged yet, in the order they were written (seq is assigned by the server).
-- Indexed by visitor so erasure and rectification find a visitor's pending entries; visitor
-- ids are ULIDs, so that index grows at its right edge.
CREATE TABLE blind_index_pending (
    seq BIGINT NOT NULL PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    field TEXT NOT NULL,
    blind BYTEA NOT NULL,
    visitor_id TEXT NOT NULL
);
CREATE INDEX blind_index_pending_visitor ON blind_index_pending (tenant_id, visitor_id);

INSERT INTO blind_index_entries (tenant_id, field, blind, visitor_id)
    SELECT tenant_id, 'email', email_index, id FROM visitors WHERE email_index IS NOT NULL;
INSERT INTO blind_index_entries (tenant_id, field, blind, visitor_id)
    SELECT tenant_id, 'phone', phone_index, id FROM visitors WHERE phone_index IS NOT NULL;

DROP INDEX visitors_email;
DROP INDEX visitors_phone;
