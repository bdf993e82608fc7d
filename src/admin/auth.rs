//! Bearer-token authentication and the read-only guard, as one middleware.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::options::AdminOptions;

/// Refuses a request without the token (`401`), and an operation on a read-only router (`403`).
/// The token travels in a header, never a cookie: another site cannot make a browser send it.
pub(super) async fn guard(
    State(options): State<Arc<AdminOptions>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &options.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
        if !same {
            return Err(ApiError::unauthorized());
        }
    }
    let operation = !matches!(*request.method(), Method::GET | Method::HEAD);
    if operation && options.read_only {
        return Err(ApiError::read_only());
    }
    // Without a token (a router mounted behind the app's own, cookie-based authentication,
    // say), a page of another site could still make a browser post a form here. Browsers say
    // where a request comes from; an operation from another site is refused.
    if operation && cross_site(&request) {
        return Err(ApiError::cross_site());
    }
    Ok(next.run(request).await)
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site: cross-site`,
/// or an `Origin` whose host is not the one asked.
fn cross_site(request: &Request) -> bool {
    let headers = request.headers();
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    origin == "null" || origin_host != host
}
