//! A stand-in for the original project's sample cloud server (`server_sample/server.py` at
//! b5ddb92 of `jh1nx/Software_Engineering-AITryOn`), the cloud its local server and imgvault's
//! `--cloud-url` talk to. It answers as that Flask app does, on the wire: the same routes, status
//! codes, Chinese messages and JSON shapes (pretty-printed, sorted, ASCII-escaped, as Flask's
//! `jsonify` in debug mode), Flask's HTML pages for unknown routes (404) and wrong methods (405),
//! no authentication and no cookies at all, users found by the `local_user_id` they registered
//! with. Files are kept in memory under (cloud user id, category, file name), image metadata under
//! the image id, as the original keeps them on disk and in SQLite.
//!
//! It records every request (method, path, headers, parsed JSON body) with its answer, so a test
//! can assert what imgvault sent, and it can be told to fail chosen files as a full disk would.
//! Like the original it never checks that a file is an image: it stores whatever decodes.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, Method, Response, header};

/// The running stand-in; it stops when dropped.
pub struct OriginalCloud {
    /// `http://127.0.0.1:PORT`, no trailing slash. The original's base URL is this plus `/api`.
    pub base: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

struct Shared {
    db: Mutex<Db>,
    /// The number of requests recorded so far, for `wait_for`.
    seen: tokio::sync::watch::Sender<usize>,
}

/// What server.py keeps in `cloud_database.db` and under `cloud_data/users/`.
#[derive(Default)]
struct Db {
    users: Vec<CloudUser>,
    /// `cloud_images`, keyed by the image id of the metadata (its primary key).
    images: BTreeMap<String, CloudImage>,
    /// (cloud user id, category, file name) → bytes.
    files: BTreeMap<(String, String, String), Vec<u8>>,
    /// `vton_history`, keyed by its id.
    vton: BTreeMap<String, String>,
    /// `favorites`, keyed by (user id, image id, favorite type).
    favorites: BTreeMap<(String, String, String), Value>,
    syncs: Vec<SyncRecord>,
    requests: Vec<Recorded>,
    /// File names whose save fails (as on a full disk): counted in `failed_files`, not stored.
    failing: HashSet<String>,
}

/// A row of `cloud_users`.
#[derive(Clone, Debug)]
pub struct CloudUser {
    pub user_id: String,
    pub username: String,
    pub email: String,
    /// Unsalted SHA-256 hex, as server.py stores it.
    pub password_hash: String,
    pub local_user_id: Option<String>,
    /// Overwritten by each sync with that sync's `saved_files` (not accumulated).
    pub total_images: u64,
    pub total_storage_size: u64,
}

/// A row of `cloud_images`.
#[derive(Clone, Debug)]
pub struct CloudImage {
    pub id: String,
    pub user_id: String,
    pub filename: String,
    /// The metadata's raw `category` (default `clothes`), as server.py stores it.
    pub category: String,
    /// The metadata entry as it arrived.
    pub metadata: Value,
}

/// A row of `sync_records`.
#[derive(Clone, Debug)]
pub struct SyncRecord {
    pub sync_id: String,
    pub user_id: String,
    pub sync_timestamp: String,
    pub images_count: u64,
    pub total_size: u64,
    pub status: String,
    pub error_message: Option<String>,
}

/// One request the stand-in received, with its answer.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The body, if it parsed as JSON.
    pub body: Option<Value>,
    pub status: u16,
    /// The answer, if it was JSON (Flask's error pages are HTML).
    pub reply: Option<Value>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cookie(&self) -> Option<&str> {
        self.header("cookie")
    }

    /// `POST /api/sync/user/<user_id>` (not a longer path such as `…/manifest`).
    pub fn is_sync_of(&self, user_id: &str) -> bool {
        self.method == "POST" && self.path == format!("/api/sync/user/{user_id}")
    }
}

/// Starts the stand-in on `127.0.0.1:0`, in a task of the current runtime.
pub async fn spawn_original_cloud() -> OriginalCloud {
    let (seen, _) = tokio::sync::watch::channel(0);
    let shared = Arc::new(Shared {
        db: Mutex::default(),
        seen,
    });
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map({
            let shared = shared.clone();
            move |method: Method, path: warp::path::FullPath, headers: HeaderMap, body: Bytes| {
                shared.handle(&method, path.as_str(), headers, &body)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stand-in cloud");
    let addr = listener.local_addr().expect("stand-in address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );
    OriginalCloud {
        base: format!("http://{addr}"),
        shared,
        _stop: stop,
    }
}

impl OriginalCloud {
    /// The original's `CLOUD_SERVER_URL` for this stand-in: `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.base)
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.shared.db()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.db().requests.clone()
    }

    /// The requests so far with this method and path.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.db()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (at most 30 s, woken by each new request, never by a timer) until `done` holds for the
    /// requests so far, and returns them. Panics with `what` at the deadline.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut seen = self.shared.seen.subscribe();
        loop {
            seen.borrow_and_update();
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            let summary: Vec<String> = requests
                .iter()
                .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                .collect();
            match tokio::time::timeout_at(deadline, seen.changed()).await {
                Ok(Ok(())) => {}
                _ => panic!("the stand-in cloud never saw {what}; it saw {summary:?}"),
            }
        }
    }

    /// From now on, saving a file of one of these names fails (counted in `failed_files`).
    pub fn fail_files<I: IntoIterator<Item = S>, S: Into<String>>(&self, names: I) {
        self.db().failing = names.into_iter().map(Into::into).collect();
    }

    pub fn users(&self) -> Vec<CloudUser> {
        self.db().users.clone()
    }

    /// The cloud user registered with this `local_user_id`.
    pub fn user_by_local_id(&self, local_user_id: &str) -> Option<CloudUser> {
        self.db().user_by_local_id(local_user_id).cloned()
    }

    /// A stored file, by cloud user id, category and file name.
    pub fn file(&self, user_id: &str, category: &str, filename: &str) -> Option<Vec<u8>> {
        self.db()
            .files
            .get(&(user_id.into(), category.into(), filename.into()))
            .cloned()
    }

    /// Every file stored for a cloud user: (category, file name) → bytes.
    pub fn files_of(&self, user_id: &str) -> BTreeMap<(String, String), Vec<u8>> {
        self.db()
            .files
            .iter()
            .filter(|((user, _, _), _)| user == user_id)
            .map(|((_, category, name), bytes)| ((category.clone(), name.clone()), bytes.clone()))
            .collect()
    }

    /// Every image record of a cloud user.
    pub fn images_of(&self, user_id: &str) -> Vec<CloudImage> {
        self.db()
            .images
            .values()
            .filter(|i| i.user_id == user_id)
            .cloned()
            .collect()
    }

    pub fn sync_records(&self) -> Vec<SyncRecord> {
        self.db().syncs.clone()
    }
}

/// The routes of server.py this stand-in has; a `<user_id>` is any non-empty segment.
enum Route<'p> {
    Status,
    Register,
    Login,
    Sync(&'p str),
    SyncStatus(&'p str),
}

/// What a handler answers.
enum Answer {
    Json(u16, Value),
    Html(u16, &'static str),
    /// An `OPTIONS` request on a known route: Flask answers with `Allow` and no body.
    Options(&'static str),
}

const NOT_FOUND_HTML: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n\
<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL \
manually please check your spelling and try again.</p>\n";
const METHOD_NOT_ALLOWED_HTML: &str = "<!doctype html>\n<html lang=en>\n<title>405 Method Not \
Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested \
URL.</p>\n";

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: HeaderMap,
        body: &[u8],
    ) -> Response<Vec<u8>> {
        let mut db = self.db();
        let answer = db.route(method, path, &headers, body);
        let (status, reply, response) = match answer {
            Answer::Json(status, value) => {
                let response = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(flask_jsonify(&value).into_bytes());
                (status, Some(value), response)
            }
            Answer::Html(status, page) => {
                let response = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(page.as_bytes().to_vec());
                (status, None, response)
            }
            Answer::Options(allow) => {
                let response = Response::builder()
                    .status(200)
                    .header(header::ALLOW, allow)
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(Vec::new());
                (200, None, response)
            }
        };
        db.requests.push(Recorded {
            method: method.as_str().to_string(),
            path: path.to_string(),
            body_len: body.len(),
            body: serde_json::from_slice(body).ok(),
            headers,
            status,
            reply,
        });
        let count = db.requests.len();
        drop(db);
        self.seen.send_replace(count);
        response.expect("a well-formed answer")
    }
}

impl Db {
    fn user_by_local_id(&self, local_user_id: &str) -> Option<&CloudUser> {
        self.users
            .iter()
            .find(|u| u.local_user_id.as_deref() == Some(local_user_id))
    }

    /// Flask's URL map: 404 for an unknown path, 405 for a known one with another method.
    fn route(&mut self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let route = match segments.as_slice() {
            ["api", "status"] => Route::Status,
            ["api", "register"] => Route::Register,
            ["api", "login"] => Route::Login,
            ["api", "sync", "user", id] if !id.is_empty() => Route::Sync(id),
            ["api", "user", id, "sync", "status"] if !id.is_empty() => Route::SyncStatus(id),
            _ => return Answer::Html(404, NOT_FOUND_HTML),
        };
        let get = matches!(route, Route::Status | Route::SyncStatus(_));
        if method == Method::OPTIONS {
            return Answer::Options(if get {
                "GET, HEAD, OPTIONS"
            } else {
                "OPTIONS, POST"
            });
        }
        let allowed = if get {
            method == Method::GET || method == Method::HEAD
        } else {
            method == Method::POST
        };
        if !allowed {
            return Answer::Html(405, METHOD_NOT_ALLOWED_HTML);
        }
        match route {
            Route::Status => status(),
            Route::Register => self.register(headers, body),
            Route::Login => self.login(headers, body),
            Route::Sync(id) => self.sync(id, headers, body),
            Route::SyncStatus(id) => self.sync_status(id),
        }
    }

    /// `POST /api/register` (srv:458-484).
    fn register(&mut self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let data = match get_json(headers, body) {
            Ok(data) => data,
            Err(e) => return error(500, &e),
        };
        let Some(fields) = data.as_object() else {
            return error(500, &no_get(&data));
        };
        let field = |k: &str| fields.get(k).filter(|v| truthy(v)).map(py_str);
        let (Some(username), Some(email), Some(password)) =
            (field("username"), field("email"), field("password"))
        else {
            return error(400, "用户名、邮箱和密码不能为空");
        };
        let local_user_id = field("local_user_id");
        let user_id = local_user_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let taken = self
            .users
            .iter()
            .any(|u| u.username == username || u.email == email || u.user_id == user_id);
        if taken {
            return error(400, "用户名或邮箱已存在");
        }
        self.users.push(CloudUser {
            user_id: user_id.clone(),
            username,
            email,
            password_hash: sha256_hex(&password),
            local_user_id,
            total_images: 0,
            total_storage_size: 0,
        });
        Answer::Json(
            200,
            json!({"success": true, "cloud_user_id": user_id, "message": "云端注册成功"}),
        )
    }

    /// `POST /api/login` (srv:486-517): no token, no cookie.
    fn login(&mut self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let data = match get_json(headers, body) {
            Ok(data) => data,
            Err(e) => return error(500, &e),
        };
        let Some(fields) = data.as_object() else {
            return error(500, &no_get(&data));
        };
        let field = |k: &str| fields.get(k).filter(|v| truthy(v)).map(py_str);
        let (Some(username), Some(password)) = (field("username"), field("password")) else {
            return error(400, "用户名和密码不能为空");
        };
        let hash = sha256_hex(&password);
        match self
            .users
            .iter()
            .find(|u| u.username == username && u.password_hash == hash)
        {
            Some(user) => Answer::Json(
                200,
                json!({
                    "success": true,
                    "cloud_user": {
                        "user_id": user.user_id, "username": user.username,
                        "email": user.email, "local_user_id": user.local_user_id,
                    },
                    "message": "云端登录成功",
                }),
            ),
            None => error(401, "用户名或密码错误"),
        }
    }

    /// `POST /api/sync/user/<user_id>` (srv:519-697): no auth, the user found by its local id.
    fn sync(&mut self, local_id: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
        let failed = |e: String| {
            Answer::Json(
                500,
                json!({"success": false, "error": format!("同步处理失败: {e}"), "timestamp": iso_now()}),
            )
        };
        let data = match get_json(headers, body) {
            Ok(data) => data,
            Err(e) => return failed(e),
        };
        if !truthy(&data) {
            return error(400, "没有接收到同步数据");
        }
        let Some(data) = data.as_object() else {
            return failed(no_get(&Value::Array(Vec::new())));
        };
        let images_metadata = data.get("images_metadata").cloned().unwrap_or(json!([]));
        let image_files = data.get("image_files").cloned().unwrap_or(json!({}));
        let vton_history = data.get("vton_history").cloned().unwrap_or(json!([]));
        let favorites_data = data.get("favorites_data").cloned().unwrap_or(json!([]));
        let sync_timestamp = data.get("sync_timestamp").cloned().unwrap_or(Value::Null);
        let Some(cloud_user_id) = self.user_by_local_id(local_id).map(|u| u.user_id.clone()) else {
            return error(404, "用户未在云端注册，请先注册");
        };
        let (Some(images), Some(vton), Some(favorites)) = (
            images_metadata.as_array(),
            vton_history.as_array(),
            favorites_data.as_array(),
        ) else {
            return failed("'str' object is not iterable".into());
        };

        let (mut saved_files, mut failed_files, mut total_size) = (0u64, 0u64, 0u64);
        for meta in images {
            match self.save_image(&cloud_user_id, meta, &image_files) {
                Ok(size) => {
                    saved_files += 1;
                    total_size += size;
                }
                Err(()) => failed_files += 1,
            }
        }
        if let Some(user) = self.users.iter_mut().find(|u| u.user_id == cloud_user_id) {
            user.total_images = saved_files;
            user.total_storage_size = total_size;
        }
        let (mut vton_synced, mut vton_failed) = (0u64, 0u64);
        for record in vton {
            let required = ["id", "human_image", "garment_image", "result_image"];
            match record.as_object() {
                Some(r) if required.iter().all(|k| r.contains_key(*k)) => {
                    self.vton.insert(py_str(&r["id"]), cloud_user_id.clone());
                    vton_synced += 1;
                }
                _ => vton_failed += 1,
            }
        }
        let (mut favorites_synced, mut favorites_failed) = (0u64, 0u64);
        for record in favorites {
            match record.as_object() {
                // The original local server never sends `image_id`, so this always fails for it.
                Some(r) if r.contains_key("id") && r.contains_key("image_id") => {
                    let kind = r.get("favorite_type").map_or("image".into(), py_str);
                    let key = (cloud_user_id.clone(), py_str(&r["image_id"]), kind);
                    self.favorites.insert(key, record.clone());
                    favorites_synced += 1;
                }
                _ => favorites_failed += 1,
            }
        }
        let complete = failed_files == 0 && vton_failed == 0 && favorites_failed == 0;
        let status = if complete { "completed" } else { "partial" };
        let mut details = Vec::new();
        if failed_files > 0 {
            details.push(format!("{failed_files} 个文件同步失败"));
        }
        if vton_failed > 0 {
            details.push(format!("{vton_failed} 个VTON历史同步失败"));
        }
        if favorites_failed > 0 {
            details.push(format!("{favorites_failed} 个收藏记录同步失败"));
        }
        let sync_id = uuid::Uuid::new_v4().to_string();
        self.syncs.push(SyncRecord {
            sync_id: sync_id.clone(),
            user_id: cloud_user_id.clone(),
            sync_timestamp: sqlite_now(),
            images_count: saved_files,
            total_size,
            status: status.into(),
            error_message: (!details.is_empty()).then(|| details.join("; ")),
        });
        Answer::Json(
            200,
            json!({
                "success": true,
                "message": "数据同步完成",
                "sync_result": {
                    "sync_id": sync_id,
                    "cloud_user_id": cloud_user_id,
                    "total_images": images.len(),
                    "saved_files": saved_files,
                    "failed_files": failed_files,
                    "total_size": total_size,
                    "vton_synced": vton_synced,
                    "vton_failed": vton_failed,
                    "favorites_synced": favorites_synced,
                    "favorites_failed": favorites_failed,
                    "sync_timestamp": sync_timestamp,
                    "server_timestamp": iso_now(),
                    "status": status,
                },
            }),
        )
    }

    /// One entry of `images_metadata` (srv:560-605). `Ok` with its metadata `file_size` when
    /// saved, `Err` when it counts as failed.
    fn save_image(&mut self, user_id: &str, meta: &Value, files: &Value) -> Result<u64, ()> {
        let meta_fields = meta.as_object().ok_or(())?;
        let filename = meta_fields
            .get("filename")
            .filter(|v| truthy(v))
            .ok_or(())?;
        let filename = filename.as_str().ok_or(())?;
        let data_url = files.get(filename).filter(|v| truthy(v)).ok_or(())?;
        let raw_category = meta_fields.get("category").map_or("clothes".into(), py_str);
        let mut category = if raw_category == "favorites" {
            "clothes".to_string()
        } else {
            raw_category.clone()
        };
        if !["clothes", "char", "vton_results"].contains(&category.as_str()) {
            category = if filename.starts_with("char_") {
                "char"
            } else if filename.starts_with("vton_result_") {
                "vton_results"
            } else {
                "clothes"
            }
            .into();
        }
        // save_cloud_image_file: a `data:image` URL, base64 after the first comma.
        let data_url = data_url.as_str().ok_or(())?;
        if !data_url.starts_with("data:image") || self.failing.contains(filename) {
            return Err(());
        }
        let (_, payload) = data_url.split_once(',').ok_or(())?;
        let bytes = python_b64decode(payload).ok_or(())?;
        self.files
            .insert((user_id.into(), category, filename.into()), bytes);
        // save_cloud_image: INSERT OR REPLACE keyed by meta['id']; the file stays if it fails.
        let id = meta_fields.get("id").ok_or(())?;
        let size = match meta_fields.get("file_size") {
            None => 0,
            Some(v) => v.as_u64().ok_or(())?,
        };
        self.images.insert(
            py_str(id),
            CloudImage {
                id: py_str(id),
                user_id: user_id.into(),
                filename: filename.into(),
                category: raw_category,
                metadata: meta.clone(),
            },
        );
        Ok(size)
    }

    /// `GET /api/user/<user_id>/sync/status` (srv:699-763): only the newest sync record.
    fn sync_status(&self, local_id: &str) -> Answer {
        let Some(user) = self.user_by_local_id(local_id) else {
            return error(404, "用户未找到");
        };
        let cloud_user_id = user.user_id.clone();
        let mut result = json!({
            "success": true,
            "user_id": local_id,
            "cloud_user_id": cloud_user_id,
            "sync_statistics": {
                "total_images": self.images.values().filter(|i| i.user_id == cloud_user_id).count(),
                "total_vton_history": self.vton.values().filter(|u| **u == cloud_user_id).count(),
                "total_favorites": self.favorites.keys().filter(|k| k.0 == cloud_user_id).count(),
            },
        });
        if let Some(last) = self.syncs.iter().rev().find(|s| s.user_id == cloud_user_id) {
            result["last_sync"] = json!({
                "sync_id": last.sync_id,
                "sync_type": "full",
                "sync_timestamp": last.sync_timestamp,
                "images_count": last.images_count,
                "total_size": last.total_size,
                "status": last.status,
                "error_message": last.error_message,
            });
        }
        Answer::Json(200, result)
    }
}

/// `GET /api/status` (srv:448-456).
fn status() -> Answer {
    Answer::Json(
        200,
        json!({"status": "running", "service": "cloud_sync_server", "timestamp": iso_now(), "version": "1.0.0"}),
    )
}

fn error(status: u16, message: &str) -> Answer {
    Answer::Json(status, json!({"success": false, "error": message}))
}

/// Werkzeug 2.3's `request.get_json()`: the error text of its exception, which every handler of
/// server.py turns into a 500.
fn get_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let mimetype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = mimetype == "application/json"
        || (mimetype.starts_with("application/") && mimetype.ends_with("+json"));
    if !is_json {
        return Err(
            "415 Unsupported Media Type: Did not attempt to load JSON data because the \
                    request Content-Type was not 'application/json'."
                .into(),
        );
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("400 Bad Request: Failed to decode JSON object: {e}"))
}

/// Python's `str(e)` for `x.get(…)` on a JSON value that is not an object.
fn no_get(value: &Value) -> String {
    let kind = match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    };
    format!("'{kind}' object has no attribute 'get'")
}

/// Python truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A JSON value as SQLite would store it in a TEXT column: strings as they are, others as JSON.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `base64.b64decode` without `validate`: characters outside the alphabet are dropped first.
fn python_b64decode(payload: &str) -> Option<Vec<u8>> {
    let clean: String = payload
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `datetime.datetime.now().isoformat()`: local time, microseconds, no zone.
pub fn iso_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// SQLite's `CURRENT_TIMESTAMP`: UTC, whole seconds.
pub fn sqlite_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Flask's `jsonify` in debug mode: keys sorted, indented by 2, non-ASCII escaped, a final newline.
pub fn flask_jsonify(value: &Value) -> String {
    // serde_json's maps are sorted here (no `preserve_order`).
    let mut text = ascii_escape(&serde_json::to_string_pretty(value).expect("plain JSON"));
    text.push('\n');
    text
}

/// `json.dumps(…)` as python-requests sends a `json=` body: `", "` and `": "` separators, keys in
/// the order they are serialised (struct fields in declaration order), non-ASCII as `\uXXXX`.
pub fn python_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonSeparators);
    value
        .serialize(&mut serializer)
        .expect("serialisable as JSON");
    let text = String::from_utf8(out).expect("serde_json writes UTF-8");
    ascii_escape(&text).into_bytes()
}

/// Non-ASCII characters as `\uXXXX` (UTF-16, lowercase hex, as Python writes them). They can only
/// occur inside JSON strings, so the whole text can be rewritten.
fn ascii_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

struct PythonSeparators;

impl serde_json::ser::Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}
