//! The OpenAPI document. Each operation's `security` names the permission it needs (as a
//! bearer scope); the route × role test reads it from here.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    api_keys, audit, auth, health, keys, offboarding, retention, staff_access, tenants, transfers,
    users, visitors,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Steward", description = "Multi-tenant data-processor platform."),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
        auth::login,
        auth::token,
        users::me,
        users::create_staff,
        users::list_staff,
        users::disable_staff,
        users::create_user,
        users::list_users,
        users::disable_user,
        api_keys::create_api_key,
        api_keys::list_api_keys,
        api_keys::revoke_api_key,
        tenants::create_tenant,
        tenants::list_tenants,
        tenants::get_tenant,
        keys::rotate_keys,
        keys::get_job,
        visitors::create_visitor,
        visitors::import_visitors,
        visitors::list_visitors,
        visitors::get_visitor,
        visitors::patch_visitor,
        visitors::erase_visitor,
        visitors::export_visitor,
        visitors::get_consents,
        visitors::put_consent,
        visitors::put_legal_hold,
        retention::put_retention,
        retention::run_retention,
        audit::list_tenant_audit,
        audit::list_platform_audit,
        audit::verify_tenant_audit,
        audit::verify_with_checkpoint,
        audit::list_checkpoints,
        audit::create_checkpoint,
        audit::public_key,
        offboarding::start_offboarding,
        offboarding::get_offboarding,
        offboarding::export_tenant,
        offboarding::confirm_offboarding,
        staff_access::create_request,
        staff_access::list_requests,
        staff_access::get_request,
        staff_access::approve,
        staff_access::deny,
        staff_access::revoke,
        staff_access::break_glass_approve,
        staff_access::staff_access_log,
        staff_access::list_notices,
        staff_access::object_notice,
        transfers::create_subprocessor,
        transfers::list_subprocessors,
        transfers::get_subprocessor,
        transfers::issue_credentials,
        transfers::create_authorization,
        transfers::list_authorizations,
        transfers::revoke_authorization,
        transfers::list_transfers,
        transfers::tenant_erasure_notices,
        transfers::pull_visitors,
        transfers::pull_visitor,
        transfers::my_erasure_notices,
        transfers::ack_erasure_notice,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .build(),
            ),
        );
    }
}
