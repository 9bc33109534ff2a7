//! Cross-origin access for the browser extension. Extension pages post from `chrome-extension://…`
//! or `moz-extension://…` origins; any other origin must be named with `--cors-origin`. Ordinary web
//! pages get no CORS headers, so they cannot read a logged-in user's data.

use std::sync::Arc;

use warp::http::{HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::with_state;

fn allowed(state: &AppState, origin: &str) -> bool {
    super::guard::allowed_origin(origin, &state.config.cors_origins)
}

/// Answers `OPTIONS` preflight requests from allowed origins with 204 and the allowed methods.
pub fn preflight(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    // Matching the method by hand: `warp::options()` would turn every unknown path into a 405.
    warp::method()
        .and(warp::path("api"))
        .and(warp::header::optional::<String>("origin"))
        .and(with_state(state))
        .and_then(
            |method, origin: Option<String>, state: Arc<AppState>| async move {
                let origin = origin.unwrap_or_default();
                if method != warp::http::Method::OPTIONS || !allowed(&state, &origin) {
                    return Err(warp::reject::not_found());
                }
                let mut resp = warp::reply().into_response();
                *resp.status_mut() = StatusCode::NO_CONTENT;
                let h = resp.headers_mut();
                h.insert(
                    "access-control-allow-methods",
                    HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
                );
                h.insert(
                    "access-control-allow-headers",
                    HeaderValue::from_static("content-type, authorization, idempotency-key"),
                );
                h.insert("access-control-max-age", HeaderValue::from_static("86400"));
                Ok(resp)
            },
        )
}

/// Adds `Access-Control-Allow-Origin` (with credentials, so a logged-in extension keeps its
/// session) to an answer for an allowed origin.
pub fn decorate(
    state: &AppState,
    request: &warp::http::HeaderMap,
    reply: impl Reply,
) -> warp::reply::Response {
    let mut resp = reply.into_response();
    let origin = request.get("origin").and_then(|o| o.to_str().ok());
    if let Some(origin) = origin.filter(|o| allowed(state, o)) {
        if let Ok(value) = HeaderValue::from_str(origin) {
            let h = resp.headers_mut();
            h.insert("access-control-allow-origin", value);
            h.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
            h.insert("vary", HeaderValue::from_static("origin"));
        }
    }
    resp
}
