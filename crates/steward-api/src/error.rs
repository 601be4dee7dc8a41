//! The one mapping from failures to HTTP. Domain code returns `steward_core::Error`; handlers
//! return `ApiError`; nothing else decides a status code.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use steward_core::Error;

use crate::problem::Problem;

#[derive(Debug)]
pub struct ApiError(pub Error);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ApiError {}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn problem(&self) -> Problem {
        match &self.0 {
            Error::Invalid { code, detail } => Problem::new(StatusCode::BAD_REQUEST, code, detail),
            Error::InvalidItems {
                code,
                detail,
                items,
            } => {
                let mut p = Problem::new(StatusCode::BAD_REQUEST, code, detail);
                p.errors = Some(items.clone());
                p
            }
            Error::NotFound => Problem::new(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            Error::Unauthenticated { detail } => {
                Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", *detail)
            }
            Error::Forbidden { permission } => {
                let mut p = Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("this action needs the permission `{permission}`"),
                );
                p.permission = Some(permission.as_str().to_string());
                p
            }
            Error::Denied { code, detail } => Problem::new(StatusCode::FORBIDDEN, code, detail),
            Error::Conflict { code, detail } => Problem::new(StatusCode::CONFLICT, code, detail),
            Error::Gone { code, detail } => Problem::new(StatusCode::GONE, code, detail),
            Error::RateLimited { .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many attempts; retry later",
            ),
            Error::Unavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is temporarily unavailable; retry later",
            ),
            Error::Internal(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "an internal error occurred",
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let Error::Internal(_) = &self.0 {
            // The cause goes to the log (the request id ties it to the response), never to
            // the client. Causes are built from ids and library errors, not request values.
            tracing::error!(error = %self.0.log_cause(), "internal error");
        }
        let mut resp = self.problem().to_response();
        let headers = resp.headers_mut();
        match &self.0 {
            Error::Unauthenticated { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"steward\""),
                );
            }
            Error::RateLimited { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(&1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            Error::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
