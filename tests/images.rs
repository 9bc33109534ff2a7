//! A user's images once stored (`src/api/images.rs`, `src/store/images.rs`, `blobs.rs`,
//! `paging.rs`): the list and its pages, of all images or one category, the file routes (original,
//! by category, thumbnail) with ETags, 304s, byte ranges and streaming, delete, and deduplication
//! of identical bytes; and the refusals: path traversal in file names, other users' images, invalid
//! categories, deleting without being the owner.

mod common;

use common::*;
use imgvault::domain::BlobHash;
use imgvault::store::{DEFAULT_CACHE_BYTES, Store};
use serde_json::{Value, json};

/// Percent-encodes every byte that is not unreserved, so `/` and `\` become `%2F` and `%5C`.
fn encode_all(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn pages_are_newest_first_and_per_page_is_bounded() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("ivy").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (_, up) = app
            .receive_image(&client, "image/png", &png(2, 2, i), "clothes")
            .await;
        ids.push(up["imageId"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (_, list) = app
            .get_json(
                &client,
                &format!("/api/user/images?page={page}&per_page=10"),
            )
            .await;
        assert_eq!(list["total"], 25);
        assert_eq!(list["pages"], 3);
        assert_eq!(list["page"], page);
        for img in list["images"].as_array().unwrap() {
            seen.push(img["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids, "every image once, newest first");

    let (_, list) = app
        .get_json(&client, "/api/user/images?per_page=1000")
        .await;
    assert_eq!(list["per_page"], 100);
    let (_, list) = app
        .get_json(&client, "/api/user/images?page=abc&per_page=-3")
        .await;
    assert_eq!(
        (list["page"].clone(), list["per_page"].clone()),
        (json!(1), json!(20))
    );
    let (_, list) = app.get_json(&client, "/api/user/images?page=9").await;
    assert_eq!(list["images"], json!([]));
    assert_eq!(list["total"], 25);
}

/// The ids of every page of `path` (a list URL with `per_page`), checking each page's totals.
async fn ids_of_all_pages(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    total: u64,
    pages: u64,
) -> Vec<String> {
    let mut ids = Vec::new();
    for page in 1..=pages + 1 {
        let (status, list) = app.get_json(client, &format!("{path}&page={page}")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            (list["total"].as_u64(), list["pages"].as_u64()),
            (Some(total), Some(pages))
        );
        let images = list["images"].as_array().unwrap();
        if page > pages {
            assert!(images.is_empty(), "page {page} past the last: {list}");
        }
        ids.extend(images.iter().map(|i| i["id"].as_str().unwrap().to_string()));
    }
    ids
}

#[tokio::test]
async fn the_list_filters_by_category_pages_it_and_echoes_the_parameter() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("cara").await;
    let (other, _) = app.user_client("otto").await;
    app.receive_image(&other, "image/png", &png(2, 2, 99), "char")
        .await;
    // Newest first: (id, category) in the order the list gives them.
    let mut uploaded = Vec::new();
    for i in 0..8 {
        let category = if i % 3 == 1 { "char" } else { "clothes" };
        let (status, up) = app
            .receive_image(&client, "image/png", &png(2, 2, i), category)
            .await;
        assert_eq!(status, 200, "{up}");
        uploaded.push((up["imageId"].as_str().unwrap().to_string(), category));
    }
    uploaded.reverse();
    let of = |category: &str| -> Vec<String> {
        uploaded
            .iter()
            .filter(|(_, c)| *c == category)
            .map(|(id, _)| id.clone())
            .collect()
    };

    let (_, list) = app.get_json(&client, "/api/user/images").await;
    assert!(list.as_object().unwrap().contains_key("category"), "{list}");
    assert_eq!(list["category"], Value::Null);
    assert_eq!(list["total"], 8);
    for (item, (id, category)) in list["images"].as_array().unwrap().iter().zip(&uploaded) {
        assert_eq!(item["id"], id.as_str());
        assert_eq!(item["category"], *category, "{item}");
        assert_eq!(item["context_info"]["category"], *category);
    }

    let clothes = ids_of_all_pages(
        &app,
        &client,
        "/api/user/images?category=clothes&per_page=2",
        5,
        3,
    )
    .await;
    assert_eq!(clothes, of("clothes"));
    let chars = ids_of_all_pages(
        &app,
        &client,
        "/api/user/images?category=char&per_page=2",
        3,
        2,
    )
    .await;
    assert_eq!(chars, of("char"), "otto's image is not cara's");
    let (_, list) = app
        .get_json(&client, "/api/user/images?category=char&page=2&per_page=2")
        .await;
    assert_eq!(list["category"], "char");
    assert_eq!(
        (list["page"].clone(), list["per_page"].clone()),
        (json!(2), json!(2))
    );
    assert!(
        list["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["category"] == "char")
    );

    // An empty value is no filter, and is echoed as given.
    let (_, list) = app.get_json(&client, "/api/user/images?category=").await;
    assert_eq!(
        (list["total"].clone(), list["category"].clone()),
        (json!(8), json!(""))
    );
    assert_eq!(list["images"].as_array().unwrap().len(), 8);

    // A value that names no category matches nothing: an empty page, not an error. The facets
    // still count the other tabs.
    for raw in ["shoes", "CLOTHES", "%20char", "vton_results"] {
        let (status, list) = app
            .get_json(
                &client,
                &format!("/api/user/images?category={raw}&per_page=5"),
            )
            .await;
        let echoed = raw.replace("%20", " ");
        assert_eq!(
            (status, list),
            (
                200,
                json!({"images": [], "total": 0, "page": 1, "per_page": 5, "pages": 0, "category": echoed,
                       "facets": {"category": {"clothes": 5, "char": 3}, "tags": []}})
            ),
            "{raw}"
        );
    }

    let resp = new_client()
        .get(app.url("/api/user/images?category=clothes"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(resp).await, (401, failure("需要登录")));
}

#[tokio::test]
async fn deleting_an_image_updates_its_categorys_total() {
    let app = spawn_app().await;
    let (client, _) = app.user_client("dora").await;
    let mut ids = Vec::new();
    for (i, category) in ["clothes", "char", "clothes"].into_iter().enumerate() {
        let (_, up) = app
            .receive_image(&client, "image/png", &png(3, 3, i as u32), category)
            .await;
        ids.push(up["imageId"].as_str().unwrap().to_string());
    }
    let totals = || async {
        let mut out = Vec::new();
        for category in ["clothes", "char"] {
            let (_, list) = app
                .get_json(&client, &format!("/api/user/images?category={category}"))
                .await;
            out.push((
                list["total"].as_u64().unwrap(),
                list["pages"].as_u64().unwrap(),
            ));
        }
        out
    };
    assert_eq!(totals().await, [(2, 1), (1, 1)]);
    for (id, expected) in [(&ids[1], [(2, 1), (0, 0)]), (&ids[0], [(1, 1), (0, 0)])] {
        let resp = client
            .delete(app.url(&format!("/api/user/images/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(totals().await, expected, "after deleting {id}");
    }
    let (_, list) = app
        .get_json(&client, "/api/user/images?category=clothes")
        .await;
    assert_eq!(list["images"][0]["id"], ids[2].as_str());
    let (_, list) = app
        .get_json(&client, "/api/user/images?category=char")
        .await;
    assert_eq!(list["images"], json!([]));
}

#[tokio::test]
async fn image_routes_serve_the_bytes_with_an_etag_and_304() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("gus").await;
    let bytes = png(30, 20, 9);
    let (_, up) = app
        .receive_image(&client, "image/png", &bytes, "char")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let etag = format!("\"{}\"", BlobHash::of(&bytes).to_hex());

    for path in [
        format!("/api/user/{user_id}/images/{filename}"),
        format!("/api/user/{user_id}/images/char/{filename}"),
    ] {
        let resp = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "image/png");
        assert_eq!(resp.headers()["etag"], etag.as_str());
        assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());

        let resp = client
            .get(app.url(&path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{path}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }

    let (status, body) = app
        .get_json(
            &client,
            &format!("/api/user/{user_id}/images/clothes/{filename}"),
        )
        .await;
    assert_eq!((status, body), (404, json!({"error": "图片不存在"})));
    let (status, body) = app
        .get_json(
            &client,
            &format!("/api/user/{user_id}/images/shoes/{filename}"),
        )
        .await;
    assert_eq!(
        (status, body),
        (400, json!({"success": false, "error": "无效的分类"}))
    );
}

#[tokio::test]
async fn large_images_are_streamed_whole() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("hal").await;
    // Noise does not compress: well over the 512 KiB that is sent in one piece.
    let bytes = png(900, 900, 11);
    assert!(bytes.len() > 1_000_000, "{}", bytes.len());
    let (status, up) = app
        .receive_image(&client, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200);
    let resp = client
        .get(app.url(&format!(
            "/api/user/{user_id}/images/{}",
            up["filename"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    let got = resp.bytes().await.unwrap();
    assert!(got.as_ref() == bytes.as_slice(), "streamed bytes differ");
}

#[tokio::test]
async fn byte_ranges_are_served_with_206_and_the_exact_bytes() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("ray").await;
    let bytes = png(900, 900, 12);
    let n = bytes.len();
    let (_, up) = app
        .receive_image(&client, "image/png", &bytes, "clothes")
        .await;
    let url = app.url(&format!(
        "/api/user/{user_id}/images/{}",
        up["filename"].as_str().unwrap()
    ));
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let tag = whole.headers()["etag"].to_str().unwrap().to_string();
    // Within a chunk, across the 32 KiB chunk boundary, open-ended, a suffix, the last byte, and a
    // range longer than the 512 KiB piece that is streamed.
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=32760-32800", 32760, 32800),
        ("bytes=1000-", 1000, n - 1),
        ("bytes=-50", n - 50, n - 1),
        (&*format!("bytes={}-{}", n - 1, n + 100), n - 1, n - 1),
        ("bytes=5-700000", 5, 700_000),
    ] {
        let resp = client
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {first}-{last}/{n}").as_str(),
            "{range}"
        );
        assert_eq!(
            resp.headers()["content-length"],
            (last - first + 1).to_string().as_str()
        );
        let got = resp.bytes().await.unwrap();
        assert!(got.as_ref() == &bytes[first..=last], "{range}: wrong bytes");
    }
    let past = client
        .get(&url)
        .header("range", format!("bytes={n}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);
    assert_eq!(
        past.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    // An If-Range naming another version, or several ranges: the whole file.
    let stale = client
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), n);
    let multi = client
        .get(&url)
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(multi.status(), 200);
    let same = client
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 206);
}

#[tokio::test]
async fn delete_removes_the_image_and_updates_every_count() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("jon").await;
    let (_, keep) = app
        .receive_image(&client, "image/png", &png(3, 3, 1), "clothes")
        .await;
    let (_, gone) = app
        .receive_image(&client, "image/png", &png(3, 3, 2), "clothes")
        .await;
    let id = gone["imageId"].as_str().unwrap();

    let resp = client
        .delete(app.url(&format!("/api/user/images/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["imageId"], id);

    let (_, profile) = app.get_json(&client, "/api/user/profile").await;
    assert_eq!(profile["user"]["image_count"], 1);
    let (_, status_body) = app.get_json(&client, "/api/status").await;
    assert_eq!(status_body["total_images"], 1);
    let (_, list) = app.get_json(&client, "/api/user/images").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["images"][0]["id"], keep["imageId"]);
    let (status, _) = app
        .get_json(
            &client,
            &format!(
                "/api/user/{user_id}/images/{}",
                gone["filename"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn identical_bytes_from_two_users_are_stored_once_and_deleted_independently() {
    let app = spawn_app().await;
    let (ann, ann_id) = app.user_client("ann").await;
    let (ben, ben_id) = app.user_client("ben").await;
    let bytes = png(50, 50, 42);
    let (_, a) = app
        .receive_image(&ann, "image/png", &bytes, "clothes")
        .await;
    let (_, b) = app.receive_image(&ben, "image/png", &bytes, "char").await;

    let resp = ann
        .delete(app.url(&format!(
            "/api/user/images/{}",
            a["imageId"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = ben
        .get(app.url(&format!(
            "/api/user/{ben_id}/images/{}",
            b["filename"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (status, _) = app
        .get_json(
            &ann,
            &format!(
                "/api/user/{ann_id}/images/{}",
                a["filename"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(status, 404);

    // Empty ann's trash and upload it again for her, then look inside the data file: one blob,
    // two references.
    let (status, _) = app
        .post_json(&ann, "/api/user/trash/empty", &json!({}))
        .await;
    assert_eq!(status, 200);
    app.receive_image(&ann, "image/png", &bytes, "clothes")
        .await;
    let dir = app.stop();
    let store = Store::open(&data_path(dir.path()), DEFAULT_CACHE_BYTES).unwrap();
    let blob = store
        .blob(&BlobHash::of(&bytes))
        .unwrap()
        .expect("blob kept");
    assert_eq!(blob.record.refs, 2);
    assert_eq!(blob.record.size, bytes.len() as u64);
}

#[tokio::test]
async fn path_traversal_in_image_names_never_returns_file_contents() {
    let mut app = spawn_app().await;
    let (user_id, cookie) = login_cookie(&app, "walker").await;
    let before = total_images(&app).await;
    let data_file = app.data_file().display().to_string();
    let names = [
        "..%2F..%2Fetc%2Fpasswd".to_string(),
        "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_string(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
        "%2E%2E%2F%2E%2E%2FCargo.toml".to_string(),
        "..%5C..%5Cetc%5Cpasswd".to_string(),
        "..%5c..%5c..%5cCargo.toml".to_string(),
        "..%252F..%252Fetc%252Fpasswd".to_string(),
        "Cargo.toml".to_string(),
        "passwd%00.png".to_string(),
        "%00".to_string(),
        "..%2F..%2FCargo.toml%00.png".to_string(),
        encode_all(&data_file),
        format!("..%2F..%2F..%2F..%2F..%2F..{}", encode_all(&data_file)),
    ];
    let mut targets: Vec<String> = names
        .iter()
        .flat_map(|name| file_routes(&user_id, name))
        .collect();
    targets.extend([
        format!("/api/user/{user_id}/images/../../../../etc/passwd"),
        format!("/api/user/{user_id}/images/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("/api/user/{user_id}/thumbnails/./../../../Cargo.toml"),
        format!("/api/user/{user_id}/images/..%2Fclothes/Cargo.toml"),
        "/api/user/..%2F..%2F..%2Fetc/images/passwd".to_string(),
        "/api/user/../../../etc/passwd".to_string(),
    ]);
    for target in &targets {
        let (status, body) = raw_get(&app, target, &cookie).await;
        assert!((400..500).contains(&status), "{target}: status {status}");
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{target}: body is not a JSON error: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_has_error(&json, target);
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("root:") && !text.contains("[package]"),
            "{target}: {text}"
        );
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn another_users_image_is_forbidden_under_their_id_and_missing_under_yours() {
    let mut app = spawn_app().await;
    let (owner, owner_id) = app.user_client("owner").await;
    let (intruder, intruder_id) = app.user_client("intruder").await;
    let bytes = png(10, 10, 3);
    let (status, up) = app
        .receive_image(&owner, "image/png", &bytes, "clothes")
        .await;
    assert_eq!(status, 200, "{up}");
    let filename = up["filename"].as_str().unwrap();
    let before = total_images(&app).await;

    for path in file_routes(&owner_id, filename) {
        let answer = app.get_json(&intruder, &path).await;
        assert_eq!(answer, (403, json!({"error": "权限不足"})), "{path}");
    }
    for path in file_routes(&intruder_id, filename) {
        let answer = app.get_json(&intruder, &path).await;
        assert_eq!(answer, (404, json!({"error": "图片不存在"})), "{path}");
    }
    // The owner still gets the bytes.
    let resp = owner
        .get(app.url(&file_routes(&owner_id, filename)[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn invalid_category_on_the_by_category_route_is_refused() {
    let mut app = spawn_app().await;
    let (client, user_id) = app.user_client("sorter").await;
    let (_, up) = app
        .receive_image(&client, "image/png", &png(5, 5, 8), "char")
        .await;
    let filename = up["filename"].as_str().unwrap();
    let before = total_images(&app).await;
    // `..` and `%2e%2e` are resolved by the HTTP client; the traversal test sends them raw.
    for category in ["shoes", "CLOTHES", "char%00", "clothes%2F..", "%20char"] {
        let path = format!("/api/user/{user_id}/images/{category}/{filename}");
        let (status, body) = app.get_json(&client, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "无效的分类", "{path}");
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn deleting_an_image_needs_its_owner() {
    let mut app = spawn_app().await;
    let (owner, _) = app.user_client("owner").await;
    let (intruder, _) = app.user_client("intruder").await;
    let (_, up) = app
        .receive_image(&owner, "image/png", &png(7, 7, 2), "clothes")
        .await;
    let image_id = up["imageId"].as_str().unwrap();
    let before = total_images(&app).await;
    let delete = |client: &reqwest::Client, id: &str| {
        client
            .delete(app.url(&format!("/api/user/images/{id}")))
            .send()
    };

    let resp = delete(&new_client(), image_id).await.unwrap();
    assert_eq!(status_and_json(resp).await, (401, failure("需要登录")));
    let resp = delete(&intruder, image_id).await.unwrap();
    assert_eq!(
        status_and_json(resp).await,
        (403, json!({"error": "权限不足"}))
    );
    for id in ["i-00000000-0000-0000-0000-000000000000", "nonsense"] {
        let resp = delete(&owner, id).await.unwrap();
        assert_eq!(
            status_and_json(resp).await,
            (404, json!({"error": "图片不存在"})),
            "{id}"
        );
    }
    assert_eq!(user_total(&app, &owner).await, 1);
    assert_unharmed(&mut app, before).await;
}

/// Uploads one image of `category` for `client` per seed; returns (filename, bytes), newest first.
async fn upload_some(
    app: &TestApp,
    client: &reqwest::Client,
    category: &str,
    seeds: std::ops::Range<u32>,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for seed in seeds {
        let bytes = png(4 + seed, 3, seed);
        let (status, up) = app
            .receive_image(client, "image/png", &bytes, category)
            .await;
        assert_eq!(status, 200, "{up}");
        out.push((up["filename"].as_str().unwrap().to_string(), bytes));
    }
    out.reverse();
    out
}

#[tokio::test]
async fn file_paths_list_every_image_by_category_with_routes_that_serve_it() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("pia").await;
    let (other, _) = app.user_client("quin").await;
    upload_some(&app, &other, "char", 50..51).await;
    let clothes = upload_some(&app, &client, "clothes", 0..3).await;
    let chars = upload_some(&app, &client, "char", 10..12).await;
    let (_, list) = app.get_json(&client, "/api/user/images").await;
    let saved_at: std::collections::HashMap<String, String> = list["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let name = i["filename"].as_str().unwrap().to_string();
            (name, i["saved_at"].as_str().unwrap().to_string())
        })
        .collect();

    let resp = client
        .get(app.url("/api/user/file-paths"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let (status, paths) = status_and_json(resp).await;
    assert_eq!(status, 200, "{paths}");
    let user_path = format!("/api/user/{user_id}/images");
    assert_eq!(paths["success"], true);
    assert_eq!(paths["user_id"], user_id.as_str());
    assert_eq!(paths["base_path"], "/api/user");
    assert_eq!(paths["user_path"], user_path.as_str());
    assert_eq!(paths["paths"].as_object().unwrap().len(), 2);
    let mut total_size = 0;
    for (category, uploaded) in [("clothes", &clothes), ("char", &chars)] {
        let listed = &paths["paths"][category];
        assert_eq!(
            listed["directory"],
            format!("{user_path}/{category}").as_str()
        );
        assert_eq!(listed["exists"], true);
        let files = listed["files"].as_array().unwrap();
        assert_eq!(files.len(), uploaded.len(), "{category}: {listed}");
        for (file, (filename, bytes)) in files.iter().zip(uploaded.iter()) {
            assert_eq!(file["filename"], filename.as_str(), "newest first");
            let full_path = format!("{user_path}/{category}/{filename}");
            assert_eq!(file["full_path"], full_path.as_str());
            assert_eq!(
                file["relative_path"],
                format!("{user_id}/{category}/{filename}").as_str()
            );
            assert_eq!(file["size"], bytes.len());
            // Local time, as the list shows it, in Python's isoformat.
            let modified = file["modified"].as_str().unwrap();
            assert_eq!(
                modified[..19].replace('T', " "),
                saved_at[filename.as_str()],
                "{modified}"
            );
            assert!(matches!(modified.len(), 19 | 26), "{modified}");
            let resp = client.get(app.url(&full_path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{full_path}");
            assert!(
                resp.bytes().await.unwrap().as_ref() == bytes.as_slice(),
                "{full_path}"
            );
            total_size += bytes.len() as u64;
        }
    }
    let mb = (total_size as f64 / 1_048_576.0 * 100.0).round() / 100.0;
    assert_eq!(
        paths["statistics"],
        json!({"total_files": 5, "total_size": total_size, "total_size_mb": mb})
    );

    for query in ["", "?category=all"] {
        let (_, same) = app
            .get_json(&client, &format!("/api/user/{user_id}/file-paths{query}"))
            .await;
        assert_eq!(same, paths, "{query}");
        let (_, same) = app
            .get_json(&client, &format!("/api/user/file-paths{query}"))
            .await;
        assert_eq!(same, paths, "{query}");
    }
    let (_, only) = app
        .get_json(&client, "/api/user/file-paths?category=char")
        .await;
    assert_eq!(only["paths"].as_object().unwrap().len(), 1);
    assert_eq!(only["paths"]["char"], paths["paths"]["char"]);
    let char_size: u64 = chars.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(only["statistics"]["total_files"], 2);
    assert_eq!(only["statistics"]["total_size"], char_size);
}

#[tokio::test]
async fn file_paths_need_a_login_the_owner_and_a_known_category() {
    let mut app = spawn_app().await;
    let (owner, owner_id) = app.user_client("rae").await;
    let (intruder, _) = app.user_client("sid").await;
    upload_some(&app, &owner, "clothes", 0..1).await;
    let before = total_images(&app).await;
    let own = "/api/user/file-paths".to_string();
    let by_id = format!("/api/user/{owner_id}/file-paths");

    for path in [&own, &by_id] {
        let answer = app.get_json(&new_client(), path).await;
        assert_eq!(answer, (401, failure("需要登录")), "{path}");
    }
    for query in ["", "?category=char", "?category=shoes&include_files=false"] {
        let answer = app.get_json(&intruder, &format!("{by_id}{query}")).await;
        assert_eq!(answer, (403, json!({"error": "权限不足"})), "{query}");
    }
    for bad in ["", "shoes", "ALL", "Clothes", "vton_results", "%20char"] {
        for path in [&own, &by_id] {
            let answer = app
                .get_json(&owner, &format!("{path}?category={bad}"))
                .await;
            assert_eq!(
                answer,
                (400, failure("无效的分类参数")),
                "{path}?category={bad}"
            );
        }
    }
    assert_unharmed(&mut app, before).await;
}

#[tokio::test]
async fn file_paths_without_files_keep_the_folders_and_drop_the_statistics() {
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("tam").await;
    upload_some(&app, &client, "char", 0..2).await;
    let by_id = format!("/api/user/{user_id}/file-paths");
    for value in ["false", "False", "0", "no", ""] {
        let (status, paths) = app
            .get_json(&client, &format!("{by_id}?include_files={value}"))
            .await;
        assert_eq!(status, 200, "{value}: {paths}");
        assert!(paths.get("statistics").is_none(), "{value}: {paths}");
        for category in ["clothes", "char"] {
            assert_eq!(
                paths["paths"][category],
                json!({
                    "directory": format!("/api/user/{user_id}/images/{category}"),
                    "exists": true,
                    "files": []
                }),
                "{value}"
            );
        }
    }
    for value in ["true", "TRUE", "True"] {
        let (_, paths) = app
            .get_json(
                &client,
                &format!("{by_id}?include_files={value}&category=char"),
            )
            .await;
        assert_eq!(
            paths["paths"]["char"]["files"].as_array().unwrap().len(),
            2,
            "{value}"
        );
        assert_eq!(paths["statistics"]["total_files"], 2, "{value}");
    }
    // The caller's own listing reads no include_files: files are always listed.
    let (_, paths) = app
        .get_json(&client, "/api/user/file-paths?include_files=false")
        .await;
    assert_eq!(paths["statistics"]["total_files"], 2);
}

#[tokio::test]
async fn a_file_listing_longer_than_a_page_of_the_index_arrives_whole() {
    use futures_util::StreamExt;
    let app = spawn_app().await;
    let (client, user_id) = app.user_client("uma").await;
    // More than the 256 files the server reads per piece of the answer.
    let count = 300u32;
    let uploads = futures_util::stream::iter(0..count)
        .map(|seed| {
            let (app, client) = (&app, &client);
            async move {
                app.receive_image(client, "image/png", &png(2, 2, seed), "char")
                    .await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    assert!(uploads.iter().all(|(status, _)| *status == 200));
    let resp = client
        .get(app.url(&format!("/api/user/{user_id}/file-paths?category=char")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let (status, paths) = status_and_json(resp).await;
    assert_eq!(status, 200);
    let files = paths["paths"]["char"]["files"].as_array().unwrap();
    let names: std::collections::HashSet<&str> = files
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert_eq!((files.len(), names.len()), (count as usize, count as usize));
    let (_, list) = app.get_json(&client, "/api/user/images?per_page=1").await;
    assert_eq!(
        files[0]["filename"], list["images"][0]["filename"],
        "newest first"
    );
    assert_eq!(paths["statistics"]["total_files"], count);
}
