CREATE INDEX visitors_email ON visitors (tenant_id, email_index);
CREATE INDEX visitors_phone ON visitors (tenant_id, phone_index);
DROP TABLE blind_index_pending;
DROP TABLE blind_index_entries;
