//! Capture-workflow benchmark: the store's share of what the extension and the gallery ask of a
//! large collection, in the bench's own process on a real data file (no HTTP).
//!
//! ```text
//! cargo bench --bench capture
//! cargo bench --bench capture -- --size 100000
//! ```
//!
//! One user's collection of `--size` images is written straight into a fresh data file through
//! `Store` (one commit per 1,000). A quarter of the images are captures of bytes another image
//! has too (the same picture saved from another page), so the collection holds 75% as many
//! contents; every image has an original URL of about 90 bytes. Then, median and p99 of 200 calls
//! each: a lookup of 500 SHA-256 hashes and 500 URLs (half of each known), the first and a deep
//! page of `distinct=1` (20 a page; the deep one at offset 10% of the contents), and the sources
//! of an image. Last, the upgrade from schema 10: the file is taken back to what version 10 wrote
//! (no content indexes, blob records without a SHA-256) and opened again, timing the migration
//! step (start-up), then the background pass that hashes every blob (its image bytes here are a
//! few bytes each, so this is the pass's per-blob cost; the hashing itself is timed on 64 MiB).

use std::time::{Duration, Instant};

use imgvault::domain::{BlobHash, Category, ImageId, Sha256, UserId};
use imgvault::media::ImageKind;
use imgvault::store::records::{
    BlobRecord, ImageRecord, Record, TaskRecord, TaskStatus, UserRecord,
};
use imgvault::store::tables::*;
use imgvault::store::{Batch, DEFAULT_CACHE_BYTES, NewImage, Store};
use redb::ReadableTable;

const USER: &str = "bench-user";
const BUILD_BATCH: usize = 1000;

fn bytes_of(i: usize) -> Vec<u8> {
    // Every fourth image is a capture of the bytes of the one before it.
    let content = if i % 4 == 3 { i - 1 } else { i };
    format!("capture bench image {content}").into_bytes()
}

fn url_of(i: usize) -> String {
    format!(
        "https://img.alicdn.example.com/imgextra/i{}/O1CN01{i:08}_!!22000000.jpg",
        i % 4
    )
}

fn build(store: &Store, size: usize) {
    let user = UserRecord {
        user_id: USER.into(),
        username: USER.into(),
        email: format!("{USER}@example.com"),
        password_hash: "x".into(),
        created_at: 1,
        last_login: None,
        cloud_sync_enabled: false,
    };
    store
        .create_user(&user, USER, &format!("{USER}@example.com"))
        .unwrap();
    let mut done = 0;
    while done < size {
        let n = BUILD_BATCH.min(size - done);
        let made: Vec<(ImageRecord, TaskRecord, Vec<u8>)> = (done..done + n)
            .map(|i| {
                let bytes = bytes_of(i);
                let id = ImageId::from(format!("i-{i:08}"));
                let task_id = imgvault::domain::TaskId::from(format!("t-{i:08}"));
                let category = if i % 10 < 7 {
                    Category::Clothes
                } else {
                    Category::Char
                };
                let image = ImageRecord {
                    id: id.clone(),
                    user_id: USER.into(),
                    filename: format!("{category}_{i:08}.jpg"),
                    category,
                    kind: ImageKind::Jpeg,
                    blob: BlobHash::of(&bytes),
                    original_url: Some(url_of(i)),
                    page_url: Some(format!("https://shop.example.com/item/{i}")),
                    page_title: Some(format!("item {i}")),
                    context_json: None,
                    saved_at: 1_700_000_000_000_000 + i as i64 * 1_000_000,
                    file_size: bytes.len() as u64,
                    width: 800,
                    height: 1200,
                    cloud_synced: false,
                    task_id: task_id.clone(),
                    tags: Vec::new(),
                    trashed_at: None,
                    original: None,
                    hub_stale: false,
                };
                let task = TaskRecord {
                    task_id,
                    user_id: USER.into(),
                    image_id: id,
                    // Left pending: no server runs on the file here.
                    status: TaskStatus::Processing,
                    error: None,
                    created_at: 1,
                    updated_at: 1,
                };
                (image, task, bytes)
            })
            .collect();
        let batch = Batch {
            uploads: made
                .iter()
                .map(|(image, task, bytes)| NewImage::plain(image, bytes, task))
                .collect(),
            ..Batch::default()
        };
        for outcome in store.commit(&batch).unwrap() {
            outcome.unwrap();
        }
        done += n;
    }
}

/// Median and p99 of `runs` calls of `f`, in milliseconds.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut took: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(took[runs / 2]), ms(took[(runs * 99).div_ceil(100) - 1]))
}

/// Takes the file back to what schema 10 wrote.
fn back_to_version_10(path: &std::path::Path) {
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut blobs = tx.open_table(BLOBS).unwrap();
        let mut old = Vec::new();
        for entry in blobs.iter().unwrap() {
            let (hash, raw) = entry.unwrap();
            let r = BlobRecord::decode(raw.value()).unwrap();
            let mut v2 = vec![2u8];
            v2.extend(postcard::to_stdvec(&(r.size, r.chunks, r.refs, r.chunk_size)).unwrap());
            old.push((*hash.value(), v2));
        }
        for (hash, v2) in &old {
            blobs.insert(hash, v2.as_slice()).unwrap();
        }
    }
    tx.delete_table(SHA256_BLOBS).unwrap();
    tx.delete_table(SHA256_BACKLOG).unwrap();
    tx.delete_table(USER_CAPTURES).unwrap();
    tx.delete_table(USER_CONTENTS).unwrap();
    tx.delete_table(USER_DISTINCT).unwrap();
    tx.delete_table(USER_CONTENT_COUNTS).unwrap();
    tx.delete_table(USER_URLS).unwrap();
    tx.delete_table(IDEMPOTENCY).unwrap();
    tx.delete_table(IDEMPOTENCY_TIMES).unwrap();
    tx.open_table(META)
        .unwrap()
        .insert("schema_version", 10)
        .unwrap();
    tx.commit().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000usize);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("capture.redb");
    let user = UserId::from(USER);
    {
        let store = Store::open(&path, DEFAULT_CACHE_BYTES).unwrap();
        let started = Instant::now();
        build(&store, size);
        println!(
            "{size} images written in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // Half known (even i), half not (bytes and URLs nobody stored).
        let hashes: Vec<Sha256> = (0..500)
            .map(|k| {
                let i = k * (size / 500);
                if k % 2 == 0 {
                    Sha256::of(&bytes_of(i))
                } else {
                    Sha256::of(format!("unknown {k}").as_bytes())
                }
            })
            .collect();
        let urls: Vec<String> = (0..500)
            .map(|k| {
                let i = k * (size / 500);
                if k % 2 == 0 {
                    url_of(i)
                } else {
                    format!("https://elsewhere.example/{k}.jpg")
                }
            })
            .collect();
        let known = store.lookup(&user, &hashes, &urls).unwrap();
        assert_eq!((known.sha256.len(), known.urls.len()), (250, 250));
        let (p50, p99) = time(200, || {
            store.lookup(&user, &hashes, &urls).unwrap();
        });
        println!("lookup, 500 hashes + 500 URLs: p50 {p50:.2} ms, p99 {p99:.2} ms");
        let first = store.list_contents(&user, None, 1, 20).unwrap();
        let contents = first.total;
        assert_eq!(contents as usize, size - size / 4);
        let (p50, p99) = time(200, || {
            store.list_contents(&user, None, 1, 20).unwrap();
        });
        println!("distinct=1 page 1 of {contents} contents: p50 {p50:.2} ms, p99 {p99:.2} ms");
        let deep = contents / 10 / 20;
        let (p50, p99) = time(200, || {
            store.list_contents(&user, None, deep, 20).unwrap();
        });
        println!(
            "distinct=1 page {deep} (offset {}): p50 {p50:.2} ms, p99 {p99:.2} ms",
            deep * 20
        );
        let (p50, p99) = time(200, || {
            store
                .list_contents(&user, Some(Category::Char), 1, 20)
                .unwrap();
        });
        println!("distinct=1&category=char page 1: p50 {p50:.2} ms, p99 {p99:.2} ms");
        let image = store.image(&"i-00000002".into()).unwrap().unwrap();
        let (p50, p99) = time(200, || {
            assert_eq!(store.sources(&image).unwrap().len(), 2);
        });
        println!("sources of an image: p50 {p50:.2} ms, p99 {p99:.2} ms");
    }

    back_to_version_10(&path);
    let started = Instant::now();
    let store = Store::open(&path, DEFAULT_CACHE_BYTES).unwrap();
    println!(
        "migration 10 -> 11 at {size} images (content indexes, backlog): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let backlog = store.sha256_backlog().unwrap();
    let started = Instant::now();
    while store.hash_backlog().unwrap() > 0 {}
    println!(
        "background SHA-256 pass over {backlog} blobs: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let buffer = vec![7u8; 64 * 1024 * 1024];
    let started = Instant::now();
    std::hint::black_box(Sha256::of(&buffer));
    let secs = started.elapsed().as_secs_f64();
    println!(
        "SHA-256 (ring) on this machine: {:.0} MB/s",
        64.0 * 1.048_576 / secs
    );
    let report = store.check().unwrap();
    assert!(
        report.is_clean(),
        "{} problems, first {:?}",
        report.problems.len(),
        report.problems.first()
    );
}
