//! Every route, wired in one place. One handler per file-level function; each handler states
//! the permission it needs on its first line.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod extract;
pub mod health;
pub mod keys;
pub mod offboarding;
pub mod retention;
pub mod staff_access;
pub mod tenants;
pub mod transfers;
pub mod users;
pub mod visitors;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    cfg.service(
        // actix-web tries routes in registration order, matching each dynamic pattern with a
        // regex: the hot paths (visitor reads and writes, subprocessor pulls) come first.
        web::scope("/v1")
            .configure(visitors::configure)
            .configure(transfers::configure)
            .configure(auth::configure)
            .configure(audit::configure)
            .configure(users::configure)
            .configure(api_keys::configure)
            .configure(tenants::configure)
            .configure(keys::configure)
            .configure(retention::configure)
            .configure(offboarding::configure)
            .configure(staff_access::configure),
    );
}
