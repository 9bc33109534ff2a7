//! The command line. `imgvault` alone means `imgvault serve`; every flag has an `IMGVAULT_*`
//! environment twin so a service manager can configure it without editing the command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{AnonymousPolicy, BackupSchedule, Config, Limits};
use crate::domain::Category;

#[derive(Debug, Parser)]
#[command(
    name = "imgvault",
    version,
    about = "A self-hosted image vault: one binary, one data file",
    long_about = "imgvault keeps images collected from the web (browser extension, clipboard, \
                  uploads) on your own hardware. Everything lives in one data file; `imgvault \
                  backup` copies it consistently, also while the server runs.\n\n\
                  Run without a subcommand to start the server (same as `imgvault serve`).\n\n\
                  Exit status: 0 on success, 1 when a command fails or `check` finds problems, \
                  2 for a command line that does not parse.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(Box<ServeArgs>),
    /// Write a consistent copy of the data file, also while a server runs.
    #[command(
        long_about = "Write a consistent snapshot of the data file to OUT. The snapshot is \
        taken in one read transaction, so uploads keep working while it is written and none is half \
        in it. It is written under a temporary name, flushed to disk and only then renamed, so OUT is \
        never a partial file. The result is an ordinary data file: restore it by starting a server on \
        it (`imgvault serve --data OUT`).\n\n\
        With --server the running server takes the snapshot and sends it (admin only): the login is \
        IMGVAULT_USER (default admin) with IMGVAULT_PASSWORD, or the password is asked for. Without \
        it the data file is read directly, which is refused while a server holds it."
    )]
    Backup(BackupArgs),
    /// Verify the data file; `--repair` fixes what can be recomputed.
    #[command(
        long_about = "Verify the data file: every image's bytes exist and hash to their \
        key, reference counts and image counters match the records, and every index entry points at \
        its record and back. Prints a summary and each problem on its own line; exits with 1 if there \
        is any.\n\n\
        --repair fixes counters, reference counts and index entries, and removes what nothing refers \
        to (orphan blobs, chunks, sessions, thumbnails). It never deletes an image: an image whose \
        bytes are lost is reported for restoring from a backup. Works on a stopped server's file."
    )]
    Check(CheckArgs),
    /// Shrink a stopped server's data file to about the size of its data.
    #[command(
        long_about = "Shrink the data file to about the size of what it holds. redb grows a \
        file by doubling it (up to 4 GiB, then 4 GiB at a time) and leaves the new space sparse, so \
        `ls` shows more than the disk holds; pages freed by deleted images are reused but not given \
        back. Compacting moves pages toward the front and cuts the free end off. It rewrites the \
        file in place and is safe to interrupt: each step is a commit, and the next open repairs \
        what an interrupted step left. It refuses while a server holds the file. Backups (`imgvault backup`) are compacted already."
    )]
    Compact(CompactArgs),
    /// Say whether this installation is healthy, and what to do where it is not.
    #[command(
        long_about = "Look over the installation and print one line per finding (ok, warn or \
        FAIL): the data file (there, readable, held by a running server or not, its schema version), \
        free disk under it against --min-free-mb and how long it lasts at the last 30 days' rate, \
        the backup directory and the age of the newest backup, whether a server answers on the \
        listen address and whether other machines on the LAN can reach it, and the clock. It takes \
        the same flags and IMGVAULT_* variables as `serve`: run it with the service's environment. \
        It changes nothing. Exits with 1 when something FAILs."
    )]
    Doctor(Box<ServeArgs>),
    /// Write every image and its metadata as plain files (the seed's `saved_images` layout).
    #[command(
        long_about = "Write every image as a plain file in the original server's layout, \
        DIR/saved_images/{user_id}/{category}/{filename}, and all metadata (users without their \
        password hashes, and every image's fields) to DIR/metadata.json, written last. DIR must not \
        hold an earlier export. Works on a stopped server's file; `imgvault import DIR` reads it back."
    )]
    Export(ExportArgs),
    /// Add a folder of images, or an export, to the data file.
    #[command(
        long_about = "Add the images under DIR to the data file (created if missing). Every \
        file is checked like an upload (PNG, JPEG, GIF or WebP by content, at most 10 MiB, size \
        limits), and a file whose bytes the owner already has is skipped.\n\n\
        An export (DIR/saved_images/{user_id}/{category}/...) keeps owners and categories: a \
        user directory belongs to the user with that user id; default-user-* to admin; else, with \
        metadata.json, to the user with the exported username or a new account of that user id, \
        username and email without a password (set one with `imgvault user passwd`); else to the \
        user named like the directory; else to --user. File names, dates and page information \
        come back from metadata.json. Any other folder goes to --user and --category, each file \
        dated by its modification time. Hidden and system directories (.*, @eaDir) are left \
        out.\n\n\
        Prints a summary of what was imported and what was skipped and why. Thumbnails are made by \
        the server at its next start. Works on a stopped server's file."
    )]
    Import(ImportArgs),
    /// Add, list, delete accounts or set a password, in the data file of a stopped server.
    #[command(
        subcommand,
        long_about = "Add, list, delete accounts or set a password, in the data file of a \
        stopped server (a running server holds the file, and these commands refuse then). \
        Passwords are asked on the terminal without echo, or read from the first line of \
        standard input when it is not a terminal."
    )]
    User(UserCommand),
}

/// The data file a command works on.
#[derive(Debug, Args, Clone)]
pub struct DataArg {
    /// The data file, as for `serve`.
    #[arg(long, env = "IMGVAULT_DATA", default_value = "imgvault.redb")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup. An existing directory gets a file named
    /// imgvault-YYYYMMDD-HHMMSS.redb (UTC); an existing file is replaced once the backup is
    /// complete.
    pub out: PathBuf,

    #[command(flatten)]
    pub data: DataArg,

    /// Base URL of a running server, e.g. http://nas.lan:8080: ask it for the backup instead of
    /// reading the data file (`--data` is then ignored).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub data: DataArg,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub data: DataArg,

    /// Fix what can be recomputed from the records, then check again.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write into (created if missing).
    pub dir: PathBuf,

    #[command(flatten)]
    pub data: DataArg,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Folder of images, or a directory written by `imgvault export`.
    pub dir: PathBuf,

    #[command(flatten)]
    pub data: DataArg,

    /// Owner of images that no exported user directory claims.
    #[arg(long, default_value = "admin")]
    pub user: String,

    /// Category of images outside a clothes/ or char/ directory.
    #[arg(long, default_value = "clothes", value_parser = parse_category)]
    pub category: Category,
}

/// The `user` commands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        /// Username: 3 to 20 letters, digits, `_`, `-` or `.`.
        name: String,
        /// Email address (unique, like the username).
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Set a new password for an account; its sessions end.
    Passwd {
        name: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// List the accounts with their image counts.
    List {
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete an account and its sessions (`admin` cannot be deleted).
    Delete {
        name: String,
        /// Also delete the account's images; without it an account that has images is kept.
        #[arg(long)]
        delete_images: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

fn parse_category(raw: &str) -> Result<Category, String> {
    Category::parse(raw).ok_or_else(|| format!("{raw:?} is not a category (clothes or char)"))
}

/// A cookie name (an RFC 6265 token): letters, digits and `!#$%&'*+-.^_`|~`, at most 64.
fn parse_cookie_name(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(format!(
            "{raw:?} is not a cookie name (letters, digits, - _ . and the like)"
        ))
    }
}

/// `30s`, `30m`, `6h`, `1d`, or combined like `1h30m`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("{raw:?} is not a duration like 30m, 6h or 1d");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on. Use 0.0.0.0:8080 to serve your LAN; port 0 picks a free port.
    #[arg(long, env = "IMGVAULT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The data file holding users, images and everything else. Created if missing.
    #[arg(long, env = "IMGVAULT_DATA", default_value = "imgvault.redb")]
    pub data: PathBuf,

    /// Base URL of the hub's API for cloud sync, e.g. http://hub.lan:8081/api. Unset: sync is off.
    #[arg(long, env = "IMGVAULT_CLOUD_URL")]
    pub cloud_url: Option<String>,

    /// Seconds allowed for each request to the hub during a sync.
    #[arg(long, env = "IMGVAULT_CLOUD_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub cloud_timeout: u64,

    /// Database page cache in MiB: it keeps the indexes in memory; image bytes are read through
    /// the system's file cache anyway. The default suits a 1 GB Raspberry Pi.
    #[arg(long, env = "IMGVAULT_CACHE_MB", default_value_t = (crate::store::DEFAULT_CACHE_BYTES >> 20) as u64, value_parser = clap::value_parser!(u64).range(4..=65536))]
    pub cache_mb: u64,

    /// An extra web origin allowed to call the API from a browser (repeatable; comma-separated in
    /// the environment). Browser extensions are always allowed.
    #[arg(
        long = "cors-origin",
        env = "IMGVAULT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Images processed at once in the background (default: one per core).
    #[arg(long, env = "IMGVAULT_MEDIA_WORKERS")]
    pub media_workers: Option<usize>,

    /// Longest side of thumbnails in pixels. Changing it remakes thumbnails as they are requested.
    #[arg(long, env = "IMGVAULT_THUMB_SIZE", default_value_t = 512, value_parser = clap::value_parser!(u32).range(32..=4096))]
    pub thumb_size: u32,

    /// Allow images by URL from loopback and private network addresses (refused by default, so
    /// the server cannot be used to probe your LAN).
    #[arg(long, env = "IMGVAULT_ALLOW_PRIVATE_FETCH")]
    pub allow_private_fetch: bool,

    /// Seconds allowed for fetching an image by URL.
    #[arg(long, env = "IMGVAULT_FETCH_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub fetch_timeout: u64,

    /// Write a backup into DIR every --backup-every (named imgvault-YYYYMMDD-HHMMSS.redb, UTC),
    /// keeping the newest --backup-keep. Unset: no scheduled backups. Give each server its own.
    #[arg(long, env = "IMGVAULT_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Time between scheduled backups, like 30m, 6h or 1d.
    #[arg(long, env = "IMGVAULT_BACKUP_EVERY", default_value = "24h", value_parser = parse_duration)]
    pub backup_every: Duration,

    /// Scheduled backups kept; older ones are deleted after each new one.
    #[arg(long, env = "IMGVAULT_BACKUP_KEEP", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backup_keep: u32,

    /// Peak memory the server may use, in MiB, whatever clients send. Password hashes, request
    /// bodies and decoded pixels in flight, and open connections are bounded to fit it; excess
    /// requests get 503 with Retry-After. Include --cache-mb in it.
    #[arg(long, env = "IMGVAULT_MEMORY_MB", default_value_t = crate::config::DEFAULT_MEMORY_MB, value_parser = clap::value_parser!(u64).range(64..=1_048_576))]
    pub memory_mb: u64,

    /// Open connections at most (default: one per MiB of --memory-mb, at least 64). Further
    /// clients wait until one closes.
    #[arg(long, env = "IMGVAULT_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(4..=1_000_000))]
    pub max_connections: Option<u64>,

    /// Time for a request's head to arrive, and for an idle keep-alive connection to stay open.
    #[arg(long, env = "IMGVAULT_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Time a request body may stall, or a client may not read its answer, before the connection
    /// is closed.
    #[arg(long, env = "IMGVAULT_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Largest sync request this server takes as a hub, in MiB. Sync bodies are read as a stream,
    /// one image at a time, so this bounds transfer time and disk use, not memory.
    #[arg(long, env = "IMGVAULT_MAX_SYNC_BODY_MB", default_value_t = crate::config::DEFAULT_SYNC_BODY_MB, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_sync_body_mb: u64,

    /// Name of the session cookie. Default: imgvault_ and 8 hex digits derived from the data
    /// file's path, so two servers on one host, such as a local server and its hub, keep separate
    /// logins in one browser (browsers send a host's cookies to every port), and a restart on
    /// another port keeps everyone logged in.
    #[arg(long, env = "IMGVAULT_COOKIE_NAME", value_parser = parse_cookie_name)]
    pub cookie_name: Option<String>,

    /// A reverse proxy's address whose X-Forwarded-For header names the real client, for rate
    /// limits and quotas (repeatable; comma-separated in the environment). Without it the header
    /// is ignored, so clients cannot pick their own address.
    #[arg(
        long = "trusted-proxy",
        env = "IMGVAULT_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "IP"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Accept uploads without a session (they go to the admin account, as the seed does). `false`
    /// answers them 401 `匿名上传已关闭，请登录后再上传`.
    #[arg(long, env = "IMGVAULT_ANONYMOUS_UPLOADS", default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub anonymous_uploads: bool,

    /// Uploads without a session per minute from one address; past it, 429 with Retry-After.
    /// Logged-in users are never limited by it.
    #[arg(long, env = "IMGVAULT_ANONYMOUS_IMAGES_PER_MINUTE", default_value_t = AnonymousPolicy::default().images_per_minute, value_parser = clap::value_parser!(u32).range(1..))]
    pub anonymous_images_per_minute: u32,

    /// Image MiB per minute without a session from one address; past it, 429 with Retry-After.
    #[arg(long, env = "IMGVAULT_ANONYMOUS_MB_PER_MINUTE", default_value_t = AnonymousPolicy::default().bytes_per_minute >> 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub anonymous_mb_per_minute: u64,

    /// Free space to keep on the data file's disk, in MiB: uploads are refused with 507 below it,
    /// so the disk never fills up under the database.
    #[arg(long, env = "IMGVAULT_MIN_FREE_MB", default_value_t = crate::config::DEFAULT_MIN_FREE_MB)]
    pub min_free_mb: u64,

    /// Days an image stays in the trash before it is deleted for good (checked hourly); its bytes
    /// go when no other image uses them. 0 keeps trashed images until the trash is emptied.
    #[arg(long, env = "IMGVAULT_TRASH_DAYS", default_value_t = crate::config::DEFAULT_TRASH_DAYS, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub trash_days: u32,

    /// Also serve the Prometheus metrics (`GET /metrics`) on this address, without a login: for a
    /// scraper on a network you trust, e.g. 127.0.0.1:9464. Without it, `/metrics` on the main
    /// address answers the admin only.
    #[arg(long, env = "IMGVAULT_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The server configuration; the admin password comes from `IMGVAULT_ADMIN_PASSWORD` only, so
    /// it never shows in a process list.
    pub fn into_config(self) -> Config {
        let defaults = Config::default();
        Config {
            listen: self.listen,
            data: self.data,
            cloud_url: self.cloud_url.filter(|u| !u.trim().is_empty()),
            cloud_timeout: std::time::Duration::from_secs(self.cloud_timeout),
            admin_password: std::env::var("IMGVAULT_ADMIN_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
            cache_bytes: (self.cache_mb as usize) * 1024 * 1024,
            cors_origins: self.cors_origins,
            media_workers: self.media_workers.unwrap_or(defaults.media_workers),
            thumb_size: self.thumb_size,
            allow_private_fetch: self.allow_private_fetch,
            fetch_timeout: Duration::from_secs(self.fetch_timeout),
            backups: self.backup_dir.map(|dir| BackupSchedule {
                dir,
                every: self.backup_every,
                keep: self.backup_keep as usize,
            }),
            limits: {
                let mut limits = Limits::for_memory(self.memory_mb);
                if let Some(n) = self.max_connections {
                    limits.max_connections = n as usize;
                }
                limits.header_timeout = self.header_timeout;
                limits.idle_timeout = self.idle_timeout;
                limits.sync_body_bytes = self.max_sync_body_mb * 1024 * 1024;
                limits
            },
            trusted_proxies: self.trusted_proxies,
            anonymous: AnonymousPolicy {
                enabled: self.anonymous_uploads,
                images_per_minute: self.anonymous_images_per_minute,
                bytes_per_minute: self.anonymous_mb_per_minute * 1024 * 1024,
            },
            min_free_bytes: self.min_free_mb * 1024 * 1024,
            cookie_name: self.cookie_name,
            trash_days: self.trash_days,
            metrics_listen: self.metrics_listen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_combinations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        for bad in ["", "0s", "10", "h", "1w", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_command_parses_and_serve_is_the_default() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["imgvault", "--listen", "127.0.0.1:1"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["imgvault", "user", "add", "bob", "--email", "b@x.org"]);
        assert!(matches!(
            cli.unwrap().command,
            Some(Command::User(UserCommand::Add { .. }))
        ));
        let cli = Cli::try_parse_from(["imgvault", "import", "d", "--category", "hats"]);
        assert!(cli.is_err());
    }
}
