//! `imgvault backup OUT`: a consistent snapshot of a stopped server's data file, or one made by a
//! running server and downloaded from it. Either way OUT appears only complete and verified.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header;
use serde::{Deserialize, Serialize};

use super::progress::{Progress, Unit};
use super::{OpsError, Outcome, human_bytes, read_password};
use crate::atomic_file;
use crate::backups::file_name_now;
use crate::cli::BackupArgs;
use crate::store::backup::{self, FileSummary};

pub fn run(args: BackupArgs) -> Result<Outcome, OpsError> {
    let out = if args.out.is_dir() {
        args.out.join(file_name_now())
    } else {
        args.out.clone()
    };
    let summary = match &args.server {
        Some(server) => download(server, &out)?,
        None => from_file(&args.data.data, &out)?,
    };
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    println!(
        "backup written to {}: {} users, {} images, {} blobs, {} (schema {})",
        out.display(),
        summary.users,
        summary.images,
        summary.blobs,
        human_bytes(size),
        summary.schema_version
    );
    Ok(Outcome::Done)
}

/// A snapshot read straight from the data file, which no server may hold.
fn from_file(data: &Path, out: &Path) -> Result<FileSummary, OpsError> {
    if !data.is_file() {
        return Err(OpsError::NoDataFile(data.to_path_buf()));
    }
    if same_file(data, out) {
        return Err(OpsError::Refused(format!(
            "{} is the data file itself; choose another place for the backup",
            out.display()
        )));
    }
    let total = std::fs::metadata(data).map(|m| m.len()).ok();
    let mut progress = Progress::new("backing up", total, Unit::Bytes);
    let hint = ", or let it make the backup: imgvault backup OUT --server http://HOST:PORT";
    backup::snapshot_file(data, out, &mut |bytes| progress.set(bytes))
        .map_err(OpsError::store(data, hint))?;
    progress.finish();
    backup::inspect(out).map_err(OpsError::store(out, ""))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[derive(Serialize)]
struct Login<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
}

/// Logs in to the server at `server` and downloads the snapshot it makes into `out`.
fn download(server: &str, out: &Path) -> Result<FileSummary, OpsError> {
    let base = base_url(server)?;
    let user = std::env::var("IMGVAULT_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "admin".into());
    let password = match std::env::var("IMGVAULT_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => read_password(&format!("password of {user} on {base}: "), false)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OpsError::io("starting the async runtime"))?;
    runtime.block_on(fetch_backup(&base, &user, &password, out))
}

/// `http://host:8080`, `http://host:8080/` and `http://host:8080/api` all name the same server.
fn base_url(server: &str) -> Result<String, OpsError> {
    let url = url::Url::parse(server.trim()).map_err(|e| {
        OpsError::Refused(format!(
            "{server:?} is not a server URL like http://nas.lan:8080 ({e})"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OpsError::Refused(format!(
            "{server:?} is not an http:// or https:// URL"
        )));
    }
    let text = url.as_str().trim_end_matches('/');
    Ok(text.strip_suffix("/api").unwrap_or(text).to_string())
}

fn http_error(what: &str) -> impl FnOnce(reqwest::Error) -> OpsError + '_ {
    move |e| OpsError::Refused(format!("{what}: {e}"))
}

/// The error text of a JSON error answer, or the status.
async fn refusal(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error: Some(e) }) => format!("{e} ({status})"),
        _ => status.to_string(),
    }
}

async fn fetch_backup(
    base: &str,
    user: &str,
    password: &str,
    out: &Path,
) -> Result<FileSummary, OpsError> {
    // No overall time limit: the server sends nothing until its snapshot is complete, which takes
    // a while for a large file on a small machine.
    let client = crate::fetch::client_builder()
        .connect_timeout(Duration::from_secs(15))
        .build()
        .map_err(http_error("building the HTTP client"))?;
    let body = serde_json::to_vec(&Login {
        username: user,
        password,
    })
    .expect("a login serialises");
    let resp = client
        .post(format!("{base}/api/login"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(http_error(&format!("cannot reach {base}")))?;
    if !resp.status().is_success() {
        return Err(OpsError::Refused(format!(
            "login as {user} on {base} failed: {}",
            refusal(resp).await
        )));
    }
    let session = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .map(str::to_string)
        .ok_or_else(|| OpsError::Refused(format!("{base} did not open a session")))?;

    eprintln!("waiting for {base} to take the snapshot…");
    let resp = client
        .get(format!("{base}/api/admin/backup"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .map_err(http_error("the backup request failed"));
    let result = match resp {
        Ok(resp) if resp.status().is_success() => save_body(resp, out).await,
        Ok(resp) if resp.status() == reqwest::StatusCode::FORBIDDEN => Err(OpsError::Refused(
            format!("{user} may not download backups; log in as admin (IMGVAULT_USER=admin)"),
        )),
        Ok(resp) => Err(OpsError::Refused(format!(
            "{base} did not send a backup: {}",
            refusal(resp).await
        ))),
        Err(e) => Err(e),
    };
    // Ends the session on the server; the backup is what matters if this fails.
    let _ = client
        .post(format!("{base}/api/logout"))
        .header(header::COOKIE, &session)
        .send()
        .await;
    result
}

/// Streams the answer into a temporary file next to `out`, checks that it is a data file this
/// build can open, and only then gives it the name `out`.
async fn save_body(resp: reqwest::Response, out: &Path) -> Result<FileSummary, OpsError> {
    let partial = atomic_file::partial_path(out);
    let written = write_stream(resp, &partial).await.and_then(|()| {
        let summary = backup::inspect(&partial).map_err(|e| {
            OpsError::Refused(format!(
                "the server's answer is not a usable data file: {e}"
            ))
        })?;
        atomic_file::commit(&partial, out)
            .map_err(OpsError::io(format!("writing {}", out.display())))?;
        Ok(summary)
    });
    if written.is_err() {
        atomic_file::discard(&partial);
    }
    written
}

async fn write_stream(resp: reqwest::Response, partial: &Path) -> Result<(), OpsError> {
    let what = || format!("writing {}", partial.display());
    let mut file = std::fs::File::create(partial).map_err(OpsError::io(what()))?;
    let mut progress = Progress::new("downloading", resp.content_length(), Unit::Bytes);
    let expected = resp.content_length();
    let mut received = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(http_error("the download broke off"))?;
        // A command-line tool on a current-thread runtime: nothing else waits on this thread.
        file.write_all(&piece).map_err(OpsError::io(what()))?;
        received += piece.len() as u64;
        progress.set(received);
    }
    progress.finish();
    if expected.is_some_and(|n| n != received) {
        return Err(OpsError::Refused(format!(
            "the download broke off after {} of {}",
            human_bytes(received),
            human_bytes(expected.unwrap_or_default())
        )));
    }
    file.flush().map_err(OpsError::io(what()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised_to_their_base() {
        for url in [
            "http://nas.lan:8080",
            "http://nas.lan:8080/",
            "http://nas.lan:8080/api",
            "http://nas.lan:8080/api/",
        ] {
            assert_eq!(base_url(url).unwrap(), "http://nas.lan:8080", "{url}");
        }
        assert!(base_url("nas.lan:8080").is_err());
        assert!(base_url("ftp://nas.lan").is_err());
    }
}
