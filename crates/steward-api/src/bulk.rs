//! A bulkhead for bulk requests: imports, pull pages, exports and PII listings.
//!
//! Each of them holds up to a thousand records in memory — parsed, sealed or opened, and
//! serialized — for a few milliseconds of CPU. Running sixty-four at once on two cores is no
//! faster than running four, but needs sixteen times the memory (the pull and import workloads
//! peaked near 500 MB). So at most `max_bulk_requests` of them run at a time; the others wait
//! here, before their bodies are read, and proceed in arrival order. Point reads and writes
//! never wait on this.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::middleware::AuthState;
use crate::state::AppState;

/// The default: one per core. A bulk request spends its time sealing or opening on a core and
/// then in the group committer, so one per core keeps both busy; measured on two cores, two
/// places pulled 70k records/s at 150 MB where four pulled 61–64k at 200–220 MB.
pub fn default_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

#[derive(Debug, Clone)]
pub struct BulkLimit(Arc<Semaphore>);

impl BulkLimit {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max.max(1))))
    }

    /// A place among the bulk requests, for a handler whose route also serves point requests
    /// (the visitor list also answers lookups). Hold it until the response is built.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        // Never closed, so acquiring only fails if it were; then run unlimited rather than fail.
        Arc::clone(&self.0).acquire_owned().await.ok()
    }
}

/// Wrap a bulk resource with `.wrap(from_fn(bulk::limit))`.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Requests that will be refused (no or bad credentials) are not worth a place in line.
    let authenticated = matches!(
        req.extensions().get::<AuthState>(),
        Some(AuthState::Authenticated(_))
    );
    let bulk = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.bulk.clone());
    let _permit = match (authenticated, bulk) {
        (true, Some(bulk)) => bulk.enter().await,
        _ => None,
    };
    next.call(req).await
}
