//! How an admin request fails: a status and `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::Error;

/// A failed admin request.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "send the admin token as `Authorization: Bearer <token>`",
        )
    }

    pub(super) fn read_only() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "READ_ONLY",
            "this admin API is read-only; operations are refused",
        )
    }

    pub(super) fn cross_site() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "CROSS_SITE",
            "an operation from another site's page is refused",
        )
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }

    pub(super) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::UnknownJob { .. } => (StatusCode::NOT_FOUND, "UNKNOWN_JOB"),
            Error::UnknownBatch { .. } => (StatusCode::NOT_FOUND, "UNKNOWN_BATCH"),
            Error::UnknownMessage { .. } => (StatusCode::NOT_FOUND, "UNKNOWN_MESSAGE"),
            Error::UnknownSchedule { .. } => (StatusCode::NOT_FOUND, "UNKNOWN_SCHEDULE"),
            Error::InvalidArgument { .. } => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            Error::NotHolder { .. } => (StatusCode::CONFLICT, "NOT_HOLDER"),
            Error::Closed => (StatusCode::SERVICE_UNAVAILABLE, "CLOSED"),
            Error::Poisoned { .. } => (StatusCode::SERVICE_UNAVAILABLE, "POISONED"),
            Error::StorageFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL"),
            Error::Unsupported { .. } => (StatusCode::NOT_IMPLEMENTED, "UNSUPPORTED"),
            #[cfg(feature = "postgres")]
            Error::CommitUnknown { .. } => (StatusCode::SERVICE_UNAVAILABLE, "COMMIT_UNKNOWN"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "ENGINE"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
