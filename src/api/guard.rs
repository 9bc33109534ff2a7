//! Where a request comes from: the client's address (for rate limits), and whether a state change
//! riding on the user's session cookie was sent by our own pages (CSRF).
//!
//! The server is reachable from every page its user visits. A `SameSite=Lax` cookie keeps other
//! *sites* out, but a page on another port of the same host is the same site, and a `text/plain` or
//! form body needs no CORS preflight. So a cookie-carrying `POST`, `PUT` or `DELETE` — and every
//! login and register, which would otherwise let a page log the browser into someone else's
//! account — must (1) come as JSON (multipart on the file route), which a page can only send
//! cross-origin after a preflight we refuse, and (2) carry an `Origin` (or, lacking one, a `Referer`)
//! that is the server's own, an extension's, or one named with `--cors-origin`. Requests without
//! either header (curl, scripts, the extension's service worker) pass: browsers always send `Origin`
//! on cross-origin `POST`s.

use std::net::IpAddr;
use std::sync::Arc;

use warp::http::{HeaderMap, Method};
use warp::{Filter, Rejection};

use super::AppState;
use super::{ApiError, reject, with_state};
use crate::server::Peer;

/// The client's address: the connection's, or, when that is a `--trusted-proxy`, the last
/// `X-Forwarded-For` hop the proxies did not add themselves.
pub fn client_addr(
    state: Arc<AppState>,
) -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .and(warp::addr::remote())
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .map(
            |peer: Option<Peer>,
             remote: Option<std::net::SocketAddr>,
             headers: HeaderMap,
             state: Arc<AppState>| {
                let peer = peer
                    .map(|p| p.0.ip())
                    .or(remote.map(|r| r.ip()))
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                forwarded_client(peer, &headers, &state.config.trusted_proxies)
            },
        )
}

fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(addr) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = canonical(addr);
        if !trusted.contains(&client) {
            break;
        }
    }
    client
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Refuses cross-site state changes (see the module docs). Runs before routing, on every request.
pub fn csrf(state: Arc<AppState>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(with_state(state))
        .and_then(
            |method: Method,
             path: warp::path::FullPath,
             headers: HeaderMap,
             state: Arc<AppState>| async move {
                match check(&method, path.as_str(), &headers, &state.config.cors_origins, state.cookie) {
                    Ok(()) => Ok(()),
                    Err(why) => {
                        tracing::info!(%method, path = path.as_str(), why, "cross-site request refused");
                        Err(reject(ApiError::CrossSite(why)))
                    }
                }
            },
        )
        .untuple_one()
}

const EXTENSION_SCHEMES: [&str; 3] = [
    "chrome-extension://",
    "moz-extension://",
    "safari-web-extension://",
];

/// Origins other than our own that may act with the user's cookie.
pub fn allowed_origin(origin: &str, cors_origins: &[String]) -> bool {
    EXTENSION_SCHEMES.iter().any(|s| origin.starts_with(s))
        || cors_origins.iter().any(|o| o == origin)
}

fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    cors_origins: &[String],
    cookie: &str,
) -> Result<(), &'static str> {
    if !matches!(*method, Method::POST | Method::PUT | Method::DELETE) {
        return Ok(());
    }
    // A key is not ambient like a cookie: a page can only send one it holds, and cross-origin
    // only after a preflight we refuse. Its requests act as the key's user, never the cookie's.
    if headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .is_some()
    {
        return Ok(());
    }
    let account_route = matches!(path, "/api/login" | "/api/register");
    if !account_route && !has_session_cookie(headers, cookie) {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let source = match (header("origin"), header("referer")) {
        (Some(origin), _) => Some(origin.to_string()),
        (None, Some(referer)) => Some(origin_of(referer).ok_or("Referer 无效")?),
        (None, None) => None,
    };
    if let Some(source) = source {
        let own = header("host").is_some_and(|host| same_authority(&source, host));
        if !own && !allowed_origin(&source, cors_origins) {
            return Err("来源不是本服务器或允许的来源");
        }
    }
    if *method == Method::POST && !sent_as_json(path, headers) {
        return Err("请求体必须是 application/json");
    }
    Ok(())
}

/// The key of an `Authorization: Bearer` header; `None` for other schemes (not ours to judge).
/// A bearer that is not one of our keys is still returned, to be refused as unknown.
pub(super) fn bearer(header: &str) -> Option<&str> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn has_session_cookie(headers: &HeaderMap, cookie: &str) -> bool {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(name, value)| name == cookie && !value.is_empty())
        })
}

/// JSON (or multipart on the file route); a `POST` with no body and no type (logout, start a sync)
/// passes too, since a form always sends a type and `fetch` always sends an `Origin`.
fn sent_as_json(path: &str, headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get("content-type").and_then(|v| v.to_str().ok()) else {
        let empty = headers
            .get("content-length")
            .is_none_or(|n| n.as_bytes() == b"0")
            && !headers.contains_key("transfer-encoding");
        return empty;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (path == "/api/upload-file" && essence == "multipart/form-data")
}

/// `scheme://host[:port]` of a URL, as an `Origin` header would give it.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Whether `origin` names the host the request was sent to (any scheme: a TLS proxy in front
/// changes it, the host and port stay).
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    if authority == host {
        return true;
    }
    // `http://host` and `host:80` are the same place, and so on.
    let default_port = |scheme: &str| match scheme {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    let scheme = origin.split_once("://").map_or("", |(s, _)| s);
    default_port(scheme).is_some_and(|port| {
        format!("{authority}:{port}") == host || format!("{host}:{port}") == authority
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const COOKIE: (&str, &str) = ("cookie", "session=abc");
    const HOST: (&str, &str) = ("host", "127.0.0.1:5000");
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn a_cookie_post_from_a_foreign_page_is_refused() {
        let h = headers(&[COOKIE, HOST, JSON, ("origin", "http://127.0.0.1:8080")]);
        assert!(check(&Method::POST, "/api/receive-image", &h, &[], "session").is_err());
        let h = headers(&[COOKIE, HOST, JSON, ("referer", "http://evil.test/x")]);
        assert!(check(&Method::DELETE, "/api/user/images/1", &h, &[], "session").is_err());
    }

    #[test]
    fn own_pages_extensions_and_named_origins_pass() {
        for origin in [
            "http://127.0.0.1:5000",
            "chrome-extension://abcdef",
            "http://allowed.test",
        ] {
            let h = headers(&[COOKIE, HOST, JSON, ("origin", origin)]);
            let h = {
                let mut h = h;
                h.insert("origin", origin.parse().unwrap());
                h
            };
            assert_eq!(
                check(
                    &Method::POST,
                    "/api/receive-image",
                    &h,
                    &["http://allowed.test".into()],
                    "session"
                ),
                Ok(()),
                "{origin}"
            );
        }
        let h = headers(&[("host", "vault.lan"), ("origin", "https://vault.lan"), JSON]);
        assert_eq!(
            check(&Method::POST, "/api/login", &h, &[], "session"),
            Ok(())
        );
    }

    #[test]
    fn a_cookie_post_that_is_not_json_is_refused_even_without_an_origin() {
        let h = headers(&[COOKIE, HOST, ("content-type", "text/plain")]);
        assert!(check(&Method::POST, "/api/receive-image", &h, &[], "session").is_err());
        let h = headers(&[HOST, ("content-type", "application/x-www-form-urlencoded")]);
        assert!(
            check(&Method::POST, "/api/login", &h, &[], "session").is_err(),
            "login CSRF"
        );
        let h = headers(&[
            COOKIE,
            HOST,
            ("content-type", "multipart/form-data; boundary=x"),
        ]);
        assert_eq!(
            check(&Method::POST, "/api/upload-file", &h, &[], "session"),
            Ok(())
        );
        assert!(check(&Method::POST, "/api/receive-image", &h, &[], "session").is_err());
        let h = headers(&[COOKIE, HOST]);
        assert_eq!(
            check(&Method::POST, "/api/logout", &h, &[], "session"),
            Ok(())
        );
    }

    #[test]
    fn requests_without_a_cookie_or_reads_are_not_checked() {
        let h = headers(&[
            HOST,
            ("content-type", "text/plain"),
            ("origin", "http://evil.test"),
        ]);
        assert_eq!(
            check(&Method::POST, "/api/receive-image", &h, &[], "session"),
            Ok(())
        );
        let h = headers(&[COOKIE, HOST, ("origin", "http://evil.test")]);
        assert_eq!(
            check(&Method::GET, "/api/user/images", &h, &[], "session"),
            Ok(())
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 10.0.0.1")]);
        assert_eq!(forwarded_client(proxy, &h, &[]), proxy);
        assert_eq!(
            forwarded_client(proxy, &h, &[proxy]),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(forwarded_client(proxy, &h, &[proxy]), proxy);
    }
}
