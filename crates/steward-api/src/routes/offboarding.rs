//! Tenant offboarding: freeze, return (a streamed export), then delete on confirmation —
//! keys destroyed first, so nothing of the tenant can be read again from any copy of the
//! database, then rows deleted and a deletion certificate recorded.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Deserialize;
use steward_audit::{Actor, NewEvent, Target, PLATFORM_CHAIN};
use steward_core::Error;
use steward_identity::{api_keys, users};
use steward_store::tenants::{self, TenantStatus};
use steward_visitors::offboarding::{self, DeletionCertificate};
use steward_visitors::Access;

use crate::auth::{perm, Authorized};
use crate::error::{ApiError, ApiResult};
use crate::request_id;
use crate::routes::keys::tenant_path;
use crate::routes::tenants::utc;
use crate::state::AppState;

const EXPORT_PAGE: i64 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tenants/{tid}/offboarding")
            .route(web::post().to(start_offboarding))
            .route(web::get().to(get_offboarding)),
    )
    .service(web::resource("/tenants/{tid}/offboarding/export").route(web::get().to(export_tenant)))
    .service(
        web::resource("/tenants/{tid}/offboarding/confirm")
            .route(web::post().to(confirm_offboarding)),
    );
}

fn status_doc(row: &offboarding::OffboardingRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "tenant_id": row.tenant_id,
        "started_by": row.started_by,
        "started_at": utc(row.started_at),
        "exported_at": row.exported_at.map(utc),
        "exported_records": row.exported_records,
        "confirmed_at": row.confirmed_at.map(utc),
        "certificate_hash": row.certificate_hash,
        "export_url": format!("/v1/tenants/{}/offboarding/export", row.tenant_id),
        "confirm_url": format!("/v1/tenants/{}/offboarding/confirm", row.tenant_id),
    })
}

/// Start offboarding: the tenant accepts no new data from now on.
#[utoipa::path(post, path = "/v1/tenants/{tid}/offboarding", tag = "offboarding",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 202, description = "The offboarding, with export and confirm links")),
    security(("bearer" = ["tenant:offboard"])))]
pub async fn start_offboarding(
    auth: Authorized<perm::TenantOffboard>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let now = state.clock.now().naive_utc();
    let by = auth.principal.id.clone();
    let event = crate::audit_trail::event(
        &auth.principal,
        &req,
        "tenant.offboarding.start",
        "tenant",
        &tid,
    );
    let row = state
        .store
        .write(move |c| {
            let row = offboarding::start(c, &tid, &by, now)?;
            steward_audit::append(c, &tid, event, now)?;
            Ok(row)
        })
        .await?;
    Ok(HttpResponse::Accepted().json(status_doc(&row)))
}

/// Where the offboarding stands.
#[utoipa::path(get, path = "/v1/tenants/{tid}/offboarding", tag = "offboarding",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The offboarding"), (status = 404, body = crate::problem::Problem)),
    security(("bearer" = ["tenant:offboard"])))]
pub async fn get_offboarding(
    _auth: Authorized<perm::TenantOffboard>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let row = state
        .store
        .read(move |c| offboarding::get(c, &tid)?.ok_or(Error::NotFound))
        .await?;
    Ok(HttpResponse::Ok().json(status_doc(&row)))
}

struct ExportCursor {
    after: Option<String>,
    done: bool,
    count: i64,
}

/// The tenant's complete export: JSON Lines, one visitor (with consents) per line, streamed.
/// Each record's disclosure is audited before its line is sent.
#[utoipa::path(get, path = "/v1/tenants/{tid}/offboarding/export", tag = "offboarding",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "application/x-ndjson"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["tenant:export"])))]
pub async fn export_tenant(
    auth: Authorized<perm::TenantExport>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let check = tid.clone();
    state
        .store
        .read(move |c| match offboarding::get(c, &check)? {
            Some(o) if o.confirmed_at.is_none() => Ok(()),
            Some(_) => Err(steward_store::keys::gone()),
            None => Err(Error::conflict(
                "offboarding_not_started",
                "start offboarding before exporting the tenant",
            )),
        })
        .await?;
    let access =
        Access::of(&auth.principal, Some(request_id::of(&req))).with_purpose("offboarding_export");
    let st = state.clone();
    let body = stream::try_unfold(
        ExportCursor {
            after: None,
            done: false,
            count: 0,
        },
        move |cur| {
            let (st, tid, access) = (st.clone(), tid.clone(), access.clone());
            async move {
                if cur.done {
                    return Ok::<_, ApiError>(None);
                }
                let (keys, t, after) = (st.keys.clone(), tid.clone(), cur.after.clone());
                let (page, next) = st
                    .store
                    .read(move |c| {
                        let keyring = keys.keyring(c, &t)?;
                        offboarding::export_page(c, &keyring, &t, after.as_deref(), EXPORT_PAGE)
                    })
                    .await?;
                let lines = steward_visitors::disclose(
                    &st.store,
                    st.clock.as_ref(),
                    &tid,
                    &access,
                    "tenant.export",
                    page,
                )
                .await?;
                let count = cur.count + lines.len() as i64;
                let mut buf = Vec::with_capacity(lines.len() * 512);
                for line in &lines {
                    serde_json::to_writer(&mut buf, line).map_err(Error::internal)?;
                    buf.push(b'\n');
                }
                let done = next.is_none();
                if done {
                    let (t, now) = (tid.clone(), st.clock.now().naive_utc());
                    st.store
                        .write(move |c| offboarding::mark_exported(c, &t, count, now))
                        .await?;
                }
                Ok(Some((
                    web::Bytes::from(buf),
                    ExportCursor {
                        after: next,
                        done,
                        count,
                    },
                )))
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The tenant id again: this cannot be undone.
    pub confirm: String,
    /// Delete even though the export was never downloaded.
    #[serde(default)]
    pub export_waived: bool,
}

/// Confirm: destroy the tenant's keys, delete its data, and record a deletion certificate.
#[utoipa::path(post, path = "/v1/tenants/{tid}/offboarding/confirm", tag = "offboarding",
    params(("tid" = String, Path, description = "Tenant id")), request_body = ConfirmBody,
    responses((status = 200, description = "The deletion certificate"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["tenant:offboard"])))]
pub async fn confirm_offboarding(
    auth: Authorized<perm::TenantOffboard>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ConfirmBody>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let body = body.into_inner();
    if body.confirm != tid {
        return Err(
            Error::invalid("confirmation_mismatch", "confirm must repeat the tenant id").into(),
        );
    }
    let now = state.clock.now().naive_utc();
    let principal = auth.principal.clone();
    let request_id = request_id::of(&req);
    let keys = state.keys.clone();
    let t = tid.clone();
    let cert = state
        .store
        .write(move |c| {
            let o = offboarding::get(c, &t)?.ok_or_else(|| {
                Error::conflict("offboarding_not_started", "start offboarding first")
            })?;
            if o.confirmed_at.is_some() {
                return Err(Error::conflict(
                    "already_deleted",
                    "this tenant was already deleted",
                ));
            }
            if o.exported_at.is_none() && !body.export_waived {
                return Err(Error::conflict(
                    "export_not_taken",
                    "download the export first, or confirm with export_waived: true",
                ));
            }
            // Keys first: from this statement on, no copy of the data can be opened.
            let keys_destroyed = steward_store::keys::destroy(c, &t, now)? as i64;
            let (visitors_deleted, consents_deleted) = offboarding::delete_visitor_data(c, &t)?;
            users::disable_all_for_tenant(c, &t, now)?;
            api_keys::revoke_all_for_tenant(c, &t, now)?;
            tenants::set_status(c, &t, TenantStatus::Deleted, now)?;
            let mut cert = DeletionCertificate {
                tenant_id: t.clone(),
                offboarding_id: o.id.clone(),
                visitors_deleted,
                consents_deleted,
                keys_destroyed,
                exported_records: o.exported_records,
                deleted_at: utc(now),
                confirmed_by: principal.id.clone(),
                hash: String::new(),
            };
            let canonical = serde_json::to_vec(&cert).map_err(Error::internal)?;
            let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
            cert.hash = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            offboarding::mark_confirmed(c, &t, &principal.id, &cert.hash, now)?;
            let actor = Actor::from_principal(&principal);
            steward_audit::append(
                c,
                &t,
                NewEvent::new(
                    "tenant.delete",
                    actor.clone(),
                    Target::record("tenant", t.clone()),
                )
                .request_id(request_id.clone())
                .detail(cert.hash.clone()),
                now,
            )?;
            steward_audit::append(
                c,
                PLATFORM_CHAIN,
                NewEvent::new("tenant.deleted", actor, Target::record("tenant", t.clone()))
                    .request_id(request_id)
                    .detail(cert.hash.clone()),
                now,
            )?;
            keys.forget(&t);
            Ok(cert)
        })
        .await?;
    state.keys.forget(&tid);
    Ok(HttpResponse::Ok().json(cert))
}
