//! Talking to the server over HTTP as the extension and the web UI do: sessions, one checked
//! exchange, `hammer` to spread many calls over concurrent workers, and the checked uploads and
//! file fetches the phases are made of.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::images::Upload;
use crate::stats::Stats;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

/// A logged-in user: the session cookie to send, and the user's id (it is in file URLs).
#[derive(Clone)]
pub(crate) struct Session {
    cookie: String,
    user_id: String,
}

impl Session {
    /// `GET` of one of the user's files; `kind` is `images` (originals) or `thumbnails`.
    pub(crate) fn get_file(
        &self,
        client: &reqwest::Client,
        base: &str,
        kind: &str,
        filename: &str,
    ) -> reqwest::RequestBuilder {
        self.get(
            client,
            &format!("{base}/api/user/{}/{kind}/{filename}", self.user_id),
        )
    }

    pub(crate) fn get(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        client
            .get(url)
            .header(reqwest::header::COOKIE, &self.cookie)
    }
}

pub(crate) async fn login(base: &str, username: &str, password: &str) -> Result<Session, String> {
    let response = http_client()
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login as {username}: {e}"))?;
    let cookie = crate::spawned::session_cookie(response.headers());
    let (_, answer) = json_answer(Instant::now(), response)
        .await
        .map_err(|e| format!("login as {username}: {e}"))?;
    let user_id = answer["user"]["user_id"].as_str().map(str::to_string);
    match (answer["success"] == true, cookie, user_id) {
        (true, Some(cookie), Some(user_id)) => Ok(Session { cookie, user_id }),
        _ => Err(format!(
            "login as {username}: no success, cookie or user id: {answer}"
        )),
    }
}

pub(crate) async fn register(
    base: &str,
    username: &str,
    password: &str,
) -> Result<Session, String> {
    let (_, answer) = exchange(
        http_client()
            .post(format!("{base}/api/register"))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": password,
            })),
    )
    .await
    .map_err(|e| format!("register {username}: {e}"))?;
    if answer["success"] != true {
        return Err(format!("register {username}: {answer}"));
    }
    login(base, username, password).await
}

/// Sends one request and reads the whole JSON answer; the duration covers exactly that.
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(Duration, Value), String> {
    let start = Instant::now();
    let response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    json_answer(start, response).await
}

/// Reads a 200 answer's JSON body; the duration runs from `start` to the end of the body.
async fn json_answer(
    start: Instant,
    response: reqwest::Response,
) -> Result<(Duration, Value), String> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&body);
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", clip(&text)));
    }
    let value = serde_json::from_slice(&body)
        .map_err(|e| format!("answer is not JSON ({e}): {}", clip(&text)))?;
    Ok((elapsed, value))
}

/// A file answer: how long its body was (read piece by piece, not kept) and its `ETag`.
pub(crate) struct Fetched {
    pub(crate) len: u64,
    pub(crate) etag: String,
}

/// Sends one request for a file and reads the body as a stream; the duration covers exactly that.
pub(crate) async fn fetch_file(
    request: reqwest::RequestBuilder,
) -> Result<(Duration, Fetched), String> {
    let start = Instant::now();
    let mut response = request
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", clip(&text)));
    }
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut len = 0u64;
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the body failed after {len} bytes: {e}"))?
    {
        len += piece.len() as u64;
    }
    Ok((start.elapsed(), Fetched { len, etag }))
}

/// Fetches an original and checks it is the image that was uploaded: same length, same `ETag`.
pub(crate) async fn fetch_original(
    request: reqwest::RequestBuilder,
    image: &Stored,
) -> Result<(Duration, ()), String> {
    let (latency, got) = fetch_file(request).await?;
    if got.len != image.bytes || got.etag != image.etag {
        return Err(format!(
            "{}: got {} bytes with ETag {}, expected {} bytes with ETag {}",
            image.filename, got.len, got.etag, image.bytes, image.etag
        ));
    }
    Ok((latency, ()))
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// The outcome of `count` calls spread over concurrent workers.
pub(crate) struct Run<T> {
    stats: Stats,
    /// By call index; `None` where the call failed.
    values: Vec<Option<T>>,
    errors: Vec<String>,
}

impl<T> Run<T> {
    /// The value of every call, in call order; an error naming the phase and the first few
    /// causes if any call failed.
    pub(crate) fn require_all_ok(self, what: &str) -> Result<(Stats, Vec<T>), String> {
        if !self.errors.is_empty() {
            let shown: Vec<&str> = self.errors.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "{what}: {} of {} requests failed; first errors:\n  {}",
                self.errors.len(),
                self.values.len(),
                shown.join("\n  ")
            ));
        }
        let values = self.values.into_iter().flatten().collect();
        Ok((self.stats, values))
    }
}

/// Makes `count` calls of `call(worker, index)` with at most `concurrency` in flight; each worker
/// takes the next index until none is left. A call returns its own latency and a value.
pub(crate) async fn hammer<T, F, Fut>(concurrency: usize, count: usize, call: F) -> Run<T>
where
    T: Send + 'static,
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Duration, T), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.clamp(1, count.max(1)))
        .map(|worker| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break done;
                    }
                    done.push((index, call(worker, index).await));
                }
            })
        })
        .collect();
    let mut values: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut samples = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for worker in workers {
        for (index, outcome) in worker.await.expect("bench worker panicked") {
            match outcome {
                Ok((latency, value)) => {
                    samples.push(latency);
                    values[index] = Some(value);
                }
                Err(e) => errors.push(format!("#{index}: {e}")),
            }
        }
    }
    Run {
        stats: Stats::new(samples, started.elapsed()),
        values,
        errors,
    }
}

/// What the server answered to an upload.
pub(crate) struct Posted {
    pub(crate) task: String,
    filename: String,
}

/// Posts every upload to `/api/receive-image`, one client per worker, as `session`'s user or
/// anonymously, and checks each answer.
pub(crate) async fn post_uploads(
    base: &str,
    uploads: Arc<Vec<Upload>>,
    concurrency: usize,
    session: Option<Session>,
) -> Run<Posted> {
    let base = base.to_string();
    let clients: Vec<reqwest::Client> = (0..concurrency).map(|_| http_client()).collect();
    let count = uploads.len();
    hammer(concurrency, count, move |worker, index| {
        let upload = &uploads[index];
        let mut request = clients[worker]
            .post(format!("{base}{}", upload.path))
            .header(reqwest::header::CONTENT_TYPE, &upload.content_type)
            .body(upload.body.clone());
        if let Some(session) = &session {
            request = request.header(reqwest::header::COOKIE, &session.cookie);
        }
        let expected_size = uploads[index].image_bytes as u64;
        let logged_in = session.is_some();
        async move {
            let (latency, answer) = exchange(request).await?;
            check_upload(&answer, expected_size, logged_in)?;
            let field = |name: &str| {
                answer[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("no {name}: {answer}"))
            };
            let posted = Posted {
                task: field("taskId")?,
                filename: field("filename")?,
            };
            Ok((latency, posted))
        }
    })
    .await
}

fn check_upload(answer: &Value, expected_size: u64, logged_in: bool) -> Result<(), String> {
    if answer["success"] != true {
        return Err(format!("success is not true: {answer}"));
    }
    if answer["isLoggedIn"] != logged_in {
        return Err(format!("isLoggedIn is not {logged_in}: {answer}"));
    }
    if answer["fileSize"] != expected_size {
        return Err(format!("fileSize is not {expected_size}: {answer}"));
    }
    Ok(())
}

/// An image the server acknowledged: where to fetch it and what must come back.
#[derive(Clone)]
pub(crate) struct Stored {
    pub(crate) filename: String,
    pub(crate) bytes: u64,
    /// The original's `ETag`: its blake3, quoted.
    pub(crate) etag: String,
}

/// Pairs uploads with the server's answers to them.
pub(crate) fn stored_images(uploads: &[Upload], posted: Vec<Posted>) -> Vec<Stored> {
    uploads
        .iter()
        .zip(posted)
        .map(|(upload, posted)| Stored {
            filename: posted.filename,
            bytes: upload.image_bytes as u64,
            etag: format!("\"{}\"", upload.digest.to_hex()),
        })
        .collect()
}
