//! `GET /api/user/stats`: the figures of the stats page (`store::stats`): the caller's own, or,
//! for the admin with `scope=server`, the whole server's. Everything is read from counters kept on
//! write, so the answer costs a few hundred small rows however large the collection.
//!
//! Query: `scope` (`mine`, the default, or `server`), `days` (1–366, default 30), `months`
//! (1–120, default 12), `hosts` (1–50, default 15).

mod reply;

use std::collections::HashMap;
use std::sync::Arc;

use warp::{Filter, Rejection, Reply};

use super::auth::{Caller, require_user};
use super::error::ErrorReply;
use super::{ApiError, AppState, reject, with_state};
use crate::clock;
use crate::store::records::StatsCell;
use crate::store::stats::{self, MAX_HOSTS, Stats, StatsQuery};
pub use reply::*;

const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 366;
const DEFAULT_MONTHS: u32 = 12;
const MAX_MONTHS: u32 = 120;
const DEFAULT_HOSTS: usize = 15;
const MAX_TOP_HOSTS: usize = 50;
/// The rate is taken over this many days.
const RATE_DAYS: f64 = 30.0;

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "user" / "stats")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(stats_reply)
}

/// The operations of this module in the OpenAPI document (`openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(stats_reply))]
pub(super) struct Doc;

/// The parameters `stats_reply` reads, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct StatsParams {
    /// `mine` (the default) or `server` (the `admin` account only).
    scope: Option<String>,
    /// Days in the daily series: 1 to 366, 30 by default.
    days: Option<u32>,
    /// Months in the monthly series: 1 to 120, 12 by default.
    months: Option<u32>,
    /// Source sites listed: 1 to 50, 15 by default.
    hosts: Option<u32>,
}

/// `query[name]` as a number in `1..=max`, `default` when absent; a 400 otherwise.
fn bounded<T>(
    query: &HashMap<String, String>,
    name: &str,
    default: T,
    max: T,
) -> Result<T, ApiError>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    let Some(raw) = query.get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(n) if n >= T::from(1) && n <= max => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "{name} 必须是 1 到 {max} 之间的整数"
        ))),
    }
}

/// The collection at a glance: images and bytes saved per day and per month, by category and by
/// source site, storage, what deduplication saved, and free disk with how long it lasts.
#[utoipa::path(
    get,
    path = "/api/user/stats",
    operation_id = "collection_stats",
    tag = "images",
    params(StatsParams),
    responses(
        (status = 200, description = "The figures, read from counters kept on write.", body = StatsReply),
        (status = 400, description = "A parameter out of its range.", body = ErrorReply),
        (status = 403, description = "`scope=server` from another account than `admin`.", body = ErrorReply),
    )
)]
async fn stats_reply(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<impl Reply, Rejection> {
    let admin = caller.user.user_id == state.default_user_id;
    let server = match query.get("scope").map(|s| s.trim()) {
        None | Some("") | Some("mine") | Some("user") => false,
        Some("server") if admin => true,
        Some("server") => return Err(reject(ApiError::Forbidden)),
        Some(_) => {
            return Err(reject(ApiError::BadRequest(
                "scope 只能是 mine 或 server".into(),
            )));
        }
    };
    let now = clock::now();
    let asked = StatsQuery {
        user: (!server).then(|| caller.user.user_id.clone()),
        today: stats::day_of(now),
        days: bounded(&query, "days", DEFAULT_DAYS, MAX_DAYS).map_err(reject)?,
        months: bounded(&query, "months", DEFAULT_MONTHS, MAX_MONTHS).map_err(reject)?,
        top_hosts: bounded(&query, "hosts", DEFAULT_HOSTS, MAX_TOP_HOSTS).map_err(reject)?,
    };
    // A few hundred rows at most, in place like the other small reads (see `api::blocking`).
    let figures = state.store.stats(&asked).map_err(|e| reject(e.into()))?;
    let free = state.store.disk().free_bytes().ok();
    let data_file = server
        .then(|| std::fs::metadata(&state.config.data).ok().map(|m| m.len()))
        .flatten();
    Ok(warp::reply::json(&shape(
        figures, &asked, server, admin, now, free, data_file,
    )))
}

fn figures(cell: StatsCell) -> Figures {
    Figures {
        images: cell.images,
        bytes: cell.bytes,
    }
}

fn rate(last_30_days: StatsCell) -> Option<f64> {
    (last_30_days.bytes > 0).then(|| last_30_days.bytes as f64 / RATE_DAYS)
}

fn date(day: i32) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(day as i64 * 86_400, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn shape(
    stats: Stats,
    query: &StatsQuery,
    server: bool,
    admin: bool,
    now: clock::Micros,
    free: Option<u64>,
    data_file: Option<u64>,
) -> StatsReply {
    let server_rate = rate(stats.server_last_30_days);
    let totals = stats.totals;
    StatsReply {
        success: true,
        scope: if server { "server" } else { "user" },
        can_view_server: admin,
        today: date(query.today).format("%Y-%m-%d").to_string(),
        generated_at: clock::iso(now),
        days: stats
            .days
            .iter()
            .map(|(day, cell)| DayFigures {
                date: date(*day).format("%Y-%m-%d").to_string(),
                images: cell.images,
                bytes: cell.bytes,
            })
            .collect(),
        months: stats
            .months
            .iter()
            .map(|((year, month), cell)| MonthFigures {
                month: format!("{year:04}-{month:02}"),
                images: cell.images,
                bytes: cell.bytes,
            })
            .collect(),
        categories: stats
            .categories
            .iter()
            .map(|(category, cell)| CategoryFigures {
                category: category.to_string(),
                images: cell.images,
                bytes: cell.bytes,
            })
            .collect(),
        hosts: Hosts {
            top: stats
                .hosts
                .iter()
                .map(|(host, cell)| HostFigures {
                    host: host.clone(),
                    images: cell.images,
                    bytes: cell.bytes,
                })
                .collect(),
            other: figures(stats.other_hosts),
            none: figures(stats.no_host),
            limit: MAX_HOSTS,
        },
        storage: Storage {
            images: totals.live.images,
            bytes: totals.live.bytes,
            trash_images: totals.trash.images,
            trash_bytes: totals.trash.bytes,
            dedup_saved_bytes: totals.dedup_bytes,
            stored_bytes: server.then_some(totals.stored_bytes),
            data_file_bytes: data_file,
        },
        bytes_per_day: rate(stats.last_30_days),
        disk: Disk {
            free_bytes: free,
            bytes_per_day: server_rate,
            days_left: match (free, server_rate) {
                (Some(free), Some(rate)) => Some(free as f64 / rate),
                _ => None,
            },
        },
    }
}
