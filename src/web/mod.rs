//! The pages served outside `/api`: the web UI at `/`, its files under `/assets/`, and the browser
//! extension as `/extension.zip`. Everything under `assets/` is embedded at build time (`build.rs`),
//! so the server needs no files beside it and no network: it works on a LAN with no internet.
//!
//! Caching: the page links its scripts and styles with a `?v=` content hash, so those are cached
//! for a year as immutable and a new build is picked up at the next page load. Only a `v=` that is
//! the file's current hash earns that, so one URL cached as immutable never stands for two contents
//! (a stale `v=` after an upgrade or a rollback is answered like an unversioned request). The page
//! itself and unversioned requests are revalidated with an `ETag`. Text is gzipped once, on first
//! use.
//!
//! The UI is made of ES modules: the page links the entry, `app.js`, which imports `js/*.js` by
//! plain relative URLs that the page's `?v=` does not reach. Those modules are therefore always
//! served `no-cache` with an `ETag`: each page load revalidates each of them (a 304 when
//! unchanged), so a new entry never runs with stale modules, and an entry still cached from an
//! older build gets the new modules. Rewriting import specifiers with content hashes would save
//! those round trips, but it would mean editing JavaScript on the server and hashing each module's
//! whole import graph; for a dozen small files on a LAN, revalidation is simpler.
//!
//! For UI work, `IMGVAULT_ASSETS_DIR=assets` makes the server read the files from disk on every
//! request instead, so a reload shows an edit without a rebuild.

mod zip;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::{Filter, Rejection, Reply};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// No script runs from inline code or foreign hosts, and nothing is loaded from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
                       base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const EXTENSION_DIR: &str = "extension/";
/// The pages, served at `/` and `/docs`; the others of `assets/` are the files they link.
const PAGES: [&str; 2] = ["index.html", "api.html"];
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file, ready to send.
struct Asset {
    bytes: Bytes,
    gzip: Option<Bytes>,
    etag: String,
    mime: &'static str,
}

impl Asset {
    /// The content hash that a `?v=` link carries.
    fn version(&self) -> &str {
        self.etag.trim_matches('"')
    }

    fn new(name: &str, bytes: Vec<u8>) -> Self {
        let mime = mime_for(name);
        let gzip = is_text(mime).then(|| gzip(&bytes)).flatten();
        let etag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..16]);
        Self {
            bytes: bytes.into(),
            gzip,
            etag,
            mime,
        }
    }
}

/// A file the server makes at start (not one of `assets/`), served like one: gzipped when the
/// client takes it, revalidated with an `ETag`.
pub struct Generated(Asset);

impl Generated {
    /// `name`'s extension gives the content type.
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        Self(Asset::new(name, bytes))
    }

    pub fn send(&self, request: &HeaderMap) -> warp::reply::Response {
        send(&self.0, request, "no-cache", false)
    }
}

/// The UI's files and the extension archive.
struct Site {
    files: HashMap<String, Asset>,
    extension_zip: Asset,
}

impl Site {
    fn build(files: Vec<(String, Vec<u8>)>) -> Self {
        let extension_zip = Asset::new(
            "extension.zip",
            zip::build(
                files
                    .iter()
                    .filter_map(|(n, b)| Some((n.strip_prefix(EXTENSION_DIR)?, b.as_slice()))),
            ),
        );
        let mut site: HashMap<String, Asset> = files
            .into_iter()
            .filter(|(name, _)| !name.starts_with(EXTENSION_DIR))
            .map(|(name, bytes)| {
                let asset = Asset::new(&name, bytes);
                (name, asset)
            })
            .collect();
        // Point the pages at content-versioned URLs of the files they link.
        for page in PAGES {
            let Some(asset) = site.get(page) else {
                continue;
            };
            let mut html = String::from_utf8_lossy(&asset.bytes).into_owned();
            for (name, asset) in &site {
                let link = format!("\"/assets/{name}\"");
                if name != page && html.contains(&link) {
                    let version = asset.version();
                    html = html.replace(&link, &format!("\"/assets/{name}?v={version}\""));
                }
            }
            site.insert(page.to_string(), Asset::new(page, html.into()));
        }
        Self {
            files: site,
            extension_zip,
        }
    }

    fn embedded() -> Arc<Site> {
        static SITE: OnceLock<Arc<Site>> = OnceLock::new();
        SITE.get_or_init(|| {
            Arc::new(Site::build(
                embedded::FILES
                    .iter()
                    .map(|(n, b)| (n.to_string(), b.to_vec()))
                    .collect(),
            ))
        })
        .clone()
    }

    fn from_dir(root: &Path) -> Arc<Site> {
        let mut files = Vec::new();
        read_dir(root, root, &mut files);
        Arc::new(Site::build(files))
    }

    /// The embedded files, or the ones on disk in development.
    fn current() -> Arc<Site> {
        match dev_dir() {
            Some(dir) => Site::from_dir(dir),
            None => Site::embedded(),
        }
    }
}

fn dev_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("IMGVAULT_ASSETS_DIR").map(PathBuf::from)?;
        tracing::warn!(dir = %dir.display(), "serving the web UI from disk (IMGVAULT_ASSETS_DIR)");
        Some(dir)
    })
    .as_ref()
}

fn read_dir(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            read_dir(root, &path, out);
        } else if let (Ok(rel), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
            out.push((rel.to_string_lossy().replace('\\', "/"), bytes));
        }
    }
}

/// The operations of this module in the OpenAPI document (`api::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(index, docs, asset, extension))]
pub struct Doc;

pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end()
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and_then(index);
    let docs = warp::path!("docs")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and_then(docs);
    let files = warp::path("assets")
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and_then(asset);
    let extension = warp::path!("extension.zip")
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .map(extension);
    index.or(docs).or(files).or(extension)
}

/// The web UI.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "web_ui",
    tag = "web",
    security(()),
    responses((status = 200, description = "The web UI's page.", content_type = "text/html"))
)]
async fn index(headers: HeaderMap) -> Result<warp::reply::Response, Rejection> {
    page("index.html", &headers)
}

/// This API's reference, a page that reads `/api/openapi.json`.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "api_docs",
    tag = "web",
    security(()),
    responses((status = 200, description = "The API reference page.", content_type = "text/html"))
)]
async fn docs(headers: HeaderMap) -> Result<warp::reply::Response, Rejection> {
    page("api.html", &headers)
}

/// Without the page (an assets directory lacking one) this is a plain 404, which the API's error
/// mapping answers.
fn page(name: &str, headers: &HeaderMap) -> Result<warp::reply::Response, Rejection> {
    let site = Site::current();
    match site.files.get(name) {
        Some(page) => Ok(send(page, headers, "no-cache", true)),
        None => Err(warp::reject::not_found()),
    }
}

/// A file of the web UI: scripts, styles, icons.
#[utoipa::path(
    get,
    path = "/assets/{path}",
    operation_id = "web_asset",
    tag = "web",
    security(()),
    params(
        ("path" = String, Path, description = "The file's path under `assets/` (may hold `/`)."),
        ("v" = Option<String>, Query, description = "The file's content hash, as the pages link \
                                                    it: answered as cacheable for a year."),
    ),
    responses(
        (status = 200, description = "The file."),
        (status = 304, description = "The client's copy (`If-None-Match`) is current."),
    )
)]
async fn asset(
    tail: warp::path::Tail,
    query: String,
    headers: HeaderMap,
) -> Result<warp::reply::Response, Rejection> {
    let site = Site::current();
    let name = percent_decode(tail.as_str());
    let asset = site.files.get(&name).ok_or_else(warp::reject::not_found)?;
    let cache = cache_control(asset, &query, dev_dir().is_some());
    Ok(send(asset, &headers, cache, name.ends_with(".html")))
}

/// The browser extension, packed for "Load unpacked" after unzipping.
#[utoipa::path(
    get,
    path = "/extension.zip",
    operation_id = "extension_zip",
    tag = "web",
    security(()),
    responses((status = 200, description = "The extension as a zip archive.", content_type = "application/zip"))
)]
fn extension(headers: HeaderMap) -> warp::reply::Response {
    let site = Site::current();
    let mut resp = send(&site.extension_zip, &headers, "no-cache", false);
    resp.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"imgvault-extension.zip\""),
    );
    resp
}

/// Immutable for a year only when the query names this very content (the page's versioned links)
/// and the files are not being edited on disk; revalidated otherwise, which is how the modules that
/// `app.js` imports without a version are always served.
fn cache_control(asset: &Asset, query: &str, dev: bool) -> &'static str {
    if !dev && query.strip_prefix("v=") == Some(asset.version()) {
        IMMUTABLE
    } else {
        "no-cache"
    }
}

/// `If-None-Match` holds a list of tags or `*`; weak tags compare by their opaque part.
pub fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

/// Answers with the asset (gzipped when the client takes it), or 304 when the client has it.
fn send(
    asset: &Asset,
    request: &HeaderMap,
    cache: &'static str,
    page: bool,
) -> warp::reply::Response {
    let fresh = etag_matches(
        request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
        &asset.etag,
    );
    let gzip = asset.gzip.as_ref().filter(|_| accepts_gzip(request));
    let mut resp = if fresh {
        let mut r = warp::reply::Response::default();
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        warp::reply::Response::new(gzip.unwrap_or(&asset.bytes).clone().into())
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    if asset.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if gzip.is_some() && !fresh {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    if page {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    resp
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// Gzip, kept only when it saves something.
fn gzip(bytes: &[u8]) -> Option<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    let packed = encoder.finish().ok()?;
    (packed.len() < bytes.len()).then(|| packed.into())
}

fn mime_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.starts_with("application/json")
        || mime == "image/svg+xml"
        || mime == "application/manifest+json"
}

/// Asset names are plain ASCII; a percent-encoded path is decoded only to be compared with them.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_lists_weak_tags_and_star() {
        assert!(etag_matches(Some("\"a\""), "\"a\""));
        assert!(etag_matches(Some("\"x\", W/\"a\""), "\"a\""));
        assert!(etag_matches(Some("*"), "\"a\""));
        assert!(!etag_matches(Some("\"b\""), "\"a\""));
        assert!(!etag_matches(None, "\"a\""));
    }

    #[test]
    fn the_page_links_its_files_by_content_version() {
        let site = Site::build(vec![
            (
                "index.html".into(),
                br#"<script src="/assets/app.js" defer></script><link href="/assets/app.css">"#
                    .to_vec(),
            ),
            ("app.js".into(), b"console.log(1)".to_vec()),
            ("app.css".into(), b"body{}".to_vec()),
            ("extension/manifest.json".into(), b"{}".to_vec()),
        ]);
        let page = String::from_utf8(site.files["index.html"].bytes.to_vec()).unwrap();
        let js = site.files["app.js"].etag.trim_matches('"').to_string();
        assert!(
            page.contains(&format!("\"/assets/app.js?v={js}\"")),
            "{page}"
        );
        assert!(page.contains("\"/assets/app.css?v="), "{page}");
        assert!(!site.files.contains_key("extension/manifest.json"));
        assert!(!site.extension_zip.bytes.is_empty());
    }

    #[test]
    fn only_the_current_version_is_cached_as_immutable() {
        let asset = Asset::new("js/api.js", b"export const x = 1;".to_vec());
        let current = format!("v={}", asset.version());
        assert_eq!(cache_control(&asset, &current, false), IMMUTABLE);
        assert_eq!(cache_control(&asset, &current, true), "no-cache");
        assert_eq!(cache_control(&asset, "", false), "no-cache");
        assert_eq!(
            cache_control(&asset, "v=0123456789abcdef", false),
            "no-cache"
        );
        assert_eq!(
            cache_control(&asset, &format!("{current}&x=1"), false),
            "no-cache"
        );
    }

    #[test]
    fn gzip_is_offered_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn every_embedded_file_has_a_known_type() {
        for (name, _) in embedded::FILES {
            assert_ne!(mime_for(name), "application/octet-stream", "{name}");
        }
    }
}
