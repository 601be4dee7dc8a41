//! A tenant's retention setting and on-demand purge runs.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use steward_core::Error;
use steward_store::{jobs, tenants};

use crate::auth::{perm, Authorized};
use crate::error::ApiResult;
use crate::routes::keys::{tenant_path, Job};
use crate::routes::tenants::Tenant;
use crate::state::AppState;

/// Ten years: anything longer is a typo.
const MAX_RETENTION_DAYS: i64 = 3650;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tenants/{tid}/retention").route(web::put().to(put_retention)))
        .service(
            web::resource("/tenants/{tid}/retention/run").route(web::post().to(run_retention)),
        );
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Erase visitors inactive for longer than this many days; `null` keeps them while the
    /// account is active.
    pub retention_days: Option<i64>,
}

/// Set the tenant's retention period.
#[utoipa::path(put, path = "/v1/tenants/{tid}/retention", tag = "retention",
    params(("tid" = String, Path, description = "Tenant id")), request_body = RetentionBody,
    responses((status = 200, body = Tenant), (status = 400, body = crate::problem::Problem)),
    security(("bearer" = ["retention:manage"])))]
pub async fn put_retention(
    _auth: Authorized<perm::RetentionManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RetentionBody>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let days = body.retention_days;
    if days.is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d)) {
        return Err(Error::invalid(
            "invalid_retention",
            format!("retention_days must be 1 to {MAX_RETENTION_DAYS}, or null"),
        )
        .into());
    }
    let now = state.clock.now().naive_utc();
    let row = state
        .store
        .write(move |c| {
            tenants::set_retention_days(c, &tid, days, now)?;
            tenants::get(c, &tid)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Tenant::from(row)))
}

/// Run the retention purge now (it also runs on its own schedule).
#[utoipa::path(post, path = "/v1/tenants/{tid}/retention/run", tag = "retention",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 202, body = Job), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["retention:manage"])))]
pub async fn run_retention(
    _auth: Authorized<perm::RetentionManage>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let now = state.clock.now().naive_utc();
    let job = state
        .store
        .write(move |c| {
            tenants::get(c, &tid)?;
            jobs::enqueue(c, steward_visitors::retention::KIND, Some(&tid), now)
        })
        .await?;
    state.jobs.notify();
    Ok(HttpResponse::Accepted().json(Job::from(job)))
}
