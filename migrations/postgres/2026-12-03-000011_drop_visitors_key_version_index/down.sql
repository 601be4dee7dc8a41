CREATE INDEX visitors_key_version ON visitors (tenant_id, key_version);
