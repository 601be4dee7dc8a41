//! Extractor configuration: body, path and query errors become problem documents with stable
//! codes instead of actix's plain-text defaults.

use actix_web::error::{InternalError, JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};

use crate::problem::{redact_quoted, Problem};

/// Default JSON body limit; routes that take large bodies (batch import) set their own.
pub const JSON_LIMIT: usize = 256 * 1024;

pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(json_error)
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let problem = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this route accepts",
            )
        }
        JsonPayloadError::ContentType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            redact_quoted(&e.to_string()),
        ),
        JsonPayloadError::Deserialize(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is not valid JSON",
        ),
        _ => Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body could not be read",
        ),
    };
    InternalError::from_response(err, problem.to_response()).into()
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let problem = Problem::new(StatusCode::NOT_FOUND, "not_found", "no such resource");
        InternalError::from_response(err, problem.to_response()).into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => redact_quoted(&e.to_string()),
            _ => "the query string could not be read".to_string(),
        };
        let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail);
        InternalError::from_response(err, problem.to_response()).into()
    })
}
