//! Tables this crate owns.

diesel::table! {
    visitors (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        external_ref -> Nullable<Text>,
        status -> Text,
        legal_hold -> Bool,
        legal_hold_reason -> Nullable<Text>,
        key_version -> BigInt,
        name_sealed -> Nullable<Binary>,
        email_sealed -> Nullable<Binary>,
        phone_sealed -> Nullable<Binary>,
        address_sealed -> Nullable<Binary>,
        attributes_sealed -> Nullable<Binary>,
        email_index -> Nullable<Binary>,
        phone_index -> Nullable<Binary>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_activity_at -> Timestamp,
        erased_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consents (tenant_id, visitor_id, purpose, seq) {
        tenant_id -> Text,
        visitor_id -> Text,
        purpose -> Text,
        seq -> BigInt,
        status -> Text,
        source -> Text,
        recorded_by -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, principal_id, idem_key) {
        tenant_id -> Text,
        principal_id -> Text,
        idem_key -> Text,
        fingerprint -> Binary,
        resource_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(visitors, consents, idempotency_keys);

diesel::table! {
    offboardings (tenant_id) {
        tenant_id -> Text,
        id -> Text,
        started_by -> Text,
        started_at -> Timestamp,
        exported_at -> Nullable<Timestamp>,
        exported_records -> Nullable<BigInt>,
        confirmed_by -> Nullable<Text>,
        confirmed_at -> Nullable<Timestamp>,
        certificate_hash -> Nullable<Text>,
    }
}
