//! The original project (`jh1nx/Software_Engineering-AITryOn`, issue 18) and imgvault, on the wire,
//! in both directions:
//!
//! - imgvault as the original's cloud: this test acts as the original local server
//!   (`local_client/app.py`) does towards `CLOUD_SERVER_URL`, with one python-requests-like session
//!   (one cookie jar for every call) and bodies built exactly as `CloudServerClient` builds them;
//! - imgvault as the original's local server: `--cloud-url` points at a stand-in for the sample
//!   cloud server (`tests/common/original_cloud.rs`), which records what imgvault sends;
//! - two imgvault instances on one host, one browser cookie jar: their sessions stay apart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

use common::original_cloud::{
    OriginalCloud, Recorded, iso_now, python_json, spawn_original_cloud, sqlite_now,
};
use common::*;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

// =============================================================================================
// The original local server, as a client of imgvault
// =============================================================================================

/// The original local server's one module-level `requests.Session()` (app@H:598): python-requests'
/// default headers, and one cookie jar shared by every call for every local user.
fn python_session() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT, "*/*".parse().unwrap());
    headers.insert(
        reqwest::header::ACCEPT_ENCODING,
        "gzip, deflate".parse().unwrap(),
    );
    headers.insert(reqwest::header::CONNECTION, "keep-alive".parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .user_agent("python-requests/2.31.0")
        .default_headers(headers)
        // python-requests has no default timeout; a test must not hang on a stuck server.
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// Status and body as python-requests reads them (gzip and deflate undone).
async fn read_answer(resp: reqwest::Response) -> (u16, Vec<u8>) {
    let status = resp.status().as_u16();
    let encoding = resp
        .headers()
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let raw = resp.bytes().await.expect("answer body").to_vec();
    let body = match encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .expect("gzip body");
            out
        }
        "deflate" => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .expect("deflate body");
            out
        }
        _ => raw,
    };
    (status, body)
}

async fn read_json(resp: reqwest::Response) -> (u16, Value) {
    let (status, body) = read_answer(resp).await;
    let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

/// A row of the original's `users` table.
struct LocalUser {
    /// A uuid4, as the original generates it; it becomes the cloud user id.
    user_id: String,
    username: String,
    email: String,
    password: String,
    created_at: String,
}

impl LocalUser {
    fn new(username: &str) -> Self {
        Self {
            user_id: uuid::Uuid::new_v4().to_string(),
            username: username.into(),
            email: format!("{username}@test.com"),
            password: "test123456".into(),
            created_at: sqlite_now(),
        }
    }
}

/// A row of the original's `images` table (its file's bytes are kept beside it).
#[derive(Clone)]
struct LocalImage {
    id: String,
    filename: String,
    category: &'static str,
    mime: &'static str,
    file_size: usize,
    width: u32,
    height: u32,
    page_title: Option<String>,
    original_url: Option<String>,
    saved_at: String,
    cloud_synced: bool,
    favorited: bool,
}

impl LocalImage {
    /// A row as the original's `save_image_from_data` writes it: a uuid4 id and
    /// `<category>_<YYYYmmdd_HHMMSS>_<first 8 of id>.<ext>`.
    fn new(category: &'static str, bytes: &[u8]) -> Self {
        let (mime, ext) = match bytes {
            [0x89, b'P', b'N', b'G', ..] => ("image/png", "png"),
            [0xff, 0xd8, ..] => ("image/jpeg", "jpg"),
            _ => panic!("a PNG or JPEG"),
        };
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .expect("a readable image")
            .into_dimensions()
            .expect("image dimensions");
        let id = uuid::Uuid::new_v4().to_string();
        let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S");
        Self {
            filename: format!("{category}_{stamp}_{}.{ext}", &id[..8]),
            id,
            category,
            mime,
            file_size: bytes.len(),
            width,
            height,
            page_title: Some("淘宝网 - 连衣裙".into()),
            original_url: Some("https://img.example.com/item.png".into()),
            saved_at: sqlite_now(),
            cloud_synced: false,
            favorited: false,
        }
    }
}

// The sync body, field for field and in order, as `sync_user_data` builds it (report A.3, A.4).

#[derive(Serialize)]
struct UserInfo<'a> {
    user_id: &'a str,
    username: &'a str,
    email: &'a str,
    created_at: &'a str,
    last_login: Option<&'a str>,
    cloud_sync_enabled: bool,
}

/// The 14 columns `get_user_images` and `get_user_favorites` share, in their order.
#[derive(Serialize)]
struct ImageColumns<'a> {
    id: &'a str,
    user_id: &'a str,
    filename: &'a str,
    original_url: Option<&'a str>,
    page_url: Option<&'a str>,
    page_title: Option<&'a str>,
    saved_at: &'a str,
    file_size: usize,
    image_width: u32,
    image_height: u32,
    context_info: Value,
    status: &'static str,
    cloud_synced: bool,
    category: &'a str,
}

impl<'a> ImageColumns<'a> {
    fn of(user: &'a LocalUser, image: &'a LocalImage) -> Self {
        Self {
            id: &image.id,
            user_id: &user.user_id,
            filename: &image.filename,
            original_url: image.original_url.as_deref(),
            page_url: Some("https://shop.example.com/item/1"),
            page_title: image.page_title.as_deref(),
            saved_at: &image.saved_at,
            file_size: image.file_size,
            image_width: image.width,
            image_height: image.height,
            context_info: json!({"altText": "商品图", "contextText": "", "category": image.category}),
            status: "saved",
            cloud_synced: image.cloud_synced,
            category: image.category,
        }
    }
}

/// An `images_metadata` entry: the 15 keys of `get_user_images`.
#[derive(Serialize)]
struct ImageRow<'a> {
    #[serde(flatten)]
    columns: ImageColumns<'a>,
    is_favorited: bool,
}

/// A `favorites_data` entry: no `image_id` and no `favorite_type` (`id` is the image's).
#[derive(Serialize)]
struct FavoriteRow<'a> {
    #[serde(flatten)]
    columns: ImageColumns<'a>,
    favorited_at: &'a str,
    is_favorited: bool,
}

/// A Python dict: keys in insertion order.
struct Ordered<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for Ordered<'_, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct SyncStatistics<'a> {
    total_metadata_records: usize,
    total_files_found: usize,
    total_files_missing: usize,
    total_size: usize,
    categories: Vec<String>,
    categories_stats: Ordered<'a, usize>,
    vton_history_count: usize,
    favorites_count: usize,
}

#[derive(Serialize)]
struct SyncPayload<'a> {
    user_info: UserInfo<'a>,
    images_metadata: Vec<ImageRow<'a>>,
    /// Filled in by `SyncBody`: the files are written (or streamed) one by one.
    image_files: Ordered<'a, String>,
    vton_history: Vec<Value>,
    favorites_data: Vec<FavoriteRow<'a>>,
    sync_timestamp: &'a str,
    sync_statistics: SyncStatistics<'a>,
}

/// The body of `POST {CLOUD_SERVER_URL}/sync/user/<id>` around its `image_files` entries: `head`,
/// then one entry per image, then `tail`. Every file is found, so every image has an entry.
struct SyncBody {
    head: Vec<u8>,
    tail: Vec<u8>,
    sync_timestamp: String,
}

const EMPTY_FILES: &[u8] = br#""image_files": {}"#;

impl SyncBody {
    fn new(user: &LocalUser, images: &[LocalImage]) -> Self {
        let sync_timestamp = iso_now();
        let mut categories_stats: Vec<(String, usize)> = Vec::new();
        for image in images {
            match categories_stats
                .iter_mut()
                .find(|(c, _)| c == image.category)
            {
                Some((_, n)) => *n += 1,
                None => categories_stats.push((image.category.to_string(), 1)),
            }
        }
        let favorited: Vec<&LocalImage> = images.iter().filter(|i| i.favorited).collect();
        let payload = SyncPayload {
            user_info: UserInfo {
                user_id: &user.user_id,
                username: &user.username,
                email: &user.email,
                created_at: &user.created_at,
                last_login: Some(&user.created_at),
                cloud_sync_enabled: false,
            },
            images_metadata: images
                .iter()
                .map(|i| ImageRow {
                    columns: ImageColumns::of(user, i),
                    is_favorited: i.favorited,
                })
                .collect(),
            image_files: Ordered(&[]),
            vton_history: Vec::new(),
            favorites_data: favorited
                .iter()
                .map(|i| FavoriteRow {
                    columns: ImageColumns::of(user, i),
                    favorited_at: &i.saved_at,
                    is_favorited: true,
                })
                .collect(),
            sync_timestamp: &sync_timestamp,
            sync_statistics: SyncStatistics {
                total_metadata_records: images.len(),
                total_files_found: images.len(),
                total_files_missing: 0,
                total_size: images.iter().map(|i| i.file_size).sum(),
                categories: categories_stats.iter().map(|(c, _)| c.clone()).collect(),
                categories_stats: Ordered(&categories_stats),
                vton_history_count: 0,
                favorites_count: favorited.len(),
            },
        };
        let whole = python_json(&payload);
        let at = whole
            .windows(EMPTY_FILES.len())
            .position(|w| w == EMPTY_FILES)
            .expect("the image_files key");
        let split = at + EMPTY_FILES.len() - 1;
        Self {
            head: whole[..split].to_vec(),
            tail: whole[split..].to_vec(),
            sync_timestamp,
        }
    }

    /// The `image_files` entry of one image: `"<filename>": "data:<mime>;base64,<…>"`, preceded
    /// by the separator unless it is the first.
    fn file_entry(first: bool, image: &LocalImage, bytes: &[u8]) -> Vec<u8> {
        let mut entry = if first { Vec::new() } else { b", ".to_vec() };
        entry.extend(python_json(&image.filename));
        entry.extend(b": ");
        entry.extend(python_json(&data_url(image.mime, bytes)));
        entry
    }

    /// The length of `file_entry` without building it.
    fn file_entry_len(first: bool, image: &LocalImage) -> usize {
        let separator = if first { 0 } else { 2 };
        let name = python_json(&image.filename).len();
        let url =
            format!("\"data:{};base64,\"", image.mime).len() + image.file_size.div_ceil(3) * 4;
        separator + name + 2 + url
    }

    fn with_files(self, files: &[(&LocalImage, &[u8])]) -> Vec<u8> {
        let mut body = self.head;
        for (n, (image, bytes)) in files.iter().enumerate() {
            body.extend(Self::file_entry(n == 0, image, bytes));
        }
        body.extend(self.tail);
        body
    }

    /// The body as a stream, with its length: `file(n)` makes the bytes of `rows[n]` again when
    /// its entry is due, so no more than one file is held at a time.
    fn streamed(
        self,
        rows: Vec<LocalImage>,
        file: impl Fn(usize) -> Vec<u8> + Send + 'static,
    ) -> (usize, reqwest::Body) {
        let length = self.head.len()
            + rows
                .iter()
                .enumerate()
                .map(|(n, r)| Self::file_entry_len(n == 0, r))
                .sum::<usize>()
            + self.tail.len();
        let Self { head, tail, .. } = self;
        let pieces = futures_util::stream::iter(0..rows.len() + 2).map(move |n| {
            let piece = match n {
                0 => head.clone(),
                n if n <= rows.len() => {
                    let row = &rows[n - 1];
                    let bytes = file(n - 1);
                    assert_eq!(bytes.len(), row.file_size, "{}: other bytes", row.filename);
                    Self::file_entry(n == 1, row, &bytes)
                }
                _ => tail.clone(),
            };
            Ok::<_, std::io::Error>(bytes::Bytes::from(piece))
        });
        (length, reqwest::Body::wrap_stream(pieces))
    }
}

/// The original local server (its `CloudServerClient`), pointed at an imgvault as its cloud.
struct OriginalLocal {
    /// The cloud's address, `http://HOST:PORT` (`CLOUD_SERVER_URL` without its `/api`).
    cloud: String,
    session: reqwest::Client,
}

/// `register_user` and `login_user` wait 10 s; `sync_user_data` 300 s.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(10);
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

impl OriginalLocal {
    fn new(cloud: &TestApp) -> Self {
        Self::at(&cloud.base)
    }

    fn at(base: &str) -> Self {
        Self {
            cloud: base.to_string(),
            session: python_session(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cloud)
    }

    /// `session.post(url, json=…)`: the body as `json.dumps` writes it, typed `application/json`.
    async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        timeout: Duration,
    ) -> (u16, Value) {
        let resp = self
            .session
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_json(resp).await
    }

    async fn register(&self, user: &LocalUser) -> (u16, Value) {
        #[derive(Serialize)]
        struct Register<'a> {
            username: &'a str,
            email: &'a str,
            password: &'a str,
            local_user_id: &'a str,
        }
        let body = python_json(&Register {
            username: &user.username,
            email: &user.email,
            password: &user.password,
            local_user_id: &user.user_id,
        });
        self.post("/api/register", body, ACCOUNT_TIMEOUT).await
    }

    /// `login_user`'s request, answered.
    async fn login_response(&self, user: &LocalUser) -> reqwest::Response {
        #[derive(Serialize)]
        struct Login<'a> {
            username: &'a str,
            password: &'a str,
        }
        let body = python_json(&Login {
            username: &user.username,
            password: &user.password,
        });
        self.session
            .post(self.url("/api/login"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(ACCOUNT_TIMEOUT)
            .send()
            .await
            .expect("POST /api/login")
    }

    async fn login(&self, user: &LocalUser) -> (u16, Value) {
        read_json(self.login_response(user).await).await
    }

    /// Registers and logs in, as the original's local register and login handlers do.
    async fn sign_up(&self, user: &LocalUser) {
        let (status, body) = self.register(user).await;
        assert_eq!(status, 200, "register {}: {body}", user.username);
        let (status, body) = self.login(user).await;
        assert_eq!(status, 200, "login {}: {body}", user.username);
    }

    /// `sync_user_data`: the whole collection, every file as a data URL.
    async fn sync(
        &self,
        user: &LocalUser,
        images: &[(LocalImage, Vec<u8>)],
    ) -> (Value, (u16, Value)) {
        let rows: Vec<LocalImage> = images.iter().map(|(i, _)| i.clone()).collect();
        let body = SyncBody::new(user, &rows);
        let stamp = Value::String(body.sync_timestamp.clone());
        let files: Vec<(&LocalImage, &[u8])> =
            images.iter().map(|(i, b)| (i, b.as_slice())).collect();
        let answer = self
            .post(
                &format!("/api/sync/user/{}", user.user_id),
                body.with_files(&files),
                SYNC_TIMEOUT,
            )
            .await;
        (stamp, answer)
    }

    /// `sync_user_data` with its body streamed (see `SyncBody::streamed`), sent with its
    /// `Content-Length` as python-requests sends every body. `Err` if the connection failed.
    async fn sync_streamed(
        &self,
        user: &LocalUser,
        length: usize,
        body: reqwest::Body,
    ) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .session
            .post(self.url(&format!("/api/sync/user/{}", user.user_id)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body)
            .timeout(SYNC_TIMEOUT)
            .send()
            .await?;
        Ok(read_json(resp).await)
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self
            .session
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        read_json(resp).await
    }

    async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self
            .session
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        read_answer(resp).await
    }

    /// The logged-in user's images (first 100), by file name.
    async fn images(&self) -> BTreeMap<String, Value> {
        let (status, body) = self.get_json("/api/user/images?per_page=100").await;
        assert_eq!(status, 200, "{body}");
        let images = body["images"].as_array().expect("images");
        assert_eq!(body["total"], images.len(), "{body}");
        images
            .iter()
            .map(|i| {
                (
                    i["filename"].as_str().expect("filename").to_string(),
                    i.clone(),
                )
            })
            .collect()
    }
}

/// Three distinct images of two categories, one of them a favorite, as rows with their bytes.
fn three_images() -> Vec<(LocalImage, Vec<u8>)> {
    let images = [
        ("clothes", png(120, 90, 1)),
        ("char", jpeg(90, 120, 2)),
        ("clothes", png(64, 64, 3)),
    ];
    images
        .into_iter()
        .enumerate()
        .map(|(n, (category, bytes))| {
            let mut row = LocalImage::new(category, &bytes);
            row.favorited = n == 2;
            (row, bytes)
        })
        .collect()
}

#[tokio::test]
async fn the_original_registers_its_users_under_their_local_ids() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_alice");
    let (status, body) = local.register(&user).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["cloud_user_id"], user.user_id.as_str(), "{body}");
    assert_eq!(body["user_id"], user.user_id.as_str(), "{body}");

    // The same local id again, under another name (its test_server.py races the local server
    // this way): the original's "exists" answer, and the first account is untouched.
    let mut twin = LocalUser::new("orig_twin");
    twin.user_id = user.user_id.clone();
    let (status, body) = local.register(&twin).await;
    assert_eq!(
        (status, body),
        (400, failure("用户名或邮箱已存在")),
        "a taken local_user_id"
    );
    let (status, body) = local.login(&user).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["user_id"], user.user_id.as_str(), "{body}");
    let (status, _) = local.login(&twin).await;
    assert_eq!(status, 401, "the refused twin has no account");
}

#[tokio::test]
async fn usernames_the_original_generates_are_accepted_with_a_local_id_only() {
    let hub = spawn_app().await;
    // test_server.py@HEAD: "testuser_" + str(int(time.time()) * random.randint(10, 50000)).
    for digits in [
        "17500000000",
        "175000000000",
        "1750000000000",
        "17500000000000",
    ] {
        let username = format!("testuser_{digits}");
        assert!((20..=23).contains(&username.len()));
        let user = LocalUser::new(&username);
        let local = OriginalLocal::new(&hub);
        if username.len() > 20 {
            // Without a local id it is a local registration: the seed's 3–20 rule holds.
            let plain =
                json!({"username": username, "email": user.email, "password": user.password});
            let (status, body) = hub.post_json(&new_client(), "/api/register", &plain).await;
            assert_eq!(status, 400, "{username} without local_user_id: {body}");
            assert_eq!(body["success"], false, "{body}");
            assert_has_error(&body, &username);
        }
        let (status, body) = local.register(&user).await;
        assert_eq!(status, 200, "{username} with local_user_id: {body}");
        let (status, body) = local.login(&user).await;
        assert_eq!(status, 200, "{username}: {body}");
    }
}

#[tokio::test]
async fn the_original_logs_in_and_gets_its_cloud_user_and_a_session_cookie() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_login");
    assert_eq!(local.register(&user).await.0, 200);

    let resp = local.login_response(&user).await;
    assert!(
        resp.headers().contains_key(reqwest::header::SET_COOKIE),
        "no session cookie"
    );
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(
        body["user"],
        json!({"user_id": user.user_id, "username": user.username, "email": user.email}),
        "{body}"
    );
    assert_eq!(
        body["cloud_user"],
        json!({"user_id": user.user_id, "username": user.username, "email": user.email,
               "local_user_id": user.user_id}),
        "{body}"
    );
    // The jar replays the cookie, whatever its name.
    let (status, check) = local.get_json("/api/auth/check").await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["authenticated"], true, "{check}");
    assert_eq!(check["user"]["user_id"], user.user_id.as_str(), "{check}");
}

#[tokio::test]
async fn a_whole_collection_sync_from_the_original_is_stored_byte_for_byte() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_sync");
    local.sign_up(&user).await;

    let images = three_images();
    let (stamp, (status, body)) = local.sync(&user, &images).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let result = &body["sync_result"];
    for key in [
        "sync_id",
        "cloud_user_id",
        "total_images",
        "saved_files",
        "failed_files",
        "total_size",
        "vton_synced",
        "vton_failed",
        "favorites_synced",
        "favorites_failed",
        "sync_timestamp",
        "server_timestamp",
        "status",
    ] {
        assert!(result.get(key).is_some(), "sync_result lacks {key}: {body}");
    }
    let total_size: usize = images.iter().map(|(i, _)| i.file_size).sum();
    assert_eq!(result["cloud_user_id"], user.user_id.as_str(), "{body}");
    assert_eq!(result["total_images"], 3, "{body}");
    assert_eq!(result["saved_files"], 3, "{body}");
    assert_eq!(result["failed_files"], 0, "{body}");
    assert_eq!(result["total_size"], total_size, "{body}");
    assert_eq!(result["status"], "completed", "{body}");
    assert_eq!(
        result["sync_timestamp"], stamp,
        "the request's sync_timestamp, echoed"
    );
    assert!(
        result["sync_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );

    let listed = local.images().await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (row, bytes) in &images {
        let path = format!("/api/user/{}/images/{}", user.user_id, row.filename);
        let (status, stored) = local.get_bytes(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(stored == *bytes, "{path}: other bytes came back");
        let item = &listed[&row.filename];
        assert_eq!(item["category"], row.category, "{item}");
        assert_eq!(item["file_size"], row.file_size, "{item}");
    }
}

#[tokio::test]
async fn the_original_resending_its_whole_collection_stores_only_what_is_new() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_again");
    local.sign_up(&user).await;
    let mut images = three_images();
    let (_, (status, body)) = local.sync(&user, &images).await;
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    assert_eq!(local.images().await.len(), 3);

    // The original marks every row synced, then sends them all again with the new one.
    for (row, _) in &mut images {
        row.cloud_synced = true;
    }
    let new = png(100, 50, 4);
    images.push((LocalImage::new("char", &new), new));
    let (_, (status, body)) = local.sync(&user, &images).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["sync_result"]["failed_files"], 0, "{body}");
    assert_eq!(body["sync_result"]["total_images"], 4, "{body}");

    let listed = local.images().await;
    assert_eq!(
        listed.len(),
        4,
        "re-sent images are stored once: {listed:?}"
    );
    let (row, bytes) = &images[3];
    assert_eq!(listed[&row.filename]["category"], "char");
    let (_, stored) = local
        .get_bytes(&format!(
            "/api/user/{}/images/{}",
            user.user_id, row.filename
        ))
        .await;
    assert!(stored == *bytes, "the new image's bytes");
}

#[tokio::test]
async fn a_sync_needs_the_session_of_its_own_user() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let alice = LocalUser::new("orig_owner");
    let bob = LocalUser::new("orig_other");
    local.sign_up(&alice).await;
    // One jar for every local user, as in the original: bob's login replaces alice's session.
    local.sign_up(&bob).await;
    let images = three_images();

    let (_, (status, body)) = local.sync(&alice, &images).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "权限不足", "{body}");

    let rows: Vec<LocalImage> = images.iter().map(|(i, _)| i.clone()).collect();
    let files: Vec<(&LocalImage, &[u8])> = images.iter().map(|(i, b)| (i, b.as_slice())).collect();
    let resp = python_session()
        .post(hub.url(&format!("/api/sync/user/{}", alice.user_id)))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(SyncBody::new(&alice, &rows).with_files(&files))
        .send()
        .await
        .expect("POST without a session");
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 401, "{body}");

    assert_eq!(
        total_images(&hub).await,
        0,
        "a refused sync stored something"
    );
}

#[tokio::test]
async fn the_sync_status_route_reports_the_last_sync() {
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_status");
    local.sign_up(&user).await;
    let path = format!("/api/user/{}/sync/status", user.user_id);

    let (status, before) = local.get_json(&path).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["success"], true, "{before}");
    assert_eq!(before["sync_statistics"]["total_images"], 0, "{before}");
    assert!(before["last_sync"].is_null(), "no sync yet: {before}");

    let images = three_images();
    let (_, (status, synced)) = local.sync(&user, &images).await;
    assert_eq!(status, 200, "{synced}");
    let (status, after) = local.get_json(&path).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["success"], true, "{after}");
    assert_eq!(after["user_id"], user.user_id.as_str(), "{after}");
    assert_eq!(after["cloud_user_id"], user.user_id.as_str(), "{after}");
    assert_eq!(after["sync_statistics"]["total_images"], 3, "{after}");
    let last = &after["last_sync"];
    for key in [
        "sync_id",
        "sync_type",
        "sync_timestamp",
        "images_count",
        "total_size",
        "status",
        "error_message",
    ] {
        assert!(last.get(key).is_some(), "last_sync lacks {key}: {after}");
    }
    assert_eq!(last["sync_id"], synced["sync_result"]["sync_id"], "{after}");
    assert_eq!(last["images_count"], 3, "{after}");
    assert_eq!(
        last["total_size"],
        images.iter().map(|(i, _)| i.file_size).sum::<usize>(),
        "{after}"
    );
    assert_eq!(last["status"], "completed", "{after}");
    assert!(last["error_message"].is_null(), "{after}");
    assert!(
        last["sync_timestamp"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_collection_body_over_64_mib_is_accepted() {
    // About 2.1 MB of image each, 2.8 MB in base64: 26 of them make a body of about 73 MB.
    const IMAGES: u32 = 26;
    const SIDE: (u32, u32) = (1000, 700);
    let hub = spawn_app().await;
    let local = OriginalLocal::new(&hub);
    let user = LocalUser::new("orig_big");
    local.sign_up(&user).await;

    // Rows first (each image made once and dropped), the files again while streaming the body.
    let mut rows = Vec::new();
    let mut hashes = BTreeMap::new();
    for seed in 0..IMAGES {
        let bytes = noisy_png(SIDE.0, SIDE.1, seed);
        let row = LocalImage::new(if seed % 2 == 0 { "clothes" } else { "char" }, &bytes);
        hashes.insert(row.filename.clone(), blake3::hash(&bytes));
        rows.push(row);
    }
    let (length, body) =
        SyncBody::new(&user, &rows).streamed(rows, |n| noisy_png(SIDE.0, SIDE.1, n as u32));
    assert!(length > 68 * MB, "the body is only {length} bytes");
    let (status, answer) = local
        .sync_streamed(&user, length, body)
        .await
        .unwrap_or_else(|e| panic!("the hub did not take the {length}-byte body: {e}"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["sync_result"]["saved_files"], IMAGES, "{answer}");
    assert_eq!(answer["sync_result"]["failed_files"], 0, "{answer}");

    let listed = local.images().await;
    assert_eq!(listed.len(), IMAGES as usize);
    for (filename, hash) in &hashes {
        let (status, stored) = local
            .get_bytes(&format!("/api/user/{}/images/{filename}", user.user_id))
            .await;
        assert_eq!(status, 200, "{filename}");
        assert_eq!(blake3::hash(&stored), *hash, "{filename}");
    }
}

// =============================================================================================
// imgvault as the original's local server, syncing into its sample cloud
// =============================================================================================

async fn spawn_local(cloud: &OriginalCloud) -> TestApp {
    spawn_app_with(&["--cloud-url", &cloud.api_url()]).await
}

/// One upload of the local user, as imgvault answered it.
struct Uploaded {
    id: String,
    filename: String,
    category: String,
    bytes: Vec<u8>,
}

/// Uploads one image each way a browser user does: the extension's data URL and the clipboard.
async fn upload_three(app: &TestApp, client: &reqwest::Client) -> Vec<Uploaded> {
    let cases: [(&str, &str, Vec<u8>); 3] = [
        ("/api/receive-image", "clothes", png(200, 150, 11)),
        ("/api/upload-clipboard", "char", jpeg(150, 200, 12)),
        ("/api/receive-image", "char", png(80, 80, 13)),
    ];
    let mut uploaded = Vec::new();
    for (route, category, bytes) in cases {
        let mime = if bytes.starts_with(&[0xff, 0xd8]) {
            "image/jpeg"
        } else {
            "image/png"
        };
        let body = json!({"imageData": data_url(mime, &bytes), "category": category,
                          "pageInfo": {"url": "https://shop.example.com/", "title": "商品"}});
        let (status, answer) = app.post_json(client, route, &body).await;
        assert_eq!(status, 200, "{route}: {answer}");
        assert_eq!(answer["category"], category, "{answer}");
        uploaded.push(Uploaded {
            id: answer["imageId"].as_str().expect("imageId").into(),
            filename: answer["filename"].as_str().expect("filename").into(),
            category: category.into(),
            bytes,
        });
    }
    uploaded
}

/// Starts a cloud sync and waits (at most a minute) for its task to end; returns the task.
async fn sync_to_cloud(app: &TestApp, client: &reqwest::Client) -> Value {
    let (status, started) = app.post_json(client, "/api/cloud/sync", &json!({})).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["success"], true, "{started}");
    let task_id = started["taskId"].as_str().expect("taskId").to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get_json(client, &format!("/api/task/{task_id}")).await;
        assert_eq!(status, 200, "{body}");
        if body["status"]["status"] != "processing" {
            return body["status"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sync still running: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cloud_synced` of every image of the client's user, by file name.
async fn synced_flags(app: &TestApp, client: &reqwest::Client) -> BTreeMap<String, bool> {
    let (status, body) = app.get_json(client, "/api/user/images?per_page=100").await;
    assert_eq!(status, 200, "{body}");
    body["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["filename"].as_str().expect("filename").to_string(),
                i["cloud_synced"].as_bool().expect("cloud_synced"),
            )
        })
        .collect()
}

/// The sync requests the stand-in answered for `user_id`.
fn syncs_of(cloud: &OriginalCloud, user_id: &str) -> Vec<Recorded> {
    cloud
        .requests()
        .into_iter()
        .filter(|r| r.is_sync_of(user_id))
        .collect()
}

/// Every metadata entry of a sync request carries an id, a file name and a category, and every
/// file is a base64 data URL; returns (file name → metadata, file names with a file).
fn check_sync_body(request: &Recorded) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let body = request.body.as_ref().expect("a JSON sync body");
    let mut metadata = BTreeMap::new();
    for meta in body["images_metadata"].as_array().expect("images_metadata") {
        assert!(meta["id"].as_str().is_some_and(|s| !s.is_empty()), "{meta}");
        let category = meta["category"].as_str().unwrap_or_default();
        assert!(["clothes", "char"].contains(&category), "{meta}");
        let filename = meta["filename"].as_str().expect("filename");
        metadata.insert(filename.to_string(), meta.clone());
    }
    let files = body["image_files"].as_object().expect("image_files");
    for (name, url) in files {
        let url = url.as_str().unwrap_or_default();
        assert!(
            url.starts_with("data:image/") && url.contains(";base64,"),
            "{name}: not a base64 data URL: {:.60}",
            url
        );
    }
    (metadata, files.keys().cloned().collect())
}

#[tokio::test]
async fn registering_locally_registers_on_the_original_cloud_with_the_local_id() {
    let cloud = spawn_original_cloud().await;
    let local = spawn_local(&cloud).await;
    let user_id = local.register(&new_client(), "carol", "password123").await;

    let requests = cloud
        .wait_for("POST /api/register", |r| {
            r.iter()
                .any(|r| r.method == "POST" && r.path == "/api/register")
        })
        .await;
    let register = requests
        .iter()
        .find(|r| r.path == "/api/register")
        .expect("a register request");
    let body = register.body.as_ref().expect("a JSON body");
    assert_eq!(body["local_user_id"], user_id.as_str(), "{body}");
    assert_eq!(body["username"], "carol", "{body}");
    assert_eq!(body["email"], "carol@example.com", "{body}");
    assert_eq!(body["password"], "password123", "{body}");
    assert_eq!(register.status, 200, "{:?}", register.reply);
    let cloud_user = cloud.user_by_local_id(&user_id).expect("a cloud account");
    assert_eq!(cloud_user.user_id, user_id);
}

#[tokio::test]
async fn logging_in_locally_logs_in_on_the_original_cloud() {
    let cloud = spawn_original_cloud().await;
    let local = spawn_local(&cloud).await;
    let client = new_client();
    let user_id = local.register(&client, "dave", "password123").await;
    let user = local.login(&client, "dave", "password123").await;
    assert_eq!(user["user_id"], user_id.as_str());

    let requests = cloud
        .wait_for("POST /api/login", |r| {
            r.iter()
                .any(|r| r.method == "POST" && r.path == "/api/login")
        })
        .await;
    let login = requests
        .iter()
        .rfind(|r| r.path == "/api/login")
        .expect("a login request");
    let body = login.body.as_ref().expect("a JSON body");
    assert_eq!(body["username"], "dave", "{body}");
    assert_eq!(body["password"], "password123", "{body}");
    assert_eq!(login.status, 200, "{:?}", login.reply);
    let (_, check) = local.get_json(&client, "/api/auth/check").await;
    assert_eq!(check["authenticated"], true, "{check}");
}

#[tokio::test]
async fn a_sync_into_the_original_cloud_delivers_every_image_byte_for_byte() {
    let cloud = spawn_original_cloud().await;
    let local = spawn_local(&cloud).await;
    let (client, user_id) = local.user_client("erin").await;
    let uploaded = upload_three(&local, &client).await;

    let task = sync_to_cloud(&local, &client).await;
    assert_eq!(task["status"], "completed", "{task}");

    let syncs = syncs_of(&cloud, &user_id);
    assert!(!syncs.is_empty(), "no POST /api/sync/user/{user_id}");
    let mut metadata = BTreeMap::new();
    let mut files = BTreeSet::new();
    for request in &syncs {
        assert_eq!(request.status, 200, "{:?}", request.reply);
        let (m, f) = check_sync_body(request);
        metadata.extend(m);
        files.extend(f);
    }
    for image in &uploaded {
        let meta = metadata
            .get(&image.filename)
            .unwrap_or_else(|| panic!("{} never sent", image.filename));
        assert_eq!(meta["id"], image.id.as_str(), "{meta}");
        assert_eq!(meta["category"], image.category.as_str(), "{meta}");
        assert!(
            files.contains(&image.filename),
            "{}: no file",
            image.filename
        );
        let stored = cloud.file(&user_id, &image.category, &image.filename);
        assert!(
            stored.as_deref() == Some(&image.bytes[..]),
            "{} is not in the cloud under {user_id}/{} byte for byte",
            image.filename,
            image.category
        );
    }
    assert_eq!(cloud.files_of(&user_id).len(), 3);
    let flags = synced_flags(&local, &client).await;
    assert_eq!(flags.len(), 3);
    assert!(flags.values().all(|&s| s), "{flags:?}");
}

#[tokio::test]
async fn a_file_the_original_cloud_fails_stays_unsynced_until_a_later_sync() {
    let cloud = spawn_original_cloud().await;
    let local = spawn_local(&cloud).await;
    let (client, user_id) = local.user_client("frank").await;
    let uploaded = upload_three(&local, &client).await;
    let failing = &uploaded[1];
    cloud.fail_files([failing.filename.clone()]);

    let task = sync_to_cloud(&local, &client).await;
    assert!(
        ["completed", "failed"].contains(&task["status"].as_str().unwrap_or_default()),
        "{task}"
    );
    assert!(
        cloud
            .file(&user_id, &failing.category, &failing.filename)
            .is_none()
    );
    let flags = synced_flags(&local, &client).await;
    assert!(!flags[&failing.filename], "{flags:?}");
    // Every image of a request the cloud fully accepted is marked; the others got there too.
    let mut confirmed = BTreeSet::new();
    for request in syncs_of(&cloud, &user_id) {
        let (_, files) = check_sync_body(&request);
        let reply = request.reply.as_ref().expect("a JSON answer");
        if request.status == 200 && reply["sync_result"]["failed_files"] == 0 {
            confirmed.extend(files);
        }
    }
    for image in uploaded.iter().filter(|i| i.filename != failing.filename) {
        let stored = cloud.file(&user_id, &image.category, &image.filename);
        assert!(
            stored.as_deref() == Some(&image.bytes[..]),
            "{}",
            image.filename
        );
        if confirmed.contains(&image.filename) {
            assert!(flags[&image.filename], "{}: {flags:?}", image.filename);
        }
    }

    // The cloud recovers: the next sync sends what is still unsynced.
    cloud.fail_files(Vec::<String>::new());
    let task = sync_to_cloud(&local, &client).await;
    assert_eq!(task["status"], "completed", "{task}");
    let stored = cloud.file(&user_id, &failing.category, &failing.filename);
    assert!(stored.as_deref() == Some(&failing.bytes[..]));
    let flags = synced_flags(&local, &client).await;
    assert!(flags.values().all(|&s| s), "{flags:?}");
}

#[tokio::test]
async fn without_a_cloud_url_sync_is_disabled_after_the_login_check() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json(&new_client(), "/api/cloud/sync", &json!({}))
        .await;
    assert_eq!((status, body), (401, failure("需要登录")), "anonymous");
    let (client, _) = app.user_client("solo").await;
    let answer = app.post_json(&client, "/api/cloud/sync", &json!({})).await;
    assert_eq!(answer, (400, failure("云端同步功能已禁用")));
}

// =============================================================================================
// Two instances on one host, one browser
// =============================================================================================

/// Logs `client` in on `app` and returns the cookies the answer set, name → value (cookies that
/// are cleared, with an empty value, left out).
async fn login_cookies(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
) -> BTreeMap<String, String> {
    let resp = client
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": "password123"}))
        .send()
        .await
        .expect("POST /api/login");
    assert_eq!(resp.status(), 200, "login {username}");
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.trim().to_string(), value.to_string()))
        .collect()
}

async fn check_user(app: &TestApp, client: &reqwest::Client) -> Option<String> {
    let (status, body) = app.get_json(client, "/api/auth/check").await;
    assert_eq!(status, 200, "{body}");
    match body["authenticated"].as_bool() {
        Some(true) => Some(body["user"]["username"].as_str().expect("username").into()),
        _ => None,
    }
}

#[tokio::test]
async fn two_instances_on_one_host_keep_their_sessions_apart_in_one_cookie_jar() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    // A browser: one jar, and cookies are not kept apart by port.
    let browser = new_client();
    a.register(&browser, "alice", "password123").await;
    b.register(&browser, "bob", "password123").await;

    let cases = [(&a, "alice"), (&b, "bob")];
    let mut names = Vec::new();
    for (app, username) in cases {
        let cookies = login_cookies(app, &browser, username).await;
        let here: Vec<&String> = cookies.keys().collect();
        assert!(
            matches!(here.as_slice(), [name] if name.starts_with("imgvault_")),
            "{username}: {cookies:?}"
        );
        names.push(here[0].clone());
    }
    assert_ne!(names[0], names[1], "each instance names its cookie");
    for (app, username) in cases {
        assert_eq!(check_user(app, &browser).await.as_deref(), Some(username));
    }

    let (status, body) = b.post_json(&browser, "/api/logout", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(check_user(&b, &browser).await, None, "logged out of B");
    assert_eq!(check_user(&a, &browser).await.as_deref(), Some("alice"));
}

#[tokio::test]
async fn the_cookie_name_flag_names_the_session_cookie() {
    let app = spawn_app_with(&["--cookie-name", "vault_one"]).await;
    let browser = new_client();
    app.register(&browser, "grace", "password123").await;
    let cookies = login_cookies(&app, &browser, "grace").await;
    assert!(cookies.contains_key("vault_one"), "{cookies:?}");
    assert_eq!(check_user(&app, &browser).await.as_deref(), Some("grace"));
}

// =============================================================================================
// The stand-in for the original cloud, against this file's original client
// =============================================================================================

/// `method path` with a body of `content_type`, from a client of its own: (status, Content-Type,
/// body as text).
async fn raw_request(
    method: &str,
    url: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let resp = python_session()
        .request(method, url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("a request to the stand-in");
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, resp.text().await.expect("a text body"))
}

/// Every other test trusts both halves of this file: the original's client (bodies built as
/// `CloudServerClient` builds them) and the stand-in for its cloud. Here they meet, and the
/// stand-in answers as server.py does, including where imgvault is asked to differ (a favorite
/// without `image_id` makes server.py's sync `partial`).
#[tokio::test]
async fn the_stand_in_cloud_answers_the_original_client_as_server_py_does() {
    let cloud = spawn_original_cloud().await;
    let local = OriginalLocal::at(&cloud.base);
    let user = LocalUser::new("testuser_1750000000000");
    let images = three_images();

    let (_, answer) = local.sync(&user, &images).await;
    assert_eq!(answer, (404, failure("用户未在云端注册，请先注册")));
    let answer = local.register(&user).await;
    let registered =
        json!({"success": true, "cloud_user_id": user.user_id, "message": "云端注册成功"});
    assert_eq!(answer, (200, registered));
    let answer = local.register(&user).await;
    assert_eq!(answer, (400, failure("用户名或邮箱已存在")));
    let resp = local.login_response(&user).await;
    assert!(!resp.headers().contains_key(reqwest::header::SET_COOKIE));
    let (status, body) = read_json(resp).await;
    assert_eq!(status, 200, "{body}");
    let cloud_user = json!({"user_id": user.user_id, "username": user.username,
                            "email": user.email, "local_user_id": user.user_id});
    assert_eq!(body["cloud_user"], cloud_user, "{body}");

    let (stamp, (status, body)) = local.sync(&user, &images).await;
    assert_eq!(status, 200, "{body}");
    let result = &body["sync_result"];
    assert_eq!(result["total_images"], 3, "{body}");
    assert_eq!(result["saved_files"], 3, "{body}");
    assert_eq!(result["failed_files"], 0, "{body}");
    assert_eq!(result["favorites_failed"], 1, "{body}");
    assert_eq!(result["status"], "partial", "{body}");
    assert_eq!(result["sync_timestamp"], stamp, "{body}");
    for (row, bytes) in &images {
        let stored = cloud.file(&user.user_id, row.category, &row.filename);
        assert!(stored.as_deref() == Some(&bytes[..]), "{}", row.filename);
    }
    let sent = cloud.requests().pop().expect("the sync request");
    let sent_body = sent.body.expect("a JSON body");
    let keys: Vec<&String> = sent_body.as_object().expect("an object").keys().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    let row = sent_body["images_metadata"][0].as_object().expect("a row");
    assert_eq!(row.len(), 15, "{row:?}");
    assert!(sent_body["favorites_data"][0].get("image_id").is_none());
    let (status, body) = local
        .get_json(&format!("/api/user/{}/sync/status", user.user_id))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sync_statistics"]["total_images"], 3, "{body}");
    assert_eq!(body["last_sync"]["status"], "partial", "{body}");
    assert_eq!(body["last_sync"]["error_message"], "1 个收藏记录同步失败");

    // The streamed body is the same body, of the length it declares; a failing file is counted.
    cloud.fail_files([images[0].0.filename.clone()]);
    let rows: Vec<LocalImage> = images.iter().map(|(r, _)| r.clone()).collect();
    let files: Vec<Vec<u8>> = images.iter().map(|(_, b)| b.clone()).collect();
    let (length, body) = SyncBody::new(&user, &rows).streamed(rows, move |n| files[n].clone());
    let (status, answer) = local
        .sync_streamed(&user, length, body)
        .await
        .expect("the stand-in takes a streamed body");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sync_result"]["saved_files"], 2, "{answer}");
    assert_eq!(answer["sync_result"]["failed_files"], 1, "{answer}");
    assert_eq!(cloud.requests().pop().expect("a request").body_len, length);

    // Flask's answers to what it has no route, method or JSON for.
    let base = &cloud.base;
    let id = &user.user_id;
    let json_type = "application/json";
    let cases: [(&str, String, &str, &str, u16, &str); 8] = [
        (
            "GET",
            format!("{base}/api/status"),
            json_type,
            "",
            200,
            r#""running""#,
        ),
        (
            "POST",
            format!("{base}/api/sync/user/{id}/manifest"),
            json_type,
            "{}",
            404,
            "<title>404 Not Found</title>",
        ),
        (
            "GET",
            format!("{base}/api/register"),
            json_type,
            "",
            405,
            "<title>405 Method Not Allowed</title>",
        ),
        (
            "POST",
            format!("{base}/api/register"),
            json_type,
            r#"{"username": "x"}"#,
            400,
            "\\u7528\\u6237\\u540d",
        ),
        (
            "POST",
            format!("{base}/api/login"),
            json_type,
            r#"{"username": "x", "password": "y"}"#,
            401,
            "\\u9519\\u8bef",
        ),
        (
            "POST",
            format!("{base}/api/sync/user/{id}"),
            json_type,
            "{}",
            400,
            "\\u6ca1\\u6709",
        ),
        (
            "POST",
            format!("{base}/api/sync/user/{id}"),
            "text/plain",
            "{}",
            500,
            "415 Unsupported Media Type",
        ),
        (
            "GET",
            format!("{base}/api/user/nobody/sync/status"),
            json_type,
            "",
            404,
            "\\u7528\\u6237\\u672a\\u627e\\u5230",
        ),
    ];
    for (method, url, content_type, body, status, contains) in cases {
        let (got, kind, text) = raw_request(method, &url, content_type, body).await;
        assert_eq!(got, status, "{method} {url}: {text}");
        assert!(text.contains(contains), "{method} {url}: {text}");
        let html = text.starts_with("<!doctype html>");
        assert_eq!(
            html,
            kind.starts_with("text/html"),
            "{method} {url}: {kind}"
        );
    }
}
