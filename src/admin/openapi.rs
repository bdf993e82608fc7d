//! The API's OpenAPI 3.1 description, served at `/api/openapi.json` (no token needed: it holds
//! no data). A test keeps it and the routes in step.

use axum::http::header;
use axum::response::IntoResponse;

const DESCRIPTION: &str = include_str!("openapi.json");

pub(super) async fn description() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DESCRIPTION)
}
