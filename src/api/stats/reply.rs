//! The JSON shape of `GET /api/user/stats`: plain structs, kept apart from the handler so the
//! document of the API can describe them.

use serde::Serialize;

/// Images and their bytes in one bucket of a chart.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub images: u64,
    pub bytes: u64,
}

/// One day of the daily series (UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DayFigures {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub images: u64,
    pub bytes: u64,
}

/// One calendar month of the monthly series (UTC).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MonthFigures {
    /// `YYYY-MM`.
    pub month: String,
    pub images: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryFigures {
    /// `clothes` or `char`.
    pub category: String,
    pub images: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HostFigures {
    pub host: String,
    pub images: u64,
    pub bytes: u64,
}

/// The source sites: hosts of the pages images were captured from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Hosts {
    /// The hosts with the most live images, most first.
    pub top: Vec<HostFigures>,
    /// Images of every other host.
    pub other: Figures,
    /// Images captured without a page URL (uploads, pastes).
    pub none: Figures,
    /// The most hosts counted one by one per scope; images of further hosts are in `other`.
    pub limit: u64,
}

/// What the collection takes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Storage {
    /// Live images and their bytes (what they show).
    pub images: u64,
    pub bytes: u64,
    /// Images in the trash and their bytes; they hold their bytes until deleted for good.
    pub trash_images: u64,
    pub trash_bytes: u64,
    /// Bytes not stored twice thanks to deduplication (a user's: among their own live images).
    pub dedup_saved_bytes: u64,
    /// The server's: bytes of all distinct stored contents, thumbnails included. `null` for a
    /// user.
    pub stored_bytes: Option<u64>,
    /// The server's: the data file's size on disk. `null` for a user.
    pub data_file_bytes: Option<u64>,
}

/// The disk under the data file, shared by every user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Disk {
    /// `null` when the file system cannot say.
    pub free_bytes: Option<u64>,
    /// Bytes saved per day over the last 30 days on the whole server; `null` when none were.
    pub bytes_per_day: Option<f64>,
    /// How long the free bytes last at that rate; `null` without a rate or a free figure.
    pub days_left: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsReply {
    pub success: bool,
    /// `user` (the caller's own images) or `server` (everyone's).
    pub scope: &'static str,
    /// Whether the caller may ask for `scope=server`.
    pub can_view_server: bool,
    /// The last day of the series, `YYYY-MM-DD` (UTC).
    pub today: String,
    pub generated_at: String,
    /// Oldest first, one per day, zeros included.
    pub days: Vec<DayFigures>,
    /// Oldest first, one per month, zeros included.
    pub months: Vec<MonthFigures>,
    /// Every category, most images first.
    pub categories: Vec<CategoryFigures>,
    pub hosts: Hosts,
    pub storage: Storage,
    /// Bytes saved per day in this scope over the last 30 days; `null` when none were.
    pub bytes_per_day: Option<f64>,
    pub disk: Disk,
}
