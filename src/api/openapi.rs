//! `GET /api/openapi.json`: the HTTP API as an OpenAPI 3.1 document, for people reading it (the
//! `/docs` page renders it) and for client generators.
//!
//! Nothing here is written by hand: each resource module describes its own operations beside
//! their handlers (`#[utoipa::path]`, gathered in the module's `Doc`), and the schemas come from
//! the very types the handlers serialize and parse (`#[derive(ToSchema)]`), so a field renamed in
//! code is renamed in the document. `tests/openapi.rs` holds the rest honest: it compares the
//! document's operations with the routes the source declares, both ways, and validates real
//! answers against the document's schemas.
//!
//! What every operation shares is added here once: the error answer (`ErrorReply`, as `default`
//! on every operation that names no error of its own) and the two ways to authenticate (the
//! session cookie, whose name is this server's own, and an API key as a bearer token).

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use warp::http::HeaderMap;
use warp::{Filter, Rejection, Reply};

use super::AppState;
use super::error::ErrorReply;
use crate::web::Generated;

/// The security requirements operations name: `session` (the login cookie) and `key` (an API
/// key). An operation open to anyone names none.
pub(super) const SESSION: &str = "session";
pub(super) const KEY: &str = "key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "imgvault",
        description = "A self-hosted image vault. The seed's HTTP API (its 15 endpoints keep \
                       their paths, fields, status codes and error strings) and what imgvault \
                       adds beside it. Errors are JSON: `{\"success\": false, \"error\": \"...\"}`, \
                       with `Retry-After` on 429, 503 and 507.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(openapi_json),
    components(schemas(ErrorReply)),
    tags(
        (name = "status", description = "Liveness and health."),
        (name = "account", description = "Registration, login, sessions and the profile."),
        (name = "upload", description = "Saving images: from the browser extension (data URLs or \
                                         page URLs), the clipboard and file uploads."),
        (name = "images", description = "The caller's images: listing, search, files, edits, tags, \
                                         the trash and batch actions."),
        (name = "capture", description = "The extension's capture workflow: \"already saved\" \
                                          lookups, provenance, near-duplicates."),
        (name = "keys", description = "API keys for the extension and scripts, and pairing."),
        (name = "sync", description = "Cloud sync between a local server and its hub."),
        (name = "admin", description = "For the administrator: backups and metrics."),
        (name = "web", description = "The web UI, its files, this document's page and the \
                                      extension."),
    )
)]
struct Base;

/// The whole document, for a server whose session cookie is called `cookie`.
pub fn document(cookie: &str) -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    for part in [
        super::status::Doc::openapi(),
        super::auth::Doc::openapi(),
        super::images::doc(),
        super::stats::Doc::openapi(),
        super::tasks::Doc::openapi(),
        super::sync::Doc::openapi(),
        super::admin::Doc::openapi(),
        super::keys::Doc::openapi(),
        crate::web::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            cookie,
            "The session cookie `/api/login` sets. Requests that change something and carry \
             it must come from this server's own pages (an `Origin` or `Referer` of its own).",
        ))),
    );
    components.add_security_scheme(
        KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("ivk_…")
                .description(Some(
                    "An API key (`/api/keys`) as `Authorization: Bearer ivk_…`. Its scope \
                     (capture, read or full) limits what it may do.",
                ))
                .build(),
        ),
    );
    let error = ResponseBuilder::new()
        .description("An error, as JSON.")
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorReply")))),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            // Open operations say so (`security(())`); the others take either credential.
            operation.security.get_or_insert_with(|| {
                vec![
                    SecurityRequirement::new(SESSION, Vec::<String>::new()),
                    SecurityRequirement::new(KEY, Vec::<String>::new()),
                ]
            });
            operation
                .responses
                .responses
                .entry("default".to_string())
                .or_insert_with(|| RefOr::T(error.clone()));
        }
    }
    doc
}

/// The document of this server.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi_document",
    tag = "web",
    security(()),
    responses(
        (status = 200, description = "This document.", content_type = "application/json"),
        (status = 304, description = "The client's copy (`If-None-Match`) is current."),
    )
)]
fn openapi_json(document: &Generated, headers: &HeaderMap) -> warp::reply::Response {
    document.send(headers)
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    // Made once: the document depends only on the build and the cookie's name.
    let json = serde_json::to_vec(&document(state.cookie)).unwrap_or_default();
    let file = Arc::new(Generated::new("openapi.json", json));
    warp::path!("api" / "openapi.json")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .map(move |headers: HeaderMap| openapi_json(&file, &headers))
}
