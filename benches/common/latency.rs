//! Timing reads of the real binary, for the benches that measure a query's latency over HTTP
//! (`search`, `stats`, `similar`): a client, a login, one checked and timed `GET`, percentiles, and
//! the same `GET` by `CONCURRENCY` clients at once.
//!
//! Included with `#[path = "common/latency.rs"] mod latency;` beside `mod spawned` (the server
//! harness, `tests/common/server.rs`), which it expects at the crate root.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Clients at once in `concurrent`.
pub const CONCURRENCY: usize = 16;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// Logs in and returns the session cookie (`name=value`).
pub async fn login(base: &str, username: &str, password: &str) -> Result<String, String> {
    let response = client()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login {username}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("login {username}: {}", response.status()));
    }
    crate::spawned::session_cookie(response.headers())
        .ok_or_else(|| format!("login {username}: no cookie"))
}

/// One `GET` with the cookie: its latency (to the last byte) and its JSON answer; an error for any
/// status but 200.
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
) -> Result<(Duration, Value), String> {
    let started = Instant::now();
    let response = client
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    let took = started.elapsed();
    if status != 200 {
        return Err(format!(
            "{url}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let value = serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
    Ok((took, value))
}

/// `requests` `GET`s of `url` shared among `CONCURRENCY` clients, each answer passed to `check`:
/// requests per second and the p99 latency.
pub async fn concurrent(
    url: &str,
    cookie: &str,
    requests: usize,
    check: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
) -> Result<(f64, Duration), String> {
    let shared = Arc::new((url.to_string(), cookie.to_string(), check));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let shared = shared.clone();
        let n = requests / CONCURRENCY + usize::from(worker < requests % CONCURRENCY);
        workers.push(tokio::spawn(async move {
            let (url, cookie, check) = &*shared;
            let client = client();
            let mut took = Vec::with_capacity(n);
            for _ in 0..n {
                let (t, answer) = get(&client, url, cookie).await?;
                check(&answer).map_err(|e| format!("{url}: {e}"))?;
                took.push(t);
            }
            Ok::<_, String>(took)
        }));
    }
    let mut all = Vec::with_capacity(requests);
    for worker in workers {
        all.extend(worker.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((
        requests as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.99),
    ))
}

/// The `p` quantile (0–1) of sorted latencies, by the nearest-rank method.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
