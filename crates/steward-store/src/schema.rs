//! The diesel schema, hand-kept and portable: Text, BigInt, Binary, Bool, Timestamp only.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        retention_days -> Nullable<BigInt>,
        keys_destroyed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tenant_keys (tenant_id, purpose, version) {
        tenant_id -> Text,
        purpose -> Text,
        version -> BigInt,
        kek_id -> Text,
        wrapped -> Binary,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        destroyed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        tenant_id -> Nullable<Text>,
        kind -> Text,
        status -> Text,
        cursor -> Nullable<Text>,
        done -> BigInt,
        total -> Nullable<BigInt>,
        error_code -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(tenant_keys -> tenants (tenant_id));

diesel::table! {
    platform_keys (id) {
        id -> Text,
        purpose -> Text,
        kek_id -> Text,
        wrapped_key -> Binary,
        sealed_secret -> Binary,
        public_key -> Binary,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(tenants, tenant_keys, jobs, platform_keys);
