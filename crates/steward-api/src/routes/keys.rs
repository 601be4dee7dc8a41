//! A tenant's key lifecycle: data-key rotation (with re-encryption in the background) and the
//! jobs that report its progress.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use steward_core::{Error, Id};
use steward_store::jobs::{self, JobRow};
use steward_store::{keys, reencrypt};

use crate::auth::{perm, Authorized};
use crate::error::ApiResult;
use crate::routes::tenants::utc;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tenants/{tid}/keys/rotate").route(web::post().to(rotate_keys)))
        .service(web::resource("/tenants/{tid}/jobs/{jid}").route(web::get().to(get_job)));
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    pub done: i64,
    pub total: Option<i64>,
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<JobRow> for Job {
    fn from(j: JobRow) -> Self {
        Job {
            id: j.id,
            kind: j.kind,
            status: j.status,
            done: j.done,
            total: j.total,
            error_code: j.error_code,
            created_at: utc(j.created_at),
            updated_at: utc(j.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The data-key version new writes use from now on.
    pub version: u32,
    /// Re-encrypts values sealed under older versions.
    pub reencryption_job: Job,
}

pub fn tenant_path(tid: &str) -> Result<(), Error> {
    if Id::Tenant.matches(tid) {
        Ok(())
    } else {
        Err(Error::NotFound)
    }
}

/// Rotate the tenant's data key.
#[utoipa::path(post, path = "/v1/tenants/{tid}/keys/rotate", tag = "keys",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Rotated), (status = 404, body = crate::problem::Problem),
        (status = 410, body = crate::problem::Problem)),
    security(("bearer" = ["keys:rotate"])))]
pub async fn rotate_keys(
    auth: Authorized<perm::KeysRotate>,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let now = state.clock.now().naive_utc();
    let kek = state.keys.kek_arc();
    let key_service = state.keys.clone();
    let tid_after = tid.clone();
    let event = crate::audit_trail::event(&auth.principal, &req, "keys.rotate", "tenant", &tid);
    let (version, job) = state
        .store
        .write(move |conn| {
            let version = keys::rotate_data_key(conn, kek.as_ref(), &tid, now)?;
            let job = jobs::enqueue(conn, reencrypt::KIND, Some(&tid), now)?;
            steward_audit::append(
                conn,
                &tid,
                event.detail(format!("data key version {version}")),
                now,
            )?;
            // Drop the cached keyring inside the unit: the next use reloads the new version.
            key_service.forget(&tid);
            Ok((version, job))
        })
        .await?;
    // Again after the commit: a read between the in-unit forget and the commit may have
    // cached the old keyring.
    state.keys.forget(&tid_after);
    state.jobs.notify();
    Ok(HttpResponse::Ok().json(Rotated {
        version,
        reencryption_job: job.into(),
    }))
}

/// A background job of the tenant.
#[utoipa::path(get, path = "/v1/tenants/{tid}/jobs/{jid}", tag = "keys",
    params(("tid" = String, Path, description = "Tenant id"), ("jid" = String, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["tenant:read"])))]
pub async fn get_job(
    _auth: Authorized<perm::TenantRead>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (tid, jid) = path.into_inner();
    tenant_path(&tid)?;
    let job = state
        .store
        .read(move |conn| jobs::get_for_tenant(conn, &tid, &jid))
        .await?;
    Ok(HttpResponse::Ok().json(Job::from(job)))
}
