CREATE INDEX audit_events_target ON audit_events (chain_id, target_id);
DROP TABLE audit_target_entries;
DROP TABLE audit_target_runs;
