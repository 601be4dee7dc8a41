//! Visitors and their rights: create, read, look up, list, rectify, erase, export, consents,
//! legal hold, bulk import.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use steward_core::{Error, Id, Principal};
use steward_store::pagination::PageRequest;
use steward_visitors::service::Created;
use steward_visitors::{Access, VisitorInput, VisitorPatch};

use crate::auth::{perm, Authorized, AuthorizedAny};
use crate::bulk;
use crate::error::ApiResult;
use crate::request_id;
use crate::routes::extract;
use crate::routes::keys::tenant_path;
use crate::state::AppState;

/// Bulk imports may carry up to 1,000 visitors.
const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{tid}/visitors")
            .route(web::post().to(create_visitor))
            .route(web::get().to(list_visitors)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors:batch")
            .app_data(extract::json_config(BATCH_BODY_LIMIT))
            .wrap(from_fn(bulk::limit))
            .route(web::post().to(import_visitors)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors/{vid}")
            .route(web::get().to(get_visitor))
            .route(web::patch().to(patch_visitor))
            .route(web::delete().to(erase_visitor)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors/{vid}/export")
            .wrap(from_fn(bulk::limit))
            .route(web::get().to(export_visitor)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors/{vid}/consents").route(web::get().to(get_consents)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors/{vid}/consents/{purpose}")
            .route(web::put().to(put_consent)),
    )
    .service(
        web::resource("/tenants/{tid}/visitors/{vid}/legal-hold")
            .route(web::put().to(put_legal_hold)),
    );
}

pub fn access(principal: &Principal, req: &HttpRequest) -> Access {
    Access::of(principal, Some(request_id::of(req)))
}

fn ids(tid: &str, vid: &str) -> Result<(), Error> {
    tenant_path(tid)?;
    if Id::Visitor.matches(vid) {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// Create a visitor. Send an `Idempotency-Key` header to make retries safe.
#[utoipa::path(post, path = "/v1/tenants/{tid}/visitors", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    request_body(content = Object, description = "{name, email, phone, address{line1,line2,city,region,postal_code,country}, attributes{}, external_ref}"),
    responses((status = 201, description = "The visitor"), (status = 400, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:write"])))]
pub async fn create_visitor(
    auth: Authorized<perm::VisitorsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<VisitorInput>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let key = req
        .headers()
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| {
                Error::invalid("invalid_idempotency_key", "Idempotency-Key must be ASCII")
            })
        })
        .transpose()?;
    let access = access(&auth.principal, &req);
    match state.visitors.create(&tid, &access, &body, key).await? {
        Created::New(v) => Ok(HttpResponse::Created().json(v)),
        Created::Replayed(id) => {
            let v = state.visitors.get(&tid, &access, &id).await?;
            Ok(HttpResponse::Created()
                .insert_header(("Idempotent-Replayed", "true"))
                .json(v))
        }
    }
}

#[derive(Deserialize)]
pub struct Batch {
    pub items: Vec<VisitorInput>,
}

/// Import up to 1,000 visitors at once: all or nothing; errors name each bad item.
#[utoipa::path(post, path = "/v1/tenants/{tid}/visitors:batch", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id")),
    request_body(content = Object, description = "{items: [visitor, …]}"),
    responses((status = 201, description = "{count, items: [visitor metadata]}"),
        (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:write"])))]
pub async fn import_visitors(
    auth: Authorized<perm::VisitorsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Batch>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let access = access(&auth.principal, &req);
    let metas = state
        .visitors
        .create_batch(&tid, &access, &body.items)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "count": metas.len(), "items": metas })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VisitorQuery {
    /// Find by e-mail (any case and spacing).
    pub email: Option<String>,
    /// Find by phone (international format).
    pub phone: Option<String>,
    /// `pii` to include personal data in a list (each record's read is audited).
    pub include: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Find visitors by e-mail or phone, or list them (metadata only unless `include=pii`).
#[utoipa::path(get, path = "/v1/tenants/{tid}/visitors", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), VisitorQuery),
    responses((status = 200, description = "{items, next_cursor}")),
    security(("bearer" = ["visitors:read"])))]
pub async fn list_visitors(
    auth: Authorized<perm::VisitorsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<VisitorQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let access = access(&auth.principal, &req);
    if q.email.is_some() || q.phone.is_some() {
        let found = state
            .visitors
            .lookup(&tid, &access, q.email.as_deref(), q.phone.as_deref())
            .await?;
        return Ok(
            HttpResponse::Ok().json(serde_json::json!({ "items": found, "next_cursor": null }))
        );
    }
    let include_pii = match q.include.as_deref() {
        None => false,
        Some("pii") => true,
        Some(_) => {
            return Err(Error::invalid("invalid_include", "include may only be `pii`").into())
        }
    };
    let page = PageRequest::parse(q.limit, q.cursor, Id::Visitor)?;
    let _bulk = state.bulk.enter().await;
    let page = state
        .visitors
        .list(&tid, &access, page, include_pii)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Read a visitor (audited).
#[utoipa::path(get, path = "/v1/tenants/{tid}/visitors/{vid}", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    responses((status = 200, description = "The visitor"), (status = 404, body = crate::problem::Problem),
        (status = 410, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:read"]), ("bearer" = ["visitors:read_under_grant"])))]
pub async fn get_visitor(
    auth: AuthorizedAny<perm::VisitorsReadAny>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    let mut access = access(&auth.principal, &req);
    if auth.held == steward_core::Permission::VisitorsReadUnderGrant {
        // Staff: only under an approved grant that covers this visitor, checked now, and the
        // read is recorded with the grant, the justification and the ticket.
        let grant_id = req
            .headers()
            .get(GRANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::denied(
                    "grant_required",
                    "staff read tenant data only under an approved grant: send Steward-Access-Grant",
                )
            })?;
        let (p, t, v, now) = (
            auth.principal.clone(),
            tid.clone(),
            vid.clone(),
            state.clock.now().naive_utc(),
        );
        let grant = state
            .store
            .read(move |c| steward_staff::requests::check_grant(c, &t, &grant_id, &p, &v, now))
            .await?;
        access.grant_id = Some(grant.id.clone());
        access.justification = Some(grant.justification_code.as_str().to_string());
        access.detail = Some(grant.ticket.clone());
    }
    let v = state.visitors.get(&tid, &access, &vid).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// The header a staff member presents a grant in.
pub const GRANT_HEADER: &str = "steward-access-grant";

/// Rectify a visitor: absent fields stay, `null` clears, a value replaces.
#[utoipa::path(patch, path = "/v1/tenants/{tid}/visitors/{vid}", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    request_body(content = Object, description = "Fields to change"),
    responses((status = 200, description = "Metadata and the names of the changed fields"),
        (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:write"])))]
pub async fn patch_visitor(
    auth: Authorized<perm::VisitorsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<VisitorPatch>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    let r = state
        .visitors
        .patch(&tid, &access(&auth.principal, &req), &vid, &body)
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Erase a visitor; answers with an erasure receipt.
#[utoipa::path(delete, path = "/v1/tenants/{tid}/visitors/{vid}", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    responses((status = 200, description = "Erasure receipt"), (status = 404, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:erase"])))]
pub async fn erase_visitor(
    auth: Authorized<perm::VisitorsErase>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    let r = state
        .visitors
        .erase(&tid, &access(&auth.principal, &req), &vid)
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Everything held about a visitor: PII, consents, recipients, access history.
#[utoipa::path(get, path = "/v1/tenants/{tid}/visitors/{vid}/export", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    responses((status = 200, description = "The data-subject access document"),
        (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:read"])))]
pub async fn export_visitor(
    auth: Authorized<perm::VisitorsRead>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    let doc = state
        .visitors
        .export(&tid, &access(&auth.principal, &req), &vid)
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}

/// Current consents and their full history.
#[utoipa::path(get, path = "/v1/tenants/{tid}/visitors/{vid}/consents", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    responses((status = 200, description = "{current, history}"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["visitors:read"])))]
pub async fn get_consents(
    _auth: Authorized<perm::VisitorsRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    Ok(HttpResponse::Ok().json(state.visitors.consents(&tid, &vid).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// `granted` or `withdrawn`.
    pub status: String,
    /// Where the decision came from, e.g. `web_form`, `unsubscribe_link`.
    pub source: String,
}

/// Record a consent decision for a purpose (effective at once).
#[utoipa::path(put, path = "/v1/tenants/{tid}/visitors/{vid}/consents/{purpose}", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id"),
        ("purpose" = String, Path, description = "marketing_email, testimonial_publication, analytics, or your own")),
    request_body = ConsentBody,
    responses((status = 200, description = "The recorded decision"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["consents:write"])))]
pub async fn put_consent(
    auth: Authorized<perm::ConsentsWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Json<ConsentBody>,
) -> ApiResult<HttpResponse> {
    let (tid, vid, purpose) = path.into_inner();
    ids(&tid, &vid)?;
    let c = state
        .visitors
        .set_consent(
            &tid,
            &access(&auth.principal, &req),
            &vid,
            &purpose,
            &body.status,
            &body.source,
        )
        .await?;
    Ok(HttpResponse::Ok().json(c))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHoldBody {
    pub active: bool,
    /// Required when setting a hold.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Set or lift a legal hold, which blocks erasure and retention purge.
#[utoipa::path(put, path = "/v1/tenants/{tid}/visitors/{vid}/legal-hold", tag = "visitors",
    params(("tid" = String, Path, description = "Tenant id"), ("vid" = String, Path, description = "Visitor id")),
    request_body = LegalHoldBody,
    responses((status = 200, description = "Visitor metadata"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["legal_hold:manage"])))]
pub async fn put_legal_hold(
    auth: Authorized<perm::LegalHoldManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<LegalHoldBody>,
) -> ApiResult<HttpResponse> {
    let (tid, vid) = path.into_inner();
    ids(&tid, &vid)?;
    let body = body.into_inner();
    let m = state
        .visitors
        .set_legal_hold(
            &tid,
            &access(&auth.principal, &req),
            &vid,
            body.active,
            body.reason,
        )
        .await?;
    Ok(HttpResponse::Ok().json(m))
}
