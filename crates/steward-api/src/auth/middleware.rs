//! Resolves `Authorization: Bearer …` into a principal once per request.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use steward_core::{Error, Principal, PrincipalKind};
use steward_identity::{api_keys, clients, looks_like_api_key, signing, users, TokenError};

use crate::state::AppState;

#[derive(Debug, Clone)]
pub enum AuthState {
    Anonymous,
    Authenticated(Principal),
    Failed(&'static str),
}

const INVALID_TOKEN: &str = "invalid or expired token";

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(bearer_token));
    let outcome = match (bearer, req.app_data::<web::Data<AppState>>()) {
        (None, _) => AuthState::Anonymous,
        (Some(Ok(Some(token))), Some(state)) => match authenticate(state, &token).await {
            Ok(p) => AuthState::Authenticated(p),
            Err(Error::Unauthenticated { detail }) => AuthState::Failed(detail),
            Err(e) => {
                tracing::error!(error = %e.log_cause(), "authentication failed internally");
                AuthState::Failed(INVALID_TOKEN)
            }
        },
        _ => AuthState::Failed("use `Authorization: Bearer <token>`"),
    };
    req.extensions_mut().insert(outcome);
    next.call(req).await
}

fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

async fn authenticate(state: &AppState, token: &str) -> Result<Principal, Error> {
    let now = state.clock.now().naive_utc();
    if looks_like_api_key(token) {
        let token = token.to_string();
        return state
            .store
            .read_point(move |c| api_keys::authenticate(c, &token, now))
            .await;
    }
    let claims = match state.tokens.verify(token) {
        Ok(c) => c,
        Err(TokenError::UnknownKey) => {
            // Maybe a key another server process created since we started.
            let store = state.store.clone();
            let tokens = state.tokens.clone();
            let refreshed = tokio::task::spawn_blocking(move || {
                signing::refresh_verification_keys(&store, &tokens)
            })
            .await
            .map_err(|_| Error::internal_msg("key refresh task failed"))??;
            if !refreshed {
                return Err(Error::Unauthenticated {
                    detail: INVALID_TOKEN,
                });
            }
            state.tokens.verify(token)?
        }
        Err(e) => return Err(e.into()),
    };
    let unauthenticated = || Error::Unauthenticated {
        detail: INVALID_TOKEN,
    };
    match claims.principal_kind() {
        // The database, not the token, is the truth for status, role and tenant: a disabled
        // user's tokens stop working at once.
        Some(PrincipalKind::User) => {
            let sub = claims.sub.clone();
            let user = state
                .store
                .read_point(move |c| users::get(c, &sub))
                .await
                .map_err(|e| match e {
                    Error::NotFound => unauthenticated(),
                    other => other,
                })?;
            if !user.is_active() {
                return Err(unauthenticated());
            }
            user.principal()
        }
        Some(PrincipalKind::Subprocessor) => {
            let sub = claims.sub.clone();
            let client = state
                .store
                .read_point(move |c| clients::get_active(c, &sub))
                .await?;
            Ok(Principal {
                kind: PrincipalKind::Subprocessor,
                id: client.subprocessor_id,
                role: None,
                tenant_id: None,
                scopes: Vec::new(),
            })
        }
        _ => Err(unauthenticated()),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn parses_bearer() {
        assert_eq!(bearer_token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer_token("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
