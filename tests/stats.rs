//! `GET /api/user/stats` against the real binary: the figures follow uploads, duplicates, the
//! trash, restores, deletions, purges, category changes and edits; each user sees only their own;
//! the server's figures are the admin's alone; hosts sent by a hostile client stay bounded; and a
//! data file of schema 13 gets its figures built when it is opened.

mod common;

use common::*;
use imgvault::domain::Sha256;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

async fn stats(app: &TestApp, client: &reqwest::Client, query: &str) -> Value {
    let (status, body) = app
        .get_json(client, &format!("/api/user/stats?{query}"))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["success"], true);
    body
}

/// Images and bytes of a series (`days` or `months`), summed.
fn total(body: &Value, series: &str) -> (u64, u64) {
    body[series]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0), |acc, d| {
            (
                acc.0 + d["images"].as_u64().unwrap(),
                acc.1 + d["bytes"].as_u64().unwrap(),
            )
        })
}

fn category(body: &Value, name: &str) -> (u64, u64) {
    let found = body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == name)
        .unwrap_or_else(|| panic!("{name} in {body}"));
    (
        found["images"].as_u64().unwrap(),
        found["bytes"].as_u64().unwrap(),
    )
}

fn figures(v: &Value) -> (u64, u64) {
    (v["images"].as_u64().unwrap(), v["bytes"].as_u64().unwrap())
}

/// Images and bytes the storage block says are live.
fn live(body: &Value) -> (u64, u64) {
    (
        body["storage"]["images"].as_u64().unwrap(),
        body["storage"]["bytes"].as_u64().unwrap(),
    )
}

/// Every figure that counts live images agrees with the storage block.
fn assert_consistent(body: &Value) {
    let want = live(body);
    assert_eq!(total(body, "days"), want, "{body}");
    assert_eq!(total(body, "months"), want, "{body}");
    let cats = body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0), |a, c| {
            let (i, b) = figures(c);
            (a.0 + i, a.1 + b)
        });
    assert_eq!(cats, want, "{body}");
    let hosts = &body["hosts"];
    let mut sum = figures(&hosts["other"]);
    let none = figures(&hosts["none"]);
    sum = (sum.0 + none.0, sum.1 + none.1);
    for host in hosts["top"].as_array().unwrap() {
        let (i, b) = figures(host);
        sum = (sum.0 + i, sum.1 + b);
    }
    assert_eq!(sum, want, "{body}");
}

fn capture(bytes: &[u8], page: Option<&str>, category: &str) -> Value {
    let mut body = json!({"imageData": data_url("image/png", bytes), "category": category});
    if let Some(page) = page {
        body["pageInfo"] = json!({"url": page, "title": "t"});
    }
    body
}

async fn save(app: &TestApp, client: &reqwest::Client, body: &Value) -> String {
    let (status, answer) = app.post_json(client, "/api/receive-image", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["imageId"].as_str().unwrap().to_string()
}

async fn batch(app: &TestApp, client: &reqwest::Client, body: Value) {
    let (status, answer) = app.post_json(client, "/api/user/images/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// The `file_size` the gallery lists for image `id`.
async fn listed_size(app: &TestApp, client: &reqwest::Client, id: &str) -> u64 {
    let (_, body) = app.get_json(client, "/api/user/images?per_page=50").await;
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .and_then(|i| i["file_size"].as_u64())
        .unwrap_or_else(|| panic!("{id} in {body}"))
}

fn assert_clean(data: &std::path::Path) {
    let store = Store::open(data, DEFAULT_CACHE_BYTES).unwrap();
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

#[tokio::test]
async fn the_figures_follow_every_change_and_stay_with_their_user() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;

    let empty = stats(&app, &alice, "").await;
    assert_eq!(empty["scope"], "user");
    assert_eq!(empty["can_view_server"], false);
    assert_eq!(empty["days"].as_array().unwrap().len(), 30);
    assert_eq!(empty["months"].as_array().unwrap().len(), 12);
    assert_eq!(live(&empty), (0, 0));
    assert_eq!(empty["bytes_per_day"], Value::Null);
    assert_eq!(empty["storage"]["stored_bytes"], Value::Null);
    assert!(empty["disk"]["free_bytes"].as_u64().unwrap() > 0);

    let (a, c) = (png(16, 16, 1), png(24, 24, 2));
    let (a_len, c_len) = (a.len() as u64, c.len() as u64);
    let first = save(
        &app,
        &alice,
        &capture(&a, Some("https://www.Shop.example/1"), "clothes"),
    )
    .await;
    let second = save(
        &app,
        &alice,
        &capture(&a, Some("https://shop.example/2"), "clothes"),
    )
    .await;
    let third = save(&app, &alice, &capture(&c, None, "char")).await;

    let body = stats(&app, &alice, "").await;
    assert_consistent(&body);
    assert_eq!(live(&body), (3, 2 * a_len + c_len));
    assert_eq!(category(&body, "clothes"), (2, 2 * a_len));
    assert_eq!(category(&body, "char"), (1, c_len));
    assert_eq!(
        body["hosts"]["top"],
        json!([{"host": "shop.example", "images": 2, "bytes": 2 * a_len}])
    );
    assert_eq!(figures(&body["hosts"]["none"]), (1, c_len));
    // The second capture of the same bytes was not stored again.
    assert_eq!(body["storage"]["dedup_saved_bytes"], a_len);
    let rate = (2 * a_len + c_len) as f64 / 30.0;
    assert_eq!(body["bytes_per_day"].as_f64().unwrap(), rate);
    let disk = &body["disk"];
    assert_eq!(disk["bytes_per_day"].as_f64().unwrap(), rate);
    let free = disk["free_bytes"].as_u64().unwrap() as f64;
    assert!((disk["days_left"].as_f64().unwrap() - free / rate).abs() < free / rate * 0.01);

    // Bob's figures are his own; his copy of Alice's bytes is no duplicate of his.
    save(
        &app,
        &bob,
        &capture(&a, Some("https://bob.example/"), "char"),
    )
    .await;
    let his = stats(&app, &bob, "").await;
    assert_consistent(&his);
    assert_eq!(live(&his), (1, a_len));
    assert_eq!(his["storage"]["dedup_saved_bytes"], 0);
    assert_eq!(his["hosts"]["top"][0]["host"], "bob.example");
    assert_eq!(live(&stats(&app, &alice, "").await), (3, 2 * a_len + c_len));

    // The trash takes an image out of the figures and into the trash's; a restore gives it back.
    let (status, _) = {
        let resp = alice
            .delete(app.url(&format!("/api/user/images/{first}")))
            .send()
            .await
            .unwrap();
        status_and_json(resp).await
    };
    assert_eq!(status, 200);
    let body = stats(&app, &alice, "").await;
    assert_consistent(&body);
    assert_eq!(live(&body), (2, a_len + c_len));
    assert_eq!(body["storage"]["trash_images"], 1);
    assert_eq!(body["storage"]["trash_bytes"], a_len);
    assert_eq!(body["storage"]["dedup_saved_bytes"], 0);
    assert_eq!(body["hosts"]["top"][0]["images"], 1);
    batch(&app, &alice, json!({"ids": [first], "action": "restore"})).await;
    let body = stats(&app, &alice, "").await;
    assert_eq!(live(&body), (3, 2 * a_len + c_len));
    assert_eq!(body["storage"]["trash_images"], 0);
    assert_eq!(body["storage"]["dedup_saved_bytes"], a_len);

    // A category change moves the image between categories, nothing else.
    batch(
        &app,
        &alice,
        json!({"ids": [third], "action": "set_category", "category": "clothes"}),
    )
    .await;
    let body = stats(&app, &alice, "").await;
    assert_consistent(&body);
    assert_eq!(category(&body, "clothes"), (3, 2 * a_len + c_len));
    assert_eq!(category(&body, "char"), (0, 0));
    assert_eq!(body["categories"][0]["category"], "clothes");

    // An edit counts the bytes the image now shows; it is still a capture of the same content.
    let resp = alice
        .post(app.url(&format!("/api/user/images/{second}/edit")))
        .json(&json!({"rotate": 90}))
        .send()
        .await
        .unwrap();
    let (status, answer) = status_and_json(resp).await;
    assert_eq!(status, 200, "{answer}");
    let edited = listed_size(&app, &alice, &second).await;
    let body = stats(&app, &alice, "").await;
    assert_consistent(&body);
    assert_eq!(live(&body), (3, a_len + edited + c_len));
    assert_eq!(body["storage"]["dedup_saved_bytes"], a_len);

    // Deleted for good, and purged from the trash.
    batch(
        &app,
        &alice,
        json!({"ids": [second], "action": "delete_forever"}),
    )
    .await;
    batch(&app, &alice, json!({"ids": [third], "action": "trash"})).await;
    let body = stats(&app, &alice, "").await;
    assert_eq!(live(&body), (1, a_len));
    assert_eq!(figures(&body["hosts"]["none"]), (0, 0));
    assert_eq!(body["storage"]["trash_images"], 1);
    let (status, _) = app
        .post_json(&alice, "/api/user/trash/empty", &json!({}))
        .await;
    assert_eq!(status, 200);
    let body = stats(&app, &alice, "days=7&months=2&hosts=1").await;
    assert_consistent(&body);
    assert_eq!(live(&body), (1, a_len));
    assert_eq!(body["storage"]["trash_images"], 0);
    assert_eq!(body["storage"]["dedup_saved_bytes"], 0);
    assert_eq!(body["days"].as_array().unwrap().len(), 7);
    assert_eq!(body["months"].as_array().unwrap().len(), 2);
    assert_eq!(live(&stats(&app, &bob, "").await), (1, a_len));

    let dir = app.stop();
    assert_clean(&data_path(dir.path()));
}

#[tokio::test]
async fn the_server_figures_are_the_admins_and_bad_queries_are_refused() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let admin = new_client();
    app.login(&admin, "admin", ADMIN_PASSWORD).await;
    let (a, b) = (png(16, 16, 3), png(20, 20, 4));
    save(
        &app,
        &alice,
        &capture(&a, Some("https://one.example/"), "clothes"),
    )
    .await;
    save(
        &app,
        &bob,
        &capture(&a, Some("https://two.example/"), "char"),
    )
    .await;
    save(&app, &bob, &capture(&b, None, "char")).await;
    let (a_len, b_len) = (a.len() as u64, b.len() as u64);

    let server = stats(&app, &admin, "scope=server").await;
    assert_consistent(&server);
    assert_eq!(server["scope"], "server");
    assert_eq!(server["can_view_server"], true);
    assert_eq!(live(&server), (3, 2 * a_len + b_len));
    // Bob's copy of Alice's bytes shares her blob: the server stored them once.
    assert_eq!(server["storage"]["dedup_saved_bytes"], a_len);
    let stored = server["storage"]["stored_bytes"].as_u64().unwrap();
    assert!(stored >= a_len + b_len, "{server}");
    assert!(server["storage"]["data_file_bytes"].as_u64().unwrap() > stored);
    assert_eq!(server["hosts"]["top"].as_array().unwrap().len(), 2);
    // The admin's own figures are their own images: none.
    let mine = stats(&app, &admin, "").await;
    assert_eq!(
        (mine["scope"].clone(), live(&mine)),
        (json!("user"), (0, 0))
    );

    let (status, body) = app.get_json(&alice, "/api/user/stats?scope=server").await;
    // The seed's bare shape of a refusal.
    assert_eq!((status, body), (403, json!({"error": "权限不足"})));
    let (status, body) = app.get_json(&new_client(), "/api/user/stats").await;
    assert_eq!((status, body), (401, failure("需要登录")));
    for (query, error) in [
        ("scope=everyone", "scope 只能是 mine 或 server"),
        ("days=0", "days 必须是 1 到 366 之间的整数"),
        ("days=367", "days 必须是 1 到 366 之间的整数"),
        ("days=abc", "days 必须是 1 到 366 之间的整数"),
        ("months=121", "months 必须是 1 到 120 之间的整数"),
        ("hosts=51", "hosts 必须是 1 到 50 之间的整数"),
        ("hosts=-1", "hosts 必须是 1 到 50 之间的整数"),
    ] {
        let (status, body) = app
            .get_json(&alice, &format!("/api/user/stats?{query}"))
            .await;
        assert_eq!((status, body), (400, failure(error)), "{query}");
    }
    let full = stats(&app, &alice, "days=366&months=120&hosts=50").await;
    assert_eq!(full["days"].as_array().unwrap().len(), 366);
    assert_eq!(full["months"].as_array().unwrap().len(), 120);
}

#[tokio::test]
async fn hosts_sent_by_a_hostile_client_stay_bounded() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let bytes = png(8, 8, 9);
    save(
        &app,
        &alice,
        &capture(&bytes, Some("https://popular.example/0"), "clothes"),
    )
    .await;
    let sha = Sha256::of(&bytes).to_hex();
    // Captures by SHA-256: no bytes on the wire, so a client can send many cheaply.
    let hosts = 1_010usize;
    let bodies: Vec<Value> = (0..hosts)
        .map(|i| {
            let host = match i % 100 {
                0 => "popular.example".to_string(),
                _ => format!("h{i}.example"),
            };
            json!({"sha256": sha, "category": "char", "pageInfo": {"url": format!("https://{host}/p")}})
        })
        .collect();
    for chunk in bodies.chunks(16) {
        let sent = chunk
            .iter()
            .map(|body| app.post_json(&alice, "/api/receive-image", body));
        for (status, answer) in futures_util::future::join_all(sent).await {
            assert_eq!(status, 200, "{answer}");
        }
    }
    let body = stats(&app, &alice, "hosts=50").await;
    assert_consistent(&body);
    let images = hosts as u64 + 1;
    assert_eq!(live(&body).0, images);
    let top = body["hosts"]["top"].as_array().unwrap();
    assert_eq!(top.len(), 50);
    assert_eq!(top[0]["host"], "popular.example");
    assert_eq!(
        top[0]["images"],
        1 + (0..hosts).filter(|i| i % 100 == 0).count()
    );
    assert_eq!(body["hosts"]["limit"], 1000);
    assert_eq!(figures(&body["hosts"]["none"]).0, 0);
    // Every capture after the first reused the stored bytes.
    assert_eq!(
        body["storage"]["dedup_saved_bytes"],
        (images - 1) * bytes.len() as u64
    );

    let dir = app.stop();
    let data = data_path(dir.path());
    {
        let store = Store::open(&data, DEFAULT_CACHE_BYTES).unwrap();
        let tx_rows = store.check().unwrap();
        assert!(tx_rows.is_clean(), "{:?}", tx_rows.problems);
    }
    let db = redb::Database::open(&data).unwrap();
    let rows = {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let tx = db.begin_read().unwrap();
        tx.open_table(imgvault::store::tables::STATS_HOSTS)
            .unwrap()
            .len()
            .unwrap()
    };
    // At most 1000 rows for Alice and 1000 for the server.
    assert_eq!(rows, 2000);
}

#[tokio::test]
async fn a_schema_13_file_gets_its_figures_when_opened() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (a, b) = (png(16, 16, 5), png(20, 20, 6));
    save(
        &app,
        &alice,
        &capture(&a, Some("https://old.example/"), "clothes"),
    )
    .await;
    save(&app, &alice, &capture(&a, None, "char")).await;
    let gone = save(&app, &alice, &capture(&b, None, "char")).await;
    batch(&app, &alice, json!({"ids": [gone], "action": "trash"})).await;
    let before = stats(&app, &alice, "").await;
    let dir = app.stop();

    // What schema 13 wrote: the same file without the statistics tables.
    let data = data_path(dir.path());
    {
        use imgvault::store::tables::*;
        let db = redb::Database::create(&data).unwrap();
        let tx = db.begin_write().unwrap();
        assert!(tx.delete_table(STATS_DAYS).unwrap());
        assert!(tx.delete_table(STATS_CATEGORIES).unwrap());
        assert!(tx.delete_table(STATS_HOSTS).unwrap());
        assert!(tx.delete_table(STATS_TOTALS).unwrap());
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", 13)
            .unwrap();
        tx.commit().unwrap();
    }

    let app = spawn_app_in(dir, &[]).await;
    app.login(&alice, "alice", "password123").await;
    let after = stats(&app, &alice, "").await;
    assert_consistent(&after);
    let (a_len, b_len) = (a.len() as u64, b.len() as u64);
    assert_eq!(live(&after), (2, 2 * a_len));
    assert_eq!(after["storage"]["trash_bytes"], b_len);
    assert_eq!(after["storage"]["dedup_saved_bytes"], a_len);
    for field in ["days", "months", "categories", "hosts", "storage"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let dir = app.stop();
    assert_clean(&data_path(dir.path()));
}
