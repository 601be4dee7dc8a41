//! People: a tenant's users (managed by its `tenant_admin`), platform staff (managed by a
//! `platform_admin`), and `/v1/me`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_core::{Error, Id, PrincipalKind, Role};
use steward_identity::check_policy;
use steward_identity::users::{self, UserRow};
use steward_store::pagination::PageRequest;
use steward_store::tenants::{self, TenantStatus};

use crate::audit_trail;
use crate::auth::{perm, Authorized};
use crate::error::ApiResult;
use crate::routes::keys::tenant_path;
use crate::routes::tenants::{utc, ListQuery};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/me").route(web::get().to(me)))
        .service(
            web::resource("/staff")
                .route(web::post().to(create_staff))
                .route(web::get().to(list_staff)),
        )
        .service(web::resource("/staff/{uid}/disable").route(web::post().to(disable_staff)))
        .service(
            web::resource("/tenants/{tid}/users")
                .route(web::post().to(create_user))
                .route(web::get().to(list_users)),
        )
        .service(
            web::resource("/tenants/{tid}/users/{uid}/disable").route(web::post().to(disable_user)),
        );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    /// At least 12 characters, not a commonly used password.
    pub password: String,
    /// Tenant users: `tenant_admin`, `tenant_member`, `tenant_auditor`. Staff:
    /// `platform_admin`, `support_engineer`, `security_officer`.
    pub role: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub tenant_id: Option<String>,
    pub email: String,
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        User {
            id: u.id,
            tenant_id: u.tenant_id,
            email: u.email,
            role: u.role,
            status: u.status,
            created_at: utc(u.created_at),
            disabled_at: u.disabled_at.map(utc),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// `user`, `api_key` or `subprocessor`.
    pub kind: String,
    pub id: String,
    pub role: Option<String>,
    pub tenant_id: Option<String>,
    pub email: Option<String>,
    /// What this principal may do.
    pub permissions: Vec<String>,
}

fn parse_role(raw: &str, staff: bool) -> Result<Role, Error> {
    let role: Role = raw
        .parse()
        .map_err(|_| Error::invalid("invalid_role", "unknown role"))?;
    if role.is_staff() != staff {
        return Err(Error::invalid(
            "invalid_role",
            if staff {
                "staff roles are platform_admin, support_engineer and security_officer"
            } else {
                "tenant roles are tenant_admin, tenant_member and tenant_auditor"
            },
        ));
    }
    Ok(role)
}

/// Validates, hashes (off the executor: argon2 is slow on purpose) and builds the row.
pub async fn prepare_user(
    state: &AppState,
    tenant_id: Option<&str>,
    body: CreateUser,
) -> Result<UserRow, Error> {
    let role = parse_role(&body.role, tenant_id.is_none())?;
    let email = users::normalize_email(&body.email)?;
    check_policy(&body.password)?;
    let st = state.clone();
    let password = zeroize::Zeroizing::new(body.password);
    let hash = web::block(move || st.login.hasher.hash(&password))
        .await
        .map_err(|_| Error::internal_msg("hashing task failed"))??;
    users::new_row(tenant_id, email, hash, role, state.clock.now().naive_utc())
}

/// Who am I.
#[utoipa::path(get, path = "/v1/me", tag = "users",
    responses((status = 200, body = Me), (status = 401, body = crate::problem::Problem)),
    security(("bearer" = ["self:read"])))]
pub async fn me(
    auth: Authorized<perm::SelfRead>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let p = auth.principal;
    let email = if p.kind == PrincipalKind::User {
        let id = p.id.clone();
        Some(state.store.read(move |c| users::get(c, &id)).await?.email)
    } else {
        None
    };
    let permissions = steward_core::Permission::ALL
        .iter()
        .filter(|perm| p.holds(**perm))
        .map(|perm| perm.as_str().to_string())
        .collect();
    Ok(HttpResponse::Ok().json(Me {
        kind: p.kind.as_str().to_string(),
        role: p.role.map(|r| r.as_str().to_string()),
        id: p.id,
        tenant_id: p.tenant_id,
        email,
        permissions,
    }))
}

/// Create a platform staff account.
#[utoipa::path(post, path = "/v1/staff", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User), (status = 400, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["staff:manage"])))]
pub async fn create_staff(
    auth: Authorized<perm::StaffManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    let row = prepare_user(&state, None, body.into_inner()).await?;
    let event = audit_trail::event(&auth.principal, &req, "staff.create", "user", &row.id)
        .detail(row.role.clone());
    let now = state.clock.now().naive_utc();
    let row = state
        .store
        .write(move |c| {
            users::insert(c, &row)?;
            steward_audit::append(c, steward_audit::PLATFORM_CHAIN, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(User::from(row)))
}

/// List platform staff.
#[utoipa::path(get, path = "/v1/staff", tag = "users", params(ListQuery),
    responses((status = 200, body = UserPage)),
    security(("bearer" = ["staff:manage"])))]
pub async fn list_staff(
    _auth: Authorized<perm::StaffManage>,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::User)?;
    let rows = state
        .store
        .read(move |c| users::list(c, None, &page))
        .await?;
    let page = rows.map(User::from);
    Ok(HttpResponse::Ok().json(UserPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Disable a staff account; its tokens stop working at once.
#[utoipa::path(post, path = "/v1/staff/{uid}/disable", tag = "users",
    params(("uid" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["staff:manage"])))]
pub async fn disable_staff(
    auth: Authorized<perm::StaffManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let uid = path.into_inner();
    if uid == auth.principal.id {
        return Err(
            Error::conflict("cannot_disable_self", "you cannot disable your own account").into(),
        );
    }
    let now = state.clock.now().naive_utc();
    let event = audit_trail::event(&auth.principal, &req, "staff.disable", "user", &uid);
    let row = state
        .store
        .write(move |c| {
            let row = users::disable(c, None, &uid, now)?;
            steward_audit::append(c, steward_audit::PLATFORM_CHAIN, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(User::from(row)))
}

/// Create a user of the tenant.
#[utoipa::path(post, path = "/v1/tenants/{tid}/users", tag = "users", request_body = CreateUser,
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 201, body = User), (status = 400, body = crate::problem::Problem),
        (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["users:manage"])))]
pub async fn create_user(
    auth: Authorized<perm::UsersManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let row = prepare_user(&state, Some(&tid), body.into_inner()).await?;
    let event = audit_trail::event(&auth.principal, &req, "user.create", "user", &row.id)
        .detail(row.role.clone());
    let now = state.clock.now().naive_utc();
    let row = state
        .store
        .write(move |c| {
            ensure_tenant_accepts_changes(c, &tid)?;
            users::insert(c, &row)?;
            steward_audit::append(c, &tid, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Created().json(User::from(row)))
}

/// The tenant exists and is active (not offboarding, not deleted).
pub fn ensure_tenant_accepts_changes(
    conn: &mut steward_store::DbConnection,
    tid: &str,
) -> Result<(), Error> {
    let tenant = tenants::get(conn, tid)?;
    match tenant.status()? {
        TenantStatus::Active => Ok(()),
        _ => Err(Error::conflict(
            "tenant_not_active",
            "this tenant is being offboarded and accepts no changes",
        )),
    }
}

/// List the tenant's users.
#[utoipa::path(get, path = "/v1/tenants/{tid}/users", tag = "users",
    params(("tid" = String, Path, description = "Tenant id"), ListQuery),
    responses((status = 200, body = UserPage)),
    security(("bearer" = ["users:manage"])))]
pub async fn list_users(
    _auth: Authorized<perm::UsersManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor, Id::User)?;
    let rows = state
        .store
        .read(move |c| users::list(c, Some(&tid), &page))
        .await?;
    let page = rows.map(User::from);
    Ok(HttpResponse::Ok().json(UserPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Disable a user of the tenant; their tokens stop working at once.
#[utoipa::path(post, path = "/v1/tenants/{tid}/users/{uid}/disable", tag = "users",
    params(("tid" = String, Path, description = "Tenant id"), ("uid" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["users:manage"])))]
pub async fn disable_user(
    auth: Authorized<perm::UsersManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, uid) = path.into_inner();
    tenant_path(&tid)?;
    if uid == auth.principal.id {
        return Err(
            Error::conflict("cannot_disable_self", "you cannot disable your own account").into(),
        );
    }
    let now = state.clock.now().naive_utc();
    let event = audit_trail::event(&auth.principal, &req, "user.disable", "user", &uid);
    let row = state
        .store
        .write(move |c| {
            let row = users::disable(c, Some(&tid), &uid, now)?;
            steward_audit::append(c, &tid, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(User::from(row)))
}
