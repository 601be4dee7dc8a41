//! Tenants: the merchants whose visitors' data Steward keeps.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_core::{Error, Id};
use steward_store::pagination::{Page, PageRequest};
use steward_store::tenants::{self, TenantRow};

use crate::auth::{perm, Authorized};
use crate::error::ApiResult;
use crate::routes::users::{prepare_user, CreateUser};
use crate::state::AppState;
use steward_identity::users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants")
            .route(web::post().to(create_tenant))
            .route(web::get().to(list_tenants)),
    )
    .service(web::resource("/tenants/{tid}").route(web::get().to(get_tenant)));
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The merchant's display name, 1–200 characters.
    pub name: String,
    /// The tenant's first `tenant_admin`, created with it (role is implied).
    #[serde(default)]
    pub admin: Option<FirstAdmin>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstAdmin {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// `active`, `offboarding` or `deleted`.
    pub status: String,
    pub retention_days: Option<i64>,
    /// True once the tenant's keys are destroyed: its data can never be read again.
    pub keys_destroyed: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            keys_destroyed: r.keys_destroyed_at.is_some(),
            id: r.id,
            name: r.name,
            status: r.status,
            retention_days: r.retention_days,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    pub items: Vec<Tenant>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn validate_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > 200 {
        return Err(Error::invalid(
            "invalid_name",
            "name must be 1 to 200 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "invalid_name",
            "name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants",
    request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["tenants:create"])))]
pub async fn create_tenant(
    auth: Authorized<perm::TenantsCreate>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateTenant>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let name = validate_name(&body.name)?;
    // The admin's row is made before the tenant id exists; its tenant is set below.
    let admin = match body.admin {
        Some(a) => Some(
            prepare_user(
                &state,
                Some("ten_pending"),
                CreateUser {
                    email: a.email,
                    password: a.password,
                    role: "tenant_admin".into(),
                },
            )
            .await?,
        ),
        None => None,
    };
    let now = state.clock.now().naive_utc();
    let kek = state.keys.kek_arc();
    let actor = steward_audit::Actor::from_principal(&auth.principal);
    let request_id = crate::request_id::of(&req);
    let created = state
        .store
        .write(move |conn| {
            let tenant = tenants::create(conn, kek.as_ref(), name, now)?;
            let event = steward_audit::NewEvent::new(
                "tenant.create",
                actor,
                steward_audit::Target::record("tenant", tenant.id.clone()),
            )
            .request_id(request_id);
            let mut events = vec![event.clone()];
            if let Some(mut admin) = admin {
                admin.tenant_id = Some(tenant.id.clone());
                admin.email_scope = tenant.id.clone();
                users::insert(conn, &admin)?;
                events.push(
                    event
                        .clone()
                        .detail(format!("first tenant_admin {}", admin.id)),
                );
            }
            let on_platform = event.detail(tenant.id.clone());
            steward_audit::append_many(conn, &tenant.id, events, now)?;
            steward_audit::append(conn, steward_audit::PLATFORM_CHAIN, on_platform, now)?;
            Ok(tenant)
        })
        .await?;
    Ok(HttpResponse::Created().json(Tenant::from(created)))
}

/// Read a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tid}", tag = "tenants",
    params(("tid" = String, Path, description = "Tenant id (`ten_…`)")),
    responses((status = 200, body = Tenant), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["tenant:read"])))]
pub async fn get_tenant(
    _auth: Authorized<perm::TenantRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    if !Id::Tenant.matches(&tid) {
        return Err(Error::NotFound.into());
    }
    let row = state
        .store
        .read(move |conn| tenants::get(conn, &tid))
        .await?;
    Ok(HttpResponse::Ok().json(Tenant::from(row)))
}

/// List tenants, oldest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    params(ListQuery),
    responses((status = 200, body = TenantPage)),
    security(("bearer" = ["tenants:list"])))]
pub async fn list_tenants(
    _auth: Authorized<perm::TenantsList>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::Tenant)?;
    let rows: Page<TenantRow> = state
        .store
        .read(move |conn| tenants::list(conn, &page))
        .await?;
    let page = rows.map(Tenant::from);
    Ok(HttpResponse::Ok().json(TenantPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
