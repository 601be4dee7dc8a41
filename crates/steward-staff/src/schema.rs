//! Tables this crate owns (migration `2026-11-21-000005_staff`); portable types only.

diesel::table! {
    notices (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        kind -> Text,
        subject_id -> Nullable<Text>,
        message -> Text,
        flagged -> Bool,
        created_at -> Timestamp,
        respond_by -> Nullable<Timestamp>,
        objected_at -> Nullable<Timestamp>,
        objected_by -> Nullable<Text>,
    }
}

diesel::table! {
    access_requests (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        requester_id -> Text,
        requester_role -> Text,
        justification_code -> Text,
        ticket -> Text,
        reason -> Text,
        scope_all -> Bool,
        scope_visitor_ids -> Text,
        duration_minutes -> BigInt,
        break_glass -> Bool,
        status -> Text,
        created_at -> Timestamp,
        respond_by -> Timestamp,
        decided_by -> Nullable<Text>,
        decided_role -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        decision_comment -> Nullable<Text>,
        grant_starts_at -> Nullable<Timestamp>,
        grant_ends_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(notices, access_requests);
