//! Administrative actions recorded in the audit chains: who created tenants, users and API
//! keys, who rotated keys — in the tenant's chain (which the tenant reads) and, for platform
//! actions, in the platform chain.

use actix_web::HttpRequest;
use steward_audit::{Actor, NewEvent, Target};
use steward_core::Principal;

use crate::request_id;

pub fn event(
    principal: &Principal,
    req: &HttpRequest,
    action: &str,
    target_kind: &str,
    target_id: &str,
) -> NewEvent {
    NewEvent::new(
        action,
        Actor::from_principal(principal),
        Target::record(target_kind, target_id),
    )
    .request_id(request_id::of(req))
}
