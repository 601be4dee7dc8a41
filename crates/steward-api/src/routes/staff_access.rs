//! Justified staff access (Access Transparency + Lockbox): staff ask, the tenant decides,
//! grants are time-boxed and revocable, every read under them is in the tenant's log, and the
//! tenant reads that log. Also the tenant's notices.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use steward_core::{Error, Id, Permission};
use steward_staff::{notices, requests, NewAccessRequest, Notice};
use steward_store::pagination::PageRequest;

use crate::auth::{perm, Authorized, AuthorizedAny};
use crate::error::ApiResult;
use crate::request_id;
use crate::routes::keys::tenant_path;
use crate::routes::tenants::ListQuery;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{tid}/access-requests")
            .route(web::post().to(create_request))
            .route(web::get().to(list_requests)),
    )
    .service(
        web::resource("/tenants/{tid}/access-requests/{rid}").route(web::get().to(get_request)),
    )
    .service(
        web::resource("/tenants/{tid}/access-requests/{rid}/approve")
            .route(web::post().to(approve)),
    )
    .service(web::resource("/tenants/{tid}/access-requests/{rid}/deny").route(web::post().to(deny)))
    .service(
        web::resource("/tenants/{tid}/access-requests/{rid}/revoke").route(web::post().to(revoke)),
    )
    .service(
        web::resource("/tenants/{tid}/access-requests/{rid}/break-glass-approve")
            .route(web::post().to(break_glass_approve)),
    )
    .service(web::resource("/tenants/{tid}/staff-access").route(web::get().to(staff_access_log)))
    .service(web::resource("/tenants/{tid}/notices").route(web::get().to(list_notices)))
    .service(
        web::resource("/tenants/{tid}/notices/{nid}/object").route(web::post().to(object_notice)),
    );
}

fn ids(tid: &str, rid: &str) -> Result<(), Error> {
    tenant_path(tid)?;
    if Id::AccessRequest.matches(rid) {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// File a justified, time-boxed request for access to the tenant's data.
#[utoipa::path(post, path = "/v1/tenants/{tid}/access-requests", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id")),
    request_body(content = Object, description = "{justification, ticket, reason, scope: {visitor_ids: […]} | {all: true}, duration_minutes, break_glass}"),
    responses((status = 201, description = "The request"), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:create"])))]
pub async fn create_request(
    auth: Authorized<perm::AccessRequestsCreate>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<NewAccessRequest>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let (p, rid, now) = (
        auth.principal,
        request_id::of(&req),
        state.clock.now().naive_utc(),
    );
    let body = body.into_inner();
    let created = state
        .store
        .write(move |c| requests::create(c, &tid, &p, body, Some(&rid), now))
        .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Requests for the tenant: all of them for its admin, their own for staff.
#[utoipa::path(get, path = "/v1/tenants/{tid}/access-requests", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["access_requests:decide"]), ("bearer" = ["access_requests:create"])))]
pub async fn list_requests(
    auth: AuthorizedAny<perm::AccessRequestsReadAny>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::AccessRequest)?;
    let own = (auth.held == Permission::AccessRequestsCreate).then(|| auth.principal.id.clone());
    let now = state.clock.now().naive_utc();
    let page = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            requests::view_page(requests::list(c, &tid, own.as_deref(), &page)?, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One request.
#[utoipa::path(get, path = "/v1/tenants/{tid}/access-requests/{rid}", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ("rid" = String, Path, description = "Request id")),
    responses((status = 200, description = "The request"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:decide"]), ("bearer" = ["access_requests:create"])))]
pub async fn get_request(
    auth: AuthorizedAny<perm::AccessRequestsReadAny>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, rid) = path.into_inner();
    ids(&tid, &rid)?;
    let own = (auth.held == Permission::AccessRequestsCreate).then(|| auth.principal.id.clone());
    let now = state.clock.now().naive_utc();
    let view = state
        .store
        .read(move |c| {
            let row = requests::get(c, &tid, &rid)?;
            if own.is_some_and(|me| me != row.requester_id) {
                return Err(Error::NotFound);
            }
            steward_staff::AccessRequest::from_row(row, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

fn comment(body: Option<web::Json<Decision>>) -> Option<String> {
    body.and_then(|b| b.into_inner().comment)
}

/// Approve: the grant runs from now for the requested duration.
#[utoipa::path(post, path = "/v1/tenants/{tid}/access-requests/{rid}/approve", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ("rid" = String, Path, description = "Request id")),
    request_body = Decision,
    responses((status = 200, description = "The request"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:decide"])))]
pub async fn approve(
    auth: Authorized<perm::AccessRequestsDecide>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Decision>>,
) -> ApiResult<HttpResponse> {
    let (tid, rid) = path.into_inner();
    ids(&tid, &rid)?;
    let (p, c, now) = (auth.principal, comment(body), state.clock.now().naive_utc());
    let r = state
        .store
        .write(move |conn| requests::approve(conn, &tid, &rid, &p, c, now))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Deny a pending request.
#[utoipa::path(post, path = "/v1/tenants/{tid}/access-requests/{rid}/deny", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ("rid" = String, Path, description = "Request id")),
    request_body = Decision,
    responses((status = 200, description = "The request"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:decide"])))]
pub async fn deny(
    auth: Authorized<perm::AccessRequestsDecide>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Decision>>,
) -> ApiResult<HttpResponse> {
    let (tid, rid) = path.into_inner();
    ids(&tid, &rid)?;
    let (p, c, now) = (auth.principal, comment(body), state.clock.now().naive_utc());
    let r = state
        .store
        .write(move |conn| requests::deny(conn, &tid, &rid, &p, c, now))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Revoke a grant, effective for the very next read.
#[utoipa::path(post, path = "/v1/tenants/{tid}/access-requests/{rid}/revoke", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ("rid" = String, Path, description = "Request id")),
    responses((status = 200, description = "The request"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:decide"])))]
pub async fn revoke(
    auth: Authorized<perm::AccessRequestsDecide>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, rid) = path.into_inner();
    ids(&tid, &rid)?;
    let (p, now) = (auth.principal, state.clock.now().naive_utc());
    let r = state
        .store
        .write(move |conn| requests::revoke(conn, &tid, &rid, &p, now))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Break-glass: a second, different staff member activates the grant; the tenant is told at once.
#[utoipa::path(post, path = "/v1/tenants/{tid}/access-requests/{rid}/break-glass-approve", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), ("rid" = String, Path, description = "Request id")),
    request_body = Decision,
    responses((status = 200, description = "The request"), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = ["access_requests:break_glass"])))]
pub async fn break_glass_approve(
    auth: Authorized<perm::AccessRequestsApproveBreakGlass>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Decision>>,
) -> ApiResult<HttpResponse> {
    let (tid, rid) = path.into_inner();
    ids(&tid, &rid)?;
    let (p, c, now) = (auth.principal, comment(body), state.clock.now().naive_utc());
    let r = state
        .store
        .write(move |conn| requests::approve_break_glass(conn, &tid, &rid, &p, c, now))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Every staff access to the tenant's data: who, role, when, what, justification, ticket,
/// grant, approver.
#[utoipa::path(get, path = "/v1/tenants/{tid}/staff-access", tag = "staff_access",
    params(("tid" = String, Path, description = "Tenant id"), LogQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["staff_access:read"])))]
pub async fn staff_access_log(
    _auth: Authorized<perm::StaffAccessLogRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<LogQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| Error::invalid("invalid_cursor", "cursor is not valid"))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    let (items, next) = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            requests::staff_access_log(c, &tid, after, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "next_cursor": next.map(|s| s.to_string()),
    })))
}

/// The tenant's notices: staff access requests, break-glass activations, new subprocessors.
#[utoipa::path(get, path = "/v1/tenants/{tid}/notices", tag = "notices",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["notices:read"])))]
pub async fn list_notices(
    _auth: Authorized<perm::NoticesRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Notice)?;
    let page = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            notices::list(c, &tid, &page)
        })
        .await?
        .map(Notice::from);
    Ok(HttpResponse::Ok().json(page))
}

/// Object to what a notice announces (a new subprocessor), within its window.
#[utoipa::path(post, path = "/v1/tenants/{tid}/notices/{nid}/object", tag = "notices",
    params(("tid" = String, Path, description = "Tenant id"), ("nid" = String, Path, description = "Notice id")),
    responses((status = 200, description = "The notice"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor_authorizations:manage"])))]
pub async fn object_notice(
    auth: Authorized<perm::SubprocessorAuthorizationsManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, nid) = path.into_inner();
    tenant_path(&tid)?;
    let now = state.clock.now().naive_utc();
    let event = crate::audit_trail::event(&auth.principal, &req, "notice.object", "notice", &nid);
    let p = auth.principal;
    let row = state
        .store
        .write(move |c| {
            let row = notices::object(c, &tid, &nid, &p, now)?;
            steward_audit::append(c, &tid, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Notice::from(row)))
}
