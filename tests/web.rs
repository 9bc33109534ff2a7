//! The embedded web UI and extension over HTTP (`src/web/`, `assets/`): the root page and its
//! strict CSP, types, versioned links, caching (of the page's links and of the modules they
//! import), gzip, 304, and an `/extension.zip` that a real unzip tool accepts with every extension
//! file intact. The UI in a browser is `browser.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use common::*;

fn assets() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets"))
}

/// The `/assets/...` links in the page, as served (with their `?v=` version).
fn linked_assets(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/assets/"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_page_links_versioned_assets_served_with_their_types_and_long_caching() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = resp.text().await.unwrap();
    let links = linked_assets(&html);
    assert!(
        links.iter().any(|l| l.starts_with("/assets/app.js?v=")),
        "{links:?}"
    );
    assert!(
        links.iter().any(|l| l.starts_with("/assets/app.css?v=")),
        "{links:?}"
    );
    for link in links {
        let resp = app.client.get(app.url(&link)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{link}");
        let name = link
            .trim_start_matches("/assets/")
            .split('?')
            .next()
            .unwrap();
        let expected_type = match name.rsplit('.').next().unwrap() {
            "js" => "text/javascript",
            "css" => "text/css",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            other => panic!("unexpected linked asset type {other}"),
        };
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(expected_type), "{link}: {ct}");
        assert_eq!(
            resp.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{link}"
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            body.as_ref(),
            std::fs::read(assets().join(name)).unwrap().as_slice(),
            "{link} differs from assets/{name}"
        );
    }
}

#[tokio::test]
async fn text_assets_are_gzipped_when_accepted_and_revalidate_with_304() {
    let app = spawn_app().await;
    let plain = app
        .client
        .get(app.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "no-cache");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let original = plain.bytes().await.unwrap();

    let packed = app
        .client
        .get(app.url("/assets/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    assert_eq!(packed.headers()["vary"], "accept-encoding");
    let packed = packed.bytes().await.unwrap();
    assert!(packed.len() < original.len());
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(packed.as_ref())
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, original.as_ref());

    let again = app
        .client
        .get(app.url("/assets/app.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
}

/// The relative specifiers a module imports from (`from './x.js'`, `import './x.js'`).
fn relative_imports(js: &str) -> Vec<String> {
    let mut out = Vec::new();
    for keyword in ["from ", "import "] {
        for quote in ['\'', '"'] {
            let opening = format!("{keyword}{quote}");
            for (at, _) in js.match_indices(&opening) {
                let rest = &js[at + opening.len()..];
                let spec = &rest[..rest.find(quote).unwrap_or(0)];
                if spec.starts_with("./") || spec.starts_with("../") {
                    out.push(spec.to_string());
                }
            }
        }
    }
    out
}

/// A cycle in a module graph (module path → the paths it imports), as `a → b → a`, if there is one.
fn import_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" → "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The page links only the entry module; the modules it imports (by unversioned relative URLs) are
/// JavaScript and revalidated on every load, so a new entry never runs with stale cached modules.
/// They import each other in one direction only: the import graph has no cycle.
#[tokio::test]
async fn the_ui_modules_are_javascript_and_always_revalidated() {
    let app = spawn_app().await;
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let entry = linked_assets(&html)
        .into_iter()
        .find(|l| l.starts_with("/assets/app.js?v="))
        .expect("the page links app.js");
    assert!(
        html.contains(&format!(r#"<script type="module" src="{entry}">"#)),
        "app.js is not loaded as a module: {html}"
    );
    let entry_url = reqwest::Url::parse(&app.url(&entry)).unwrap();
    let entry_js = app
        .client
        .get(entry_url.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let mut queue: Vec<reqwest::Url> = relative_imports(&entry_js)
        .iter()
        .map(|spec| entry_url.join(spec).unwrap())
        .collect();
    let mut graph = BTreeMap::new();
    graph.insert(
        entry_url.path().to_string(),
        queue.iter().map(|u| u.path().to_string()).collect(),
    );
    let mut reached = BTreeSet::new();
    while let Some(url) = queue.pop() {
        if !reached.insert(url.path().to_string()) {
            continue;
        }
        let path = url.path().to_string();
        assert_eq!(url.query(), None, "{url}: imports are not versioned");
        let resp = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/javascript"), "{path}: {ct}");
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{path}");
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let body = resp.text().await.unwrap();
        let name = path.trim_start_matches("/assets/");
        assert_eq!(
            body.as_bytes(),
            std::fs::read(assets().join(name)).unwrap().as_slice(),
            "{path} differs from assets/{name}"
        );
        let again = app
            .client
            .get(url.clone())
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        let imports: Vec<reqwest::Url> = relative_imports(&body)
            .iter()
            .map(|s| url.join(s).unwrap())
            .collect();
        graph.insert(path, imports.iter().map(|u| u.path().to_string()).collect());
        queue.extend(imports);
    }
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(assets().join("js")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") {
            modules.insert(format!("/assets/js/{name}"));
        }
    }
    assert_eq!(reached, modules, "modules reached from app.js vs assets/js");
    if let Some(cycle) = import_cycle(&graph) {
        panic!("the UI's modules import each other in a cycle: {cycle}");
    }

    // Only the current hash is cached for good: a stale `v=` is revalidated like no `v=` at all.
    let stale = app
        .client
        .get(app.url("/assets/app.js?v=0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.headers()["cache-control"], "no-cache");
}

#[tokio::test]
async fn unknown_assets_and_escapes_are_json_404s() {
    let app = spawn_app().await;
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/extension/manifest.json",
    ] {
        let (status, body) = app.get_json(&app.client, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "接口不存在", "{path}");
    }
}

/// Every file of `assets/extension`, relative to it.
fn extension_files(dir: &Path, base: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            extension_files(&path, base, out);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

#[tokio::test]
async fn the_extension_downloads_as_a_zip_that_unzip_tools_accept() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/extension.zip"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("imgvault-extension.zip")
    );
    let zip = resp.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("ext.zip");
    std::fs::write(&zip_path, &zip).unwrap();
    let out = dir.path().join("unpacked");
    // Python's zipfile checks every CRC while extracting.
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); bad = z.testzip(); assert bad is None, bad; z.extractall(sys.argv[2])"])
        .arg(&zip_path)
        .arg(&out)
        .status()
        .expect("python3");
    assert!(status.success(), "python's zipfile refused the archive");
    let base = assets().join("extension");
    let mut expected = Vec::new();
    extension_files(&base, &base, &mut expected);
    assert!(
        expected.iter().any(|(name, _)| name == "manifest.json"),
        "assets/extension has no manifest.json"
    );
    for (name, bytes) in expected {
        let got = std::fs::read(out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, bytes, "{name} differs in the zip");
    }
}

#[tokio::test]
async fn the_root_serves_an_embedded_page_with_a_strict_csp() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(resp.text().await.unwrap().contains("imgvault"));
}
