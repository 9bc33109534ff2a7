//! Upload tasks, `/api/task/{id}` (`src/api/tasks.rs`, `src/store/tasks.rs`, `src/jobs.rs`):
//! a task goes from `processing` to `completed`, fails with a reason for a corrupt image, and
//! unknown tasks (and unknown routes) answer a JSON 404.

mod common;

use common::*;
use serde_json::{Value, json};

fn is_display_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

#[tokio::test]
async fn upload_tasks_go_from_processing_to_completed() {
    let app = spawn_app().await;
    let (status, up) = app
        .receive_image(&app.client, "image/png", &png(64, 64, 1), "clothes")
        .await;
    assert_eq!(status, 200);
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    let t = &task["status"];
    assert_eq!(t["status"], "completed", "{task}");
    assert_eq!(t["task_id"], up["taskId"]);
    assert_eq!(t["image_id"], up["imageId"]);
    assert!(t["user_id"].as_str().unwrap().starts_with("default-user-"));
    assert!(is_display_time(&t["created_at"]) && is_display_time(&t["updated_at"]));
}

#[tokio::test]
async fn a_corrupt_image_body_fails_its_task_with_a_reason() {
    let app = spawn_app().await;
    // A complete PNG container whose compressed pixel data is garbage: accepted at the door,
    // refused by the full decode in the background.
    let mut bytes = png(32, 32, 3);
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bytes[idat + 4..idat + 40] {
        *b ^= 0x5A;
    }
    let (status, up) = app
        .receive_image(&app.client, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let task = app.wait_task(up["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"]["status"], "failed", "{task}");
    assert!(!task["status"]["error"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_tasks_answer_404_with_a_json_error() {
    let mut app = spawn_app().await;
    let before = total_images(&app).await;
    let client = new_client();
    for path in [
        "/api/nothing-here",
        "/api/user/someone/videos/x.png",
        "/api/status/extra",
    ] {
        let answer = app.get_json(&client, path).await;
        assert_error_status(&answer, 404, path);
    }
    let answer = app
        .post_json(&client, "/api/does/not/exist", &json!({}))
        .await;
    assert_error_status(&answer, 404, "POST /api/does/not/exist");

    for task in [
        "t-00000000-0000-0000-0000-000000000000",
        "not-a-task-id",
        "..%2F..%2Fetc%2Fpasswd",
    ] {
        let answer = app.get_json(&client, &format!("/api/task/{task}")).await;
        assert_eq!(answer, (404, json!({"error": "任务不存在"})), "{task}");
    }
    assert_unharmed(&mut app, before).await;
}
