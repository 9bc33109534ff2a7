//! Search and filters on `GET /api/user/images` against the real binary: words in every text
//! field (folded, by substring, all of them), tags, category, saved dates, orders and pages with
//! exact totals, the facets beside the page, changes seen at once, trashed images never, and bad
//! parameters refused with nothing changed.

mod common;

use common::*;
use serde_json::{Value, json};

/// Saves a PNG of `side`×`side` for `client` as the extension does, with `page` as its
/// `pageInfo`, and returns its image id.
async fn save(
    app: &TestApp,
    client: &reqwest::Client,
    side: u32,
    category: &str,
    tags: &[&str],
    page: Value,
) -> String {
    let (status, body) = app
        .post_json(
            client,
            "/api/receive-image",
            &json!({
                "imageData": data_url("image/png", &noisy_png(side, side, side)),
                "category": category,
                "tags": tags,
                "pageInfo": page,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["imageId"].as_str().unwrap().to_string()
}

fn titled(title: &str) -> Value {
    json!({"title": title})
}

/// The answer of `GET /api/user/images?{query}`, which must be a 200.
async fn list(app: &TestApp, client: &reqwest::Client, query: &str) -> Value {
    let (status, body) = app
        .get_json(client, &format!("/api/user/images?{query}"))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn ids(body: &Value) -> Vec<&str> {
    body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

fn q(text: &str) -> String {
    format!("q={}", urlencode(text))
}

#[tokio::test]
async fn words_are_found_in_every_text_field_folded_and_as_substrings() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let dress = save(&app, &alice, 3, "clothes", &[], titled("夏季碎花连衣裙")).await;
    let denim = save(&app, &alice, 4, "clothes", &[], titled("denim jacket")).await;
    let miku = save(
        &app,
        &alice,
        5,
        "char",
        &[],
        json!({"imageContext": {"alt": "初音ミク", "caption": "a figure"}}),
    )
    .await;
    let cafe = save(
        &app,
        &alice,
        6,
        "clothes",
        &[],
        json!({"url": "https://shop.example.com/item/7", "imageContext": {"title": "Cafe au lait"}}),
    )
    .await;
    let (status, body) = app
        .post_json(
            &alice,
            "/api/receive-image",
            &json!({
                "imageData": data_url("image/png", &noisy_png(7, 7, 7)),
                "originalUrl": "https://cdn.example.net/img/%E7%BA%A2%E8%89%B2.jpg",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let red = body["imageId"].as_str().unwrap().to_string();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            file_part(noisy_png(8, 8, 8), "Holiday-2024.png", "image/png"),
        )
        .text("category", "char");
    let (status, body) = upload_form(&app, &alice, form).await;
    assert_eq!(status, 200, "{body}");
    let holiday = body["imageId"].as_str().unwrap().to_string();
    let tagged = save(
        &app,
        &alice,
        9,
        "clothes",
        &["Vintage Wool"],
        titled("coat"),
    )
    .await;
    // Another user's image is never found.
    let (bob, _) = app.user_client("bob").await;
    save(&app, &bob, 10, "clothes", &[], titled("denim")).await;

    for (words, want) in [
        // Chinese and Japanese by substring; full-width, half-width, case and accents folded.
        ("连衣裙", vec![&dress]),
        ("ＤＥＮＩＭ", vec![&denim]),
        ("ﾐｸ", vec![&miku]),
        ("CAFÉ", vec![&cafe]),
        // imageContext's caption, the page URL's host, the original URL (decoded), the
        // uploaded file's name, a tag.
        ("figure", vec![&miku]),
        ("shop.example.com", vec![&cafe]),
        ("红色", vec![&red]),
        ("holiday-2024", vec![&holiday]),
        ("wool", vec![&tagged]),
        // Every word must match, each anywhere.
        ("jacket DENIM", vec![&denim]),
        ("cafe 7", vec![&cafe]),
        ("denim figure", vec![]),
    ] {
        let body = list(&app, &alice, &q(words)).await;
        assert_eq!(ids(&body), want, "{words}");
        assert_eq!(body["total"], want.len(), "{words}");
    }
    // No word (only spaces) is no filter.
    assert_eq!(list(&app, &alice, "q=%20%20").await["total"], 7);
}

#[tokio::test]
async fn filters_combine_with_exact_totals_orders_pages_and_facets() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    // Larger sides make larger files: sizes grow with the side.
    let a = save(
        &app,
        &alice,
        10,
        "clothes",
        &["Denim", "summer"],
        titled("blue denim"),
    )
    .await;
    let b = save(
        &app,
        &alice,
        30,
        "clothes",
        &["denim"],
        titled("denim skirt"),
    )
    .await;
    let c = save(
        &app,
        &alice,
        20,
        "char",
        &["denim", "miku"],
        titled("ミク denim"),
    )
    .await;
    let d = save(&app, &alice, 40, "clothes", &["Summer"], titled("linen")).await;
    let e = save(&app, &alice, 50, "char", &[], titled("figure")).await;

    let body = list(&app, &alice, "q=denim&tag=summer&category=clothes").await;
    assert_eq!(ids(&body), [&a]);
    assert_eq!(
        (
            &body["total"],
            &body["pages"],
            &body["page"],
            &body["per_page"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(20))
    );
    assert_eq!(body["category"], "clothes");
    // Category counts ignore the category filter; tags are counted among the matches.
    assert_eq!(
        body["facets"],
        json!({"category": {"clothes": 1, "char": 0},
               "tags": [{"tag": "Denim", "count": 1}, {"tag": "summer", "count": 1}]})
    );

    let body = list(&app, &alice, "tag=DENIM&category=char").await;
    assert_eq!((ids(&body), &body["total"]), (vec![c.as_str()], &json!(1)));
    assert_eq!(
        body["facets"],
        json!({"category": {"clothes": 2, "char": 1},
               "tags": [{"tag": "Denim", "count": 1}, {"tag": "miku", "count": 1}]})
    );

    let body = list(&app, &alice, "q=denim&sort=largest").await;
    assert_eq!(ids(&body), [&b, &c, &a]);
    let body = list(&app, &alice, "sort=smallest&per_page=2&page=2").await;
    assert_eq!(ids(&body), [&b, &d]);
    assert_eq!((&body["total"], &body["pages"]), (&json!(5), &json!(3)));
    let body = list(&app, &alice, "sort=oldest&category=char").await;
    assert_eq!(ids(&body), [&c, &e]);
    let body = list(&app, &alice, "tag=summer&sort=oldest&per_page=1&page=2").await;
    assert_eq!((ids(&body), &body["total"]), (vec![d.as_str()], &json!(2)));
    assert_eq!(
        list(&app, &alice, "q=denim&page=9").await["images"],
        json!([])
    );

    // Saved dates in the server's local time, both ends inclusive.
    let saved = list(&app, &alice, "per_page=1").await["images"][0]["saved_at"]
        .as_str()
        .unwrap()
        .to_string();
    let today = chrono::NaiveDate::parse_from_str(&saved[..10], "%Y-%m-%d").unwrap();
    let day = |offset: i64| (today + chrono::Duration::days(offset)).to_string();
    for (range, total) in [
        (format!("from={}&to={}", day(0), day(0)), 5),
        (format!("from={}", day(-3)), 5),
        (format!("to={}", day(-1)), 0),
        (format!("from={}", day(1)), 0),
        (
            format!("from={}&to={}&q=denim&category=clothes", day(-1), day(1)),
            2,
        ),
    ] {
        let body = list(&app, &alice, &range).await;
        assert_eq!(body["total"], total, "{range}");
    }

    // A plain listing keeps its shape, with facets from the counters.
    let body = list(&app, &alice, "").await;
    assert_eq!(ids(&body), [&e, &d, &c, &b, &a]);
    assert_eq!(body["category"], Value::Null);
    assert_eq!(
        body["facets"],
        json!({"category": {"clothes": 3, "char": 2},
               "tags": [{"tag": "Denim", "count": 3}, {"tag": "summer", "count": 2},
                        {"tag": "miku", "count": 1}]})
    );
    let body = list(&app, &alice, "category=clothes").await;
    assert_eq!(ids(&body), [&d, &b, &a]);
    assert_eq!(
        body["facets"]["tags"],
        json!([{"tag": "Denim", "count": 2}, {"tag": "summer", "count": 2}])
    );
    // An unknown category matches nothing, as before; the other tabs still count.
    let body = list(&app, &alice, "category=shoes&q=denim").await;
    assert_eq!(
        (ids(&body).len(), &body["total"], &body["pages"]),
        (0, &json!(0), &json!(0))
    );
    assert_eq!(
        body["facets"],
        json!({"category": {"clothes": 2, "char": 1}, "tags": []})
    );
}

#[tokio::test]
async fn trashed_images_never_match_and_every_change_is_searched_at_once() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let a = save(&app, &alice, 3, "clothes", &["denim"], titled("first")).await;
    let b = save(&app, &alice, 4, "clothes", &[], titled("second")).await;
    assert_eq!(app.list_ids(&alice, "tag=wool").await, (vec![], 0));

    let put = |id: &str, tags: Value| {
        let request = alice
            .put(app.url(&format!("/api/user/images/{id}/tags")))
            .json(&json!({ "tags": tags }));
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    assert_eq!(put(&b, json!(["Wool"])).await.0, 200);
    assert_eq!(app.list_ids(&alice, "tag=wool").await, (vec![b.clone()], 1));
    assert_eq!(app.list_ids(&alice, "q=woo").await, (vec![b.clone()], 1));
    assert_eq!(put(&b, json!(["linen"])).await.0, 200);
    assert_eq!(app.list_ids(&alice, "tag=wool").await, (vec![], 0));
    assert_eq!(app.list_ids(&alice, "q=wool").await, (vec![], 0));

    // Uploads after a search are found by the next one.
    let c = save(&app, &alice, 5, "char", &["denim"], titled("third")).await;
    assert_eq!(
        app.list_ids(&alice, "tag=denim").await,
        (vec![c.clone(), a.clone()], 2)
    );
    let (status, _) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [a], "action": "set_category", "category": "char"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.list_ids(&alice, "tag=denim&category=char").await,
        (vec![c.clone(), a.clone()], 2)
    );

    let gone = alice
        .delete(app.url(&format!("/api/user/images/{a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert_eq!(app.list_ids(&alice, "q=first").await, (vec![], 0));
    let body = list(&app, &alice, "tag=denim").await;
    assert_eq!(ids(&body), [&c]);
    assert_eq!(body["facets"]["category"], json!({"clothes": 0, "char": 1}));
    let (status, _) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [a], "action": "restore"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.list_ids(&alice, "q=first").await, (vec![a.clone()], 1));
}

#[tokio::test]
async fn bad_parameters_are_refused_with_nothing_changed() {
    let mut app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    save(&app, &alice, 3, "clothes", &["denim"], titled("denim")).await;
    let before = list(&app, &alice, "").await;

    let long = "连".repeat(257);
    let huge = "x".repeat(10 * 1024);
    for (query, error) in [
        (q(&long), "搜索词不能超过256个字符"),
        (q(&huge), "搜索词不能超过256个字符"),
        (
            "from=2025-06-14&to=2025-06-13".into(),
            "开始日期不能晚于结束日期",
        ),
        ("from=2025-6-13".into(), "日期格式应为 YYYY-MM-DD"),
        ("to=2025-02-30".into(), "日期格式应为 YYYY-MM-DD"),
        ("from=yesterday&q=denim".into(), "日期格式应为 YYYY-MM-DD"),
        ("sort=random".into(), "不支持的排序方式"),
    ] {
        let (status, body) = app
            .get_json(&alice, &format!("/api/user/images?{query}"))
            .await;
        assert_eq!(
            (status, body),
            (400, failure(error)),
            "{}",
            &query[..40.min(query.len())]
        );
    }
    // 256 characters are taken.
    let body = list(&app, &alice, &q(&"连".repeat(256))).await;
    assert_eq!(body["total"], 0);
    assert_eq!(list(&app, &alice, "").await, before);
    assert!(app.is_alive());
}
