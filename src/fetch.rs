//! Fetching an image by URL for `/api/receive-image`, without letting a client use the server to
//! reach what only the server can reach.
//!
//! A URL sent by anyone who can reach the API must not become a probe of the LAN, the router or the
//! cloud metadata endpoint, so every address a request connects to is checked: names through our
//! own resolver (which is also what the connection uses, so a name cannot resolve to a public
//! address for the check and a private one for the connection), IP literals before the request,
//! and redirects are followed by hand so each hop is checked the same way. `--allow-private-fetch`
//! lifts the check for LAN use. Proxies from the environment are ignored: a proxy would resolve
//! the name itself and bypass the check.

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::throttle::append_within;
use crate::throttle::{Closed, Gate, Reservation};

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid image URL: {0}")]
    BadUrl(String),
    #[error("{host} resolves to {addr}, a loopback, private or link-local address")]
    Blocked { host: String, addr: IpAddr },
    #[error("the image is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the image server answered {0}")]
    Status(StatusCode),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("{0}")]
    Network(String),
    /// The server's budget for bodies in flight has no room for this image now.
    #[error("no room in the memory budget for the image")]
    Busy,
}

/// The crypto provider reqwest's rustls needs; built without a default one to keep aws-lc (and
/// its C toolchain) out of ARM cross-builds.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if a provider is already installed, which is what we want anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder with TLS ready and our user agent; callers add their own limits.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().user_agent(concat!("imgvault/", env!("CARGO_PKG_VERSION")))
}

/// Downloads images for `/api/receive-image`.
pub struct Fetcher {
    client: reqwest::Client,
    guard: Arc<Guard>,
    timeout: Duration,
    max_bytes: usize,
}

/// Which addresses may be connected to.
struct Guard {
    allow_private: bool,
    /// Addresses allowed even though they are not public (tests: the one local server).
    exempt: Vec<IpAddr>,
}

impl Guard {
    fn allows(&self, ip: IpAddr) -> bool {
        self.allow_private || is_public(ip) || self.exempt.contains(&ip)
    }
}

impl Fetcher {
    pub fn new(allow_private: bool, timeout: Duration, max_bytes: usize) -> reqwest::Result<Self> {
        Self::with_guard(
            Guard {
                allow_private,
                exempt: Vec::new(),
            },
            timeout,
            max_bytes,
        )
    }

    fn with_guard(guard: Guard, timeout: Duration, max_bytes: usize) -> reqwest::Result<Self> {
        let guard = Arc::new(guard);
        let client = client_builder()
            .dns_resolver(GuardedResolver {
                guard: guard.clone(),
            })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            client,
            guard,
            timeout,
            max_bytes,
        })
    }

    /// Fetches `url`, sending `referer` (the page the image was on) because many sites refuse
    /// hotlinked images without one. The whole exchange, redirects and body included, shares one
    /// time limit, and the body is refused as soon as it passes the size limit. The body's bytes
    /// are counted in `budget` (the server's bodies in flight) while they arrive and for as long
    /// as the returned bytes live.
    pub async fn fetch(
        &self,
        url: &str,
        referer: Option<&str>,
        budget: &Gate,
    ) -> Result<Bytes, FetchError> {
        let url = Url::parse(url.trim()).map_err(|e| FetchError::BadUrl(e.to_string()))?;
        let referer = referer
            .and_then(|r| Url::parse(r).ok())
            .filter(|r| matches!(r.scheme(), "http" | "https"))
            .and_then(|r| HeaderValue::from_str(r.as_str()).ok());
        let mut reservation = Reservation::new(budget);
        let bytes = tokio::time::timeout(self.timeout, self.follow(url, referer, &mut reservation))
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))??;
        Ok(reservation.hold(bytes))
    }

    async fn follow(
        &self,
        mut url: Url,
        referer: Option<HeaderValue>,
        reservation: &mut Reservation,
    ) -> Result<Vec<u8>, FetchError> {
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&url)?;
            let mut request = self
                .client
                .get(url.clone())
                .header(header::ACCEPT, accept());
            if let Some(referer) = &referer {
                request = request.header(header::REFERER, referer.clone());
            }
            let response = request.send().await.map_err(explain)?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or(FetchError::Status(status))?;
                url = url
                    .join(location)
                    .map_err(|e| FetchError::BadUrl(format!("redirect to {location}: {e}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status));
            }
            return self.read_body(response, reservation).await;
        }
        Err(FetchError::TooManyRedirects)
    }

    /// Scheme, and IP-literal hosts, which never reach the resolver.
    fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::BadUrl(format!(
                "only http and https are fetched, not {}",
                url.scheme()
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(FetchError::BadUrl("the URL has no host".into())),
        };
        if !self.guard.allows(ip) {
            return Err(FetchError::Blocked {
                host: ip.to_string(),
                addr: ip,
            });
        }
        Ok(())
    }

    async fn read_body(
        &self,
        response: reqwest::Response,
        reservation: &mut Reservation,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = self.max_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut out = Vec::new();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(explain)?;
            let grown = (out.len() + chunk.len()).min(limit + 1) as u64;
            reservation.grow_to(grown).map_err(|e| match e {
                Closed::Busy => FetchError::Busy,
                Closed::TooLarge => FetchError::TooLarge { limit },
            })?;
            if !append_within(&mut out, chunk, limit) {
                return Err(FetchError::TooLarge { limit });
            }
        }
        Ok(out)
    }
}

/// The `Accept` header: the formats this build stores, so a server that negotiates (a CDN answering
/// AVIF or JPEG XL to browsers) picks one of them rather than one the upload would refuse.
fn accept() -> &'static str {
    static ACCEPT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mimes: Vec<&str> = crate::media::ImageKind::ACCEPTED
            .iter()
            .map(|kind| kind.mime())
            .collect();
        mimes.join(",")
    });
    &ACCEPT
}

/// Turns reqwest's error into ours, finding a refusal by our resolver in its chain of causes.
fn explain(e: reqwest::Error) -> FetchError {
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(blocked) = c.downcast_ref::<BlockedName>() {
            return FetchError::Blocked {
                host: blocked.host.clone(),
                addr: blocked.addr,
            };
        }
        cause = c.source();
    }
    if e.is_timeout() {
        return FetchError::Network("connection timed out".into());
    }
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    FetchError::Network(text)
}

#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {addr}")]
struct BlockedName {
    host: String,
    addr: IpAddr,
}

/// The system resolver, keeping only the addresses the guard allows.
struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| guard.allows(a.ip()))
                .collect();
            if usable.is_empty() {
                if let Some(first) = found.first() {
                    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(BlockedName {
                        host,
                        addr: first.ip(),
                    });
                    return Err(err);
                }
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local, unique-local,
/// shared (CGNAT), multicast, broadcast, documentation or unspecified. IPv6 forms that embed an
/// IPv4 address are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique-local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
                && v6 != Ipv6Addr::UNSPECIFIED
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Gate {
        Gate::new(1 << 20, 0, Duration::ZERO)
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.10",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn integer_and_hex_hosts_are_parsed_as_the_addresses_they_are() {
        let fetcher = Fetcher::new(false, Duration::from_secs(1), 1024).unwrap();
        for url in [
            "http://2130706433/a.png",
            "http://0x7f.1/a.png",
            "http://[::ffff:7f00:1]/a.png",
            "http://127.1/a.png",
        ] {
            let parsed = Url::parse(url).unwrap();
            assert!(
                matches!(fetcher.check_url(&parsed), Err(FetchError::Blocked { .. })),
                "{url} should be refused"
            );
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_before_connecting() {
        let fetcher = Fetcher::new(false, Duration::from_secs(5), 1024).unwrap();
        let err = fetcher
            .fetch("http://localhost:9/a.png", None, &budget())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Blocked { .. }), "{err:?}");
    }

    /// A server on 127.0.0.1 with a few routes; the fetcher is allowed to reach exactly it.
    async fn local_server() -> (SocketAddr, Fetcher) {
        use warp::Filter;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let png = warp::path!("a.png").map(|| vec![0x89u8, b'P', b'N', b'G']);
        let referer = warp::path!("referer")
            .and(warp::header::optional::<String>("referer"))
            .map(|r: Option<String>| r.unwrap_or_default());
        let hop = warp::path!("hop" / usize).map(move |n: usize| {
            let to = if n == 0 {
                "/a.png".to_string()
            } else {
                format!("/hop/{}", n - 1)
            };
            warp::redirect::found(warp::http::Uri::try_from(to).unwrap())
        });
        let away = warp::path!("away" / String).map(|to: String| {
            let to = to.replace('~', "/");
            warp::redirect::found(warp::http::Uri::try_from(to).unwrap())
        });
        let big = warp::path!("big").map(|| vec![0u8; 4096]);
        let streamed = warp::path!("streamed").map(|| {
            let chunks =
                (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 512])));
            warp::reply::stream(futures_util::stream::iter(chunks))
        });
        let routes = png.or(referer).or(hop).or(away).or(big).or(streamed);
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        let guard = Guard {
            allow_private: false,
            exempt: vec![addr.ip()],
        };
        let fetcher = Fetcher::with_guard(guard, Duration::from_secs(5), 1024).unwrap();
        (addr, fetcher)
    }

    #[tokio::test]
    async fn fetches_follows_redirects_and_sends_the_referer() {
        let (addr, fetcher) = local_server().await;
        let body = fetcher
            .fetch(&format!("http://{addr}/hop/4"), None, &budget())
            .await
            .unwrap();
        assert_eq!(&body[..], b"\x89PNG");
        let body = fetcher
            .fetch(
                &format!("http://{addr}/referer"),
                Some("https://shop.example/item?id=1"),
                &budget(),
            )
            .await
            .unwrap();
        assert_eq!(&body[..], b"https://shop.example/item?id=1");
        let err = fetcher
            .fetch(&format!("http://{addr}/hop/5"), None, &budget())
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::TooManyRedirects), "{err:?}");
        let err = fetcher
            .fetch(&format!("http://{addr}/missing"), None, &budget())
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::Status(StatusCode::NOT_FOUND)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_into_a_private_address_is_refused() {
        let (addr, fetcher) = local_server().await;
        let port = addr.port();
        for target in [
            format!("http:~~127.0.0.2:{port}~a.png"),
            format!("http:~~[::1]:{port}~a.png"),
            "http:~~169.254.169.254~latest~meta-data".to_string(),
            "http:~~10.0.0.1~a.png".to_string(),
        ] {
            let err = fetcher
                .fetch(&format!("http://{addr}/away/{target}"), None, &budget())
                .await
                .unwrap_err();
            assert!(
                matches!(err, FetchError::Blocked { .. }),
                "{target}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_with_or_without_a_length() {
        let (addr, fetcher) = local_server().await;
        for path in ["big", "streamed"] {
            let err = fetcher
                .fetch(&format!("http://{addr}/{path}"), None, &budget())
                .await
                .unwrap_err();
            assert!(
                matches!(err, FetchError::TooLarge { limit: 1024 }),
                "{path}: {err:?}"
            );
        }
    }

    #[test]
    fn non_http_schemes_are_refused() {
        let fetcher = Fetcher::new(true, Duration::from_secs(1), 1024).unwrap();
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "gopher://x/",
        ] {
            let parsed = Url::parse(url).unwrap();
            assert!(matches!(
                fetcher.check_url(&parsed),
                Err(FetchError::BadUrl(_))
            ));
        }
    }
}
