//! The trash against the real binary: `DELETE` moves an image there, out of every list and count;
//! `GET /api/user/trash` shows it; batch `restore` brings it back as it was; `delete_forever` and
//! `POST /api/user/trash/empty` delete for good, freeing bytes only when no other image uses them.

mod common;

use common::*;
use imgvault::domain::BlobHash;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

async fn delete(app: &TestApp, client: &reqwest::Client, id: &str) -> (u16, Value) {
    let resp = client
        .delete(app.url(&format!("/api/user/images/{id}")))
        .send()
        .await
        .expect("DELETE");
    status_and_json(resp).await
}

async fn image_count(app: &TestApp, client: &reqwest::Client) -> u64 {
    let (status, body) = app.get_json(client, "/api/user/profile").await;
    assert_eq!(status, 200, "{body}");
    body["user"]["image_count"].as_u64().expect("image_count")
}

/// Ids on the first page of the caller's trash, and its total.
async fn trash_ids(app: &TestApp, client: &reqwest::Client) -> (Vec<String>, u64) {
    let (status, body) = app.get_json(client, "/api/user/trash").await;
    assert_eq!(status, 200, "{body}");
    for image in body["images"].as_array().unwrap() {
        assert!(image["trashed_at"].is_string(), "{image}");
    }
    let ids = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    (ids, body["total"].as_u64().unwrap())
}

#[tokio::test]
async fn a_deleted_image_waits_in_the_trash_out_of_every_count_until_restored() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let (bob, _) = app.user_client("bob").await;
    let a = app.upload_png(&alice, 1, "clothes").await;
    let b = app.upload_png(&alice, 2, "char").await;
    let (status, _) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [a], "action": "add_tags", "tags": ["Denim"]}),
        )
        .await;
    assert_eq!(status, 200);
    let total_before = total_images(&app).await;

    // The seed's answer, unchanged.
    let (status, body) = delete(&app, &alice, &a).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"success": true, "message": "图片已删除", "imageId": a})
        )
    );
    assert_eq!(app.list_ids(&alice, "").await, (vec![b.clone()], 1));
    assert_eq!(app.list_ids(&alice, "category=clothes").await.1, 0);
    assert_eq!(app.list_ids(&alice, "tag=denim").await.1, 0);
    assert_eq!(total_images(&app).await, total_before - 1);
    assert_eq!(image_count(&app, &alice).await, 1);
    let (_, tags) = app.get_json(&alice, "/api/user/tags").await;
    assert_eq!(tags["tags"], json!([]));
    assert_eq!(trash_ids(&app, &alice).await, (vec![a.clone()], 1));
    assert_eq!(trash_ids(&app, &bob).await, (vec![], 0));
    // Its file is gone from the seed's routes; the trash view's own URLs still show it.
    let (_, trash) = app.get_json(&alice, "/api/user/trash").await;
    let shown = &trash["images"][0];
    for key in ["preview_url", "thumbnail_url"] {
        let url = shown[key].as_str().unwrap();
        let resp = alice.get(app.url(url)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let plain = url.trim_end_matches("?trashed=1");
        assert_ne!(plain, url);
        let resp = alice.get(app.url(plain)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{plain}");
    }
    // Deleting again is answered alike; another user's trash is out of reach.
    assert_eq!(delete(&app, &alice, &a).await.0, 200);
    assert_eq!(delete(&app, &bob, &a).await.0, 403);
    // Its tags cannot change while it is in the trash.
    let resp = alice
        .put(app.url(&format!("/api/user/images/{a}/tags")))
        .json(&json!({"tags": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Restore: bob cannot, restoring a live image is skipped, alice's comes back with its tags.
    let (_, body) = app
        .post_json(
            &bob,
            "/api/user/images/batch",
            &json!({"ids": [a], "action": "restore"}),
        )
        .await;
    assert_eq!(body["skipped"], json!([{"id": a, "reason": "not_found"}]));
    let (status, body) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [a, b], "action": "restore"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "changed": 1, "skipped": [{"id": b, "reason": "not_in_trash"}]})
    );
    assert_eq!(
        app.list_ids(&alice, "").await,
        (vec![b.clone(), a.clone()], 2)
    );
    assert_eq!(
        app.list_ids(&alice, "tag=denim").await,
        (vec![a.clone()], 1)
    );
    assert_eq!(total_images(&app).await, total_before);
    assert_eq!(trash_ids(&app, &alice).await.1, 0);
}

#[tokio::test]
async fn bytes_leave_the_file_only_with_the_last_image_that_uses_them() {
    let app = spawn_app().await;
    let (alice, _) = app.user_client("alice").await;
    let bytes = png(8, 8, 42);
    let upload = |client| {
        let app = &app;
        let bytes = bytes.clone();
        async move {
            let (status, body) = app
                .receive_image(client, "image/png", &bytes, "clothes")
                .await;
            assert_eq!(status, 200, "{body}");
            body["imageId"].as_str().unwrap().to_string()
        }
    };
    let first = upload(&alice).await;
    assert_eq!(delete(&app, &alice, &first).await.0, 200);
    // The same bytes again while they sit in the trash: a new image, at once.
    let second = upload(&alice).await;
    assert_ne!(first, second);
    assert_eq!(app.list_ids(&alice, "").await, (vec![second.clone()], 1));
    let other = app.upload_png(&alice, 7, "char").await;
    assert_eq!(delete(&app, &alice, &other).await.0, 200);

    // Emptying the trash deletes both trashed images; the bytes `second` uses stay.
    let (status, body) = app
        .post_json(&alice, "/api/user/trash/empty", &json!({}))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"success": true, "message": "回收站已清空", "deleted": 2})
        )
    );
    assert_eq!(trash_ids(&app, &alice).await.1, 0);
    let (_, listed) = app.get_json(&alice, "/api/user/images").await;
    let preview = listed["images"][0]["preview_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(&app.get_bytes(&alice, &preview).await[..], &bytes[..]);

    // `delete_forever` works on a live image too, and takes the last reference.
    let (_, body) = app
        .post_json(
            &alice,
            "/api/user/images/batch",
            &json!({"ids": [second], "action": "delete_forever"}),
        )
        .await;
    assert_eq!(body["changed"], 1);
    let dir = app.stop();
    let store = Store::open(&data_path(dir.path()), DEFAULT_CACHE_BYTES).unwrap();
    assert!(store.blob(&BlobHash::of(&bytes)).unwrap().is_none());
    assert!(store.blob(&BlobHash::of(&png(8, 8, 7))).unwrap().is_none());
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.images, 0);
}

#[tokio::test]
async fn the_trash_needs_a_login() {
    let app = spawn_app().await;
    let anonymous = new_client();
    assert_eq!(app.get_json(&anonymous, "/api/user/trash").await.0, 401);
    assert_eq!(
        app.post_json(&anonymous, "/api/user/trash/empty", &json!({}))
            .await
            .0,
        401
    );
}
