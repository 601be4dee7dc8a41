//! Tables this crate owns (migration `2026-11-21-000006_transfers`); portable types only.

diesel::table! {
    subprocessors (id) {
        id -> Text,
        name -> Text,
        legal_name -> Text,
        country -> Text,
        contact -> Text,
        transfer_mechanism -> Text,
        dpa_reference -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    subprocessor_authorizations (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        subprocessor_id -> Text,
        purposes -> Text,
        fields -> Text,
        require_consent -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
    }
}

diesel::table! {
    transfers (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        subprocessor_id -> Text,
        authorization_id -> Text,
        purpose -> Text,
        fields -> Text,
        visitor_ids -> Text,
        record_count -> BigInt,
        request_id -> Nullable<Text>,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    transfer_recipients (tenant_id, visitor_id, subprocessor_id) {
        tenant_id -> Text,
        visitor_id -> Text,
        subprocessor_id -> Text,
        fields -> Text,
        first_at -> Timestamp,
        last_at -> Timestamp,
    }
}

diesel::table! {
    erasure_notices (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        subprocessor_id -> Text,
        visitor_id -> Text,
        reason -> Text,
        purpose -> Nullable<Text>,
        created_at -> Timestamp,
        due_at -> Timestamp,
        acknowledged_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    subprocessors,
    subprocessor_authorizations,
    transfers,
    transfer_recipients,
    erasure_notices,
);
