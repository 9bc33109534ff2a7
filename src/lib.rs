//! imgvault: a self-hosted image vault. One binary, one data file.
//!
//! `serve` opens the data file, makes sure the `admin` account exists, starts the background media
//! workers and serves the HTTP API until the shutdown future resolves. The binary and the tests
//! both start the server through it.

pub mod api;
pub mod atomic_file;
pub mod backups;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod fetch;
pub mod ingest;
pub mod json_stream;
pub mod media;
pub mod metrics;
pub mod ops;
pub mod secrets;
pub mod server;
pub mod store;
pub mod sync;
pub mod text;
pub mod throttle;
pub mod thumbnails;
pub mod web;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::Config;
use store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the data file {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("start-up task failed: {0}")]
    Startup(String),
}

/// How often expired sessions are swept from the data file.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How often trashed images past `--trash-days` are looked for.
const TRASH_PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often the SHA-256 backlog logs its progress, and how long it pauses after a failure.
const BACKLOG_PROGRESS_EVERY: Duration = Duration::from_secs(10);
const BACKLOG_RETRY: Duration = Duration::from_secs(60);

/// Runs the server until `shutdown` resolves, then finishes in-flight requests, stops the workers
/// and closes the data file. Prints `listening on http://ADDR` once connections are accepted.
///
/// `shutdown` is also heard while the data file opens, which may take long (a repair after a
/// crash, a migration): the server then stops without listening, and the opening, left to finish
/// on its thread, is cut off when the process exits, which redb survives as it survives a crash.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let path = config.data.clone();
    let cache = config.cache_bytes;
    let store_error = |source| ServeError::Store {
        path: path.display().to_string(),
        source,
    };
    let mut shutdown = Box::pin(shutdown);
    let opening = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Store::open(&path, cache)
    });
    let store = tokio::select! {
        biased;
        () = shutdown.as_mut() => {
            tracing::warn!("stopped while the data file was being opened; it is opened again at the next start");
            return Ok(());
        }
        opened = opening => opened
            .map_err(|e| ServeError::Startup(e.to_string()))?
            .map_err(store_error)?,
    };
    store.disk().set_min_free(config.min_free_bytes);
    store.set_search_budget(usize::try_from(config.limits.search_budget).unwrap_or(usize::MAX));
    store.set_similar_budget(usize::try_from(config.limits.similar_budget).unwrap_or(usize::MAX));
    let store = Arc::new(store);

    let default_user_id = tokio::task::spawn_blocking({
        let store = store.clone();
        let password = config.admin_password.clone();
        move || ops::users::ensure_admin(&store, password)
    })
    .await
    .map_err(|e| ServeError::Startup(e.to_string()))?
    .map_err(store_error)?;

    let backups = backups::start(store.clone(), config.backups.clone())
        .map_err(|e| ServeError::Startup(format!("backup directory: {e}")))?;

    let hub = match &config.cloud_url {
        Some(url) => {
            let hub = sync::Hub::new(url, config.cloud_timeout)
                .map_err(|e| ServeError::Startup(format!("HTTP client: {e}")))?;
            tracing::info!(hub = %hub.base(), "cloud sync enabled");
            Some(hub)
        }
        None => None,
    };
    let abandoned = tokio::task::spawn_blocking({
        let store = store.clone();
        move || store.abandon_sync_tasks(clock::now())
    })
    .await
    .map_err(|e| ServeError::Startup(e.to_string()))?
    .map_err(store_error)?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "cloud syncs interrupted by the last stop were ended"
        );
    }

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;

    let fetcher = fetch::Fetcher::new(
        config.allow_private_fetch,
        config.fetch_timeout,
        media::MAX_IMAGE_BYTES as usize,
    )
    .map_err(|e| ServeError::Startup(format!("HTTP client: {e}")))?;
    let writer = writer::Writer::start(store.clone())
        .map_err(|e| ServeError::Startup(format!("writer thread: {e}")))?;
    let jobs = thumbnails::Jobs::start(
        store.clone(),
        writer.clone(),
        config.media_workers,
        config.thumb_size,
        config.limits.decode_budget,
    );
    let ingest = ingest::Ingest::new(writer, jobs.clone(), config.limits.decode_budget);
    let state = Arc::new(api::AppState {
        store: store.clone(),
        jobs,
        ingest,
        fetcher,
        hub,
        syncs: Default::default(),
        default_user_id,
        throttles: throttle::Throttles::new(&config),
        in_flight: Default::default(),
        cookie: api::cookie_name(config.cookie_name.as_deref(), &config.data),
        config,
        pairings: Default::default(),
    });

    let background = tokio::spawn({
        let state = state.clone();
        async move {
            state.jobs.resume().await;
            tokio::spawn(state.jobs.clone().revisit());
            tokio::spawn(state.jobs.clone().hash_backlog());
            // Both loop until `background` is aborted at shutdown, which lets go of the store.
            tokio::join!(
                sweep_sessions(state.store.clone()),
                purge_trash(state.store.clone(), state.config.trash_days),
                hash_backlog(state.store.clone())
            );
        }
    });

    let metrics_server = match state.config.metrics_listen {
        None => None,
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|source| ServeError::Bind { addr: at, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr: at, source })?;
            println!("metrics on http://{bound}/metrics");
            tracing::info!(addr = %bound, "metrics served without a login");
            let routes = api::admin::metrics_only(state.clone());
            let limits = state.config.limits.clone();
            Some(tokio::spawn(async move {
                server::run(listener, routes, &limits, std::future::pending()).await;
            }))
        }
    };

    println!("listening on http://{addr}");
    tracing::info!(%addr, data = %path.display(), "imgvault started");
    server::run(
        listener,
        api::routes(state.clone()),
        &state.config.limits,
        shutdown,
    )
    .await;

    tracing::info!("shutting down");
    if let Some(metrics) = metrics_server {
        metrics.abort();
        let _ = metrics.await;
    }
    background.abort();
    let _ = background.await;
    state.jobs.shutdown().await;
    let flushed = state.store.clone();
    match tokio::task::spawn_blocking(move || flushed.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "final flush of the data file failed"),
        Err(e) => tracing::error!(error = %e, "final flush of the data file failed"),
    }
    drop(backups);
    drop(state);
    close_store(store).await;
    tracing::info!("data file closed");
    Ok(())
}

/// Closes the data file once every other holder (the upload writer thread, the workers) has let
/// go, so the next open, or `imgvault backup --data`, finds a cleanly closed file. Gives up after
/// a while rather than hang the shutdown; redb then repairs the file at its next open.
async fn close_store(mut store: Arc<Store>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(store) {
            Ok(last) => {
                let _ = tokio::task::spawn_blocking(move || drop(last)).await;
                return;
            }
            Err(shared) if tokio::time::Instant::now() < deadline => {
                store = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                tracing::warn!(
                    "the data file is still in use; it will be repaired at the next open"
                );
                return;
            }
        }
    }
}

/// Deletes for good, every hour from start-up, the images trashed more than `days` days ago (none
/// when `days` is 0), and forgets the idempotency keys older than `store::KEEP_KEYS`.
async fn purge_trash(store: Arc<Store>, days: u32) {
    let keep = i64::from(days) * 24 * 3600 * 1_000_000;
    let mut every = tokio::time::interval(TRASH_PURGE_EVERY);
    loop {
        every.tick().await;
        let now = clock::now();
        if days > 0 {
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.purge_trash(None, now - keep)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, days, "old trash deleted"),
                Ok(Err(e)) => tracing::warn!(error = %e, "trash purge failed"),
                _ => {}
            }
        }
        let store = store.clone();
        let before = now - store::KEEP_KEYS;
        match tokio::task::spawn_blocking(move || store.purge_keys(before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(forgotten = n, "old idempotency keys forgotten"),
            Ok(Err(e)) => tracing::warn!(error = %e, "idempotency key purge failed"),
            _ => {}
        }
    }
}

/// Computes the SHA-256 of the blobs stored before schema 12 (`Store::hash_backlog`), a batch at
/// a time on the blocking pool, with progress in the log. What is left when the server stops is
/// done after the next start; until then those images are not found by SHA-256.
async fn hash_backlog(store: Arc<Store>) {
    let total = {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.sha256_backlog()).await {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return tracing::warn!(error = %e, "could not read the SHA-256 backlog"),
            Err(e) => return tracing::warn!(error = %e, "could not read the SHA-256 backlog"),
        }
    };
    tracing::info!(blobs = total, "computing the SHA-256 of stored images");
    let (mut done, mut logged) = (0u64, std::time::Instant::now());
    loop {
        let batch = store.clone();
        match tokio::task::spawn_blocking(move || batch.hash_backlog()).await {
            Ok(Ok(0)) => {
                return tracing::info!(blobs = done, "SHA-256 of stored images computed");
            }
            Ok(Ok(n)) => {
                done += n as u64;
                if logged.elapsed() >= BACKLOG_PROGRESS_EVERY {
                    tracing::info!(done, of = total, "computing the SHA-256 of stored images");
                    logged = std::time::Instant::now();
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SHA-256 backlog batch failed; trying again later");
                tokio::time::sleep(BACKLOG_RETRY).await;
            }
            Err(e) => return tracing::warn!(error = %e, "SHA-256 backlog stopped"),
        }
    }
}

/// Deletes expired sessions now and then; a session is refused once expired even before this runs.
async fn sweep_sessions(store: Arc<Store>) {
    let mut every = tokio::time::interval(SESSION_SWEEP_EVERY);
    loop {
        every.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.purge_expired_sessions(clock::now())).await
        {
            Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "session sweep failed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address is held by the test: a `serve` that went on to listen would fail to bind it.
    fn config_on_taken_address(dir: &std::path::Path, taken: &std::net::TcpListener) -> Config {
        Config {
            data: dir.join("imgvault.redb"),
            listen: taken.local_addr().unwrap(),
            admin_password: Some("start-up-test".into()),
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn a_stop_asked_while_the_data_file_opens_ends_serve_before_it_listens() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stopped = tempfile::tempdir().unwrap();
        let outcome = serve(
            config_on_taken_address(stopped.path(), &taken),
            std::future::ready(()),
        )
        .await;
        assert!(outcome.is_ok(), "{outcome:?}");

        // Not asked to stop, the same start-up goes on to the address and fails there.
        let served = tempfile::tempdir().unwrap();
        let outcome = serve(
            config_on_taken_address(served.path(), &taken),
            std::future::pending(),
        )
        .await;
        assert!(
            matches!(outcome, Err(ServeError::Bind { .. })),
            "{outcome:?}"
        );
    }
}
