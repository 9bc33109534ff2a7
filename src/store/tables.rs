//! Every table of the data file, declared once. The layout is part of the on-disk format: a change
//! here needs a schema version bump and a step in `migrate`.
//!
//! Records are stored as versioned bytes (see `records`); keys are plain redb types so that ranges
//! and ordering come from redb itself.

use redb::TableDefinition;

use crate::clock::Micros;

/// `schema_version`, `total_images`: small facts about the whole file.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// user_id → `UserRecord`.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// lower-cased username → user_id: the uniqueness constraint and the login lookup.
pub const USERNAMES: TableDefinition<&str, &str> = TableDefinition::new("usernames");
/// lower-cased email → user_id.
pub const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("emails");
/// user_id → number of images the user owns, kept in step with `USER_IMAGES`.
pub const USER_IMAGE_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("user_image_counts");

/// blake3(session token) → `SessionRecord`. The token itself is never stored.
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");

/// blake3(API key) → `ApiKeyRecord`. The key itself is never stored.
pub const API_KEYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("api_keys");
/// (user_id, key id) → blake3(API key): a user's keys, for listing and revoking them by id.
pub const USER_API_KEYS: TableDefinition<(&str, &str), &[u8; 32]> =
    TableDefinition::new("user_api_keys");

/// image_id → `ImageRecord`.
pub const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// (user_id, filename) → image_id: how the file routes find an image.
pub const IMAGE_NAMES: TableDefinition<(&str, &str), &str> = TableDefinition::new("image_names");
/// (user_id, saved_at, image_id): a user's images in time order, for paging without reading records.
pub const USER_IMAGES: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("user_images");
/// (user_id, category code, saved_at, image_id): a user's images of one category in time order,
/// kept beside `USER_IMAGES`. The code is `records::codes::category`'s byte.
pub const USER_CATEGORY_IMAGES: TableDefinition<(&str, u8, i64, &str), ()> =
    TableDefinition::new("user_category_images");
/// (user_id, category code) → number of the user's images in that category, kept in step with
/// `USER_CATEGORY_IMAGES`; absent when zero.
pub const USER_CATEGORY_COUNTS: TableDefinition<(&str, u8), u64> =
    TableDefinition::new("user_category_counts");

/// (user_id, folded tag, saved_at, image_id): a user's images with one tag in time order, for
/// filtering by tag in O(matches). Folded by `text::fold`.
pub const USER_TAG_IMAGES: TableDefinition<(&str, &str, i64, &str), ()> =
    TableDefinition::new("user_tag_images");
/// (user_id, folded tag) → `TagRecord`: how many of the user's images carry it, kept in step with
/// `USER_TAG_IMAGES`; absent when none do. Ordered by folded tag, for autocomplete by prefix.
pub const USER_TAGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("user_tags");

/// (user_id, category code, folded tag) → how many of the user's images in that category carry the
/// tag, kept in step with `USER_TAGS`; absent when none do. For the tag counts of one category's
/// listing without reading its images.
pub const USER_CATEGORY_TAGS: TableDefinition<(&str, u8, &str), u64> =
    TableDefinition::new("user_category_tags");

/// (user_id, saved_at, image_id) → `SearchRecord`: what search matches each live image by, keyed
/// like `USER_IMAGES`, so a user's search catalog is one range read in time order (`store::search`).
pub const USER_SEARCH: TableDefinition<(&str, i64, &str), &[u8]> =
    TableDefinition::new("user_search");

/// (user_id, trashed_at, image_id): a user's trashed images, newest in the trash last. Trashed
/// images are in no other index or count (see `ImageRecord::trashed_at`).
pub const USER_TRASH: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("user_trash");
/// (user_id, image_id) → when it was deleted for good: images the hub holds that are gone here,
/// for the next sync to delete there too. Removed once the hub confirms.
pub const HUB_DELETIONS: TableDefinition<(&str, &str), i64> = TableDefinition::new("hub_deletions");

/// task_id → `TaskRecord`.
pub const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// task_id of every task still `processing`, so start-up resumes them without scanning `TASKS`.
pub const PENDING_TASKS: TableDefinition<&str, ()> = TableDefinition::new("pending_tasks");

/// blob hash → `BlobRecord` (size, chunk count, reference count): the blob facts that change.
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// (blob hash, chunk index) → at most `CHUNK_SIZE` bytes. Written once, never rewritten, so a blob's
/// pages are not copied when its reference count changes.
pub const BLOB_CHUNKS: TableDefinition<(&[u8; 32], u32), &[u8]> =
    TableDefinition::new("blob_chunks");

/// source blob hash → `ThumbRecord`: one thumbnail per distinct image, shared by every record that
/// points at the same bytes. The thumbnail's own bytes are a blob like any other.
pub const THUMBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("thumbs");
/// Source blobs that still need a thumbnail without an upload task waiting for it (images stored
/// before thumbnails existed): drained in the background at start-up.
pub const THUMB_BACKLOG: TableDefinition<&[u8; 32], ()> = TableDefinition::new("thumb_backlog");
/// source blob hash → `PhashRecord`: the perceptual hash of the image the blob holds, made with its
/// thumbnail (from the same decode) and released with it. Blobs with a thumbnail but no hash here
/// (stored before hashes existed, or hashed by an older algorithm) are hashed in the background.
pub const PHASHES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("phashes");
/// Images stored before imgvault read EXIF orientation and colour profiles (schema 7): their
/// recorded sizes may be the stored rather than the shown ones, and their thumbnails were made
/// without colour management. Drained in the background at start-up.
pub const REVISIT: TableDefinition<&str, ()> = TableDefinition::new("revisit");

/// Bytes per blob chunk for new blobs. A chunk and its key must fit a 32 KiB page: redb rounds a
/// leaf up to a power of two, so exactly 32 KiB of value (plus key and header) took a 64 KiB page
/// and data files grew to about 3.2× their payload; 256 bytes less gives about 1.1×.
pub const CHUNK_SIZE: usize = 32 * 1024 - 256;

/// SHA-256 → blake3 key of every blob whose SHA-256 is known (`BlobRecord::sha256`): how a hash a
/// browser computed finds the blob. Kept by `store::blobs`.
pub const SHA256_BLOBS: TableDefinition<&[u8; 32], &[u8; 32]> =
    TableDefinition::new("sha256_blobs");
/// Blobs images were captured as whose SHA-256 is still to be computed (stored before schema 12):
/// drained in the background at start-up (`Store::hash_backlog`).
pub const SHA256_BACKLOG: TableDefinition<&[u8; 32], ()> = TableDefinition::new("sha256_backlog");

/// The scope byte of the content tables for all of a user's live images; the other scopes are the
/// category codes (`records::codes::category`), for the same indexes within one category.
pub const ALL_SCOPE: u8 = u8::MAX;
/// (user_id, scope, captured blob, saved_at, image_id): a user's live captures of each content
/// (`ImageRecord::captured_blob`), in time order, in the scope of all their images and in that of
/// the image's category. Kept by `store::content`, like the three tables below.
pub const USER_CAPTURES: TableDefinition<(&str, u8, &[u8; 32], Micros, &str), ()> =
    TableDefinition::new("user_captures");
/// (user_id, scope, captured blob) → how many live captures of it the user has in that scope;
/// absent when none.
pub const USER_CONTENTS: TableDefinition<(&str, u8, &[u8; 32]), u64> =
    TableDefinition::new("user_contents");
/// (user_id, scope, saved_at, image_id): the newest live capture of each content in the scope, in
/// time order: the gallery's `distinct=1` pages.
pub const USER_DISTINCT: TableDefinition<(&str, u8, Micros, &str), ()> =
    TableDefinition::new("user_distinct");
/// (user_id, scope) → how many contents the user's live images in the scope hold; absent at zero.
pub const USER_CONTENT_COUNTS: TableDefinition<(&str, u8), u64> =
    TableDefinition::new("user_content_counts");
/// (user_id, URL key) → how many of the user's live images have that original image URL. The key
/// is the URL's bytes up to `store::content::MAX_URL_KEY`, a longer URL's is 0xFF (never in UTF-8)
/// then its blake3 hash, so a key never passes 33 bytes beyond that bound.
pub const USER_URLS: TableDefinition<(&str, &[u8]), u64> = TableDefinition::new("user_urls");

/// (user_id, Idempotency-Key) → `IdempotencyRecord`: the captures stored under a key, for their
/// replays (`store::idempotency`).
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");
/// (created_at, user_id, Idempotency-Key): the keys by age, for purging old ones.
pub const IDEMPOTENCY_TIMES: TableDefinition<(Micros, &str, &str), ()> =
    TableDefinition::new("idempotency_times");

/// The hub session a local login opened, keyed like `SESSIONS` by the local token's hash; the hub's
/// token inside is sealed with a key derived from the local token, which the file never holds.
pub const HUB_SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("hub_sessions");
/// user_id → `HubSyncRecord`: on a hub, the last sync each account received.
pub const HUB_SYNCS: TableDefinition<&str, &[u8]> = TableDefinition::new("hub_syncs");
/// Progress and outcome of cloud-sync tasks (their `TaskRecord` lives in `TASKS`).
pub const SYNC_TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("sync_tasks");

/// The scope of the server-wide statistics in the statistics tables; every other scope is a
/// user id, which is never empty.
pub const SERVER_SCOPE: &str = "";
/// (scope, UTC day: days since 1970-01-01) → `StatsCell`: the scope's live images saved that day
/// and their bytes; absent when none. Kept by `store::stats`, like the three tables below.
pub const STATS_DAYS: TableDefinition<(&str, i32), &[u8]> = TableDefinition::new("stats_days");
/// (scope, category code) → `StatsCell`: the scope's live images in the category.
pub const STATS_CATEGORIES: TableDefinition<(&str, u8), &[u8]> =
    TableDefinition::new("stats_categories");
/// (scope, host of the page URL) → `StatsCell`: the scope's live images captured from pages of
/// the host; at most `stats::MAX_HOSTS` rows per scope.
pub const STATS_HOSTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("stats_hosts");
/// scope → `StatsTotals`.
pub const STATS_TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("stats_totals");

/// Runs `$body` with `$table` bound to each table of the file in turn: the one list of them, for
/// what must meet every table (creating a new file's, copying a backup). A new table goes here.
macro_rules! for_every_table {
    ($table:ident => $body:expr) => {{
        {
            let $table = $crate::store::tables::META;
            $body;
        }
        {
            let $table = $crate::store::tables::USERS;
            $body;
        }
        {
            let $table = $crate::store::tables::USERNAMES;
            $body;
        }
        {
            let $table = $crate::store::tables::EMAILS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_IMAGE_COUNTS;
            $body;
        }
        {
            let $table = $crate::store::tables::SESSIONS;
            $body;
        }
        {
            let $table = $crate::store::tables::API_KEYS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_API_KEYS;
            $body;
        }
        {
            let $table = $crate::store::tables::IMAGES;
            $body;
        }
        {
            let $table = $crate::store::tables::IMAGE_NAMES;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_IMAGES;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CATEGORY_IMAGES;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CATEGORY_COUNTS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_TAG_IMAGES;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_TAGS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CATEGORY_TAGS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_SEARCH;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_TRASH;
            $body;
        }
        {
            let $table = $crate::store::tables::HUB_DELETIONS;
            $body;
        }
        {
            let $table = $crate::store::tables::TASKS;
            $body;
        }
        {
            let $table = $crate::store::tables::PENDING_TASKS;
            $body;
        }
        {
            let $table = $crate::store::tables::BLOBS;
            $body;
        }
        {
            let $table = $crate::store::tables::BLOB_CHUNKS;
            $body;
        }
        {
            let $table = $crate::store::tables::THUMBS;
            $body;
        }
        {
            let $table = $crate::store::tables::THUMB_BACKLOG;
            $body;
        }
        {
            let $table = $crate::store::tables::REVISIT;
            $body;
        }
        {
            let $table = $crate::store::tables::PHASHES;
            $body;
        }
        {
            let $table = $crate::store::tables::HUB_SESSIONS;
            $body;
        }
        {
            let $table = $crate::store::tables::HUB_SYNCS;
            $body;
        }
        {
            let $table = $crate::store::tables::SYNC_TASKS;
            $body;
        }
        {
            let $table = $crate::store::tables::SHA256_BLOBS;
            $body;
        }
        {
            let $table = $crate::store::tables::SHA256_BACKLOG;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CAPTURES;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CONTENTS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_DISTINCT;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_CONTENT_COUNTS;
            $body;
        }
        {
            let $table = $crate::store::tables::USER_URLS;
            $body;
        }
        {
            let $table = $crate::store::tables::IDEMPOTENCY;
            $body;
        }
        {
            let $table = $crate::store::tables::IDEMPOTENCY_TIMES;
            $body;
        }
        {
            let $table = $crate::store::tables::STATS_DAYS;
            $body;
        }
        {
            let $table = $crate::store::tables::STATS_CATEGORIES;
            $body;
        }
        {
            let $table = $crate::store::tables::STATS_HOSTS;
            $body;
        }
        {
            let $table = $crate::store::tables::STATS_TOTALS;
            $body;
        }
    }};
}
pub(crate) use for_every_table;

#[cfg(test)]
mod tests {
    use redb::Value;

    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Keys of the category tables are redb's tuple encoding of their fields (the length of each
    /// string but the last as a varint, then its bytes; the code as one byte; the time as eight
    /// little-endian bytes). These bytes are in data files people keep, so a failure here means
    /// the format changed (a new schema version and a migration), never a new expected value.
    #[test]
    fn category_keys_keep_their_bytes() {
        type IndexKey = (&'static str, u8, i64, &'static str);
        type CountKey = (&'static str, u8);
        // Fails to compile if the tables' key types drift from the ones pinned here.
        let _: (
            &TableDefinition<IndexKey, ()>,
            &TableDefinition<CountKey, u64>,
        ) = (&USER_CATEGORY_IMAGES, &USER_CATEGORY_COUNTS);
        let index = <IndexKey as Value>::as_bytes(&("u1", 1, 1_700_000_000_000_000, "i-1"));
        assert_eq!(hex(index.as_ref()), "0275310100401e18240a0600692d31");
        let count = <CountKey as Value>::as_bytes(&("u1", 0));
        assert_eq!(hex(count.as_ref()), "02753100");
    }

    /// The tag tables' keys, pinned like the category tables' (the folded tag is a string field).
    #[test]
    fn tag_keys_keep_their_bytes() {
        type IndexKey = (&'static str, &'static str, i64, &'static str);
        type CountKey = (&'static str, &'static str);
        let _: (
            &TableDefinition<IndexKey, ()>,
            &TableDefinition<CountKey, &[u8]>,
        ) = (&USER_TAG_IMAGES, &USER_TAGS);
        let index = <IndexKey as Value>::as_bytes(&("u1", "red", 1_700_000_000_000_000, "i-1"));
        // The lengths of the leading variable-width fields come first, then the fields.
        assert_eq!(hex(index.as_ref()), "0203753172656400401e18240a0600692d31");
        let count = <CountKey as Value>::as_bytes(&("u1", "red"));
        assert_eq!(hex(count.as_ref()), "027531726564");
    }

    /// The search tables' keys, pinned like the others.
    #[test]
    fn search_keys_keep_their_bytes() {
        type SearchKey = (&'static str, i64, &'static str);
        type CategoryTagKey = (&'static str, u8, &'static str);
        let _: (
            &TableDefinition<SearchKey, &[u8]>,
            &TableDefinition<CategoryTagKey, u64>,
        ) = (&USER_SEARCH, &USER_CATEGORY_TAGS);
        let search = <SearchKey as Value>::as_bytes(&("u1", 1_700_000_000_000_000, "i-1"));
        assert_eq!(hex(search.as_ref()), "02753100401e18240a0600692d31");
        let counted = <CategoryTagKey as Value>::as_bytes(&("u1", 1, "red"));
        assert_eq!(hex(counted.as_ref()), "02753101726564");
    }

    /// The content and idempotency tables' keys, pinned like the others (a fixed-width field is
    /// its bytes, with no length).
    #[test]
    fn content_keys_keep_their_bytes() {
        type CaptureKey = (&'static str, u8, &'static [u8; 32], i64, &'static str);
        type ContentKey = (&'static str, u8, &'static [u8; 32]);
        type UrlKey = (&'static str, &'static [u8]);
        type KeyKey = (&'static str, &'static str);
        type KeyTime = (i64, &'static str, &'static str);
        let _: &TableDefinition<CaptureKey, ()> = &USER_CAPTURES;
        let _: &TableDefinition<ContentKey, u64> = &USER_CONTENTS;
        let _: &TableDefinition<UrlKey, u64> = &USER_URLS;
        let _: &TableDefinition<KeyKey, &[u8]> = &IDEMPOTENCY;
        let _: &TableDefinition<KeyTime, ()> = &IDEMPOTENCY_TIMES;
        let blob = [7u8; 32];
        let capture =
            <CaptureKey as Value>::as_bytes(&("u1", 255, &blob, 1_700_000_000_000_000, "i-1"));
        assert_eq!(
            hex(capture.as_ref()),
            format!("027531ff{}00401e18240a0600692d31", "07".repeat(32))
        );
        let content = <ContentKey as Value>::as_bytes(&("u1", 1, &blob));
        assert_eq!(
            hex(content.as_ref()),
            format!("02753101{}", "07".repeat(32))
        );
        let url = <UrlKey as Value>::as_bytes(&("u1", b"h:/x".as_slice()));
        assert_eq!(hex(url.as_ref()), "027531683a2f78");
        let key = <KeyKey as Value>::as_bytes(&("u1", "k"));
        assert_eq!(hex(key.as_ref()), "0275316b");
        let time = <KeyTime as Value>::as_bytes(&(5, "u1", "k"));
        // The length of "u1" first (the only variable-width field before the last), then the fields.
        assert_eq!(hex(time.as_ref()), "02050000000000000075316b");
    }

    /// The statistics tables' keys, pinned like the others (the day is four little-endian bytes).
    #[test]
    fn statistics_keys_keep_their_bytes() {
        type DayKey = (&'static str, i32);
        type CategoryKey = (&'static str, u8);
        type HostKey = (&'static str, &'static str);
        let _: &TableDefinition<DayKey, &[u8]> = &STATS_DAYS;
        let _: &TableDefinition<CategoryKey, &[u8]> = &STATS_CATEGORIES;
        let _: &TableDefinition<HostKey, &[u8]> = &STATS_HOSTS;
        let _: &TableDefinition<&str, &[u8]> = &STATS_TOTALS;
        let day = <DayKey as Value>::as_bytes(&("u1", 20_000));
        assert_eq!(hex(day.as_ref()), "027531204e0000");
        let server = <DayKey as Value>::as_bytes(&(SERVER_SCOPE, -1));
        assert_eq!(hex(server.as_ref()), "00ffffffff");
        let category = <CategoryKey as Value>::as_bytes(&("u1", 1));
        assert_eq!(hex(category.as_ref()), "02753101");
        let host = <HostKey as Value>::as_bytes(&("u1", "a.cn"));
        assert_eq!(hex(host.as_ref()), "027531612e636e");
    }

    /// `for_every_table!` names every table declared in this file, so no table is left out of new
    /// files or backups.
    #[test]
    fn every_declared_table_is_in_the_one_list() {
        let declared = include_str!("tables.rs")
            .matches(concat!("TableDefinition", "::new("))
            .count();
        let mut listed = 0;
        for_every_table!(_table => listed += 1);
        assert_eq!(listed, declared);
        assert!(declared >= 20, "the scan found {declared} tables");
    }
}
