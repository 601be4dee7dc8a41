//! The diesel schema of the audit tables (migration `2026-11-21-000003_audit`). Kept here, not
//! in steward-store, so the audit log owns its tables; portable types only.

diesel::table! {
    audit_events (chain_id, seq) {
        chain_id -> Text,
        seq -> BigInt,
        id -> Text,
        prev_hash -> Binary,
        hash -> Binary,
        occurred_at -> Timestamp,
        actor_kind -> Text,
        actor_id -> Text,
        actor_role -> Text,
        action -> Text,
        target_kind -> Text,
        target_id -> Nullable<Text>,
        fields -> Text,
        purpose -> Nullable<Text>,
        justification -> Nullable<Text>,
        grant_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        outcome -> Text,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    audit_heads (chain_id) {
        chain_id -> Text,
        seq -> BigInt,
        hash -> Binary,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_checkpoints (chain_id, seq) {
        chain_id -> Text,
        seq -> BigInt,
        head_hash -> Binary,
        signature -> Binary,
        key_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    audit_heads,
    audit_checkpoints,
    audit_target_runs,
    audit_target_entries
);

diesel::table! {
    /// Sorted runs of the target index (see `target_index`): which events `(run_start, run_end]`
    /// each covers.
    audit_target_runs (chain_id, run_end) {
        chain_id -> Text,
        run_end -> BigInt,
        run_start -> BigInt,
    }
}

diesel::table! {
    /// One entry per indexed event with a target, clustered by run, then target.
    audit_target_entries (chain_id, run_end, target_id, seq) {
        chain_id -> Text,
        run_end -> BigInt,
        target_id -> Text,
        seq -> BigInt,
    }
}
