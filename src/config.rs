//! Everything the server is told at start-up, in one struct, with the defaults of DECISIONS.md.
//! Built from the command line (`cli`) by the binary and directly by tests and embedders.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::media::thumbnail::DEFAULT_MAX_SIDE;
use crate::store::DEFAULT_CACHE_BYTES;

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to accept connections; port 0 lets the OS choose.
    pub listen: SocketAddr,
    /// The one data file; created if missing.
    pub data: PathBuf,
    /// The hub's API base (the seed's `CLOUD_SERVER_URL`); `None` disables cloud sync.
    pub cloud_url: Option<String>,
    /// Time limit of each request to the hub during a sync (the seed's five minutes).
    pub cloud_timeout: Duration,
    /// Password for the `admin` account when the data file is new; random (and printed) if `None`.
    pub admin_password: Option<String>,
    /// redb page cache in bytes.
    pub cache_bytes: usize,
    /// Web origins, besides browser extensions, allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// Images processed at once in the background (decoding is CPU- and memory-bound).
    pub media_workers: usize,
    /// Longest side of thumbnails, in pixels.
    pub thumb_size: u32,
    /// Whether `imageData` URLs may point at loopback or private addresses (LAN use, tests).
    pub allow_private_fetch: bool,
    /// Time limit for fetching an image by URL.
    pub fetch_timeout: Duration,
    /// Scheduled backups; `None` takes none.
    pub backups: Option<BackupSchedule>,
}

/// Where and how often `serve` writes backups of the data file.
#[derive(Debug, Clone)]
pub struct BackupSchedule {
    pub dir: PathBuf,
    pub every: Duration,
    /// Newest backups kept; older ones are deleted.
    pub keep: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("imgvault.redb"),
            cloud_url: None,
            cloud_timeout: Duration::from_secs(300),
            admin_password: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
            cors_origins: Vec::new(),
            media_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            thumb_size: DEFAULT_MAX_SIDE,
            allow_private_fetch: false,
            fetch_timeout: Duration::from_secs(15),
            backups: None,
        }
    }
}
