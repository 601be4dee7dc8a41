//! A tenant's API keys for its machine clients.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_core::{Error, Id};
use steward_identity::api_keys::{self, ApiKeyRow};
use steward_store::pagination::PageRequest;

use crate::audit_trail;
use crate::auth::{perm, Authorized};
use crate::error::ApiResult;
use crate::routes::keys::tenant_path;
use crate::routes::tenants::{utc, ListQuery};
use crate::routes::users::ensure_tenant_accepts_changes;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{tid}/api-keys")
            .route(web::post().to(create_api_key))
            .route(web::get().to(list_api_keys)),
    )
    .service(
        web::resource("/tenants/{tid}/api-keys/{kid}").route(web::delete().to(revoke_api_key)),
    );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1–100 characters.
    pub name: String,
    /// Permissions the key holds, e.g. `visitors:read`, `visitors:write`.
    pub scopes: Vec<String>,
    /// Optional expiry (RFC 3339); must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The secret. Shown once: Steward keeps only a hash of it.
    pub secret: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKey>,
    pub next_cursor: Option<String>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(k: ApiKeyRow) -> Self {
        ApiKey {
            scopes: k
                .scope_list()
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            id: k.id,
            tenant_id: k.tenant_id,
            name: k.name,
            created_by: k.created_by,
            created_at: utc(k.created_at),
            expires_at: k.expires_at.map(utc),
            revoked_at: k.revoked_at.map(utc),
        }
    }
}

/// Create an API key; the secret is in this response only.
#[utoipa::path(post, path = "/v1/tenants/{tid}/api-keys", tag = "api_keys", request_body = CreateApiKey,
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 201, body = CreatedApiKey), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn create_api_key(
    auth: Authorized<perm::ApiKeysManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let body = body.into_inner();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("invalid_name", "name must be 1 to 100 characters").into());
    }
    let scopes = api_keys::parse_scopes(&body.scopes)?;
    let now = state.clock.now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(Error::invalid("invalid_expiry", "expires_at must be in the future").into());
    }
    let expires_at = body
        .expires_at
        .map(|e| steward_core::clock::truncate_micros(e).naive_utc());
    let creator = auth.principal.id.clone();
    let principal = auth.principal.clone();
    let request_id = crate::request_id::of(&req);
    let now = now.naive_utc();
    let created = state
        .store
        .write(move |c| {
            ensure_tenant_accepts_changes(c, &tid)?;
            let created = api_keys::create(c, &tid, &name, &scopes, &creator, expires_at, now)?;
            let scopes: Vec<&str> = scopes.iter().map(|p| p.as_str()).collect();
            let event = steward_audit::NewEvent::new(
                "api_key.create",
                steward_audit::Actor::from_principal(&principal),
                steward_audit::Target::record("api_key", created.row.id.clone()),
            )
            .request_id(request_id)
            .detail(scopes.join(","));
            steward_audit::append(c, &tid, event, now)?;
            Ok(created)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreatedApiKey {
        secret: created.secret.expose().to_string(),
        key: created.row.into(),
    }))
}

/// List the tenant's API keys (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tid}/api-keys", tag = "api_keys",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, body = ApiKeyPage)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn list_api_keys(
    _auth: Authorized<perm::ApiKeysManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::ApiKey)?;
    let rows = state
        .store
        .read(move |c| api_keys::list(c, &tid, &page))
        .await?;
    let page = rows.map(ApiKey::from);
    Ok(HttpResponse::Ok().json(ApiKeyPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Revoke an API key, effective at once.
#[utoipa::path(delete, path = "/v1/tenants/{tid}/api-keys/{kid}", tag = "api_keys",
    params(("tid" = String, Path, description = "Tenant id"), ("kid" = String, Path, description = "API key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["api_keys:manage"])))]
pub async fn revoke_api_key(
    auth: Authorized<perm::ApiKeysManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, kid) = path.into_inner();
    tenant_path(&tid)?;
    let now = state.clock.now().naive_utc();
    let event = audit_trail::event(&auth.principal, &req, "api_key.revoke", "api_key", &kid);
    let row = state
        .store
        .write(move |c| {
            let row = api_keys::revoke(c, &tid, &kid, now)?;
            steward_audit::append(c, &tid, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(ApiKey::from(row)))
}
