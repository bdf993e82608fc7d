//! The web dashboard: one page with its style and script embedded in the binary (no CDN, no
//! build step), served at `/` of the admin router. It reads and operates through the API
//! with the token the user enters, kept in the tab's session storage.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page: overview, jobs with filters and paging, one job with its live timeline.
const PAGE: &str = include_str!("dashboard.html");

/// The page may not be framed by another site (its buttons operate on the engine), and loads
/// nothing from elsewhere.
const POLICY: &str = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(super) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
}
