//! Tags over HTTP against the real binary: setting an image's tags, listing by one or several tags
//! (with a category), autocomplete by prefix, and every refusal leaving the tags as they were.

mod common;

use common::*;
use serde_json::{Value, json};

async fn put_tags(
    app: &TestApp,
    client: &reqwest::Client,
    image_id: &str,
    body: &Value,
) -> (u16, Value) {
    let resp = client
        .put(app.url(&format!("/api/user/images/{image_id}/tags")))
        .json(body)
        .send()
        .await
        .expect("PUT");
    status_and_json(resp).await
}

#[tokio::test]
async fn tags_are_set_listed_by_and_offered_by_prefix() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let a = app.upload_png(&alice, 1, "clothes").await;
    let b = app.upload_png(&alice, 2, "char").await;
    let c = app.upload_png(&alice, 3, "clothes").await;

    let (status, body) = put_tags(&app, &alice, &a, &json!({"tags": [" Denim ", "summer"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "imageId": a, "tags": ["Denim", "summer"]})
    );
    // Spelled otherwise, the same tag once folded; repeats merge into the first spelling.
    let (status, body) =
        put_tags(&app, &alice, &b, &json!({"tags": ["ＤＥＮＩＭ", "denim"]})).await;
    assert_eq!(
        (status, &body["tags"]),
        (200, &json!(["ＤＥＮＩＭ"])),
        "{body}"
    );
    put_tags(&app, &alice, &c, &json!({"tags": ["Summer", "红色"]})).await;

    // The list carries the tags; filters by tag (repeatable, all must match) and category.
    let (_, page) = app.get_json(&alice, "/api/user/images").await;
    let first = &page["images"][0];
    assert_eq!(
        (first["id"].as_str(), &first["tags"]),
        (Some(c.as_str()), &json!(["Summer", "红色"]))
    );
    assert_eq!(
        app.list_ids(&alice, "tag=denim").await,
        (vec![b.clone(), a.clone()], 2)
    );
    assert_eq!(
        app.list_ids(&alice, "tag=SUMMER&tag=Denim").await,
        (vec![a.clone()], 1)
    );
    assert_eq!(
        app.list_ids(&alice, "tag=summer&category=clothes").await,
        (vec![c.clone(), a.clone()], 2)
    );
    assert_eq!(
        app.list_ids(&alice, "tag=denim&category=char").await,
        (vec![b.clone()], 1)
    );
    assert_eq!(
        app.list_ids(&alice, &format!("tag={}", urlencode("红色")))
            .await,
        (vec![c.clone()], 1)
    );
    assert_eq!(
        app.list_ids(&alice, "tag=denim&per_page=1&page=2").await,
        (vec![a.clone()], 2)
    );
    assert_eq!(app.list_ids(&alice, "tag=nothing").await, (vec![], 0));

    // Autocomplete: most used first, the first spelling, by folded prefix.
    let (status, body) = app.get_json(&alice, "/api/user/tags?prefix=").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"tags": [
            {"tag": "Denim", "count": 2},
            {"tag": "summer", "count": 2},
            {"tag": "红色", "count": 1},
        ]})
    );
    let (_, body) = app.get_json(&alice, "/api/user/tags?prefix=S").await;
    assert_eq!(body, json!({"tags": [{"tag": "summer", "count": 2}]}));
    let (_, body) = app.get_json(&alice, "/api/user/tags?prefix=&limit=1").await;
    assert_eq!(body["tags"].as_array().unwrap().len(), 1);

    // Replacing with none empties them; the counts follow.
    let (status, _) = put_tags(&app, &alice, &a, &json!({"tags": []})).await;
    assert_eq!(status, 200);
    assert_eq!(
        app.list_ids(&alice, "tag=summer").await,
        (vec![c.clone()], 1)
    );
    // Deleting an image drops its tags.
    let resp = alice
        .delete(app.url(&format!("/api/user/images/{b}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, body) = app.get_json(&alice, "/api/user/tags?prefix=d").await;
    assert_eq!(body, json!({"tags": []}));

    // Another user sees none of it.
    let (bob, _) = app.user_client("bob").await;
    let (_, body) = app.get_json(&bob, "/api/user/tags").await;
    assert_eq!(body, json!({"tags": []}));
    assert_eq!(app.list_ids(&bob, "tag=summer").await, (vec![], 0));
}

#[tokio::test]
async fn bad_tags_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let a = app.upload_png(&alice, 1, "clothes").await;
    put_tags(&app, &alice, &a, &json!({"tags": ["keep"]})).await;
    let too_many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let long = "x".repeat(65);
    for (body, error) in [
        (json!({"tags": ["ok", "  "]}), "标签不能为空"),
        (json!({"tags": [long]}), "标签不能超过64个字符"),
        (json!({"tags": ["a\u{0001}b"]}), "标签不能包含控制字符"),
        (json!({"tags": too_many}), "每张图片最多64个标签"),
        (json!({}), "缺少 tags 字段"),
    ] {
        let (status, answer) = put_tags(&app, &alice, &a, &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], error, "{body}");
    }
    let (status, answer) = put_tags(&app, &alice, &a, &json!({"tags": "keep"})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(app.list_ids(&alice, "tag=keep").await, (vec![a.clone()], 1));

    // Someone else's image, an unknown one, no session.
    let (bob, _) = app.user_client("bob").await;
    let (status, _) = put_tags(&app, &bob, &a, &json!({"tags": ["mine"]})).await;
    assert_eq!(status, 403);
    let (status, _) = put_tags(&app, &alice, "i-nothing", &json!({"tags": ["x"]})).await;
    assert_eq!(status, 404);
    let (status, _) = put_tags(&app, &new_client(), &a, &json!({"tags": ["x"]})).await;
    assert_eq!(status, 401);
    // A body far past any list of tags.
    let (status, _) = put_tags(&app, &alice, &a, &json!({"tags": ["y".repeat(100_000)]})).await;
    assert_eq!(status, 413);
    // Bad filters and prefixes.
    let (status, body) = app.get_json(&alice, "/api/user/images?tag=%20").await;
    assert_eq!((status, &body["error"]), (400, &json!("标签不能为空")));
    let many: String = (0..65).map(|i| format!("tag=t{i}&")).collect();
    let (status, body) = app
        .get_json(&alice, &format!("/api/user/images?{many}"))
        .await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("每张图片最多64个标签"))
    );
    let (status, _) = app
        .get_json(&alice, &format!("/api/user/tags?prefix={}", "p".repeat(65)))
        .await;
    assert_eq!(status, 400);
    assert_eq!(app.list_ids(&alice, "tag=keep").await, (vec![a.clone()], 1));
    let (_, tags) = app.get_json(&alice, "/api/user/tags").await;
    assert_eq!(tags, json!({"tags": [{"tag": "keep", "count": 1}]}));
}

/// The tags of `image_id` as the list shows them.
async fn tags_of(app: &TestApp, client: &reqwest::Client, image_id: &str) -> Value {
    let (_, page) = app.get_json(client, "/api/user/images?per_page=100").await;
    page["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == image_id)
        .map(|i| i["tags"].clone())
        .unwrap_or_else(|| panic!("{image_id} not listed: {page}"))
}

#[tokio::test]
async fn tags_come_with_uploads_on_every_route_or_refuse_them_whole() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (status, body) = app
        .post_json(
            &alice,
            "/api/receive-image",
            &json!({"imageData": data_url("image/png", &png(8, 8, 1)), "tags": ["Denim", "denim", "夏季"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let by_json = body["imageId"].as_str().unwrap().to_string();
    assert_eq!(
        tags_of(&app, &alice, &by_json).await,
        json!(["Denim", "夏季"])
    );
    let (status, body) = app
        .post_json(
            &alice,
            "/api/upload-clipboard",
            &json!({"imageData": b64(&png(8, 8, 2)), "tags": ["clip"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let by_clipboard = body["imageId"].as_str().unwrap().to_string();
    assert_eq!(tags_of(&app, &alice, &by_clipboard).await, json!(["clip"]));
    // A form: repeated `tags` fields, each a comma-separated list.
    let form = reqwest::multipart::Form::new()
        .text("tags", "red, 连衣裙")
        .text("tags", "summer")
        .part("file", file_part(png(8, 8, 3), "a.png", "image/png"));
    let (status, body) = upload_form(&app, &alice, form).await;
    assert_eq!(status, 200, "{body}");
    let by_form = body["imageId"].as_str().unwrap().to_string();
    assert_eq!(
        tags_of(&app, &alice, &by_form).await,
        json!(["red", "连衣裙", "summer"])
    );
    assert_eq!(app.list_ids(&alice, "tag=denim").await, (vec![by_json], 1));

    // One bad tag refuses the upload, and nothing is stored.
    let before = user_total(&app, &alice).await;
    for body in [
        json!({"imageData": data_url("image/png", &png(8, 8, 4)), "tags": ["ok", " "]}),
        json!({"imageData": data_url("image/png", &png(8, 8, 4)), "tags": "ok"}),
        json!({"imageData": data_url("image/png", &png(8, 8, 4)), "tags": [1]}),
    ] {
        let (status, answer) = app.post_json(&alice, "/api/receive-image", &body).await;
        assert_eq!(status, 400, "{answer}");
    }
    let form = reqwest::multipart::Form::new()
        .text("tags", "fine,")
        .text("tags", "x".repeat(65))
        .part("file", file_part(png(8, 8, 4), "b.png", "image/png"));
    let (status, answer) = upload_form(&app, &alice, form).await;
    assert_eq!(
        (status, &answer["error"]),
        (400, &json!("标签不能超过64个字符"))
    );
    assert_eq!(user_total(&app, &alice).await, before);
}
