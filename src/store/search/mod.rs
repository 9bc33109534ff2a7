//! Search and filters over a user's live images: words in their text, tags, category, saved date,
//! four orders, and the counts (facets) the answer carries beside the page.
//!
//! Words match by substring, because Chinese and Japanese text has no spaces: `连衣裙` is found in
//! `夏季碎花连衣裙`. No index can answer arbitrary substrings in the memory of a Raspberry Pi, and
//! reading every row of a 100,000-image collection from the data file costs about 40 MB of reads
//! per query. So each searching user gets a compact **catalog** in memory (`catalog`): per image its
//! time, size, category, tag ids and folded text, all in a few flat arrays (about 300 bytes an
//! image with typical page titles and URLs: 29 MiB for `benches/search.rs`'s 100,000), with a list
//! of positions per tag and per category. A query walks only its candidates (the rarest of its
//! tags' lists, a date range, or everything for words alone) and runs `memchr::memmem` over
//! their text: at 100,000 images, a word with a tag and a category takes about 0.4 ms, a word
//! alone about 4 ms (every image's text), a tag alone its page (0.05 ms).
//!
//! The catalog is built from `USER_SEARCH`, which holds the folded text of every live image keyed
//! like the time index, so a build is one range read (no record lookups). `add` and `remove` keep
//! that table in step from `images::index_live`, `reindex` after tags or category change in
//! place. Every change but an upload at the newest end bumps the user's search epoch in `META`, in
//! the same transaction; a catalog is used only for a snapshot with its epoch, and then only up to that
//! snapshot's newest row. So the answer is exact for the read snapshot it is paged from. New
//! uploads extend a catalog in place; anything else rebuilds it on the next search (0.2 to 0.3 s
//! at 100,000 images).
//!
//! Memory: the catalogs of all users together stay under a budget (`Store::set_search_budget`, a
//! quarter of `--memory-mb` in the server: 50 MiB by default, about 170,000 images of such text),
//! least recently searched first out; one build runs at a time and makes room as it grows. A
//! user whose catalog alone would pass the budget is searched from `USER_SEARCH` instead (`scan`):
//! slower (a read of every row for words, of the tag's rows for a tag), in constant memory, with
//! the same answers.
//!
//! A listing with none of the new parameters (newest first, at most a category) does not need a
//! catalog: its page comes from the time or category index as before, its category counts from
//! `USER_CATEGORY_COUNTS` and its tag counts from `USER_TAGS` or `USER_CATEGORY_TAGS`.

mod cache;
mod catalog;
mod scan;
mod similar;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use memchr::memmem;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::records::{ImageRecord, Record, SearchRecord, TagRecord, codes};
use super::tables::*;
use super::{Result, Store, StoreError};
use crate::clock::Micros;
use crate::domain::{Category, Tags, UserId};

pub(super) use cache::Catalogs;
pub(super) use similar::HashIndex;
pub use similar::{DuplicatePage, MAX_CLUSTER_DISTANCE, MAX_DISTANCE, Similar};

/// Tags counted in an answer's facets.
pub const FACET_TAGS: usize = 20;

/// The keys of the page's `imageContext` whose text is searched: what the extension sends (`alt`,
/// `title`, `caption`), what other clients of the seed send, and the uploaded file's name.
const CONTEXT_TEXT: [&str; 6] = [
    "alt",
    "title",
    "caption",
    "nearbyText",
    "description",
    "original_filename",
];

/// The order of an answer. Ties (same size) go newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    Largest,
    Smallest,
}

impl Sort {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "newest" => Some(Self::Newest),
            "oldest" => Some(Self::Oldest),
            "largest" => Some(Self::Largest),
            "smallest" => Some(Self::Smallest),
            _ => None,
        }
    }
}

/// Which categories a search keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CategoryFilter {
    #[default]
    Any,
    Only(Category),
    /// A category that does not exist: nothing matches, but the facets still count the rest.
    Nothing,
}

impl CategoryFilter {
    fn keeps(self, category: Category) -> bool {
        match self {
            Self::Any => true,
            Self::Only(only) => only == category,
            Self::Nothing => false,
        }
    }
}

/// A search of one user's live images. Every part is optional: the default is the whole
/// collection, newest first.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Each must be in the image's text (or a tag) as a substring; folded (`text::words`).
    pub words: Vec<String>,
    /// Each must be one of the image's tags.
    pub tags: Tags,
    pub category: CategoryFilter,
    /// Saved at or after, in µs.
    pub from: Option<Micros>,
    /// Saved before, in µs.
    pub until: Option<Micros>,
    pub sort: Sort,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

impl SearchQuery {
    /// Whether the time and category indexes answer it alone, as listings did before search.
    pub fn is_plain(&self) -> bool {
        self.words.is_empty()
            && self.tags.is_empty()
            && self.from.is_none()
            && self.until.is_none()
            && self.sort == Sort::Newest
    }

    fn skip(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.per_page)
    }
}

/// A page of a search with its facets.
#[derive(Debug)]
pub struct SearchPage {
    pub images: Vec<ImageRecord>,
    /// Every match, not just this page.
    pub total: u64,
    pub facets: Facets,
}

/// Counts beside a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facets {
    /// Matches in each category, as if no category were asked for (each tab shows its count), in
    /// `Category::ALL` order.
    pub categories: [(Category, u64); 2],
    /// The most frequent tags among the matches, most frequent first (then in folded order), at
    /// most `FACET_TAGS`, spelled as `USER_TAGS` shows them.
    pub tags: Vec<super::TagCount>,
}

/// Folded tags and how many matches carry each, most first (`top_tags`).
type TagCounts = Vec<(String, u64)>;

/// What `catalog` or `scan` found, before records are read: the page (as positions or ids), the
/// total, and the facets with folded tags.
pub(super) struct Found<V> {
    page: Vec<V>,
    total: u64,
    by_category: [u64; 2],
    tags: TagCounts,
}

impl<V> Found<V> {
    fn nothing() -> Self {
        Self {
            page: Vec::new(),
            total: 0,
            by_category: [0; 2],
            tags: Vec::new(),
        }
    }
}

/// The query as the matchers use it: words ready for `memmem`, the time range closed.
pub(super) struct Prepared<'q> {
    query: &'q SearchQuery,
    finders: Vec<memmem::Finder<'q>>,
    from: Micros,
    until: Micros,
}

impl<'q> Prepared<'q> {
    fn new(query: &'q SearchQuery) -> Self {
        Self {
            query,
            finders: query
                .words
                .iter()
                .map(|w| memmem::Finder::new(w.as_bytes()))
                .collect(),
            from: query.from.unwrap_or(Micros::MIN),
            until: query.until.unwrap_or(Micros::MAX),
        }
    }

    fn has_range(&self) -> bool {
        self.query.from.is_some() || self.query.until.is_some()
    }

    fn in_range(&self, saved_at: Micros) -> bool {
        (self.from..self.until).contains(&saved_at)
    }

    /// Whether every word is in `text`.
    fn text_matches(&self, text: &[u8]) -> bool {
        self.finders.iter().all(|f| f.find(text).is_some())
    }

    /// How many of the answer's first images to keep: the pages before this one and this one.
    fn keep(&self) -> usize {
        usize::try_from(self.query.skip().saturating_add(self.query.per_page)).unwrap_or(usize::MAX)
    }
}

/// An image's place in the answer's order: smaller comes first. `position` is its place in the
/// user's time index (oldest first), so ties and the time orders need no other field.
fn order_key(sort: Sort, position: u32, file_size: u64) -> (u64, u64) {
    let newest_first = u64::from(u32::MAX - position);
    match sort {
        Sort::Newest => (0, newest_first),
        Sort::Oldest => (0, u64::from(position)),
        Sort::Largest => (u64::MAX - file_size, newest_first),
        Sort::Smallest => (file_size, newest_first),
    }
}

/// The first `keep` matches in the answer's order, from matches offered in any order.
struct FirstK<V> {
    keep: usize,
    heap: BinaryHeap<((u64, u64), Slot<V>)>,
}

/// A heap item ordered by its key alone.
struct Slot<V>(V);

impl<V> PartialEq for Slot<V> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<V> Eq for Slot<V> {}
impl<V> PartialOrd for Slot<V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<V> Ord for Slot<V> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<V> FirstK<V> {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            heap: BinaryHeap::new(),
        }
    }

    /// Offers a match; `value` is made only if the match is kept for now.
    fn offer(&mut self, key: (u64, u64), value: impl FnOnce() -> V) {
        if self.heap.len() < self.keep {
            self.heap.push((key, Slot(value())));
        } else if self.heap.peek().is_some_and(|(worst, _)| key < *worst) {
            self.heap.pop();
            self.heap.push((key, Slot(value())));
        }
    }

    /// The page: the kept matches in order, past the first `skip`.
    fn page(self, skip: u64) -> Vec<V> {
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.heap
            .into_sorted_vec()
            .into_iter()
            .skip(skip)
            .map(|(_, Slot(v))| v)
            .collect()
    }
}

/// The `FACET_TAGS` most frequent of `counts`, most frequent first, then in folded order.
fn top_tags<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> TagCounts {
    let mut all: Vec<(Reverse<u64>, &str)> = counts
        .filter(|&(_, n)| n > 0)
        .map(|(tag, n)| (Reverse(n), tag))
        .collect();
    if all.len() > FACET_TAGS {
        all.select_nth_unstable(FACET_TAGS);
        all.truncate(FACET_TAGS);
    }
    all.sort_unstable();
    all.into_iter()
        .map(|(Reverse(n), tag)| (tag.to_string(), n))
        .collect()
}

/// `image`'s key in `USER_SEARCH`.
fn search_key(image: &ImageRecord) -> (&str, Micros, &str) {
    (image.user_id.as_str(), image.saved_at, image.id.as_str())
}

/// Every key of `user`'s rows in `USER_SEARCH`, oldest first.
fn user_range(user: &str) -> std::ops::RangeInclusive<(&str, Micros, &'static str)> {
    (user, Micros::MIN, "")..=(user, Micros::MAX, "\u{10FFFF}")
}

/// What search matches `image` by: its text fields each folded (a word cannot match across two
/// of them: words hold no white space, and a line break parts the fields), its tags folded.
///
/// Stored rows are what this made when they were written, and `check` holds them to what it makes
/// now: a change to which fields it reads or how needs a schema step that rewrites the rows.
pub(super) fn record_of(image: &ImageRecord) -> SearchRecord {
    let mut text = String::new();
    let mut add = |field: &str| {
        if field.trim().is_empty() {
            return;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&crate::text::fold(field));
    };
    if let Some(title) = &image.page_title {
        add(title);
    }
    if let Some(serde_json::Value::Object(context)) = image
        .context_json
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
    {
        for key in CONTEXT_TEXT {
            if let Some(serde_json::Value::String(value)) = context.get(key) {
                add(value);
            }
        }
    }
    for url in [&image.page_url, &image.original_url].into_iter().flatten() {
        add(&readable_url(url));
    }
    SearchRecord {
        category: image.category,
        file_size: image.file_size,
        tags: image.tags.iter().map(|t| crate::text::fold(t)).collect(),
        text,
    }
}

/// `url` with its percent escapes decoded when they decode to UTF-8, so words in a URL's path or
/// query are found as typed (`%E8%BF%9E%E8%A1%A3%E8%A3%99` is `连衣裙`); as it is otherwise.
fn readable_url(url: &str) -> Cow<'_, str> {
    if !url.contains('%') {
        return Cow::Borrowed(url);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = url.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(url),
    }
}

fn epoch_key(user: &str) -> String {
    format!("search_epoch:{user}")
}

/// The user's search epoch as of this snapshot.
fn epoch(meta: &impl ReadableTable<&'static str, u64>, user: &str) -> Result<u64> {
    Ok(meta.get(epoch_key(user).as_str())?.map_or(0, |v| v.value()))
}

/// Marks every catalog of `user` built before this transaction as out of date.
pub(super) fn bump_epoch(tx: &WriteTransaction, user: &str) -> Result<()> {
    let mut meta = tx.open_table(META)?;
    let key = epoch_key(user);
    let next = meta.get(key.as_str())?.map_or(0, |v| v.value()) + 1;
    meta.insert(key.as_str(), next)?;
    Ok(())
}

/// Adds a live image's search row. Only an image added at the newest end of its user's rows (as
/// `paging::before_insert` found) leaves the epoch as it is: catalogs take those in by extending.
pub(super) fn add(tx: &WriteTransaction, image: &ImageRecord, newest_end: bool) -> Result<()> {
    tx.open_table(USER_SEARCH)?
        .insert(search_key(image), record_of(image).encode().as_slice())?;
    if !newest_end {
        bump_epoch(tx, image.user_id.as_str())?;
    }
    Ok(())
}

/// Removes a live image's search row (it is trashed or deleted).
pub(super) fn remove(tx: &WriteTransaction, image: &ImageRecord) -> Result<()> {
    tx.open_table(USER_SEARCH)?.remove(search_key(image))?;
    bump_epoch(tx, image.user_id.as_str())
}

/// Rewrites a live image's search row after a change in place (its tags or category).
pub(super) fn reindex(tx: &WriteTransaction, image: &ImageRecord) -> Result<()> {
    tx.open_table(USER_SEARCH)?
        .insert(search_key(image), record_of(image).encode().as_slice())?;
    bump_epoch(tx, image.user_id.as_str())
}

/// What a read snapshot holds of one user's search rows: the epoch and the newest row's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Snapshot {
    epoch: u64,
    newest: Option<(Micros, String)>,
    /// `Store::hash_generation` read before the snapshot began (0 where no one needs it): every
    /// perceptual hash added before that is in the snapshot.
    hashes: u64,
}

impl Snapshot {
    fn read(tx: &ReadTransaction, user: &str) -> Result<Self> {
        let epoch = epoch(&tx.open_table(META)?, user)?;
        let rows = tx.open_table(USER_SEARCH)?;
        let newest = match rows.range(user_range(user))?.next_back() {
            Some(entry) => {
                let (key, _) = entry?;
                let (_, at, id) = key.value();
                Some((at, id.to_string()))
            }
            None => None,
        };
        Ok(Self {
            epoch,
            newest,
            hashes: 0,
        })
    }
}

impl Store {
    /// Sets the memory the search catalogs of all users may hold together, in bytes. Catalogs
    /// over it are dropped, least recently used first.
    pub fn set_search_budget(&self, bytes: usize) {
        self.catalogs.set_budget(bytes);
    }

    /// Page `query.page` of `user_id`'s live images that match `query`, with the total and the
    /// facets, all from one read snapshot. A query without words, tags, dates or an order other
    /// than newest first reads the indexes and counters alone (see the module docs).
    pub fn search(&self, user_id: &UserId, query: &SearchQuery) -> Result<SearchPage> {
        if query.is_plain() {
            return self.browse(user_id, query);
        }
        let user = user_id.as_str();
        let prepared = Prepared::new(query);
        // A catalog built from a newer snapshot than ours (a change committed in between) cannot
        // answer ours; a fresh snapshot can use it, or rebuilds it.
        for _ in 0..2 {
            let tx = self.read()?;
            let snapshot = Snapshot::read(&tx, user)?;
            let found = self.catalogs.with(&tx, user, &snapshot, |catalog, rows| {
                catalog.find(rows, &prepared)
            })?;
            match found {
                cache::Use::Found(found) => return finish(&tx, user, found),
                cache::Use::Newer => continue,
                cache::Use::TooBig => {
                    let found = scan::find(&tx, user, &prepared)?;
                    return finish(&tx, user, found);
                }
            }
        }
        let tx = self.read()?;
        let found = scan::find(&tx, user, &prepared)?;
        finish(&tx, user, found)
    }

    /// A plain query (`SearchQuery::is_plain`): the page from the time or category index, the
    /// facets from the counters.
    fn browse(&self, user_id: &UserId, query: &SearchQuery) -> Result<SearchPage> {
        let tx = self.read()?;
        let user = user_id.as_str();
        let (images, total) = match query.category {
            CategoryFilter::Nothing => (Vec::new(), 0),
            CategoryFilter::Any => {
                let page = self.list_in(&tx, user_id, None, query.page, query.per_page)?;
                (page.images, page.total)
            }
            CategoryFilter::Only(category) => {
                let page =
                    self.list_in(&tx, user_id, Some(category), query.page, query.per_page)?;
                (page.images, page.total)
            }
        };
        let counts = tx.open_table(USER_CATEGORY_COUNTS)?;
        let mut by_category = [0; 2];
        for category in Category::ALL {
            let code = codes::category::to_code(category);
            by_category[usize::from(code)] = counts.get((user, code))?.map_or(0, |v| v.value());
        }
        let tags = match query.category {
            CategoryFilter::Nothing => Vec::new(),
            CategoryFilter::Any => {
                let mut counted = Vec::new();
                for entry in tx.open_table(USER_TAGS)?.range((user, "")..)? {
                    let (key, value) = entry?;
                    let (owner, folded) = key.value();
                    if owner != user {
                        break;
                    }
                    counted.push((folded.to_string(), TagRecord::decode(value.value())?.count));
                }
                top_tags(counted.iter().map(|(t, n)| (t.as_str(), *n)))
            }
            CategoryFilter::Only(category) => {
                let code = codes::category::to_code(category);
                let mut counted = Vec::new();
                for entry in tx
                    .open_table(USER_CATEGORY_TAGS)?
                    .range((user, code, "")..)?
                {
                    let (key, value) = entry?;
                    let (owner, in_category, folded) = key.value();
                    if owner != user || in_category != code {
                        break;
                    }
                    counted.push((folded.to_string(), value.value()));
                }
                top_tags(counted.iter().map(|(t, n)| (t.as_str(), *n)))
            }
        };
        Ok(SearchPage {
            images,
            total,
            facets: facets(&tx, user, by_category, tags)?,
        })
    }
}

/// The records of a found page and the facets' tags as shown, from the snapshot it was found in.
fn finish(tx: &ReadTransaction, user: &str, found: Found<String>) -> Result<SearchPage> {
    let images = tx.open_table(IMAGES)?;
    let mut page = Vec::with_capacity(found.page.len());
    for id in &found.page {
        let record = images.get(id.as_str())?.ok_or_else(|| {
            StoreError::Corrupt(format!("search index points at missing image {id}"))
        })?;
        page.push(ImageRecord::decode(record.value())?);
    }
    Ok(SearchPage {
        images: page,
        total: found.total,
        facets: facets(tx, user, found.by_category, found.tags)?,
    })
}

/// Facets with each tag spelled as its user first wrote it.
fn facets(
    tx: &ReadTransaction,
    user: &str,
    by_category: [u64; 2],
    tags: TagCounts,
) -> Result<Facets> {
    let shown = tx.open_table(USER_TAGS)?;
    let mut spelled = Vec::with_capacity(tags.len());
    for (folded, count) in tags {
        let tag = match shown.get((user, folded.as_str()))? {
            Some(v) => TagRecord::decode(v.value())?.shown,
            None => folded,
        };
        spelled.push(super::TagCount { tag, count });
    }
    Ok(Facets {
        categories: Category::ALL
            .map(|c| (c, by_category[usize::from(codes::category::to_code(c))])),
        tags: spelled,
    })
}
