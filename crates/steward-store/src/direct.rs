//! Queries run on the backend's own connection instead of through the `MultiConnection`.
//!
//! diesel's `MultiConnection` wraps every query so it can pick the backend at run time, and that
//! wrapper renders the query's SQL text on every execution (to hand it to the inner
//! connection), even when the inner connection already holds the prepared statement. On the
//! request path that was about a tenth of the CPU of a visitor read: the API key lookup and
//! the visitor fetch each rendered their SQL two to three times per request. The same
//! query run on the concrete connection is keyed by its type in the statement cache and renders
//! nothing.

/// Evaluates `$body` with `$c` bound to the concrete backend connection inside `$conn`
/// (`&mut DbConnection`), once per backend arm, so one query-builder expression serves both:
///
/// ```text
/// let row = direct!(conn, |c| visitors::table.find((tid, id)).first::<VisitorRow>(c))?;
/// ```
///
/// Use it on hot paths; elsewhere the plain `MultiConnection` is simpler to read.
#[macro_export]
macro_rules! direct {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::DbConnection::Sqlite($c) => $body,
            $crate::DbConnection::Postgres($c) => $body,
        }
    };
}
