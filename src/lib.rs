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

/// Runs the server until `shutdown` resolves, then finishes in-flight requests, stops the workers
/// and closes the data file. Prints `listening on http://ADDR` once connections are accepted.
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
    let store = tokio::task::spawn_blocking({
        let path = path.clone();
        move || Store::open(&path, cache)
    })
    .await
    .map_err(|e| ServeError::Startup(e.to_string()))?
    .map_err(store_error)?;
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
        cookie: api::cookie_name(config.cookie_name.as_deref(), &config.data),
        config,
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
                purge_trash(state.store.clone(), state.config.trash_days)
            );
        }
    });

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

/// Deletes for good, every hour from start-up, the images trashed more than `days` days ago.
async fn purge_trash(store: Arc<Store>, days: u32) {
    if days == 0 {
        return;
    }
    let keep = i64::from(days) * 24 * 3600 * 1_000_000;
    let mut every = tokio::time::interval(TRASH_PURGE_EVERY);
    loop {
        every.tick().await;
        let store = store.clone();
        let before = clock::now() - keep;
        match tokio::task::spawn_blocking(move || store.purge_trash(None, before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, days, "old trash deleted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trash purge failed"),
            _ => {}
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
