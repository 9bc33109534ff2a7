//! `/metrics` against the real binary, read with a Prometheus text-format parser as a scraper
//! would: admin only on the main address, open on `--metrics-listen`, and counting what happened.

mod common;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format")
}

fn samples<'a>(scrape: &'a Scrape, name: &str) -> Vec<&'a Sample> {
    scrape.samples.iter().filter(|s| s.metric == name).collect()
}

/// The value of the counter or gauge `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, name)
        .into_iter()
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name} {labels:?}"));
    match found.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name} is {other:?}"),
    }
}

async fn admin(app: &TestApp) -> reqwest::Client {
    let client = new_client();
    app.login(&client, "admin", ADMIN_PASSWORD).await;
    client
}

#[tokio::test]
async fn metrics_are_the_admins_on_the_main_address_and_count_requests_uploads_and_thumbnails() {
    let app = spawn_app().await;
    assert_eq!(
        new_client()
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (alice, _) = app.user_client("alice").await;
    assert_eq!(
        alice
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let id = app.upload_png(&alice, 1, "clothes").await;
    let (status, body) = app
        .receive_image(&alice, "image/png", &png(8, 8, 1), "clothes")
        .await;
    assert_eq!(status, 200, "{body}");
    app.wait_task(body["taskId"].as_str().unwrap()).await;
    let (status, _) = app
        .receive_image(&alice, "image/png", b"not an image", "clothes")
        .await;
    assert_eq!(status, 400);
    assert_eq!(app.list_ids(&alice, "").await.0[1], id);

    let admin = admin(&app).await;
    let response = admin.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let scrape = parse(&response.text().await.unwrap());

    let route = |r: &'static str, class: &'static str| {
        value(
            &scrape,
            "imgvault_http_requests_total",
            &[("route", r), ("status", class)],
        )
    };
    assert_eq!(route("/api/receive-image", "2xx"), 2.0);
    assert_eq!(route("/api/receive-image", "4xx"), 1.0);
    assert!(route("/api/user/images", "2xx") >= 1.0);
    assert_eq!(
        value(
            &scrape,
            "imgvault_http_request_duration_seconds_count",
            &[("route", "/api/receive-image")]
        ),
        3.0
    );
    assert_eq!(
        value(&scrape, "imgvault_uploads_total", &[("bytes", "new")]),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "imgvault_uploads_total",
            &[("bytes", "deduplicated")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "imgvault_upload_refusals_total",
            &[("reason", "invalid")]
        ),
        1.0
    );
    assert!(value(&scrape, "imgvault_thumbnails_total", &[("outcome", "made")]) >= 1.0);
    assert!(value(&scrape, "imgvault_commit_uploads_count", &[]) >= 1.0);
    assert_eq!(value(&scrape, "imgvault_images", &[]), 2.0);
    assert!(value(&scrape, "imgvault_data_file_bytes", &[]) > 0.0);
    assert!(value(&scrape, "imgvault_disk_free_bytes", &[]) > 0.0);
    let rss = value(&scrape, "imgvault_process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    // Paths become their route's template: an id never makes a label of its own.
    for sample in samples(&scrape, "imgvault_http_requests_total") {
        let route = &sample.labels["route"];
        assert!(!route.contains("i-") && !route.contains(".png"), "{route}");
    }
}

#[tokio::test]
async fn metrics_listen_serves_them_without_a_login_and_nothing_else() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_app_with(&["--metrics-listen", &port.to_string()]).await;
    let (status, _) = app.get_json(&app.client, "/api/status").await;
    assert_eq!(status, 200);
    let client = new_client();
    let response = client
        .get(format!("http://{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let scrape = parse(&response.text().await.unwrap());
    assert!(
        value(
            &scrape,
            "imgvault_http_requests_total",
            &[("route", "/api/status")]
        ) >= 1.0
    );
    for path in ["/api/status", "/", "/metrics/x"] {
        let response = client
            .get(format!("http://{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}
