//! The OpenAPI document (`GET /api/openapi.json`, `src/api/openapi.rs`) against the server it
//! describes:
//! - the operations it lists are exactly the routes the source declares (each `warp::path!` and
//!   the method filter that follows it), neither more nor fewer;
//! - each of them reaches a handler on the running binary (not the router's 404 or 405);
//! - it is an OpenAPI 3.1 document by the OpenAPI Initiative's own schema of one;
//! - real answers fit its schemas, checked with a JSON Schema (2020-12) validator: every seed
//!   endpoint and most additions are called, errors included, and an answer with a field the
//!   document does not name fails as surely as one missing a field it requires.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use serde_json::{Value, json};

const BASE: &str = "http://imgvault.test/openapi.json";

/// `(METHOD, /path/{}/with/{}/parameters)`: parameter names are left out, so that the source's
/// types (`UserId`, `String`) and the document's names (`{user_id}`) compare.
type Route = (String, String);

/// Every route the source declares (outside unit tests): `warp::path!(...)`, `warp::path::end()`
/// and `warp::path("x")` with a `tail()`, each followed by its method filter. A `path!` without one fails the test:
/// the convention this walk relies on would be broken, and a route could slip by.
fn source_routes() -> BTreeSet<Route> {
    let mut files = Vec::new();
    rust_files(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
        &mut files,
    );
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests start servers of their own (an image origin, say).
        let served = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let mut rest = served;
        while let Some(at) = rest.find("warp::path") {
            rest = &rest[at + "warp::path".len()..];
            let (path, after) = if let Some(args) = rest.strip_prefix("!(") {
                let end = args.find(')').expect("a closed path!");
                let segments: Vec<&str> = args[..end].split('/').map(str::trim).collect();
                let path = segments
                    .iter()
                    .map(|s| match s.strip_prefix('"') {
                        Some(literal) => literal.trim_end_matches('"').to_string(),
                        None => "{}".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                (format!("/{path}"), &args[end + 1..])
            } else if let Some(after) = rest.strip_prefix("::end()") {
                ("/".to_string(), after)
            } else if let Some(args) = rest.strip_prefix("(\"") {
                // A prefix: a route only with a tail (the files under `/assets/`).
                let end = args.find('"').unwrap();
                let after = args[end..].trim_start_matches("\")");
                match after.trim_start().strip_prefix(".and(warp::path::tail())") {
                    Some(after) => (format!("/{}/{{}}", &args[..end]), after),
                    None => continue,
                }
            } else {
                continue;
            };
            let after = after.trim_start();
            let method = ["get", "post", "put", "delete", "patch", "head"]
                .into_iter()
                .find(|m| after.starts_with(&format!(".and(warp::{m}())")))
                .unwrap_or_else(|| {
                    panic!(
                        "{}: the route {path} is not followed by its method filter \
                         (`.and(warp::get())` ...)",
                        file.display()
                    )
                });
            routes.insert((method.to_uppercase(), path));
        }
    }
    routes
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `/api/user/{user_id}/images/{filename}` → `/api/user/{}/images/{}`.
fn unnamed(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn operations(doc: &Value) -> BTreeMap<Route, String> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), unnamed(path)), path.clone());
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path}: no operationId"
                );
            }
        }
    }
    ops
}

async fn document(app: &TestApp) -> Value {
    let (status, doc) = app.get_json(&new_client(), "/api/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_source_declares() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<Route> = operations(&doc).into_keys().collect();
    let declared = source_routes();
    assert!(declared.len() > 40, "the source walk found {declared:?}");
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let unanswered: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty() && unanswered.is_empty(),
        "routes missing from the document: {undocumented:?}\n\
         operations no route declares: {unanswered:?}"
    );

    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            assert!(
                op["responses"]["default"]["content"]["application/json"].is_object(),
                "{id}: no error answer"
            );
            assert!(op["security"].is_array(), "{id}: no security requirement");
        }
    }
    // Every reference leads somewhere (a schema named in an answer but never registered would not).
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in refs {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} leads nowhere");
    }
    // The session cookie is this server's own name.
    let cookie = doc["components"]["securitySchemes"]["session"]["name"]
        .as_str()
        .unwrap();
    assert!(cookie.starts_with("imgvault_"), "{cookie}");
}

/// Validates `doc` against the OpenAPI Initiative's schema of 3.1 documents (vendored in
/// `tests/fixtures/openapi`); the schemas inside it are checked as JSON Schema when they compile.
fn check_openapi_31(doc: &Value) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi/oas-3.1-schema-2022-10-07.json");
    let meta: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let id = meta["$id"].as_str().unwrap().to_string();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource(&id, meta).unwrap();
    let mut schemas = boon::Schemas::new();
    let index = compiler.compile(&id, &mut schemas).unwrap();
    schemas.validate(doc, index).map_err(|e| format!("{e:#}"))
}

#[tokio::test]
async fn the_document_is_valid_openapi_31() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    if let Err(e) = check_openapi_31(&doc) {
        panic!("/api/openapi.json is not a valid OpenAPI 3.1 document: {e}");
    }
    // The check can fail, down to one operation: a numeric operationId, a document without its
    // `info`, and a 3.0 version string are each refused.
    let mut broken = doc.clone();
    let (_, item) = broken["paths"]
        .as_object_mut()
        .unwrap()
        .iter_mut()
        .next()
        .unwrap();
    let (_, op) = item.as_object_mut().unwrap().iter_mut().next().unwrap();
    op["operationId"] = json!(7);
    assert!(
        check_openapi_31(&broken).is_err(),
        "a numeric operationId passed"
    );
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    assert!(check_openapi_31(&broken).is_err(), "no info passed");
    let mut broken = doc;
    broken["openapi"] = json!("3.0.3");
    assert!(check_openapi_31(&broken).is_err(), "version 3.0.3 passed");
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                out.insert(r.to_string());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// What the router answers for a path or method it does not know.
fn no_route(status: u16, body: &str) -> bool {
    status == 405 || (status == 404 && body.contains("接口不存在"))
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let (client, user_id) = app.user_client("reach").await;
    let (status, upload) = app
        .receive_image(&client, "image/png", &png(8, 8, 1), "clothes")
        .await;
    assert_eq!(status, 200, "{upload}");
    let values = BTreeMap::from([
        ("user_id", user_id.clone()),
        ("image_id", upload["imageId"].as_str().unwrap().to_string()),
        ("filename", upload["filename"].as_str().unwrap().to_string()),
        ("task_id", upload["taskId"].as_str().unwrap().to_string()),
        ("category", "clothes".to_string()),
        ("key_id", "k-unknown".to_string()),
        ("path", "app.js".to_string()),
    ]);
    // Without a cookie: nothing changes, and every handler still answers (most with a 401).
    let anonymous = reqwest::Client::new();
    for ((method, _), template) in operations(&doc) {
        let path = template
            .split('/')
            .map(|s| match s.strip_prefix('{') {
                Some(name) => values[name.trim_end_matches('}')].clone(),
                None => s.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let request = anonymous.request(method.parse().unwrap(), app.url(&path));
        let request = match method.as_str() {
            "GET" | "DELETE" => request,
            _ => request.json(&json!({})),
        };
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(
            !no_route(status, &body),
            "{method} {path} ({template}): {status} {body}"
        );
    }
    // And the check itself can fail: the router's own answers are told apart.
    let resp = anonymous
        .get(app.url("/api/user/nothing-here"))
        .send()
        .await
        .unwrap();
    assert!(no_route(
        resp.status().as_u16(),
        &resp.text().await.unwrap()
    ));
    let resp = anonymous.put(app.url("/api/status")).send().await.unwrap();
    assert!(no_route(
        resp.status().as_u16(),
        &resp.text().await.unwrap()
    ));
}

/// The document's schemas, compiled for validating answers.
struct Validator {
    doc: Value,
    schemas: boon::Schemas,
    compiler: boon::Compiler,
    /// Operations (`METHOD template`) whose answers were checked, with their statuses.
    checked: BTreeSet<String>,
}

impl Validator {
    /// The document made strict for the test: an object schema that no `allOf` composes admits
    /// no property it does not name (`unevaluatedProperties`, which sees through `allOf`), so an
    /// answer with an undocumented field fails.
    fn new(mut doc: Value) -> Self {
        let mut composed = BTreeSet::new();
        collect_composed(&doc["components"], false, &mut composed);
        for (name, schema) in doc["components"]["schemas"].as_object_mut().unwrap() {
            let object = schema.get("properties").is_some() || schema.get("allOf").is_some();
            if object && !composed.contains(name) && schema.get("additionalProperties").is_none() {
                schema["unevaluatedProperties"] = json!(false);
            }
        }
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(BASE, doc.clone()).unwrap();
        Self {
            doc,
            schemas: boon::Schemas::new(),
            compiler,
            checked: BTreeSet::new(),
        }
    }

    /// Checks an answer against the operation's response for its status (or `default`).
    fn check(&mut self, method: &str, template: &str, status: u16, body: &Value) {
        let method = method.to_lowercase();
        let responses = &self.doc["paths"][template][&method]["responses"];
        assert!(
            responses.is_object(),
            "{method} {template} is not in the document"
        );
        let key = if responses.get(status.to_string()).is_some() {
            status.to_string()
        } else {
            "default".to_string()
        };
        assert!(
            responses.get(&key).is_some(),
            "{method} {template}: {status} is not documented"
        );
        assert!(
            responses[&key]["content"]["application/json"]["schema"].is_object(),
            "{method} {template}: {status} answers JSON, the document says otherwise"
        );
        let pointer = format!(
            "{BASE}#/paths/{}/{method}/responses/{key}/content/application~1json/schema",
            template.replace('~', "~0").replace('/', "~1")
        );
        let index = self.compiler.compile(&pointer, &mut self.schemas).unwrap();
        if let Err(e) = self.schemas.validate(body, index) {
            panic!(
                "{method} {template} {status}: the answer does not fit the document: {e:#}\n{body:#}"
            );
        }
        self.checked
            .insert(format!("{} {template}", method.to_uppercase()));
    }
}

/// The names of schemas that an `allOf` refers to (directly or below one).
fn collect_composed(value: &Value, inside: bool, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if inside {
                if let Some(name) = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.insert(name.to_string());
                }
            }
            for (key, v) in map {
                collect_composed(v, inside || key == "allOf", out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_composed(v, inside, out)),
        _ => {}
    }
}

/// Sends a request and checks its JSON answer against the document.
async fn call(
    v: &mut Validator,
    request: reqwest::RequestBuilder,
    method: &str,
    template: &str,
) -> (u16, Value) {
    let resp = request.send().await.unwrap();
    let (status, body) = status_and_json(resp).await;
    v.check(method, template, status, &body);
    (status, body)
}

#[tokio::test]
async fn real_answers_fit_the_documents_schemas() {
    let app = spawn_app().await;
    let mut v = Validator::new(document(&app).await);
    let url = |p: &str| app.url(p);
    let anonymous = new_client();
    let client = new_client();

    // The seed's endpoints, in the order a client meets them.
    call(
        &mut v,
        anonymous.get(url("/api/status")),
        "GET",
        "/api/status",
    )
    .await;
    let body = json!({"username": "val", "email": "val@example.com", "password": "password123"});
    let (_, registered) = call(
        &mut v,
        client.post(url("/api/register")).json(&body),
        "POST",
        "/api/register",
    )
    .await;
    let user_id = registered["user_id"].as_str().unwrap().to_string();
    let (status, _) = call(
        &mut v,
        client.post(url("/api/register")).json(&body),
        "POST",
        "/api/register",
    )
    .await;
    assert_eq!(status, 400);
    call(
        &mut v,
        anonymous.get(url("/api/auth/check")),
        "GET",
        "/api/auth/check",
    )
    .await;
    let login = json!({"username": "val", "password": "password123", "remember_me": true});
    let (status, _) = call(
        &mut v,
        client
            .post(url("/api/login"))
            .json(&json!({"username": "val", "password": "wrong"})),
        "POST",
        "/api/login",
    )
    .await;
    assert_eq!(status, 401);
    call(
        &mut v,
        client.post(url("/api/login")).json(&login),
        "POST",
        "/api/login",
    )
    .await;
    call(
        &mut v,
        client.get(url("/api/auth/check")),
        "GET",
        "/api/auth/check",
    )
    .await;
    call(
        &mut v,
        client.get(url("/api/user/profile")),
        "GET",
        "/api/user/profile",
    )
    .await;
    let (status, _) = call(
        &mut v,
        anonymous.get(url("/api/user/profile")),
        "GET",
        "/api/user/profile",
    )
    .await;
    assert_eq!(status, 401);

    let page = json!({"url": "https://shop.example/dress", "title": "A dress", "imageContext": {"alt": "red"}});
    let capture = json!({"imageData": data_url("image/png", &png(16, 16, 1)), "originalUrl": "https://cdn.example/d.png", "category": "clothes", "pageInfo": page, "tags": ["red"]});
    let (status, saved) = call(
        &mut v,
        client.post(url("/api/receive-image")).json(&capture),
        "POST",
        "/api/receive-image",
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    let image_id = saved["imageId"].as_str().unwrap().to_string();
    let filename = saved["filename"].as_str().unwrap().to_string();
    let (status, _) = call(
        &mut v,
        client.post(url("/api/receive-image")).json(&json!({})),
        "POST",
        "/api/receive-image",
    )
    .await;
    assert_eq!(status, 400);
    let clip = json!({"imageData": data_url("image/jpeg", &jpeg(16, 16, 2)), "category": "char"});
    let (_, clipped) = call(
        &mut v,
        client.post(url("/api/upload-clipboard")).json(&clip),
        "POST",
        "/api/upload-clipboard",
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .part("file", file_part(png(16, 16, 3), "a.png", "image/png"))
        .text("category", "clothes");
    let (status, _) = call(
        &mut v,
        client.post(url("/api/upload-file")).multipart(form),
        "POST",
        "/api/upload-file",
    )
    .await;
    assert_eq!(status, 200);
    let task = clipped["taskId"].as_str().unwrap();
    app.wait_task(task).await;
    call(
        &mut v,
        client.get(url(&format!("/api/task/{task}"))),
        "GET",
        "/api/task/{task_id}",
    )
    .await;
    let (status, _) = call(
        &mut v,
        client.get(url("/api/task/t-none")),
        "GET",
        "/api/task/{task_id}",
    )
    .await;
    assert_eq!(status, 404);
    for query in [
        "",
        "?q=dress&tag=red",
        "?category=char&page=2",
        "?distinct=1",
        "?from=2020-13-01",
    ] {
        call(
            &mut v,
            client.get(url(&format!("/api/user/images{query}"))),
            "GET",
            "/api/user/images",
        )
        .await;
    }
    call(
        &mut v,
        client.get(url("/api/user/file-paths")),
        "GET",
        "/api/user/file-paths",
    )
    .await;
    for query in ["", "?include_files=false&category=char"] {
        let path = format!("/api/user/{user_id}/file-paths{query}");
        call(
            &mut v,
            client.get(url(&path)),
            "GET",
            "/api/user/{user_id}/file-paths",
        )
        .await;
    }
    let (status, _) = call(
        &mut v,
        client.get(url("/api/user/someone/file-paths")),
        "GET",
        "/api/user/{user_id}/file-paths",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &mut v,
        client.get(url(&format!("/api/user/{user_id}/images/nothing.png"))),
        "GET",
        "/api/user/{user_id}/images/{filename}",
    )
    .await;
    assert_eq!(status, 404);
    let file = client
        .get(url(&format!("/api/user/{user_id}/images/{filename}")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(
        file.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/")
    );
    let (status, _) = call(
        &mut v,
        client.post(url("/api/cloud/sync")),
        "POST",
        "/api/cloud/sync",
    )
    .await;
    assert_eq!(status, 400, "no hub configured");

    // What imgvault adds.
    let image = |rest: &str| format!("/api/user/images/{image_id}{rest}");
    call(
        &mut v,
        client
            .put(url(&image("/tags")))
            .json(&json!({"tags": ["red", "summer"]})),
        "PUT",
        "/api/user/images/{image_id}/tags",
    )
    .await;
    call(
        &mut v,
        client.get(url("/api/user/tags?prefix=s")),
        "GET",
        "/api/user/tags",
    )
    .await;
    call(
        &mut v,
        client
            .post(url(&image("/edit")))
            .json(&json!({"rotate": 90})),
        "POST",
        "/api/user/images/{image_id}/edit",
    )
    .await;
    call(
        &mut v,
        client.post(url(&image("/revert"))),
        "POST",
        "/api/user/images/{image_id}/revert",
    )
    .await;
    let (status, _) = call(
        &mut v,
        client.post(url(&image("/revert"))),
        "POST",
        "/api/user/images/{image_id}/revert",
    )
    .await;
    assert_eq!(status, 400);
    call(
        &mut v,
        client.get(url(&image("/sources"))),
        "GET",
        "/api/user/images/{image_id}/sources",
    )
    .await;
    call(
        &mut v,
        client.get(url(&image("/similar"))),
        "GET",
        "/api/user/images/{image_id}/similar",
    )
    .await;
    call(
        &mut v,
        client.get(url("/api/user/duplicates")),
        "GET",
        "/api/user/duplicates",
    )
    .await;
    let lookup = json!({"sha256": ["00".repeat(32)], "urls": ["https://cdn.example/d.png"]});
    call(
        &mut v,
        client.post(url("/api/images/lookup")).json(&lookup),
        "POST",
        "/api/images/lookup",
    )
    .await;
    let batch = json!({"ids": [image_id, "i-none"], "action": "add_tags", "tags": ["blue"]});
    call(
        &mut v,
        client.post(url("/api/user/images/batch")).json(&batch),
        "POST",
        "/api/user/images/batch",
    )
    .await;
    call(
        &mut v,
        client.delete(url(&image(""))),
        "DELETE",
        "/api/user/images/{image_id}",
    )
    .await;
    call(
        &mut v,
        client.get(url("/api/user/trash")),
        "GET",
        "/api/user/trash",
    )
    .await;
    call(
        &mut v,
        client.post(url("/api/user/trash/empty")),
        "POST",
        "/api/user/trash/empty",
    )
    .await;

    let (_, created) = call(
        &mut v,
        client
            .post(url("/api/keys"))
            .json(&json!({"name": "script", "scope": "read"})),
        "POST",
        "/api/keys",
    )
    .await;
    call(&mut v, client.get(url("/api/keys")), "GET", "/api/keys").await;
    let (_, code) = call(
        &mut v,
        client.post(url("/api/keys/pairing-code")),
        "POST",
        "/api/keys/pairing-code",
    )
    .await;
    call(
        &mut v,
        anonymous
            .post(url("/api/keys/pair"))
            .json(&json!({"code": code["code"]})),
        "POST",
        "/api/keys/pair",
    )
    .await;
    let key = created["id"].as_str().unwrap();
    call(
        &mut v,
        client.delete(url(&format!("/api/keys/{key}"))),
        "DELETE",
        "/api/keys/{key_id}",
    )
    .await;

    let manifest = json!({"images": [{"id": "i-x", "blake3": "00".repeat(32)}]});
    let path = format!("/api/sync/user/{user_id}/manifest");
    call(
        &mut v,
        client.post(url(&path)).json(&manifest),
        "POST",
        "/api/sync/user/{user_id}/manifest",
    )
    .await;
    let batch = json!({"images_metadata": [], "image_files": {}});
    let path = format!("/api/sync/user/{user_id}");
    call(
        &mut v,
        client.post(url(&path)).json(&batch),
        "POST",
        "/api/sync/user/{user_id}",
    )
    .await;
    let path = format!("/api/user/{user_id}/sync/status");
    call(
        &mut v,
        client.get(url(&path)),
        "GET",
        "/api/user/{user_id}/sync/status",
    )
    .await;
    let (status, _) = call(
        &mut v,
        client.get(url("/api/admin/backup")),
        "GET",
        "/api/admin/backup",
    )
    .await;
    assert_eq!(status, 403);
    let stats = "/api/user/stats";
    call(
        &mut v,
        client.get(url("/api/user/stats?days=7")),
        "GET",
        stats,
    )
    .await;
    let server = url("/api/user/stats?scope=server");
    let (status, _) = call(&mut v, client.get(&server), "GET", stats).await;
    assert_eq!(status, 403);
    let admin = new_client();
    app.login(&admin, "admin", ADMIN_PASSWORD).await;
    let (status, _) = call(&mut v, admin.get(&server), "GET", stats).await;
    assert_eq!(status, 200);
    call(
        &mut v,
        client.post(url("/api/logout")),
        "POST",
        "/api/logout",
    )
    .await;

    // Every seed endpoint that answers JSON was checked.
    for seed in [
        "GET /api/status",
        "POST /api/register",
        "POST /api/login",
        "GET /api/auth/check",
        "POST /api/logout",
        "GET /api/user/profile",
        "POST /api/receive-image",
        "POST /api/upload-clipboard",
        "POST /api/upload-file",
        "GET /api/task/{task_id}",
        "GET /api/user/images",
        "GET /api/user/file-paths",
        "GET /api/user/{user_id}/file-paths",
        "POST /api/cloud/sync",
    ] {
        assert!(v.checked.contains(seed), "{seed} was not checked");
    }
}

#[tokio::test]
async fn an_answer_with_an_undocumented_field_or_a_wrong_type_fails_the_check() {
    let app = spawn_app().await;
    let mut v = Validator::new(document(&app).await);
    let (_, status) = app.get_json(&app.client, "/api/status").await;
    v.check("GET", "/api/status", 200, &status);
    let mut extra = status.clone();
    extra["surprise"] = json!(1);
    let mut wrong = status.clone();
    wrong["total_images"] = json!("many");
    let mut missing = status.clone();
    missing.as_object_mut().unwrap().remove("timestamp");
    for (what, body) in [("extra", extra), ("wrong", wrong), ("missing", missing)] {
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.check("GET", "/api/status", 200, &body)
        }));
        assert!(failed.is_err(), "{what}: {body}");
    }
}

#[tokio::test]
async fn the_api_page_is_served_without_any_other_host() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("/assets/apidoc.js"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
}
