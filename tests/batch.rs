//! `POST /api/user/images/batch` against the real binary: each action, ids that are not the
//! caller's left untouched with a reason, counts and indexes in step, and bad requests refused
//! with nothing changed.

mod common;

use common::*;
use serde_json::{Value, json};

async fn batch(app: &TestApp, client: &reqwest::Client, body: &Value) -> (u16, Value) {
    app.post_json(client, "/api/user/images/batch", body).await
}

#[tokio::test]
async fn a_batch_acts_on_the_callers_images_only_and_keeps_every_count_in_step() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let a = app.upload_png(&alice, 1, "clothes").await;
    let b = app.upload_png(&alice, 2, "clothes").await;
    let c = app.upload_png(&alice, 3, "char").await;
    let bobs = app.upload_png(&bob, 4, "clothes").await;

    // Move two to `char`: the one already there is unchanged, bob's and an unknown id are not
    // found (alike, so ids of other users are not confirmed), a repeat is reported.
    let (status, body) = batch(
        &app,
        &alice,
        &json!({"ids": [a, c, bobs, "i-unknown", a], "action": "set_category", "category": "char"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "changed": 1, "skipped": [
            {"id": c, "reason": "unchanged"},
            {"id": bobs, "reason": "not_found"},
            {"id": "i-unknown", "reason": "not_found"},
            {"id": a, "reason": "repeated"},
        ]})
    );
    assert_eq!(
        app.list_ids(&alice, "category=char").await,
        (vec![c.clone(), a.clone()], 2)
    );
    assert_eq!(
        app.list_ids(&alice, "category=clothes").await,
        (vec![b.clone()], 1)
    );
    assert_eq!(app.list_ids(&bob, "category=clothes").await.1, 1);

    // Tags: added after the image's own, merged when equal once folded; removed by any spelling.
    let (status, _) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [a, b], "action": "add_tags", "tags": ["Red", "linen"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = batch(
        &app,
        &alice,
        &json!({"ids": [a], "action": "add_tags", "tags": ["RED"]}),
    )
    .await;
    assert_eq!(body["skipped"], json!([{"id": a, "reason": "unchanged"}]));
    assert_eq!(
        app.list_ids(&alice, "tag=red").await,
        (vec![b.clone(), a.clone()], 2)
    );
    let (_, body) = batch(
        &app,
        &alice,
        &json!({"ids": [a, c], "action": "remove_tags", "tags": ["LINEN"]}),
    )
    .await;
    assert_eq!(
        (body["changed"].as_u64(), &body["skipped"]),
        (Some(1), &json!([{"id": c, "reason": "unchanged"}]))
    );
    assert_eq!(
        app.list_ids(&alice, "tag=linen").await,
        (vec![b.clone()], 1)
    );
    let (_, tags) = app.get_json(&alice, "/api/user/tags").await;
    assert_eq!(
        tags,
        json!({"tags": [{"tag": "Red", "count": 2}, {"tag": "linen", "count": 1}]})
    );

    // Delete for good: gone from every list and count; bob's image stays.
    let (_, body) = batch(
        &app,
        &alice,
        &json!({"ids": [a, b, bobs], "action": "delete_forever"}),
    )
    .await;
    assert_eq!(body["changed"], 2, "{body}");
    assert_eq!(app.list_ids(&alice, "").await, (vec![c.clone()], 1));
    assert_eq!(app.list_ids(&alice, "tag=red").await, (vec![], 0));
    assert_eq!(user_total(&app, &alice).await, 1);
    assert_eq!(app.list_ids(&bob, "").await, (vec![bobs.clone()], 1));
    assert_eq!(total_images(&app).await, 2);
}

#[tokio::test]
async fn bad_batches_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let a = app.upload_png(&alice, 1, "clothes").await;
    let too_many: Vec<String> = (0..10_001).map(|i| format!("i-{i}")).collect();
    for (body, error) in [
        (
            json!({"ids": [a], "action": "explode"}),
            "未知的操作：explode",
        ),
        (json!({"ids": [a]}), "缺少 action 字段"),
        (json!({"action": "delete_forever"}), "缺少 ids 字段"),
        (
            json!({"ids": too_many, "action": "delete_forever"}),
            "一次最多操作10000张图片",
        ),
        (
            json!({"ids": [a], "action": "set_category", "category": "shoes"}),
            "无效的分类",
        ),
        (json!({"ids": [a], "action": "add_tags"}), "缺少 tags 字段"),
        (
            json!({"ids": [a], "action": "add_tags", "tags": []}),
            "tags 不能为空",
        ),
        (
            json!({"ids": [a], "action": "add_tags", "tags": ["ok", " "]}),
            "标签不能为空",
        ),
    ] {
        let (status, answer) = batch(&app, &alice, &body).await;
        assert_eq!((status, &answer["error"]), (400, &json!(error)), "{answer}");
    }
    let (status, _) = batch(
        &app,
        &new_client(),
        &json!({"ids": [a], "action": "delete_forever"}),
    )
    .await;
    assert_eq!(status, 401);
    // Past 64 tags on one image: that image is skipped, the others still change.
    let b = app.upload_png(&alice, 2, "clothes").await;
    let many: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
    batch(
        &app,
        &alice,
        &json!({"ids": [a], "action": "add_tags", "tags": many}),
    )
    .await;
    let more: Vec<String> = (0..10).map(|i| format!("more{i}")).collect();
    let (_, body) = batch(
        &app,
        &alice,
        &json!({"ids": [a, b], "action": "add_tags", "tags": more}),
    )
    .await;
    assert_eq!(
        (body["changed"].as_u64(), &body["skipped"]),
        (Some(1), &json!([{"id": a, "reason": "too_many_tags"}]))
    );
    assert_eq!(app.list_ids(&alice, "").await.1, 2);
    assert_eq!(app.list_ids(&alice, "tag=t0").await, (vec![a.clone()], 1));
}
