//! The web UI and the browser extension in a real headless Chromium (Debian's `chromium`), driven
//! by playwright-core from the scripts in `tests/browser/`. Each test starts the real binary on
//! `127.0.0.1:0` with a fresh data file and runs one script against it; the script's assertions
//! decide, its exit status is the verdict. Screenshots land in `target/browser-artifacts/`.
//!
//! Needs `chromium` and Node.js; `npm ci` in `tests/browser` is run here when its `node_modules`
//! is missing. A missing browser fails the test with the command that installs it: these tests are
//! never skipped silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;

/// One browser at a time: two Chromiums on a 2-core machine make both flaky and neither faster.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium not found at {}: install it with `apt-get install chromium` (`.ci/run` does), \
         or point CHROMIUM at one",
        path.display()
    );
    path
}

/// Installs the driver from the lock file if it is not there yet.
fn ensure_node_modules() {
    let dir = root().join("tests/browser");
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm not found: install Node.js and npm");
    assert!(status.success(), "npm ci in tests/browser failed");
}

/// The vault a script runs against, which the script may stop and start again (see `control`).
enum Vault {
    Up(TestApp),
    Down(tempfile::TempDir),
    /// While it stops or starts (and after a stop that failed).
    Changing,
}

/// Lets a script stop the server and start it again on the same data file, as a user would:
/// `POST /stop` sends SIGTERM and answers once the process has exited cleanly; `POST /start`
/// starts the binary again with the same arguments and answers its new base URL. The script finds
/// this at `IMGVAULT_CONTROL`.
async fn control(vault: Arc<tokio::sync::Mutex<Vault>>, args: Vec<String>) -> String {
    use warp::Filter;
    use warp::http::StatusCode;
    use warp::reply::{Reply, with_status};

    let route = warp::post()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .then(move |action: String| {
            let (vault, args) = (vault.clone(), args.clone());
            async move {
                let mut vault = vault.lock().await;
                match (
                    action.as_str(),
                    std::mem::replace(&mut *vault, Vault::Changing),
                ) {
                    ("stop", Vault::Up(app)) => {
                        match tokio::task::spawn_blocking(move || app.stop()).await {
                            Ok(dir) => {
                                *vault = Vault::Down(dir);
                                "stopped".to_string().into_response()
                            }
                            Err(e) => with_status(
                                format!("stop failed: {e}"),
                                StatusCode::INTERNAL_SERVER_ERROR,
                            )
                            .into_response(),
                        }
                    }
                    ("start", Vault::Down(dir)) => {
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        let app = spawn_app_in(dir, &args).await;
                        let base = app.base.clone();
                        *vault = Vault::Up(app);
                        base.into_response()
                    }
                    (_, other) => {
                        *vault = other;
                        with_status(format!("cannot {action} now"), StatusCode::CONFLICT)
                            .into_response()
                    }
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    url
}

async fn run_script(script: &str, server_args: &[&str]) {
    let _one_at_a_time = BROWSER.lock().await;
    let chromium = chromium();
    ensure_node_modules();
    let app = spawn_app_with(server_args).await;
    let base = app.base.clone();
    let vault = Arc::new(tokio::sync::Mutex::new(Vault::Up(app)));
    let control = control(
        vault.clone(),
        server_args.iter().map(|a| a.to_string()).collect(),
    )
    .await;
    let artifacts = root().join("target/browser-artifacts");
    let mut node = Command::new("node");
    node.arg(root().join("tests/browser").join(script))
        .current_dir(root())
        .env("IMGVAULT_URL", &base)
        .env("IMGVAULT_CONTROL", &control)
        .env("IMGVAULT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", &chromium);
    // The scripts end themselves after two minutes (`deadline` in chromium.mjs).
    let output = tokio::task::spawn_blocking(move || node.output())
        .await
        .unwrap()
        .expect("node not found: install Node.js");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    match &mut *vault.lock().await {
        Vault::Up(app) => assert!(app.is_alive(), "the server died during {script}"),
        Vault::Down(_) | Vault::Changing => panic!("{script} left the server stopped"),
    }
}

/// The script left these screenshots behind, as PNGs.
fn assert_screenshots(shots: &[&str]) {
    for shot in shots {
        let path = root().join("target/browser-artifacts").join(shot);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{shot} is not a PNG");
    }
}

#[tokio::test]
async fn web_ui_end_to_end_in_chromium() {
    run_script("e2e.mjs", &[]).await;
    assert_screenshots(&["gallery-desktop.png", "gallery-phone.png"]);
}

#[tokio::test]
async fn web_ui_organizes_images_in_chromium() {
    run_script("organize.mjs", &[]).await;
    assert_screenshots(&[
        "batch-phone.png",
        "batch-phone-dark.png",
        "trash-desktop.png",
        "edit-crop-desktop.png",
        "viewer-phone-dark.png",
    ]);
}

#[tokio::test]
async fn web_ui_shows_similar_images_and_trashes_duplicates_in_chromium() {
    run_script("duplicates.mjs", &[]).await;
    assert_screenshots(&[
        "similar-desktop.png",
        "duplicates-desktop.png",
        "duplicates-phone.png",
        "duplicates-phone-dark.png",
    ]);
}

/// Needs `GET /api/user/stats`.
#[tokio::test]
async fn web_ui_draws_the_stats_page_on_a_phone_and_in_the_dark_in_chromium() {
    run_script("stats.mjs", &[]).await;
    assert_screenshots(&[
        "stats-desktop.png",
        "stats-phone.png",
        "stats-phone-dark.png",
        "stats-server-phone-dark.png",
    ]);
}

/// Needs the list's search parameters (`q`, `from`, `to`, `sort`) and its `facets`.
#[tokio::test]
async fn web_ui_searches_as_you_type_and_keeps_the_search_in_the_address_in_chromium() {
    run_script("search.mjs", &[]).await;
    assert_screenshots(&["search-phone.png"]);
}

/// Needs `distinct=1` on the list and `/api/user/images/{id}/sources`.
#[tokio::test]
async fn web_ui_collapses_identical_captures_and_lists_where_an_image_was_seen_in_chromium() {
    run_script("provenance.mjs", &[]).await;
    assert_screenshots(&["capture-gallery-desktop.png", "capture-sources-desktop.png"]);
}

#[tokio::test]
async fn api_page_lists_every_operation_of_the_openapi_document_in_chromium() {
    run_script("apidoc.mjs", &[]).await;
    assert_screenshots(&["apidoc-desktop.png", "apidoc-phone-dark.png"]);
}

#[tokio::test]
async fn web_ui_shows_hostile_metadata_as_text() {
    run_script("xss.mjs", &[]).await;
}

#[tokio::test]
async fn extension_saves_an_image_with_its_page_info() {
    run_script("extension.mjs", &[]).await;
}

/// Needs API keys and pairing codes: the extension in a fresh profile pairs, captures into the
/// paired user's vault, and stops at once when the key is revoked in the web UI.
#[tokio::test]
async fn extension_pairs_with_a_code_and_captures_with_its_key() {
    run_script("capture.mjs", &[]).await;
    assert_screenshots(&[
        "keys-dialog-desktop.png",
        "keys-dialog-phone.png",
        "extension-paired.png",
    ]);
}

/// Needs `POST /api/images/lookup`, `receive-image` by `sha256` and `Idempotency-Key`: a second
/// capture of the same image sends no bytes; captures made while the vault is away wait in the
/// extension across a browser restart and are stored once each, a lost answer notwithstanding.
#[tokio::test]
async fn extension_queues_captures_offline_and_sends_no_bytes_the_vault_has() {
    run_script("queue.mjs", &[]).await;
}
