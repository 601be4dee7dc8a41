//! Subprocessors and onward transfers: the registry (platform), authorizations (tenant),
//! scoped pulls (subprocessor), the transfer ledger, and erasure notices.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use steward_core::{Error, Id};
use steward_store::pagination::PageRequest;
use steward_transfers::authorizations::{self, Authorization, NewAuthorization};
use steward_transfers::ledger::{self, Transfer, TransferFilter};
use steward_transfers::registry::{self, NewSubprocessor, Subprocessor};
use steward_transfers::{erasure, pull};

use crate::auth::{perm, Authorized};
use crate::bulk;
use crate::error::ApiResult;
use crate::request_id;
use crate::routes::keys::tenant_path;
use crate::routes::tenants::ListQuery;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subprocessors")
            .route(web::post().to(create_subprocessor))
            .route(web::get().to(list_subprocessors)),
    )
    .service(web::resource("/subprocessors/{sid}").route(web::get().to(get_subprocessor)))
    .service(
        web::resource("/subprocessors/{sid}/credentials").route(web::post().to(issue_credentials)),
    )
    .service(
        web::resource("/tenants/{tid}/subprocessor-authorizations")
            .route(web::post().to(create_authorization))
            .route(web::get().to(list_authorizations)),
    )
    .service(
        web::resource("/tenants/{tid}/subprocessor-authorizations/{aid}")
            .route(web::delete().to(revoke_authorization)),
    )
    .service(web::resource("/tenants/{tid}/transfers").route(web::get().to(list_transfers)))
    .service(
        web::resource("/tenants/{tid}/erasure-notices")
            .route(web::get().to(tenant_erasure_notices)),
    )
    .service(
        web::resource("/subprocessor/tenants/{tid}/visitors")
            .wrap(from_fn(bulk::limit))
            .route(web::get().to(pull_visitors)),
    )
    .service(
        web::resource("/subprocessor/tenants/{tid}/visitors/{vid}")
            .route(web::get().to(pull_visitor)),
    )
    .service(
        web::resource("/subprocessor/erasure-notices").route(web::get().to(my_erasure_notices)),
    )
    .service(
        web::resource("/subprocessor/erasure-notices/{nid}/ack")
            .route(web::post().to(ack_erasure_notice)),
    );
}

/// Register a subprocessor; every tenant gets a notice with an objection window.
#[utoipa::path(post, path = "/v1/subprocessors", tag = "subprocessors",
    request_body(content = Object, description = "{name, legal_name, country, contact, transfer_mechanism, dpa_reference}"),
    responses((status = 201, description = "The subprocessor"), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessors:manage"])))]
pub async fn create_subprocessor(
    auth: Authorized<perm::SubprocessorsManage>,
    state: web::Data<AppState>,
    body: web::Json<NewSubprocessor>,
) -> ApiResult<HttpResponse> {
    let (p, now, new) = (
        auth.principal,
        state.clock.now().naive_utc(),
        body.into_inner(),
    );
    let row = state
        .store
        .write(move |c| registry::create(c, &new, &p, now, registry::DEFAULT_OBJECTION_DAYS))
        .await?;
    Ok(HttpResponse::Created().json(Subprocessor::from(row)))
}

/// The subprocessor registry.
#[utoipa::path(get, path = "/v1/subprocessors", tag = "subprocessors", params(ListQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["subprocessors:manage"])))]
pub async fn list_subprocessors(
    _auth: Authorized<perm::SubprocessorsManage>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Subprocessor)?;
    let page = state
        .store
        .read(move |c| registry::list(c, &page))
        .await?
        .map(Subprocessor::from);
    Ok(HttpResponse::Ok().json(page))
}

/// One subprocessor.
#[utoipa::path(get, path = "/v1/subprocessors/{sid}", tag = "subprocessors",
    params(("sid" = String, Path, description = "Subprocessor id")),
    responses((status = 200, description = "The subprocessor"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessors:manage"])))]
pub async fn get_subprocessor(
    _auth: Authorized<perm::SubprocessorsManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let sid = path.into_inner();
    let row = state.store.read(move |c| registry::get(c, &sid)).await?;
    Ok(HttpResponse::Ok().json(Subprocessor::from(row)))
}

/// Issue client credentials for a subprocessor (the secret is shown once).
#[utoipa::path(post, path = "/v1/subprocessors/{sid}/credentials", tag = "subprocessors",
    params(("sid" = String, Path, description = "Subprocessor id")),
    responses((status = 201, description = "{client_id, client_secret}"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessors:manage"])))]
pub async fn issue_credentials(
    auth: Authorized<perm::SubprocessorsManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (sid, p, now) = (
        path.into_inner(),
        auth.principal,
        state.clock.now().naive_utc(),
    );
    let created = state
        .store
        .write(move |c| registry::issue_credentials_audited(c, &sid, &p, now))
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "client_id": created.row.id,
        "subprocessor_id": created.row.subprocessor_id,
        "client_secret": created.secret.expose(),
    })))
}

/// Authorize a subprocessor for purposes and fields.
#[utoipa::path(post, path = "/v1/tenants/{tid}/subprocessor-authorizations", tag = "subprocessors",
    params(("tid" = String, Path, description = "Tenant id")),
    request_body(content = Object, description = "{subprocessor_id, purposes[], fields[], require_consent?, expires_at?}"),
    responses((status = 201, description = "The authorization"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor_authorizations:manage"])))]
pub async fn create_authorization(
    auth: Authorized<perm::SubprocessorAuthorizationsManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<NewAuthorization>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let (p, now, new) = (
        auth.principal,
        state.clock.now().naive_utc(),
        body.into_inner(),
    );
    let row = state
        .store
        .write(move |c| authorizations::create(c, &tid, &new, &p, now))
        .await?;
    Ok(HttpResponse::Created().json(Authorization::from_row(row, now)))
}

/// The tenant's authorizations.
#[utoipa::path(get, path = "/v1/tenants/{tid}/subprocessor-authorizations", tag = "subprocessors",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["subprocessor_authorizations:manage"])))]
pub async fn list_authorizations(
    _auth: Authorized<perm::SubprocessorAuthorizationsManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Authorization)?;
    let now = state.clock.now().naive_utc();
    let page = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            authorizations::list(c, &tid, &page)
        })
        .await?
        .map(|r| Authorization::from_row(r, now));
    Ok(HttpResponse::Ok().json(page))
}

/// Revoke an authorization, effective for the very next pull.
#[utoipa::path(delete, path = "/v1/tenants/{tid}/subprocessor-authorizations/{aid}", tag = "subprocessors",
    params(("tid" = String, Path, description = "Tenant id"), ("aid" = String, Path, description = "Authorization id")),
    responses((status = 200, description = "The authorization"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor_authorizations:manage"])))]
pub async fn revoke_authorization(
    auth: Authorized<perm::SubprocessorAuthorizationsManage>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, aid) = path.into_inner();
    tenant_path(&tid)?;
    let (p, now) = (auth.principal, state.clock.now().naive_utc());
    let row = state
        .store
        .write(move |c| authorizations::revoke(c, &tid, &aid, &p, now))
        .await?;
    Ok(HttpResponse::Ok().json(Authorization::from_row(row, now)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub subprocessor: Option<String>,
    pub visitor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The onward-transfer ledger.
#[utoipa::path(get, path = "/v1/tenants/{tid}/transfers", tag = "subprocessors",
    params(("tid" = String, Path, description = "Tenant id"), LedgerQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["transfers:read"])))]
pub async fn list_transfers(
    _auth: Authorized<perm::TransfersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<LedgerQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Transfer)?;
    let filter = TransferFilter {
        subprocessor_id: q.subprocessor,
        visitor_id: q.visitor,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    let page = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            ledger::list(c, &tid, &filter, &page)
        })
        .await?
        .map(Transfer::from);
    Ok(HttpResponse::Ok().json(page))
}

/// Erasure notices raised for the tenant's subprocessors: acknowledged, pending or overdue.
#[utoipa::path(get, path = "/v1/tenants/{tid}/erasure-notices", tag = "subprocessors",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["transfers:read"])))]
pub async fn tenant_erasure_notices(
    _auth: Authorized<perm::TransfersRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Notice)?;
    let now = state.clock.now().naive_utc();
    let page = state
        .store
        .read(move |c| erasure::list_for_tenant(c, &tid, &page, now))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// The purpose of the pull; an authorization must cover it.
    pub purpose: String,
    pub updated_since: Option<DateTime<Utc>>,
    /// 1–1,000 (default 1,000).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A subprocessor pulls the visitors it is authorized for: only the authorized fields; the
/// pull is recorded in the ledger and the tenant's audit log before the data is sent.
#[utoipa::path(get, path = "/v1/subprocessor/tenants/{tid}/visitors", tag = "subprocessor",
    params(("tid" = String, Path, description = "Tenant id"), PullQuery),
    responses((status = 200, description = "{items, next_cursor, transfer_id}"), (status = 403, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor:pull"])))]
pub async fn pull_visitors(
    auth: Authorized<perm::SubprocessorPull>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PullQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let after = match q.cursor {
        Some(c) if !c.is_empty() => {
            if !Id::Visitor.matches(&c) {
                return Err(Error::invalid("invalid_cursor", "cursor is not valid").into());
            }
            Some(c)
        }
        _ => None,
    };
    let page = pull::pull_page(
        &state.store,
        &state.keys,
        state.clock.as_ref(),
        &auth.principal,
        &tid,
        &q.purpose,
        q.updated_since.map(|t| t.naive_utc()),
        after,
        q.limit.unwrap_or(pull::MAX_PULL_LIMIT),
        Some(request_id::of(&req)),
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PullOneQuery {
    pub purpose: String,
}

/// A subprocessor pulls one visitor by id (same rules as the list).
#[utoipa::path(get, path = "/v1/subprocessor/tenants/{tid}/visitors/{vid}", tag = "subprocessor",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id"), PullOneQuery),
    responses((status = 200, description = "{item, transfer_id}"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor:pull"])))]
pub async fn pull_visitor(
    auth: Authorized<perm::SubprocessorPull>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<PullOneQuery>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    tenant_path(&tid)?;
    if !Id::Visitor.matches(&vid) {
        return Err(Error::NotFound.into());
    }
    let rec = pull::pull_one(
        &state.store,
        &state.keys,
        state.clock.as_ref(),
        &auth.principal,
        &tid,
        &query.purpose,
        &vid,
        Some(request_id::of(&req)),
    )
    .await?;
    Ok(HttpResponse::Ok().json(rec))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NoticeQuery {
    /// Include notices already acknowledged.
    #[serde(default)]
    pub include_acknowledged: bool,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The subprocessor's erasure notices (erasures and consent withdrawals to act on).
#[utoipa::path(get, path = "/v1/subprocessor/erasure-notices", tag = "subprocessor", params(NoticeQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["subprocessor:notices"])))]
pub async fn my_erasure_notices(
    auth: Authorized<perm::SubprocessorNotices>,
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Notice)?;
    let (sid, now) = (auth.principal.id.clone(), state.clock.now().naive_utc());
    let page = state
        .store
        .read(move |c| erasure::list_for_subprocessor(c, &sid, &page, q.include_acknowledged, now))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Acknowledge an erasure notice: the subprocessor deleted its copy.
#[utoipa::path(post, path = "/v1/subprocessor/erasure-notices/{nid}/ack", tag = "subprocessor",
    params(("nid" = String, Path, description = "Notice id")),
    responses((status = 200, description = "The notice"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["subprocessor:notices"])))]
pub async fn ack_erasure_notice(
    auth: Authorized<perm::SubprocessorNotices>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (nid, sid, now) = (
        path.into_inner(),
        auth.principal.id.clone(),
        state.clock.now().naive_utc(),
    );
    let n = state
        .store
        .write(move |c| erasure::ack(c, &sid, &nid, now))
        .await?;
    Ok(HttpResponse::Ok().json(n))
}
