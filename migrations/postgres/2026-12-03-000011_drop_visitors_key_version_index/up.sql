-- Only re-encryption asked for visitors by key version, and it walks a tenant's visitors in
-- primary-key order anyway: each step reads the next 500 by id and skips those already under
-- the current version. The index on (tenant_id, key_version) served no query, cost a B-tree
-- insert per created or imported visitor and an index update per re-sealed one, and on
-- PostgreSQL it misled the planner: without fresh statistics the re-seal UPDATE, which names
-- the key version it read, used this index instead of the primary key and scanned every old
-- row of the tenant for each row it wrote (140–155 rows/s on a 30,000-visitor tenant).
DROP INDEX visitors_key_version;
