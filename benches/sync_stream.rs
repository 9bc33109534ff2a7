//! Whole-collection sync benchmark: what a hub does with the request the original project's local
//! server sends on every sync, the user's WHOLE collection in one JSON body (`images_metadata`
//! first, then every file as a `data:image/jpeg;base64,…` string in `image_files`), read by the
//! hub as a stream (`src/sync/receive.rs`). One hub, the release binary with its defaults
//! (`--memory-mb 200`, `--max-sync-body-mb 4096`), on a fresh temporary data file.
//!
//! For each body size (`--small-mb`, then `--mb`), with a user of its own:
//! 1. Registers the user the way the original local server does (`POST /api/register` with
//!    `{username, email, password, local_user_id: <uuid4>}`) and logs in with a client that keeps
//!    cookies; the sync URL is `/api/sync/user/<local_user_id>`.
//! 2. Resets the hub's peak RSS (`/proc/PID/clear_refs`), then sends the body, generated on the
//!    fly by a thread of its own a few chunks ahead of the socket (the bench never holds more than
//!    one image of it): N distinct valid JPEGs of about `--size-kb` KB, each one of `--variants`
//!    noise JPEGs made once at start with a unique COM segment inserted after its SOI, so every
//!    file has its own blake3 and stays a valid JPEG. The body carries a `Content-Length`, as the
//!    original's (`requests` with `json=`) does: its exact length is worked out first without
//!    generating the base64. The JSON is written the way Python's `json.dumps` writes it (`", "`
//!    and `": "`, non-ASCII as `\uXXXX`), keys in the original's order (`user_info`,
//!    `images_metadata`, `image_files`, `vton_history`, `favorites_data`, `sync_timestamp`,
//!    `sync_statistics`), the 15 keys of each metadata row in the original's order.
//! 3. Times it from the request to the reply; reads the hub's peak RSS (`VmHWM`) at the reply and
//!    again once the hub is idle (its thumbnails made); checks the reply (`sync_result.saved_files`
//!    and `accepted` N, nothing refused, N stored) and `GET /api/user/images?per_page=1` (`total`
//!    N).
//! 4. Sends the whole collection again, as the original always does (its rows now read
//!    `cloud_synced: true`, a new `sync_timestamp`): everything is accepted, nothing is stored,
//!    `total` stays N.
//!
//! Prints a markdown table and writes `target/sync-stream-bench.json` under the crate root. MB is
//! 10^6 bytes, MiB 2^20. A wrong answer or a timeout panics; the hub is killed on the way out.
//! The bench runs on the same machine, so its own CPU (base64 of every file) shares the cores.
//!
//! ```text
//! cargo bench --bench sync_stream
//! cargo bench --bench sync_stream -- --mb 256 --small-mb 0 --size-kb 1000
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::{RngCore, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

#[path = "../tests/common/server.rs"]
mod spawned;
use spawned::{Spawned, status_mib};

const PASSWORD: &str = "password123";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// One whole-collection request, sent and answered.
const SYNC_TIMEOUT: Duration = Duration::from_secs(1800);
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const IDLE_WINDOW: Duration = Duration::from_millis(500);
/// CPU seconds the hub may use in one `IDLE_WINDOW` and still count as idle.
const IDLE_CPU: f64 = 0.02;
/// Body chunks generated ahead of the socket.
const READ_AHEAD: usize = 4;
/// Metadata rows per generated chunk.
const ROWS_PER_CHUNK: usize = 256;
/// Every how many images one is a `char` (the rest are `clothes`), and one is a favourite.
const CHAR_EVERY: usize = 4;
const FAVORITE_EVERY: usize = 20;
/// 2025-06-25 14:30:00 UTC, when the newest image of a collection was saved.
const NEWEST_SAVED: i64 = 1_750_861_800;

fn main() {
    let args = <Args as clap::Parser>::parse();
    // reqwest is built without a default TLS provider; it wants one even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let commit = spawned::commit();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("imgvault whole-collection sync bench — commit {commit}, nproc {nproc}");

    let jpegs = Arc::new(Jpegs::make(args.size_kb, args.variants));
    println!(
        "{} noise JPEGs {}x{} at quality {}, {:.1}-{:.1} KB, for ~{} KB",
        jpegs.variants.len(),
        jpegs.width,
        jpegs.height,
        jpegs.quality,
        jpegs.variants.iter().map(Vec::len).min().unwrap_or(0) as f64 / 1e3,
        jpegs.variants.iter().map(Vec::len).max().unwrap_or(0) as f64 / 1e3,
        args.size_kb
    );
    let hub = Server::start("hub");
    println!("hub {} (pid {})", hub.base, hub.spawned.pid());

    let sizes: Vec<u64> = [args.small_mb, args.mb]
        .into_iter()
        .filter(|&mb| mb > 0)
        .collect();
    let mut runs = Vec::new();
    for mb in sizes {
        runs.push(runtime.block_on(run(mb, &jpegs, &hub)));
    }
    let warnings = hub.spawned.log_counts().1;
    let exit = hub.stop();
    let bench_peak = own_peak_rss_mib();

    let doc = json!({
        "commit": commit,
        "nproc": nproc,
        "args": {"mb": args.mb, "small_mb": args.small_mb, "size_kb": args.size_kb,
                 "variants": args.variants},
        "jpeg": {"width": jpegs.width, "height": jpegs.height, "quality": jpegs.quality,
                 "variant_bytes": jpegs.variants.iter().map(Vec::len).collect::<Vec<_>>()},
        "content_length": true,
        "runs": runs.iter().map(Run::json).collect::<Vec<_>>(),
        "bench_peak_rss_mib": bench_peak,
        "hub": {"warn_or_error_lines": warnings, "exit": exit.1},
    });
    print_table(&args, &jpegs, &runs, bench_peak);
    println!("| hub log WARN/ERROR lines | {warnings} |");
    println!("| hub exit on SIGTERM | {} |", exit.1);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sync-stream-bench.json");
    std::fs::create_dir_all(path.parent().expect("parent"))
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("\nwrote {}", path.display());
    assert!(exit.0, "the hub did not exit cleanly on SIGTERM");
}

/// One body size: a user of its own, its whole collection sent twice.
async fn run(mb: u64, jpegs: &Arc<Jpegs>, hub: &Server) -> Run {
    let local_id = uuid::Uuid::new_v4().to_string();
    let username = format!("stream{}", &local_id[..8]);
    let client = http_client();
    let registered = call(
        client
            .post(format!("{}/api/register", hub.base))
            .json(&json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
                "local_user_id": local_id,
            })),
    )
    .await;
    assert!(
        registered["success"] == true && registered["cloud_user_id"] == local_id.as_str(),
        "register with local_user_id {local_id}: {registered}"
    );
    let login = call(
        client
            .post(format!("{}/api/login", hub.base))
            .json(&json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(login["success"], true, "login: {login}");

    let collection = Arc::new(Collection::sized(
        mb * 1_000_000,
        jpegs.clone(),
        local_id.clone(),
        username,
    ));
    let n = collection.images as u64;
    println!(
        "\n{mb} MB: {n} images, {:.1} MB of JPEGs, user {local_id}",
        collection.image_bytes() as f64 / 1e6
    );
    let url = format!("{}/api/sync/user/{local_id}", hub.base);
    let mut first = send(&client, &url, hub, &collection, false).await;
    assert_eq!(first.stored, n, "first send: {first:?}");
    assert_eq!(first.received_files, n, "first send: {first:?}");
    first.listed_total = listed_total(&client, &hub.base).await;
    assert_eq!(first.listed_total, n, "listed total after the first send");
    println!(
        "  first send:  {:.2} s, {:.1} MB/s, hub peak {:.0} MiB ({:.0} MiB until idle)",
        first.seconds,
        first.body_bytes as f64 / 1e6 / first.seconds,
        first.peak_reply_mib,
        first.peak_idle_mib
    );
    let mut second = send(&client, &url, hub, &collection, true).await;
    assert_eq!(second.stored, 0, "second send stored something: {second:?}");
    assert_eq!(second.received_files, 0, "second send: {second:?}");
    second.listed_total = listed_total(&client, &hub.base).await;
    assert_eq!(second.listed_total, n, "listed total after the second send");
    println!(
        "  second send: {:.2} s, {:.1} MB/s, hub peak {:.0} MiB",
        second.seconds,
        second.body_bytes as f64 / 1e6 / second.seconds,
        second.peak_reply_mib
    );
    Run {
        mb,
        images: n,
        image_bytes: collection.image_bytes(),
        first,
        second,
    }
}

/// `total` of the caller's image list.
async fn listed_total(client: &reqwest::Client, base: &str) -> u64 {
    let list = call(client.get(format!("{base}/api/user/images?per_page=1"))).await;
    list["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total in {list}"))
}

// ---------------------------------------------------------------------------------------------
// Command line

/// A hub reading the original project's whole-collection sync request as a stream: time, memory,
/// and a second send that stores nothing.
#[derive(clap::Parser)]
#[command(
    bin_name = "cargo bench --bench sync_stream --",
    after_help = "Environment: IMGVAULT_BIN, the binary under test (default: this crate's release build)"
)]
struct Args {
    /// Size of the large request body in MB of 10^6 bytes, about.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    mb: u64,
    /// Size of the smaller body sent first, for comparison; 0 skips it.
    #[arg(long, default_value_t = 64)]
    small_mb: u64,
    /// Size of each JPEG in KB of 1000 bytes, about; the hub takes files of at most 10 MiB.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=9_000))]
    size_kb: u64,
    /// Noise JPEGs made at start, cycled under unique COM segments.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    variants: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

// ---------------------------------------------------------------------------------------------
// Test images

/// The noise JPEGs every image of a collection is one of, all of one size and quality.
struct Jpegs {
    width: u32,
    height: u32,
    quality: u8,
    variants: Vec<Vec<u8>>,
}

impl Jpegs {
    /// 640×480 for 250 KB, scaled by area for other sizes, at the quality whose first variant
    /// comes closest to `size_kb` (as `benches/sync.rs` calibrates); then `count` variants.
    fn make(size_kb: u64, count: u64) -> Self {
        let target = size_kb as usize * 1000;
        let scale = (size_kb as f64 / 250.0).sqrt();
        let side = |base: f64| ((base * scale / 8.0).round() as u32).max(2) * 8;
        let (width, height) = (side(640.0), side(480.0));
        let pixels = pixels(width, height, 0);
        let size = |quality: u8| encode(width, height, quality, &pixels).len();
        // Largest quality that still fits (size grows with quality), or the next if closer.
        let (mut lo, mut hi) = (1u8, 100u8);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if size(mid) <= target {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo < 100 && size(lo + 1).abs_diff(target) < size(lo).abs_diff(target) {
            lo += 1;
        }
        let variants = (0..count)
            .map(|seed| encode(width, height, lo, &pixels_of(width, height, seed, &pixels)))
            .collect();
        Self {
            width,
            height,
            quality: lo,
            variants,
        }
    }
}

/// Variant 0 reuses the calibration's pixels.
fn pixels_of(width: u32, height: u32, seed: u64, first: &[u8]) -> Vec<u8> {
    match seed {
        0 => first.to_vec(),
        _ => pixels(width, height, seed),
    }
}

/// A gradient under per-pixel noise from a seeded PRNG (as `benches/sync.rs` makes them).
fn pixels(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let w = width as usize;
    let mut pixels = vec![0u8; w * height as usize * 3];
    rng.fill_bytes(&mut pixels);
    for (i, p) in pixels.iter_mut().enumerate() {
        let (x, y, channel) = ((i / 3) % w, i / 3 / w, i % 3);
        *p = (((x + y * 2 + channel * 80) / 8) as u8).wrapping_add(*p / 2);
    }
    pixels
}

fn encode(width: u32, height: u32, quality: u8, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(pixels, width, height, image::ExtendedColorType::Rgb8)
        .expect("encode JPEG");
    out
}

// ---------------------------------------------------------------------------------------------
// The collection and its body

/// One user's collection as the original local server knows it; its images are made one at a
/// time, when the body reaches them.
struct Collection {
    images: usize,
    jpegs: Arc<Jpegs>,
    local_id: String,
    username: String,
}

/// One row of `images_metadata` (`get_user_images`): the 15 keys in the original's order.
#[derive(Serialize)]
struct ImageRow {
    id: String,
    user_id: String,
    filename: String,
    original_url: Option<String>,
    page_url: Option<String>,
    page_title: Option<String>,
    saved_at: String,
    file_size: u64,
    image_width: u32,
    image_height: u32,
    context_info: ContextInfo,
    status: &'static str,
    cloud_synced: bool,
    category: &'static str,
    /// `None` in a `favorites_data` row, which has it at the end instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    is_favorited: Option<bool>,
}

/// The page's `imageContext` plus `category`, as the extension sends it.
#[derive(Serialize)]
struct ContextInfo {
    alt: String,
    title: String,
    width: u32,
    height: u32,
    category: &'static str,
}

/// A `favorites_data` row (`get_user_favorites`): the image's keys, then the favourite's.
#[derive(Serialize)]
struct FavoriteRow {
    #[serde(flatten)]
    image: ImageRow,
    favorited_at: String,
    is_favorited: bool,
}

#[derive(Serialize)]
struct UserInfo<'a> {
    user_id: &'a str,
    username: &'a str,
    email: String,
    created_at: &'static str,
    last_login: &'static str,
    cloud_sync_enabled: bool,
}

#[derive(Serialize)]
struct VtonRecord {
    id: String,
    user_id: String,
    human_image: String,
    garment_image: String,
    result_image: String,
    result_image_id: Option<String>,
    parameters: VtonParameters,
    processing_time: f64,
    created_at: String,
}

#[derive(Serialize)]
struct VtonParameters {
    auto_mask: bool,
    auto_crop: bool,
    denoise_steps: u32,
    seed: u32,
}

#[derive(Serialize)]
struct SyncStatistics {
    total_metadata_records: u64,
    total_files_found: u64,
    total_files_missing: u64,
    total_size: u64,
    categories: Vec<&'static str>,
    categories_stats: Ordered,
    vton_history_count: u64,
    favorites_count: u64,
}

/// A JSON object whose keys keep their order.
struct Ordered(Vec<(&'static str, u64)>);

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

const VTON_RECORDS: usize = 2;
const DATA_URL_PREFIX: &str = "data:image/jpeg;base64,";

impl Collection {
    /// As many images as make a first body of about `body_bytes`.
    fn sized(body_bytes: u64, jpegs: Arc<Jpegs>, local_id: String, username: String) -> Self {
        let mut collection = Self {
            images: 1,
            jpegs,
            local_id,
            username,
        };
        let one = collection.body_len(false);
        let per_image = collection.metadata_row(0, false).len() as u64
            + 2
            + collection.file_piece_len(0) as u64
            + 2;
        collection.images = (1 + body_bytes.saturating_sub(one) / per_image) as usize;
        collection
    }

    fn category(i: usize) -> &'static str {
        if i % CHAR_EVERY == CHAR_EVERY - 1 {
            "char"
        } else {
            "clothes"
        }
    }

    /// Rows are in the original's order, newest first: image `i` was saved `i` minutes before
    /// the newest.
    fn saved_at(i: usize) -> i64 {
        NEWEST_SAVED - 60 * i as i64
    }

    /// A uuid4 derived from the user's id and `i`: the same in both sends, unique to the user.
    fn image_id(&self, i: usize) -> String {
        self.derived_uuid("image", i)
    }

    fn derived_uuid(&self, kind: &str, i: usize) -> String {
        let digest = blake3::hash(format!("{}/{kind}/{i}", self.local_id).as_bytes());
        let bytes: [u8; 16] = digest.as_bytes()[..16].try_into().expect("16 bytes");
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn filename(&self, i: usize) -> String {
        let stamp = format_time(Self::saved_at(i), "%Y%m%d_%H%M%S");
        format!(
            "{}_{stamp}_{}.jpg",
            Self::category(i),
            &self.image_id(i)[..8]
        )
    }

    /// The unique COM segment of image `i`: `FF FE`, its length, then text of a fixed length.
    fn comment(&self, i: usize) -> Vec<u8> {
        let text = format!("imgvault sync_stream {} image {i:010}", self.local_id);
        let mut segment = vec![0xFF, 0xFE];
        segment.extend_from_slice(&(text.len() as u16 + 2).to_be_bytes());
        segment.extend_from_slice(text.as_bytes());
        segment
    }

    fn variant(&self, i: usize) -> &[u8] {
        let variants = &self.jpegs.variants;
        &variants[i % variants.len()]
    }

    fn file_size(&self, i: usize) -> u64 {
        (self.variant(i).len() + self.comment(i).len()) as u64
    }

    /// Image `i`'s file: its variant with its comment right after the SOI marker.
    fn file(&self, i: usize) -> Vec<u8> {
        let variant = self.variant(i);
        assert_eq!(&variant[..2], [0xFF, 0xD8], "a JPEG starts with SOI");
        let comment = self.comment(i);
        let mut file = Vec::with_capacity(variant.len() + comment.len());
        file.extend_from_slice(&variant[..2]);
        file.extend_from_slice(&comment);
        file.extend_from_slice(&variant[2..]);
        file
    }

    fn image_bytes(&self) -> u64 {
        (0..self.images).map(|i| self.file_size(i)).sum()
    }

    fn row(&self, i: usize, synced: bool, in_favorites: bool) -> ImageRow {
        let category = Self::category(i);
        let favorite = i % FAVORITE_EVERY == 0;
        let from_web = category == "clothes";
        ImageRow {
            id: self.image_id(i),
            user_id: self.local_id.clone(),
            filename: self.filename(i),
            original_url: from_web.then(|| format!("https://shop.example.com/media/{i}.jpg")),
            page_url: from_web.then(|| format!("https://shop.example.com/item/{i}")),
            page_title: Some(format!("商品 {i} - 示例商店")),
            saved_at: format_time(Self::saved_at(i), "%Y-%m-%d %H:%M:%S"),
            file_size: self.file_size(i),
            image_width: self.jpegs.width,
            image_height: self.jpegs.height,
            context_info: ContextInfo {
                alt: format!("product photo {i}"),
                title: String::new(),
                width: self.jpegs.width,
                height: self.jpegs.height,
                category,
            },
            status: "saved",
            cloud_synced: synced,
            category,
            is_favorited: (!in_favorites).then_some(favorite),
        }
    }

    /// `images_metadata[i]` as JSON text.
    fn metadata_row(&self, i: usize, synced: bool) -> Vec<u8> {
        python_json(&self.row(i, synced, false))
    }

    /// `"<filename>": "data:image/jpeg;base64,`, the base64 of the file, and `"`.
    fn file_piece(&self, i: usize) -> Vec<u8> {
        let file = self.file(i);
        let mut piece = python_json(&self.filename(i));
        piece.extend_from_slice(b": \"");
        piece.extend_from_slice(DATA_URL_PREFIX.as_bytes());
        let start = piece.len();
        piece.resize(start + base64_len(file.len() as u64) as usize, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(&file, &mut piece[start..])
            .expect("base64 fits");
        assert_eq!(start + written, piece.len());
        piece.push(b'"');
        piece
    }

    /// The length of `file_piece(i)`, without making the file.
    fn file_piece_len(&self, i: usize) -> usize {
        python_json(&self.filename(i)).len()
            + 3
            + DATA_URL_PREFIX.len()
            + base64_len(self.file_size(i)) as usize
            + 1
    }

    /// Everything before the first metadata row.
    fn head(&self) -> Vec<u8> {
        let mut out = b"{\"user_info\": ".to_vec();
        out.extend(python_json(&UserInfo {
            user_id: &self.local_id,
            username: &self.username,
            email: format!("{}@example.com", self.username),
            created_at: "2025-06-01 08:00:00",
            last_login: "2025-06-25 14:35:00",
            cloud_sync_enabled: false,
        }));
        out.extend_from_slice(b", \"images_metadata\": [");
        out
    }

    /// Everything after the last file.
    fn tail(&self, synced: bool) -> Vec<u8> {
        let favorites: Vec<FavoriteRow> = (0..self.images)
            .filter(|i| i % FAVORITE_EVERY == 0)
            .map(|i| FavoriteRow {
                image: self.row(i, synced, true),
                favorited_at: format_time(Self::saved_at(i) + 30, "%Y-%m-%d %H:%M:%S"),
                is_favorited: true,
            })
            .collect();
        let vton: Vec<VtonRecord> = (0..VTON_RECORDS.min(self.images))
            .map(|k| VtonRecord {
                id: self.derived_uuid("vton", k),
                user_id: self.local_id.clone(),
                human_image: self.filename(CHAR_EVERY - 1),
                garment_image: self.filename(k * CHAR_EVERY),
                result_image: format!("vton_result_20250625_1432{k:02}_{k:08}.png"),
                result_image_id: None,
                parameters: VtonParameters {
                    auto_mask: true,
                    auto_crop: false,
                    denoise_steps: 30,
                    seed: 42,
                },
                processing_time: 12.5,
                created_at: format_time(NEWEST_SAVED + 120 + k as i64, "%Y-%m-%d %H:%M:%S"),
            })
            .collect();
        let mut stats: Vec<(&'static str, u64)> = Vec::new();
        for i in 0..self.images {
            let category = Self::category(i);
            match stats.iter_mut().find(|(c, _)| *c == category) {
                Some((_, n)) => *n += 1,
                None => stats.push((category, 1)),
            }
        }
        let statistics = SyncStatistics {
            total_metadata_records: self.images as u64,
            total_files_found: self.images as u64,
            total_files_missing: 0,
            total_size: self.image_bytes(),
            categories: stats.iter().map(|(c, _)| *c).collect(),
            categories_stats: Ordered(stats),
            vton_history_count: vton.len() as u64,
            favorites_count: favorites.len() as u64,
        };
        // `datetime.now().isoformat()`: local naive time with microseconds. A fixed value keeps
        // the two sends' lengths computable; each send's differs (the second is a second later).
        let stamp = format!(
            "{}.123456",
            format_time(NEWEST_SAVED + 300 + synced as i64, "%Y-%m-%dT%H:%M:%S")
        );
        let mut out = b"}, \"vton_history\": ".to_vec();
        out.extend(python_json(&vton));
        out.extend_from_slice(b", \"favorites_data\": ");
        out.extend(python_json(&favorites));
        out.extend_from_slice(b", \"sync_timestamp\": ");
        out.extend(python_json(&stamp));
        out.extend_from_slice(b", \"sync_statistics\": ");
        out.extend(python_json(&statistics));
        out.push(b'}');
        out
    }

    /// The body's pieces in order, each made when it is asked for.
    fn pieces(self: &Arc<Self>, synced: bool) -> Pieces {
        Pieces {
            collection: self.clone(),
            synced,
            stage: Stage::Head,
        }
    }

    /// The exact length of a body, the files' base64 counted, not made.
    fn body_len(&self, synced: bool) -> u64 {
        let head = self.head().len();
        let rows: usize = (0..self.images)
            .map(|i| self.metadata_row(i, synced).len())
            .sum();
        let files: usize = (0..self.images).map(|i| self.file_piece_len(i)).sum();
        let separators = 2 * 2 * self.images.saturating_sub(1);
        let between = b"], \"image_files\": {".len();
        (head + rows + between + files + separators + self.tail(synced).len()) as u64
    }
}

enum Stage {
    Head,
    Rows(usize),
    Files(usize),
    Tail,
    Done,
}

/// A body's pieces, made as they are asked for.
struct Pieces {
    collection: Arc<Collection>,
    synced: bool,
    stage: Stage,
}

impl Iterator for Pieces {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let c = &self.collection;
        let n = c.images;
        let out = match self.stage {
            Stage::Head => {
                self.stage = Stage::Rows(0);
                c.head()
            }
            Stage::Rows(from) => {
                let to = (from + ROWS_PER_CHUNK).min(n);
                let mut out = Vec::new();
                for i in from..to {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend(c.metadata_row(i, self.synced));
                }
                if to == n {
                    out.extend_from_slice(b"], \"image_files\": {");
                    self.stage = Stage::Files(0);
                } else {
                    self.stage = Stage::Rows(to);
                }
                out
            }
            Stage::Files(i) => {
                self.stage = if i + 1 == n {
                    Stage::Tail
                } else {
                    Stage::Files(i + 1)
                };
                let mut out = Vec::new();
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend(c.file_piece(i));
                out
            }
            Stage::Tail => {
                self.stage = Stage::Done;
                c.tail(self.synced)
            }
            Stage::Done => return None,
        };
        Some(out)
    }
}

fn base64_len(bytes: u64) -> u64 {
    bytes.div_ceil(3) * 4
}

/// Seconds since the epoch in UTC, formatted.
fn format_time(seconds: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .expect("a valid time")
        .format(format)
        .to_string()
}

/// `value` as Python's `json.dumps` writes it: `", "` and `": "`, non-ASCII as `\uXXXX`.
fn python_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer).expect("serialize");
    out
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// What one send of a whole collection did.
#[derive(Debug)]
struct Send {
    body_bytes: u64,
    seconds: f64,
    /// From the bench's last body byte handed to the connection to the reply.
    after_last_byte_s: f64,
    hub_cpu_s: f64,
    /// The hub's RSS when its peak was reset, its peak at the reply, its peak once idle again.
    rss_before_mib: f64,
    peak_reply_mib: f64,
    peak_idle_mib: f64,
    /// Seconds until the hub was idle after the reply (its thumbnails made).
    idle_s: f64,
    saved_files: u64,
    failed_files: u64,
    accepted: u64,
    stored: u64,
    received_files: u64,
    received_bytes: u64,
    status: String,
    /// `total` of `GET /api/user/images?per_page=1` afterwards.
    listed_total: u64,
}

impl Send {
    fn json(&self) -> Value {
        json!({
            "body_bytes": self.body_bytes,
            "seconds": self.seconds,
            "body_mb_per_s": self.body_bytes as f64 / 1e6 / self.seconds,
            "after_last_byte_s": self.after_last_byte_s,
            "hub_cpu_s": self.hub_cpu_s,
            "hub_rss_mib": {"at_reset": self.rss_before_mib, "peak_at_reply": self.peak_reply_mib,
                            "peak_until_idle": self.peak_idle_mib},
            "idle_after_s": self.idle_s,
            "sync_result": {"saved_files": self.saved_files, "failed_files": self.failed_files,
                            "status": self.status},
            "accepted": self.accepted,
            "stored": self.stored,
            "received_files": self.received_files,
            "received_bytes": self.received_bytes,
            "listed_total": self.listed_total,
        })
    }
}

/// Sends the whole collection once, as the original does, and checks the answer.
async fn send(
    client: &reqwest::Client,
    url: &str,
    hub: &Server,
    collection: &Arc<Collection>,
    synced: bool,
) -> Send {
    let n = collection.images as u64;
    let length = collection.body_len(synced);
    // Generated by a thread of its own, READ_AHEAD pieces ahead of the connection.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(READ_AHEAD);
    let pieces = collection.pieces(synced);
    let generator = std::thread::spawn(move || {
        for bytes in pieces {
            if tx.blocking_send(bytes).is_err() {
                return;
            }
        }
    });
    let sent = Arc::new(AtomicU64::new(0));
    let last_byte: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    // The connection stops asking once it has sent Content-Length bytes: the last piece is the
    // one that reaches it.
    let stream = futures_util::stream::unfold(
        (rx, sent.clone(), last_byte.clone()),
        move |(mut rx, sent, last_byte)| async move {
            let bytes = rx.recv().await?;
            let so_far = sent.fetch_add(bytes.len() as u64, Ordering::Relaxed) + bytes.len() as u64;
            if so_far >= length {
                *last_byte.lock().expect("lock") = Some(Instant::now());
            }
            Some((Ok::<_, std::io::Error>(bytes), (rx, sent, last_byte)))
        },
    );

    let rss_before = hub.rss_mib();
    assert!(hub.reset_peak_rss(), "cannot reset the hub's peak RSS");
    let cpu_before = hub.cpu_seconds();
    let started = Instant::now();
    let reply = call(
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .header(reqwest::header::USER_AGENT, "python-requests/2.31.0")
            .timeout(SYNC_TIMEOUT)
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let peak_reply = hub.peak_rss_mib();
    let hub_cpu = hub.cpu_seconds() - cpu_before;
    generator.join().expect("body generator");
    let after_last_byte = last_byte
        .lock()
        .expect("lock")
        .map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    assert_eq!(sent.load(Ordering::Relaxed), length, "bytes sent");

    let result = &reply["sync_result"];
    let count = |v: &Value, what: &str| {
        v.as_u64()
            .unwrap_or_else(|| panic!("no {what} in {:.2000}", reply.to_string()))
    };
    let accepted = reply["accepted"].as_array().map_or(0, |a| a.len() as u64);
    let refused = reply["refused"].as_array().map_or(0, |a| a.len());
    let (saved, failed) = (
        count(&result["saved_files"], "saved_files"),
        count(&result["failed_files"], "failed_files"),
    );
    assert!(
        reply["success"] == true
            && saved == n
            && failed == 0
            && accepted == n
            && refused == 0
            && result["total_images"] == n
            && result["status"] == "completed",
        "send of {n} images (cloud_synced {synced}): {:.2000}",
        reply.to_string()
    );
    let idle_s = wait_idle(hub).await;
    let peak_idle = hub.peak_rss_mib();
    Send {
        body_bytes: length,
        seconds,
        after_last_byte_s: after_last_byte,
        hub_cpu_s: hub_cpu,
        rss_before_mib: rss_before,
        peak_reply_mib: peak_reply,
        peak_idle_mib: peak_idle,
        idle_s,
        saved_files: saved,
        failed_files: failed,
        accepted,
        stored: count(&reply["stored"], "stored"),
        received_files: count(&reply["received_files"], "received_files"),
        received_bytes: count(&reply["received_bytes"], "received_bytes"),
        status: result["status"].as_str().unwrap_or_default().to_string(),
        listed_total: 0,
    }
}

/// Waits until the hub spends less than `IDLE_CPU` in an `IDLE_WINDOW` (its thumbnails made);
/// returns the seconds waited. Gives up, saying so, after `IDLE_TIMEOUT`.
async fn wait_idle(hub: &Server) -> f64 {
    let started = Instant::now();
    while started.elapsed() < IDLE_TIMEOUT {
        let before = hub.cpu_seconds();
        tokio::time::sleep(IDLE_WINDOW).await;
        if hub.cpu_seconds() - before < IDLE_CPU {
            return started.elapsed().as_secs_f64();
        }
    }
    eprintln!("warning: the hub was still busy after {IDLE_TIMEOUT:?}");
    started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Report

struct Run {
    mb: u64,
    images: u64,
    image_bytes: u64,
    first: Send,
    second: Send,
}

impl Run {
    fn json(&self) -> Value {
        json!({
            "mb": self.mb,
            "images": self.images,
            "image_bytes": self.image_bytes,
            "first_send": self.first.json(),
            "second_send": self.second.json(),
        })
    }
}

fn print_table(args: &Args, jpegs: &Jpegs, runs: &[Run], bench_peak: f64) {
    println!(
        "\n`cargo bench --bench sync_stream -- --mb {} --small-mb {} --size-kb {} --variants {}`\n",
        args.mb, args.small_mb, args.size_kb, args.variants
    );
    println!(
        "Hub: release binary, defaults (`--memory-mb 200`). JPEGs {}x{} q{}, {} noise variants, \
         each image made unique by a COM segment; body sent with Content-Length.\n",
        jpegs.width,
        jpegs.height,
        jpegs.quality,
        jpegs.variants.len()
    );
    println!(
        "| body | send | body MB | wall s | MB/s | images/s | hub CPU s | hub RSS at reset | \
         hub peak RSS at reply | peak until idle (thumbnails) | saved / failed / accepted / stored | total after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        for (name, s) in [("first", &run.first), ("again", &run.second)] {
            println!(
                "| {} MB, {} images ({:.1} MB of JPEG) | {name} | {:.1} | {:.2} | {:.1} | {:.0} | {:.2} | {:.0} MiB | **{:.0} MiB** | {:.0} MiB ({:.1} s) | {} / {} / {} / {} | {} |",
                run.mb,
                run.images,
                run.image_bytes as f64 / 1e6,
                s.body_bytes as f64 / 1e6,
                s.seconds,
                s.body_bytes as f64 / 1e6 / s.seconds,
                run.images as f64 / s.seconds,
                s.hub_cpu_s,
                s.rss_before_mib,
                s.peak_reply_mib,
                s.peak_idle_mib,
                s.idle_s,
                s.saved_files,
                s.failed_files,
                s.accepted,
                s.stored,
                s.listed_total,
            );
        }
    }
    println!();
    println!("| | figure |\n|---|---|");
    for run in runs {
        println!(
            "| {} MB: second send vs first | {:.1}× faster; the hub answered {:.2} s / {:.2} s after the last body byte |",
            run.mb,
            run.first.seconds / run.second.seconds,
            run.first.after_last_byte_s,
            run.second.after_last_byte_s
        );
    }
    println!("| the bench's own peak RSS | {bench_peak:.0} MiB |");
}

// ---------------------------------------------------------------------------------------------
// The hub and HTTP

/// The imgvault binary on a fresh data file; killed if still running when dropped.
struct Server {
    spawned: Spawned,
    /// `http://127.0.0.1:PORT`
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(name: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join(format!("{name}.redb"));
        let spawned =
            Spawned::start(name, &data, &[], "bench-admin-pw").unwrap_or_else(|e| panic!("{e}"));
        Self {
            base: spawned.base.clone(),
            spawned,
            _dir: dir,
        }
    }

    fn cpu_seconds(&self) -> f64 {
        self.spawned.cpu_seconds()
    }

    fn peak_rss_mib(&self) -> f64 {
        self.spawned.peak_rss_mib()
    }

    fn rss_mib(&self) -> f64 {
        self.spawned.rss_mib()
    }

    fn reset_peak_rss(&self) -> bool {
        self.spawned.reset_peak_rss()
    }

    /// SIGTERM, then a bounded wait (killed after it). Returns (exited cleanly, how).
    fn stop(mut self) -> (bool, String) {
        match self.spawned.stop() {
            Ok(status) => (status.success(), status.to_string()),
            Err(e) => (false, e),
        }
    }
}

/// This process's peak RSS in MiB.
fn own_peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_mib(&s, "VmHWM:"))
        .unwrap_or(f64::NAN)
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("http client")
}

/// Sends a request and returns its JSON answer; panics on anything but 200 with JSON.
async fn call(request: reqwest::RequestBuilder) -> Value {
    let (client, request) = request.build_split();
    let request = request.expect("request");
    let what = format!("{} {}", request.method(), request.url());
    let response = client
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let status = response.status();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the answer: {e}"));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, reqwest::StatusCode::OK, "{what}: {:.300}", text);
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text:.300}"))
}
