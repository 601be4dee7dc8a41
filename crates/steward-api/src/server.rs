//! The app factory: the same middleware, configuration and routes for the binary and tests.

use std::net::TcpListener;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::problem::{self, Problem};
use crate::routes::{self, extract};
use crate::state::AppState;
use crate::{auth, metrics, request_id};

/// Binds the app to `listener` and returns the running server (await it, or stop it through
/// its handle). SIGTERM and SIGINT stop it gracefully: in-flight requests finish first.
pub fn start(listener: TcpListener, state: AppState, workers: usize) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::from(state.metrics.clone()))
            .app_data(extract::json_config(extract::JSON_LIMIT))
            .app_data(extract::path_config())
            .app_data(extract::query_config())
            .wrap(from_fn(auth::middleware::middleware))
            .wrap(ErrorHandlers::new().default_handler(problemize))
            .wrap(from_fn(metrics::middleware))
            .wrap(from_fn(request_id::middleware))
            .configure(routes::configure)
            .default_service(web::to(not_found))
    })
    .workers(workers.max(1))
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}

async fn not_found() -> HttpResponse {
    Problem::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such route",
    )
    .to_response()
}

/// Turns any error response that is not already a problem document (wrong method, framework
/// errors) into one, keeping its status and headers such as `Allow`.
fn problemize<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(problem::CONTENT_TYPE));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = problem::code_for_status(status);
    let detail = match code {
        "method_not_allowed" => "this route does not accept that method",
        "not_found" => "no such route",
        "payload_too_large" => "the request body is too large",
        _ => "the request could not be processed",
    };
    let (req, old) = res.into_parts();
    let mut new = Problem::new(status, code, detail).to_response();
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
