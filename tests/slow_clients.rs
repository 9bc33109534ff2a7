//! Slow and idle clients (issue 16, "Slow clients"): half-sent requests, idle keep-alive
//! connections and stalled bodies are closed after their timeouts, open connections are capped
//! without refusing anyone, a stalled client cannot hold up a graceful shutdown past its timeout,
//! and a second stop signal ends the server at once.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, data_url, png, spawn_app_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (EOF or reset) and returns what it sent; `None`
/// if it is still open after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a Content-Length body; returns its status line and body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.expect("read response");
        assert!(n > 0, "connection closed before a response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).await.expect("read body");
        assert!(n > 0, "connection closed mid-body");
        got.extend_from_slice(&buf[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, got[head_end..head_end + length].to_vec())
}

const STATUS_REQUEST: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

async fn status_ok(app: &TestApp) {
    let client = common::new_client();
    let (status, body) = app.get_json(&client, "/api/status").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_half_sent_request_line_is_closed_after_the_header_timeout() {
    let app = spawn_app_with(&["--header-timeout", "1s", "--idle-timeout", "1s"]).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /api/sta").await.unwrap();
    let started = Instant::now();

    let answered = Instant::now();
    status_ok(&app).await;
    assert!(
        answered.elapsed() < Duration::from_millis(500),
        "/api/status waited for the slow client"
    );

    let closed = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a half-sent request line kept its connection open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(&["--header-timeout", "1s", "--idle-timeout", "1s"]).await;
    let mut conn = connect(&app).await;
    conn.write_all(STATUS_REQUEST).await.unwrap();
    let (status, _) = read_response(&mut conn).await;
    assert!(status.contains(" 200 "), "{status}");

    // Kept open for the next request, as keep-alive should...
    conn.write_all(STATUS_REQUEST).await.unwrap();
    let (status, _) = read_response(&mut conn).await;
    assert!(status.contains(" 200 "), "{status}");

    // ...but not forever.
    let idle_since = Instant::now();
    let rest = read_until_closed(&mut conn, Duration::from_secs(5)).await;
    assert!(
        rest.is_some(),
        "an idle keep-alive connection was never closed"
    );
    assert!(idle_since.elapsed() >= Duration::from_millis(900));
}

/// Sends the head and `sent` bytes of a `declared`-byte JSON upload, then nothing more.
async fn stalled_upload(app: &TestApp, declared: usize, sent: usize) -> TcpStream {
    let mut conn = connect(app).await;
    let head = format!(
        "POST /api/receive-image HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut body = br#"{"category":"clothes","imageData":"data:image/png;base64,"#.to_vec();
    body.resize(sent, b'A');
    conn.write_all(&body).await.unwrap();
    conn
}

#[tokio::test]
async fn stalled_bodies_are_dropped_and_memory_stays_bounded() {
    let app = spawn_app_with(&["--header-timeout", "5s", "--idle-timeout", "1s"]).await;
    status_ok(&app).await;
    let baseline = vm_hwm_kib(app.pid());

    const WAVES: usize = 5;
    const PER_WAVE: usize = 10;
    const SENT: usize = 3 * MIB;
    for wave in 0..WAVES {
        let mut conns = Vec::new();
        for _ in 0..PER_WAVE {
            conns.push(stalled_upload(&app, 8 * MIB, SENT).await);
        }
        status_ok(&app).await;
        let started = Instant::now();
        for (i, conn) in conns.iter_mut().enumerate() {
            let answer = read_until_closed(conn, Duration::from_secs(6))
                .await
                .unwrap_or_else(|| panic!("wave {wave}: stalled upload {i} still open"));
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                !answer.starts_with("HTTP/1.1 200"),
                "a truncated body was accepted: {answer}"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "wave {wave} took {:?} to be dropped",
            started.elapsed()
        );
    }

    let grown_mib = vm_hwm_kib(app.pid()).saturating_sub(baseline) / 1024;
    eprintln!(
        "VmHWM grew {grown_mib} MiB over {WAVES}×{PER_WAVE} stalled bodies of {} MiB",
        SENT / MIB
    );
    // One wave holds 30 MiB of body at most; all 50 together would be 150 MiB.
    assert!(
        grown_mib < 100,
        "VmHWM grew {grown_mib} MiB: stalled bodies are kept"
    );
    status_ok(&app).await;
}

#[tokio::test]
async fn a_full_server_serves_the_next_client_once_a_connection_closes() {
    let app = spawn_app_with(&["--max-connections", "8"]).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = connect(&app).await;
        conn.write_all(STATUS_REQUEST).await.unwrap();
        let (status, _) = read_response(&mut conn).await;
        assert!(status.contains(" 200 "), "{status}");
        held.push(conn);
    }

    // The ninth connects (the listen backlog takes it) but is not served while eight are open...
    let mut ninth = connect(&app).await;
    ninth.write_all(STATUS_REQUEST).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(700), ninth.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "a ninth connection was served past --max-connections 8: {early:?}"
    );

    // ...and is served, not refused, as soon as one closes.
    drop(held.pop());
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut ninth))
        .await
        .expect("the waiting client was not served after a connection closed");
    assert!(status.contains(" 200 "), "{status}");
    assert!(String::from_utf8_lossy(&body).contains("running"));

    drop(held);
    drop(ninth);
    status_ok(&app).await;
}

#[tokio::test]
async fn shutdown_finishes_a_request_in_flight_but_not_a_stalled_one() {
    let mut app = spawn_app_with(&["--header-timeout", "2s", "--idle-timeout", "2s"]).await;
    let body = serde_json::to_vec(&json!({
        "imageData": data_url("image/png", &png(6, 6, 3)),
        "category": "clothes",
    }))
    .unwrap();
    let head = |len: usize| {
        format!(
            "POST /api/receive-image HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // The server asks for a body (100 Continue) only once a handler reads it.
    let mut in_flight = connect(&app).await;
    in_flight
        .write_all(head(body.len()).as_bytes())
        .await
        .unwrap();
    let mut stalled = connect(&app).await;
    stalled
        .write_all(head(body.len()).as_bytes())
        .await
        .unwrap();
    for conn in [&mut in_flight, &mut stalled] {
        let mut cont = [0u8; 25];
        conn.read_exact(&mut cont).await.unwrap();
        assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    stalled.write_all(&body[..body.len() / 2]).await.unwrap();

    app.terminate();
    in_flight.write_all(&body).await.unwrap();
    let (status, answer) = read_response(&mut in_flight).await;
    assert!(
        status.contains(" 200 "),
        "{status}: {}",
        String::from_utf8_lossy(&answer)
    );

    let exit = app.wait_exit(Duration::from_secs(10));
    let exit = exit.expect("a stalled upload kept the server from shutting down");
    assert!(exit.success(), "{exit:?}");
    drop(stalled);
}

/// A second stop signal during the graceful shutdown ends the process at once (exit 128 +
/// SIGTERM), where the first waits for a stalled upload until its idle timeout.
#[tokio::test]
async fn a_second_stop_signal_ends_the_server_without_waiting_for_a_stalled_upload() {
    let mut app = spawn_app_with(&["--header-timeout", "120s", "--idle-timeout", "120s"]).await;
    let body =
        serde_json::to_vec(&json!({"imageData": data_url("image/png", &png(6, 6, 3))})).unwrap();
    let mut stalled = connect(&app).await;
    stalled
        .write_all(
            format!(
                "POST /api/receive-image HTTP/1.1\r\nHost: localhost\r\nContent-Type: \
                 application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut cont = [0u8; 25];
    stalled.read_exact(&mut cont).await.unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    stalled.write_all(&body[..body.len() / 2]).await.unwrap();

    app.terminate();
    // The first signal has been taken once the server stops accepting connections.
    let addr = app.base.trim_start_matches("http://").to_string();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while TcpStream::connect(&addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting 10 s after SIGTERM");
    assert!(
        app.is_alive(),
        "the stalled upload did not hold the graceful shutdown"
    );

    app.terminate();
    let exit = app
        .wait_exit(Duration::from_secs(10))
        .expect("the second SIGTERM did not end the server");
    assert_eq!(exit.code(), Some(128 + libc::SIGTERM), "{exit:?}");
    drop(stalled);
}
