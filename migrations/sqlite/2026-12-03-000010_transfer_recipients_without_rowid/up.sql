-- SQLite only: `transfer_recipients` becomes a WITHOUT ROWID table, stored as the B-tree of
-- its primary key. As a rowid table every recipient was two B-tree entries (the row, keyed by
-- a hidden rowid, and the primary key's index pointing at it), and a pull writes or updates
-- one recipient per pulled visitor inside the single writer. Same columns and key as before,
-- and as the PostgreSQL migration (which has nothing to change: its tables are heaps).
CREATE TABLE transfer_recipients_clustered (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    visitor_id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    fields TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, visitor_id, subprocessor_id)
) WITHOUT ROWID;
INSERT INTO transfer_recipients_clustered (tenant_id, visitor_id, subprocessor_id, fields, first_at, last_at)
    SELECT tenant_id, visitor_id, subprocessor_id, fields, first_at, last_at FROM transfer_recipients;
DROP TABLE transfer_recipients;
ALTER TABLE transfer_recipients_clustered RENAME TO transfer_recipients;
