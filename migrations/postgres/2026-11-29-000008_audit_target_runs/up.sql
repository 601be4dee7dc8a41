-- The audit target index as sorted runs (crates/steward-audit/src/target_index.rs) instead of
-- a B-tree index on (chain_id, target_id), whose entry for each new event landed on a random
-- page: on SQLite most of what an audited read wrote. Existing events become one run per chain.
CREATE TABLE audit_target_runs (
    chain_id TEXT NOT NULL,
    run_end BIGINT NOT NULL,
    run_start BIGINT NOT NULL,
    PRIMARY KEY (chain_id, run_end)
);

CREATE TABLE audit_target_entries (
    chain_id TEXT NOT NULL,
    run_end BIGINT NOT NULL,
    target_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (chain_id, run_end, target_id, seq)
);

INSERT INTO audit_target_runs (chain_id, run_end, run_start)
SELECT chain_id, seq, 0 FROM audit_heads WHERE seq > 0;

INSERT INTO audit_target_entries (chain_id, run_end, target_id, seq)
SELECT e.chain_id, h.seq, e.target_id, e.seq
FROM audit_events e JOIN audit_heads h ON h.chain_id = e.chain_id
WHERE e.target_id IS NOT NULL AND e.seq <= h.seq AND h.seq > 0;

DROP INDEX audit_events_target;
