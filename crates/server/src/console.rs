//! The web console: static files compiled into the binary (`console/` in
//! this crate), served at `/` and `/console/{name}`. The console is a
//! client of the public API like any other: it sends the token the user
//! types, and this module serves files only, never data.
//!
//! The file names are a closed table; a name not in it is 404, and no name
//! is ever used to build a path. Every answer forbids scripts, styles and
//! connections from anywhere but this farm (`Content-Security-Policy`), so
//! that a snippet or a message shown in the console can never run as code
//! even if it reached the page as markup.

use crate::error::{excerpt, ApiError};
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Every file of the console: its name, content type and bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "lean.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/lean.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/chart.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../console/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../console/favicon.svg"),
    ),
];

/// Only this farm's own scripts, styles, images and API; no inline script,
/// no frames, no form posts elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn file_response(name: &str) -> Option<Response> {
    let (_, content_type, body) = FILES.iter().find(|(known, _, _)| *known == name)?;
    Some(
        (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
    )
}

/// `GET /`: the console's page.
pub(crate) async fn index() -> Response {
    file_response("index.html").expect("index.html is in the table")
}

/// `GET /console/{name}`: one of the console's files.
pub(crate) async fn asset(path: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    file_response(&name).ok_or_else(|| ApiError::NoRoute {
        method: "GET".into(),
        path: excerpt(&format!("/console/{name}")),
    })
}
