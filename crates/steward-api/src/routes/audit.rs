//! The tamper-evident audit log as the tenant (and the platform's security officers) see it:
//! events, verification, signed checkpoints and the key that signs them.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_audit::{Actor, Checkpoint, EventFilter, NewEvent, Target, PLATFORM_CHAIN};
use steward_core::{Error, Permission};

use crate::auth::{perm, Authorized, AuthorizedAny};
use crate::error::ApiResult;
use crate::request_id;
use crate::routes::keys::tenant_path;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tenants/{tid}/audit").route(web::get().to(list_tenant_audit)))
        .service(
            web::resource("/tenants/{tid}/audit/verify")
                .route(web::get().to(verify_tenant_audit))
                .route(web::post().to(verify_with_checkpoint)),
        )
        .service(
            web::resource("/tenants/{tid}/audit/checkpoints")
                .route(web::get().to(list_checkpoints))
                .route(web::post().to(create_checkpoint)),
        )
        .service(web::resource("/audit/public-key").route(web::get().to(public_key)))
        .service(web::resource("/audit/platform").route(web::get().to(list_platform_audit)));
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action, e.g. `visitor.read`.
    pub action: Option<String>,
    /// Only this actor id.
    pub actor: Option<String>,
    /// Only events about this target id (e.g. a visitor id).
    pub target: Option<String>,
    /// From this time (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339), exclusive.
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Required of a security officer reading a tenant's log; recorded in that log.
    pub justification: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<steward_audit::AuditEvent>,
    pub next_cursor: Option<String>,
}

fn page_of(chain: String, q: AuditQuery) -> Result<(String, EventFilter, Option<i64>, i64), Error> {
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| Error::invalid("invalid_cursor", "cursor is not valid"))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    let filter = EventFilter {
        action: q.action,
        actor_id: q.actor,
        target_id: q.target,
        from: q.from.map(|t| t.naive_utc()),
        to: q.to.map(|t| t.naive_utc()),
    };
    Ok((chain, filter, after, limit))
}

async fn list_chain(state: &AppState, chain: String, q: AuditQuery) -> ApiResult<HttpResponse> {
    let (chain, filter, after, limit) = page_of(chain, q)?;
    let (items, next) = state
        .store
        .read(move |c| steward_audit::list(c, &chain, &filter, after, limit))
        .await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        items,
        next_cursor: next.map(|s| s.to_string()),
    }))
}

/// The tenant's audit events, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tid}/audit", tag = "audit",
    params(("tid" = String, Path, description = "Tenant id"), AuditQuery),
    responses((status = 200, body = AuditPage)),
    security(("bearer" = ["audit:read"]), ("bearer" = ["audit:read_justified"])))]
pub async fn list_tenant_audit(
    auth: AuthorizedAny<perm::AuditReadAny>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let q = query.into_inner();
    if auth.held == Permission::TenantAuditReadJustified {
        // A security officer reading a tenant's log leaves a trace in that log first.
        let justification = q
            .justification
            .clone()
            .filter(|j| !j.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid(
                    "justification_required",
                    "give ?justification= to read a tenant's audit log",
                )
            })?;
        let event = NewEvent::new(
            "audit.read",
            Actor::from_principal(&auth.principal),
            Target::kind("audit_log"),
        )
        .justification(justification)
        .request_id(request_id::of(&req));
        let (chain, now) = (tid.clone(), state.clock.now().naive_utc());
        state
            .store
            .write(move |c| {
                steward_store::tenants::get(c, &chain)?;
                steward_audit::append(c, &chain, event, now).map(|_| ())
            })
            .await?;
    }
    state
        .store
        .read({
            let t = tid.clone();
            move |c| steward_store::tenants::get(c, &t)
        })
        .await?;
    list_chain(&state, tid, q).await
}

/// The platform's own audit events (tenant creation, staff administration).
#[utoipa::path(get, path = "/v1/audit/platform", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage)),
    security(("bearer" = ["platform_audit:read"])))]
pub async fn list_platform_audit(
    _auth: Authorized<perm::PlatformAuditRead>,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    list_chain(&state, PLATFORM_CHAIN.to_string(), query.into_inner()).await
}

/// Recomputes the tenant's chain, checking it against the newest signed checkpoint too.
#[utoipa::path(get, path = "/v1/tenants/{tid}/audit/verify", tag = "audit",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "{ok, checked, first_bad_seq, reason}")),
    security(("bearer" = ["audit:read"])))]
pub async fn verify_tenant_audit(
    _auth: Authorized<perm::AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let public = state.checkpoints.public_key().to_vec();
    let report = state
        .store
        .read_parallel(steward_audit::recommended_loaders(), move |mut conns| {
            let c = conns
                .first_mut()
                .ok_or(Error::internal_msg("no connection"))?;
            steward_store::tenants::get(c, &tid)?;
            match steward_audit::latest_checkpoint(c, &tid)? {
                Some(cp) => steward_audit::verify_signed_on(conns, &tid, &cp, &public, &mut |_| {}),
                None => steward_audit::verify_on(conns, &tid, None, &mut |_| {}),
            }
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// A checkpoint the tenant kept from `GET …/audit/checkpoints`.
    #[schema(value_type = Object)]
    pub checkpoint: Checkpoint,
}

/// Verifies the chain against a checkpoint the tenant kept: detects truncation and any
/// rewrite before it, even if the stored checkpoints were removed.
#[utoipa::path(post, path = "/v1/tenants/{tid}/audit/verify", tag = "audit",
    params(("tid" = String, Path, description = "Tenant id")), request_body = VerifyBody,
    responses((status = 200, description = "{ok, checked, first_bad_seq, reason}")),
    security(("bearer" = ["audit:read"])))]
pub async fn verify_with_checkpoint(
    _auth: Authorized<perm::AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<VerifyBody>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let cp = body.into_inner().checkpoint;
    let public = state.checkpoints.public_key().to_vec();
    let report = state
        .store
        .read_parallel(steward_audit::recommended_loaders(), move |mut conns| {
            let c = conns
                .first_mut()
                .ok_or(Error::internal_msg("no connection"))?;
            steward_store::tenants::get(c, &tid)?;
            steward_audit::verify_signed_on(conns, &tid, &cp, &public, &mut |_| {})
        })
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Signed checkpoints of the tenant's chain, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tid}/audit/checkpoints", tag = "audit",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "{items}")),
    security(("bearer" = ["audit:read"])))]
pub async fn list_checkpoints(
    _auth: Authorized<perm::AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let items = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &tid)?;
            steward_audit::list_checkpoints(c, &tid, 100)
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// Signs the chain's current head now.
#[utoipa::path(post, path = "/v1/tenants/{tid}/audit/checkpoints", tag = "audit",
    params(("tid" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "The checkpoint"), (status = 409, body = crate::problem::Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn create_checkpoint(
    _auth: Authorized<perm::AuditRead>,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tid = path.into_inner();
    tenant_path(&tid)?;
    let signer = state.checkpoints.clone();
    let now = state.clock.now().naive_utc();
    // Signing re-checks the chain since the last checkpoint: do that on a read connection,
    // and hand only the insert to the committer so writers never wait on a verification.
    let t = tid.clone();
    let cp = state
        .store
        .read(move |c| {
            steward_store::tenants::get(c, &t)?;
            steward_audit::prepare_checkpoint(c, &t, &signer, now)
        })
        .await?
        .ok_or_else(|| Error::conflict("empty_chain", "the audit log has no events yet"))?;
    let stored = cp.clone();
    state
        .store
        .write(move |c| steward_audit::store_checkpoint(c, &stored))
        .await?;
    Ok(HttpResponse::Created().json(cp))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicKey {
    pub key_id: String,
    pub algorithm: &'static str,
    /// Raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// What is signed: the canonical encoding of ("steward.checkpoint.v1", chain, seq, head hash).
    pub signed_message: &'static str,
}

/// The key that signs checkpoints, to verify them independently of Steward.
#[utoipa::path(get, path = "/v1/audit/public-key", tag = "audit",
    responses((status = 200, body = PublicKey)))]
pub async fn public_key(state: web::Data<AppState>) -> HttpResponse {
    use base64::Engine;
    HttpResponse::Ok().json(PublicKey {
        key_id: state.checkpoints.key_id().to_string(),
        algorithm: "Ed25519",
        public_key: base64::engine::general_purpose::STANDARD.encode(state.checkpoints.public_key()),
        signed_message: "each part prefixed by its u32 big-endian length: \"steward.checkpoint.v1\", chain_id, seq as i64 big-endian, head_hash",
    })
}
