DROP TABLE jobs;
DROP TABLE tenant_keys;
DROP TABLE tenants;
