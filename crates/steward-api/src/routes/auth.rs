//! Logging in (people) and exchanging client credentials (subprocessors) for access tokens.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use steward_core::{Error, PrincipalKind};
use steward_identity::{clients, TokenSubject};

use crate::error::ApiResult;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").route(web::post().to(login)))
        .service(web::resource("/auth/token").route(web::post().to(token)));
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Only needed when the same e-mail has accounts in several tenants.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub client_id: String,
    pub client_secret: String,
    /// Optional; when given it must be `client_credentials`.
    #[serde(default)]
    pub grant_type: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

fn client_address(req: &HttpRequest) -> String {
    // The socket peer, not a forwarded header a client could set to dodge the throttle.
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Log in with e-mail and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::problem::Problem),
        (status = 429, body = crate::problem::Problem)))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let address = client_address(&req);
    let st = state.clone();
    let user = web::block(move || {
        st.login.login(
            &st.store,
            &body.email,
            &body.password,
            body.tenant_id.as_deref(),
            &address,
        )
    })
    .await
    .map_err(|_| Error::internal_msg("login task failed"))??;
    let principal = user.principal()?;
    let issued = state.tokens.issue(TokenSubject::from(&principal))?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}

/// Exchange subprocessor client credentials for an access token.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::problem::Problem)))]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TokenRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if body
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "client_credentials")
    {
        return Err(Error::invalid(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        )
        .into());
    }
    let address = client_address(&req);
    let account = format!(
        "client:{}",
        body.client_id.chars().take(64).collect::<String>()
    );
    let ip = format!("ip:{address}");
    state.login.limiter.check(&account, &ip)?;
    let (id, secret) = (body.client_id, body.client_secret);
    let result = state
        .store
        .read(move |c| clients::authenticate(c, &id, &secret))
        .await;
    let client = match result {
        Ok(c) => {
            state.login.limiter.record_success(&account);
            c
        }
        Err(e) => {
            if matches!(e, Error::Unauthenticated { .. }) {
                state.login.limiter.record_failure(&account, &ip);
            }
            return Err(e.into());
        }
    };
    let issued = state.tokens.issue(TokenSubject {
        sub: client.id,
        kind: PrincipalKind::Subprocessor,
        role: None,
        tenant: None,
        scopes: Vec::new(),
    })?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    }))
}
