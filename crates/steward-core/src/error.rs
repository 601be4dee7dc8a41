//! The domain error. Domain crates return it; `steward-api` maps each variant to one HTTP
//! problem document. Variants carry stable codes and ids, never values from a request body.

use crate::permissions::Permission;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that cannot be accepted; nothing was changed.
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    /// Several items of a batch are invalid; nothing was changed.
    #[error("{detail}")]
    InvalidItems {
        code: &'static str,
        detail: String,
        items: Vec<ItemError>,
    },
    /// Missing — or belonging to another tenant, which must look the same.
    #[error("not found")]
    NotFound,
    #[error("authentication required: {detail}")]
    Unauthenticated { detail: &'static str },
    #[error("missing permission {permission}")]
    Forbidden { permission: Permission },
    /// Refused for a reason other than a missing permission (a grant out of scope, an
    /// objection on file); `code` says which.
    #[error("{detail}")]
    Denied { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The tenant's keys were destroyed: its data is gone for good.
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    #[error("too many attempts")]
    RateLimited { retry_after_secs: u64 },
    /// The database or the committer cannot take work right now.
    #[error("service unavailable")]
    Unavailable,
    /// Anything else. The source goes to the logs (ids only), never to the client.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What is wrong with one item of a batch.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemError {
    pub index: usize,
    pub code: &'static str,
    pub detail: String,
}

impl Error {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn denied(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Denied {
            code,
            detail: detail.into(),
        }
    }

    pub fn gone(code: &'static str, detail: impl Into<String>) -> Self {
        Error::Gone {
            code,
            detail: detail.into(),
        }
    }

    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(e.into())
    }

    /// An internal failure described by a fixed message (no user data).
    pub fn internal_msg(msg: &'static str) -> Self {
        Error::Internal(msg.into())
    }

    /// What to log: for an internal error its cause and the causes under it (an `Internal`
    /// displays only "internal error", which tells an operator nothing), otherwise the
    /// message. Causes are built from ids and library errors, never from request values.
    pub fn log_cause(&self) -> String {
        let Error::Internal(source) = self else {
            return self.to_string();
        };
        let mut text = source.to_string();
        let mut next = source.source();
        while let Some(cause) = next {
            // Many errors already print their source ("key file I/O: {0}"); say it once.
            let said = cause.to_string();
            if !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            next = cause.source();
        }
        text
    }
}

#[cfg(feature = "diesel")]
impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match e {
            D::NotFound => Error::NotFound,
            D::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Error::conflict(
                "already_exists",
                "a resource with these values already exists",
            ),
            D::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => Error::Unavailable,
            other => Error::internal(other),
        }
    }
}

#[cfg(feature = "diesel")]
impl From<r2d2::Error> for Error {
    fn from(_: r2d2::Error) -> Self {
        // Pool exhausted or database unreachable: the client may retry.
        Error::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("batch failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("database is locked")]
    struct Inner;

    #[test]
    fn log_cause_names_every_cause_of_an_internal_error() {
        let e = Error::internal(Outer(Inner));
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.log_cause(), "batch failed: database is locked");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("key file I/O: {0}")]
    struct Echoing(#[source] Inner);

    #[test]
    fn log_cause_says_a_cause_once_when_the_message_already_holds_it() {
        let e = Error::internal(Echoing(Inner));
        assert_eq!(e.log_cause(), "key file I/O: database is locked");
    }

    #[test]
    fn log_cause_of_other_errors_is_their_message() {
        assert_eq!(Error::NotFound.log_cause(), "not found");
        assert_eq!(
            Error::internal_msg("audit head vanished during append").log_cause(),
            "audit head vanished during append"
        );
    }
}
