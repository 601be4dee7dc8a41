//! The OpenAPI document. Each operation's `security` names the permission it needs (as a
//! bearer scope); the route × role test reads it from here.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{health, keys, tenants};

#[derive(OpenApi)]
#[openapi(
    info(title = "Steward", description = "Multi-tenant data-processor platform."),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
        tenants::create_tenant,
        tenants::list_tenants,
        tenants::get_tenant,
        keys::rotate_keys,
        keys::get_job,
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
