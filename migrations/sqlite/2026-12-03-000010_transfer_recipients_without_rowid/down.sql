CREATE TABLE transfer_recipients_rowid (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    visitor_id TEXT NOT NULL,
    subprocessor_id TEXT NOT NULL REFERENCES subprocessors (id),
    fields TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, visitor_id, subprocessor_id)
);
INSERT INTO transfer_recipients_rowid (tenant_id, visitor_id, subprocessor_id, fields, first_at, last_at)
    SELECT tenant_id, visitor_id, subprocessor_id, fields, first_at, last_at FROM transfer_recipients;
DROP TABLE transfer_recipients;
ALTER TABLE transfer_recipients_rowid RENAME TO transfer_recipients;
