//! The pages served outside `/api`, embedded in the binary at build time so the server needs no
//! files beside it and no network: today a landing page at `/`.

use warp::http::{HeaderValue, header};
use warp::{Filter, Rejection, Reply};

const INDEX: &str = include_str!("../assets/index.html");

/// No script runs from inline code or foreign hosts on imgvault's pages.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path::end().and(warp::get()).map(|| {
        let mut resp = warp::reply::html(INDEX).into_response();
        let h = resp.headers_mut();
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    })
}
