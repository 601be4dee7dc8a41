//! RFC 9457 problem documents: every error Steward answers has this shape and a stable `code`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";
const TYPE_BASE: &str = "https://steward.invalid/problems/";

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type; its last segment is `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable, machine-readable; clients switch on this.
    pub code: String,
    /// The permission that was missing, on 403s for a permission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// Per-item errors of a batch request.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Vec<steward_core::ItemError>>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("{TYPE_BASE}{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
            permission: None,
            errors: None,
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .content_type(CONTENT_TYPE)
            .json(self)
    }
}

/// The code for a status produced by the framework itself (no route, wrong method, …).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        431 => "headers_too_large",
        503 => "unavailable",
        s if s >= 500 => "internal_error",
        _ => "client_error",
    }
}

/// Removes double-quoted values from a serde message: serde quotes the *value* it rejected
/// (which may be personal data) and back-ticks field names, which are safe to show.
pub fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for ch in message.chars() {
        if ch == '"' {
            if !in_quote {
                out.push_str("\"…");
            } else {
                out.push('"');
            }
            in_quote = !in_quote;
        } else if !in_quote {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_values_keeps_fields() {
        let m = "invalid type: string \"alice@example.com\", expected u32 at line 1 column 9";
        let r = redact_quoted(m);
        assert!(!r.contains("alice"));
        assert!(r.contains("expected u32"));
        let m = "unknown field `nmae`, expected one of `name`";
        assert_eq!(redact_quoted(m), m);
    }
}
