//! Images by URL (`src/fetch.rs`): `/api/receive-image` with an `http(s)` URL as `imageData`. The
//! real binary fetches from an origin server that this test runs on 127.0.0.1, so the server is
//! started with `--allow-private-fetch` except where the refusal itself is under test. The SSRF
//! refusal's wording and stalled bodies are attacks of issue 16, in `hardening.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};
use warp::Filter;

/// An image host with what `receive-image` has to cope with. Records the `Referer` it was sent.
struct Origin {
    addr: SocketAddr,
    referers: Arc<Mutex<Vec<Option<String>>>>,
    /// The `Accept` headers `/negotiated` was sent.
    accepts: Arc<Mutex<Vec<String>>>,
    jpeg: Vec<u8>,
}

async fn origin() -> Origin {
    let jpeg = jpeg(640, 480, 7);
    let referers = Arc::new(Mutex::new(Vec::new()));
    let accepts = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let image = {
        let jpeg = jpeg.clone();
        let referers = referers.clone();
        warp::path!("photo.jpg")
            .and(warp::header::optional::<String>("referer"))
            .map(move |referer| {
                referers.lock().unwrap().push(referer);
                warp::reply::with_header(jpeg.clone(), "content-type", "image/jpeg")
            })
    };
    let moved = warp::path!("moved")
        .map(|| warp::redirect::found(warp::http::Uri::from_static("/photo.jpg")));
    let huge = warp::path!("huge.png").map(|| {
        // 11 MiB in pieces with no Content-Length: the size is only known by reading it.
        let pieces =
            (0..44).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 256 * 1024])));
        warp::reply::stream(futures_util::stream::iter(pieces))
    });
    let page = warp::path!("page.html")
        .map(|| warp::reply::html("<html><body>not an image</body></html>"));
    let slow = warp::path!("slow.jpg").then(|| async {
        // Never answers within the server's one-second fetch limit; the test ends first.
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        "late"
    });
    // A CDN that negotiates: JPEG XL unless the client lists a format it prefers to it.
    let negotiated = {
        let jpeg = jpeg.clone();
        let accepts = accepts.clone();
        warp::path!("negotiated")
            .and(warp::header::optional::<String>("accept"))
            .map(move |accept: Option<String>| {
                let accept = accept.unwrap_or_default();
                accepts.lock().unwrap().push(accept.clone());
                let (body, mime) = if accept.split(',').any(|m| m.trim() == "image/jpeg") {
                    (jpeg.clone(), "image/jpeg")
                } else {
                    (b"\xff\x0a jxl codestream".to_vec(), "image/jxl")
                };
                warp::reply::with_header(body, "content-type", mime)
            })
    };
    let routes = image.or(moved).or(huge).or(page).or(slow).or(negotiated);
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    Origin {
        addr,
        referers,
        accepts,
        jpeg,
    }
}

async fn receive_url(app: &TestApp, url: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({"imageData": url, "category": "char"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post_json(&app.client, "/api/receive-image", &body)
        .await
}

/// Nothing was stored by a refused request.
async fn assert_nothing_stored(app: &TestApp) {
    let (_, status) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(status["total_images"], 0, "{status}");
}

#[tokio::test]
async fn an_image_url_is_fetched_with_the_page_as_referer_and_stored_like_an_upload() {
    let origin = origin().await;
    let app = spawn_app_with(&["--allow-private-fetch"]).await;
    let (client, _) = app.user_client("fetcher").await;
    let url = format!("http://{}/moved", origin.addr);
    let (status, body) = app
        .post_json(
            &client,
            "/api/receive-image",
            &json!({
                "imageData": url,
                "category": "char",
                "pageInfo": {"url": "https://shop.example/item/42", "title": "Item 42"}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert!(
        body["filename"].as_str().unwrap().ends_with(".jpg"),
        "{body}"
    );
    assert_eq!(body["fileSize"], origin.jpeg.len());
    assert_eq!(
        *origin.referers.lock().unwrap(),
        vec![Some("https://shop.example/item/42".to_string())]
    );

    let (_, list) = app.get_json(&client, "/api/user/images").await;
    let image = &list["images"][0];
    assert_eq!(image["original_url"], url.as_str());
    assert_eq!(image["page_title"], "Item 42");
    assert_eq!(image["image_width"], 640);
    let stored = app
        .get_bytes(&client, image["preview_url"].as_str().unwrap())
        .await;
    assert_eq!(stored.as_ref(), origin.jpeg.as_slice());
    let task = app.wait_task(body["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "completed", "{task}");
}

#[tokio::test]
async fn the_fetch_asks_for_exactly_the_formats_that_can_be_stored() {
    let origin = origin().await;
    let app = spawn_app_with(&["--allow-private-fetch"]).await;
    let url = format!("http://{}/negotiated", origin.addr);
    let (status, body) = receive_url(&app, &url, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let accepts = origin.accepts.lock().unwrap().clone();
    let mut listed: Vec<&str> = accepts[0].split(',').map(str::trim).collect();
    listed.sort_unstable();
    let mut expected = vec!["image/gif", "image/jpeg", "image/png", "image/webp"];
    if cfg!(avif) {
        expected.push("image/avif");
    }
    expected.sort_unstable();
    assert_eq!(listed, expected, "Accept: {}", accepts[0]);
}

#[tokio::test]
async fn an_explicit_original_url_is_kept() {
    let origin = origin().await;
    let app = spawn_app_with(&["--allow-private-fetch"]).await;
    let (status, body) = receive_url(
        &app,
        &format!("http://{}/photo.jpg", origin.addr),
        json!({"originalUrl": "https://cdn.example/photo.jpg"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let admin = app.login(&app.client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(admin["username"], "admin");
    let (_, list) = app.get_json(&app.client, "/api/user/images").await;
    assert_eq!(
        list["images"][0]["original_url"],
        "https://cdn.example/photo.jpg"
    );
}

/// What an origin can answer that is not an image we store, each refused with the status and
/// error the case names, storing nothing and leaving the server up.
#[tokio::test]
async fn origins_that_do_not_give_an_image_are_refused_with_the_matching_error() {
    /// The `error` a refusal must carry.
    enum Error {
        Is(&'static str),
        StartsWith(&'static str),
        Contains(&'static str),
    }
    struct Case {
        what: &'static str,
        path: &'static str,
        args: &'static [&'static str],
        status: u16,
        error: Error,
    }
    let cases = [
        Case {
            what: "an image over ten megabytes",
            path: "huge.png",
            args: &[],
            status: 413,
            error: Error::Is("文件大小不能超过10MB"),
        },
        Case {
            what: "a page that is not an image",
            path: "page.html",
            args: &[],
            status: 400,
            error: Error::StartsWith("不支持的文件格式"),
        },
        Case {
            what: "a missing image (a bad gateway naming the origin's status)",
            path: "gone.jpg",
            args: &[],
            status: 502,
            error: Error::Contains("404"),
        },
        Case {
            what: "an origin that never answers",
            path: "slow.jpg",
            args: &["--fetch-timeout", "1"],
            status: 504,
            error: Error::Is("获取图片超时（1 秒）"),
        },
    ];
    let origin = origin().await;
    for case in cases {
        let what = case.what;
        let mut args = vec!["--allow-private-fetch"];
        args.extend_from_slice(case.args);
        let mut app = spawn_app_with(&args).await;
        let url = format!("http://{}/{}", origin.addr, case.path);
        let (status, body) = receive_url(&app, &url, json!({})).await;
        assert_eq!(status, case.status, "{what}: {body}");
        assert_eq!(body["success"], false, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        match case.error {
            Error::Is(expected) => assert_eq!(error, expected, "{what}: {body}"),
            Error::StartsWith(prefix) => assert!(error.starts_with(prefix), "{what}: {body}"),
            Error::Contains(part) => assert!(error.contains(part), "{what}: {body}"),
        }
        assert!(app.is_alive(), "{what}: the server died");
        let (_, status) = app.get_json(&app.client, "/api/status").await;
        assert_eq!(status["total_images"], 0, "{what}: stored: {status}");
    }
}

#[tokio::test]
async fn loopback_and_private_urls_are_refused_without_the_flag() {
    let origin = origin().await;
    let mut app = spawn_app().await;
    let port = origin.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/photo.jpg"),
        format!("http://localhost:{port}/photo.jpg"),
        format!("http://[::1]:{port}/photo.jpg"),
        format!("http://2130706433:{port}/photo.jpg"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://192.168.1.1/".to_string(),
    ] {
        let (status, body) = receive_url(&app, &url, json!({})).await;
        assert_eq!(status, 400, "{url}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("--allow-private-fetch"), "{url}: {error}");
    }
    assert!(
        origin.referers.lock().unwrap().is_empty(),
        "the origin was contacted"
    );
    assert!(app.is_alive());
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn non_http_urls_and_clipboard_urls_are_refused() {
    let app = spawn_app_with(&["--allow-private-fetch"]).await;
    let (status, body) = app
        .post_json(
            &app.client,
            "/api/upload-clipboard",
            &json!({"imageData": "https://example.com/a.png"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/receive-image")
    );
    // `file:` is not a URL we fetch, so it is read as (invalid) base64.
    let (status, body) = receive_url(&app, "file:///etc/passwd", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_nothing_stored(&app).await;
}
