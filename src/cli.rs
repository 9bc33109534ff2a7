//! The command line. `imgvault` alone means `imgvault serve`; every flag has an `IMGVAULT_*`
//! environment twin so a service manager can configure it without editing the command.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "imgvault",
    version,
    about = "A self-hosted image vault: one binary, one data file",
    long_about = "imgvault keeps images collected from the web (browser extension, clipboard, \
                  uploads) on your own hardware. Everything lives in one data file: back it up by \
                  copying that file while the server is stopped.\n\n\
                  Run without a subcommand to start the server (same as `imgvault serve`).",
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
    Serve(ServeArgs),
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

    /// Database page cache in MiB. The default suits a 1 GB Raspberry Pi.
    #[arg(long, env = "IMGVAULT_CACHE_MB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(4..=65536))]
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
            fetch_timeout: std::time::Duration::from_secs(self.fetch_timeout),
        }
    }
}
