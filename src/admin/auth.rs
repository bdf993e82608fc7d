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
    Ok(next.run(request).await)
}
