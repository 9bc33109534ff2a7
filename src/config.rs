//! Everything the server is told at start-up, in one struct, with the defaults of DECISIONS.md.
//! Built from the command line (`cli`) by the binary and directly by tests and embedders.
//!
//! `Limits` holds every bound that keeps the process inside its memory budget under hostile input.
//! They follow from one number (`--memory-mb`), so a user sizes the server for a machine once
//! instead of tuning a dozen knobs; the knobs that are about time or policy, not memory, are flags
//! of their own.

use std::net::{IpAddr, SocketAddr};
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
    /// Memory, connection and time bounds.
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For` names the real client (a reverse proxy on this host).
    pub trusted_proxies: Vec<IpAddr>,
    /// Uploads without a session: whether they are taken, and how many per client address.
    pub anonymous: AnonymousPolicy,
    /// Uploads are refused (507) while the data file's file system has less free space than this.
    pub min_free_bytes: u64,
    /// Name of the session cookie; `None` derives it from the data file (`api::cookie_name`), so
    /// two servers on one host keep separate sessions in one browser (cookies ignore ports).
    pub cookie_name: Option<String>,
    /// Days a trashed image is kept before it is deleted for good; 0 keeps it until the trash is
    /// emptied.
    pub trash_days: u32,
    /// Where `/metrics` is served without a login, besides the admin-only `/metrics` of `listen`.
    pub metrics_listen: Option<SocketAddr>,
}

/// Default days in the trash, as most photo apps keep them.
pub const DEFAULT_TRASH_DAYS: u32 = 30;

/// What a client without a session may store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnonymousPolicy {
    /// `false`: uploads without a session get 401 `匿名上传已关闭，请登录后再上传`.
    pub enabled: bool,
    /// Images per minute from one address.
    pub images_per_minute: u32,
    /// Image bytes per minute from one address.
    pub bytes_per_minute: u64,
}

impl Default for AnonymousPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            images_per_minute: 60,
            bytes_per_minute: 100 * 1024 * 1024,
        }
    }
}

/// Default memory budget: a 1 GB Raspberry Pi runs other things too.
pub const DEFAULT_MEMORY_MB: u64 = 200;

/// The bounds derived from the memory budget, plus the connection timeouts.
///
/// The budget is split: about 30 MiB for the program and the database cache, argon2 hashes (19 MiB
/// each), request bodies in flight, decoded pixels in flight, and search catalogs. What is left over is slack for
/// allocator fragmentation and the many small things no one bounds one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The budget these figures came from.
    pub memory_mb: u64,
    /// Password hashes (login, register) computed at once; more wait, briefly, then get 503.
    pub hash_permits: usize,
    /// Bytes of request bodies held by all requests together; past it, 503 with Retry-After.
    pub body_budget: u64,
    /// Bytes of decoded pixels held by all thumbnail decodes together; an image whose decode
    /// alone costs more is refused at upload.
    pub decode_budget: u64,
    /// Open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time allowed for a request's head to arrive; also how long an idle keep-alive connection is
    /// kept.
    pub header_timeout: Duration,
    /// Time a request body, or a client reading an answer, may stall before the connection is
    /// closed.
    pub idle_timeout: Duration,
    /// Bytes of one sync request a hub takes. It is read as a stream, so this bounds time and
    /// disk, not memory.
    pub sync_body_bytes: u64,
    /// Bytes the search catalogs of all users may hold together (`store::search`).
    pub search_budget: u64,
    /// Bytes the similar-image indexes of all users may hold together (`store::search::similar`).
    pub similar_budget: u64,
}

impl Limits {
    /// The limits for a budget of `memory_mb` MiB of resident memory.
    pub fn for_memory(memory_mb: u64) -> Self {
        const MIB: u64 = 1024 * 1024;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hash_permits = cores.min((memory_mb / 100).max(1) as usize);
        Self {
            memory_mb,
            hash_permits,
            body_budget: memory_mb * MIB * 3 / 10,
            decode_budget: memory_mb * MIB * 3 / 10,
            max_connections: (memory_mb as usize).clamp(64, 4096),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            sync_body_bytes: DEFAULT_SYNC_BODY_MB * MIB,
            search_budget: memory_mb * MIB / 4,
            similar_budget: memory_mb * MIB / 10,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::for_memory(DEFAULT_MEMORY_MB)
    }
}

/// Default largest sync request a hub takes, in MiB: the original project's local server sends a
/// whole collection (up to 10,000 images) in one request.
pub const DEFAULT_SYNC_BODY_MB: u64 = 4096;

/// Default free-space floor under the data file, in MiB.
pub const DEFAULT_MIN_FREE_MB: u64 = 256;

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
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            anonymous: AnonymousPolicy::default(),
            min_free_bytes: DEFAULT_MIN_FREE_MB * 1024 * 1024,
            cookie_name: None,
            trash_days: DEFAULT_TRASH_DAYS,
            metrics_listen: None,
        }
    }
}
