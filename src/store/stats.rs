//! The figures of the stats page, kept on write so that a view reads a few hundred small rows
//! however large the collection: per scope (each user, and the server as a whole), live images
//! and their bytes per UTC day saved, per category and per source host, and the totals (live,
//! trash, what deduplication saved, bytes stored).
//!
//! **What a day counts.** The series show what the scope *has*, by the day each image was saved:
//! an image leaves its day when it is trashed or deleted and comes back when restored, and an edit
//! moves the day's bytes to the edited size. People open the page to see their collection, and a
//! chart that still counted what they threw away would disagree with the gallery; it also makes
//! every figure recomputable from the records, so `check` can prove it. The rate "bytes per day"
//! is therefore the growth of what is kept, not of what was captured and later thrown away.
//!
//! All of it is kept where live-image indexes are kept (`images::index_live`, and the category
//! change of `images::Store::batch`), where the trash changes, and where blob reference counts
//! change (`blobs`), inside the same write transaction: the figures cannot drift from the records.
//!
//! **Bounds.** Days are as many as the days images were saved on; categories are an enum. Hosts
//! come from page URLs a client sends, so a hostile client could send millions: a scope keeps at
//! most `MAX_HOSTS` host rows; an image of a new host arriving when they are taken is counted in
//! the scope's `other_hosts` instead. Its removal later takes it from the host's row if there is
//! one (a row may have been freed meanwhile) or else from `other_hosts`, so the rows and
//! `other_hosts` always add up to the live images that have a host, and no row counts more than
//! its host's images. A rebuild (migration, repair) gives the rows to the hosts with the most
//! images.
//!
//! **Deduplication.** A user's figure is the bytes of their live captures of a content they hold
//! another live capture of: what they did not have to store twice. Another user's copy of the same
//! bytes is not counted, or the figure would tell a user what someone else stored. The server's
//! figure is taken from the blobs: every reference after a blob's first would have been stored
//! again without deduplication, whoever holds it.

use std::collections::{BTreeMap, HashMap};

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::records::{BlobRecord, ImageRecord, Record, StatsCell, StatsTotals, codes};
use super::tables::*;
use super::{Result, Store};
use crate::clock::{DAY, Micros};
use crate::domain::{Category, UserId};

/// Most host rows one scope keeps (see the module doc): about 300 KB of rows at most per user.
pub const MAX_HOSTS: u64 = 1000;
/// Longest host kept (DNS names stop at 253 bytes); a longer one counts as no host.
const MAX_HOST_BYTES: usize = 253;

/// The UTC day `at` falls on, as days since 1970-01-01.
pub fn day_of(at: Micros) -> i32 {
    at.div_euclid(DAY).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The host of the page an image was captured from, as counted: lowercase, without a leading
/// `www.` or a trailing dot. `None` without a page URL, or one without a host.
pub fn host_of(page_url: Option<&str>) -> Option<String> {
    let url = url::Url::parse(page_url?.trim()).ok()?;
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    (!host.is_empty() && host.len() <= MAX_HOST_BYTES).then(|| host.to_string())
}

/// The bytes of what `image` was captured as: its original's when edited.
fn captured_size(image: &ImageRecord) -> u64 {
    image
        .original
        .as_ref()
        .map_or(image.file_size, |o| o.file_size)
}

fn cell(image: &ImageRecord) -> StatsCell {
    StatsCell {
        images: 1,
        bytes: image.file_size,
    }
}

/// `to` with `delta` (1 or -1) times `by` added, never below zero.
fn add(to: &mut StatsCell, by: StatsCell, delta: i64) {
    if delta > 0 {
        to.images = to.images.saturating_add(by.images);
        to.bytes = to.bytes.saturating_add(by.bytes);
    } else {
        to.images = to.images.saturating_sub(by.images);
        to.bytes = to.bytes.saturating_sub(by.bytes);
    }
}

fn scopes(image: &ImageRecord) -> [&str; 2] {
    [image.user_id.as_str(), SERVER_SCOPE]
}

fn totals_in(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    scope: &str,
) -> Result<StatsTotals> {
    table.get(scope)?.map_or(Ok(StatsTotals::default()), |v| {
        StatsTotals::decode(v.value())
    })
}

/// Reads the totals of `scope`, lets `change` change them, and writes them back (removed when
/// all zero).
fn change_totals(
    tx: &WriteTransaction,
    scope: &str,
    change: impl FnOnce(&mut StatsTotals),
) -> Result<()> {
    let mut table = tx.open_table(STATS_TOTALS)?;
    let mut totals = totals_in(&table, scope)?;
    change(&mut totals);
    if totals == StatsTotals::default() {
        table.remove(scope)?;
    } else {
        table.insert(scope, totals.encode().as_slice())?;
    }
    Ok(())
}

/// Adds `delta` times `by` to the cell at `key` of `table`, removing it when it reaches zero.
fn bump_cell<K: redb::Key + 'static>(
    table: &mut redb::Table<'_, K, &'static [u8]>,
    key: K::SelfType<'_>,
    by: StatsCell,
    delta: i64,
) -> Result<()>
where
    for<'a> K::SelfType<'a>: Clone,
{
    let mut have = table
        .get(key.clone())?
        .map_or(Ok(StatsCell::default()), |v| StatsCell::decode(v.value()))?;
    add(&mut have, by, delta);
    if have == StatsCell::default() {
        table.remove(key)?;
    } else {
        table.insert(key, have.encode().as_slice())?;
    }
    Ok(())
}

/// Adds (`delta` 1) or takes away (-1) a live image in the statistics of its user and of the
/// server. Called by `images::index_live` only, before `content::index` (the user's
/// deduplication figure reads how many live captures of the content the user had before).
pub(super) fn live(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let user = image.user_id.as_str();
    let had = tx
        .open_table(USER_CONTENTS)?
        .get((user, ALL_SCOPE, &image.captured_blob().0))?
        .map_or(0, |v| v.value());
    let duplicate = if delta > 0 { had >= 1 } else { had >= 2 };
    let one = cell(image);
    let day = day_of(image.saved_at);
    let host = host_of(image.page_url.as_deref());
    let mut days = tx.open_table(STATS_DAYS)?;
    for scope in scopes(image) {
        bump_cell(&mut days, (scope, day), one, delta)?;
        let (rows, other) = match &host {
            Some(host) => count_host(tx, scope, host, one, delta)?,
            None => (0, (0, 0)),
        };
        let dedup = if duplicate && scope != SERVER_SCOPE {
            captured_size(image)
        } else {
            0
        };
        change_totals(tx, scope, |t| {
            add(&mut t.live, one, delta);
            t.hosts = t.hosts.saturating_add_signed(rows);
            t.other_hosts.images = t.other_hosts.images.saturating_add_signed(other.0);
            t.other_hosts.bytes = t.other_hosts.bytes.saturating_add_signed(other.1);
            t.dedup_bytes = if delta > 0 {
                t.dedup_bytes.saturating_add(dedup)
            } else {
                t.dedup_bytes.saturating_sub(dedup)
            };
        })?;
    }
    drop(days);
    category(tx, image, delta)
}

/// Adds (`delta` 1) or takes away (-1) an image of `host` in `scope`'s host rows (see the module
/// doc). Returns the change to the number of rows, and to `other_hosts` (images, bytes).
fn count_host(
    tx: &WriteTransaction,
    scope: &str,
    host: &str,
    one: StatsCell,
    delta: i64,
) -> Result<(i64, (i64, i64))> {
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut table = tx.open_table(STATS_HOSTS)?;
    let row = table
        .get((scope, host))?
        .map(|v| StatsCell::decode(v.value()))
        .transpose()?;
    let rows = totals_in(&tx.open_table(STATS_TOTALS)?, scope)?.hosts;
    Ok(match (row, delta > 0) {
        (Some(mut row), true) => {
            add(&mut row, one, 1);
            table.insert((scope, host), row.encode().as_slice())?;
            (0, (0, 0))
        }
        (None, true) if rows < MAX_HOSTS => {
            table.insert((scope, host), one.encode().as_slice())?;
            (1, (0, 0))
        }
        (None, true) => (0, (1, signed(one.bytes))),
        (None, false) => (0, (-1, -signed(one.bytes))),
        (Some(mut row), false) => {
            // The image may have been counted in `other_hosts` when the row did not exist: bytes
            // the row lacks come from there, and bytes left in an emptied row go back there.
            let lacking = signed(one.bytes.saturating_sub(row.bytes));
            add(&mut row, one, -1);
            if row.images == 0 {
                table.remove((scope, host))?;
                (-1, (0, signed(row.bytes) - lacking))
            } else {
                table.insert((scope, host), row.encode().as_slice())?;
                (0, (0, -lacking))
            }
        }
    })
}

/// Adds (`delta` 1) or takes away (-1) a live image in the category figures of its user and the
/// server: with `live`, and alone when an image changes category in place.
pub(super) fn category(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    let code = codes::category::to_code(image.category);
    let mut table = tx.open_table(STATS_CATEGORIES)?;
    for scope in scopes(image) {
        bump_cell(&mut table, (scope, code), cell(image), delta)?;
    }
    Ok(())
}

/// Adds (`delta` 1) or takes away (-1) an image in the trash figures of its user and the server.
pub(super) fn trash(tx: &WriteTransaction, image: &ImageRecord, delta: i64) -> Result<()> {
    for scope in scopes(image) {
        change_totals(tx, scope, |t| add(&mut t.trash, cell(image), delta))?;
    }
    Ok(())
}

/// What happened to a blob's reference count, for the server's stored and deduplication figures.
pub(super) enum BlobChange {
    /// A new blob of that many bytes was stored.
    Stored(u64),
    /// A blob of that many bytes got one more reference.
    Shared(u64),
    /// A blob of that many bytes lost one of several references.
    Unshared(u64),
    /// The last reference of a blob of that many bytes went, and the blob with it.
    Released(u64),
}

/// Keeps the server's stored and deduplication figures with a blob's reference count. Called by
/// `blobs` only.
pub(super) fn blob(tx: &WriteTransaction, change: BlobChange) -> Result<()> {
    change_totals(tx, SERVER_SCOPE, |t| match change {
        BlobChange::Stored(n) => t.stored_bytes = t.stored_bytes.saturating_add(n),
        BlobChange::Released(n) => t.stored_bytes = t.stored_bytes.saturating_sub(n),
        BlobChange::Shared(n) => t.dedup_bytes = t.dedup_bytes.saturating_add(n),
        BlobChange::Unshared(n) => t.dedup_bytes = t.dedup_bytes.saturating_sub(n),
    })
}

/// The statistics as the records and blobs make them: what a rebuild writes and what `check`
/// compares with. Host figures are per host, unbounded; `totals` leave `hosts` and `other_hosts`
/// zero (`rows` bounds them).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub days: BTreeMap<(String, i32), StatsCell>,
    pub categories: BTreeMap<(String, u8), StatsCell>,
    pub hosts: BTreeMap<(String, String), StatsCell>,
    pub totals: BTreeMap<String, StatsTotals>,
    /// (user, captured blob) → live captures and the size of one.
    contents: HashMap<(String, [u8; 32]), (u64, u64)>,
}

impl Tally {
    pub fn image(&mut self, image: &ImageRecord) {
        let one = cell(image);
        for scope in scopes(image) {
            let totals = self.totals.entry(scope.to_string()).or_default();
            if image.is_trashed() {
                add(&mut totals.trash, one, 1);
                continue;
            }
            add(&mut totals.live, one, 1);
            let day = (scope.to_string(), day_of(image.saved_at));
            add(self.days.entry(day).or_default(), one, 1);
            let code = codes::category::to_code(image.category);
            add(
                self.categories
                    .entry((scope.to_string(), code))
                    .or_default(),
                one,
                1,
            );
            if let Some(host) = host_of(image.page_url.as_deref()) {
                add(
                    self.hosts.entry((scope.to_string(), host)).or_default(),
                    one,
                    1,
                );
            }
        }
        if !image.is_trashed() {
            let key = (image.user_id.to_string(), image.captured_blob().0);
            let entry = self
                .contents
                .entry(key)
                .or_insert((0, captured_size(image)));
            entry.0 += 1;
        }
    }

    /// A stored blob of `size` bytes with `refs` references.
    pub fn blob(&mut self, size: u64, refs: u64) {
        let server = self.totals.entry(SERVER_SCOPE.to_string()).or_default();
        server.stored_bytes += size;
        server.dedup_bytes += size * refs.saturating_sub(1);
    }

    /// Adds the users' deduplication figures; call once, after every image.
    pub fn finish(mut self) -> Self {
        for ((user, _), (n, size)) in std::mem::take(&mut self.contents) {
            if n > 1 {
                self.totals.entry(user).or_default().dedup_bytes += (n - 1) * size;
            }
        }
        self.totals.retain(|_, t| *t != StatsTotals::default());
        self
    }

    /// The host rows of each scope a rebuild writes: the `MAX_HOSTS` hosts with the most images
    /// (then by name), and the rest summed.
    pub fn rows(&self) -> BTreeMap<String, (Vec<(String, StatsCell)>, StatsCell)> {
        let mut by_scope: BTreeMap<String, Vec<(String, StatsCell)>> = BTreeMap::new();
        for ((scope, host), cell) in &self.hosts {
            by_scope
                .entry(scope.clone())
                .or_default()
                .push((host.clone(), *cell));
        }
        by_scope
            .into_iter()
            .map(|(scope, mut hosts)| {
                hosts.sort_by(|a, b| b.1.images.cmp(&a.1.images).then_with(|| a.0.cmp(&b.0)));
                let mut other = StatsCell::default();
                for (_, cell) in hosts.iter().skip(MAX_HOSTS as usize) {
                    add(&mut other, *cell, 1);
                }
                hosts.truncate(MAX_HOSTS as usize);
                (scope, (hosts, other))
            })
            .collect()
    }
}

/// Empties the statistics tables and builds them again from every image record and blob: one
/// pass, holding a figure per scope and day, category and host, and a count per user and
/// content. What the migration to schema 14 and `repair` run.
pub(super) fn rebuild(tx: &WriteTransaction) -> Result<()> {
    let mut tally = Tally::default();
    for entry in tx.open_table(IMAGES)?.iter()? {
        tally.image(&ImageRecord::decode(entry?.1.value())?);
    }
    for entry in tx.open_table(BLOBS)?.iter()? {
        let record = BlobRecord::decode(entry?.1.value())?;
        tally.blob(record.size, record.refs);
    }
    let tally = tally.finish();
    let mut days = tx.open_table(STATS_DAYS)?;
    let mut categories = tx.open_table(STATS_CATEGORIES)?;
    let mut hosts = tx.open_table(STATS_HOSTS)?;
    let mut totals = tx.open_table(STATS_TOTALS)?;
    days.retain(|_, _| false)?;
    categories.retain(|_, _| false)?;
    hosts.retain(|_, _| false)?;
    totals.retain(|_, _| false)?;
    for ((scope, day), cell) in &tally.days {
        days.insert((scope.as_str(), *day), cell.encode().as_slice())?;
    }
    for ((scope, code), cell) in &tally.categories {
        categories.insert((scope.as_str(), *code), cell.encode().as_slice())?;
    }
    let mut all = tally.totals.clone();
    for (scope, (rows, other)) in tally.rows() {
        for (host, cell) in &rows {
            hosts.insert((scope.as_str(), host.as_str()), cell.encode().as_slice())?;
        }
        let t = all.entry(scope).or_default();
        t.hosts = rows.len() as u64;
        t.other_hosts = other;
    }
    for (scope, t) in &all {
        totals.insert(scope.as_str(), t.encode().as_slice())?;
    }
    Ok(())
}

/// The statistics tables as stored, for `check`.
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub days: BTreeMap<(String, i32), StatsCell>,
    pub categories: BTreeMap<(String, u8), StatsCell>,
    pub hosts: BTreeMap<(String, String), StatsCell>,
    pub totals: BTreeMap<String, StatsTotals>,
}

pub(crate) fn stored(tx: &ReadTransaction) -> Result<Stored> {
    let mut have = Stored::default();
    for entry in tx.open_table(STATS_DAYS)?.iter()? {
        let (key, value) = entry?;
        let (scope, day) = key.value();
        have.days
            .insert((scope.to_string(), day), StatsCell::decode(value.value())?);
    }
    for entry in tx.open_table(STATS_CATEGORIES)?.iter()? {
        let (key, value) = entry?;
        let (scope, code) = key.value();
        have.categories
            .insert((scope.to_string(), code), StatsCell::decode(value.value())?);
    }
    for entry in tx.open_table(STATS_HOSTS)?.iter()? {
        let (key, value) = entry?;
        let (scope, host) = key.value();
        have.hosts.insert(
            (scope.to_string(), host.to_string()),
            StatsCell::decode(value.value())?,
        );
    }
    for entry in tx.open_table(STATS_TOTALS)?.iter()? {
        let (key, value) = entry?;
        have.totals
            .insert(key.value().to_string(), StatsTotals::decode(value.value())?);
    }
    Ok(have)
}

/// What a stats view asks for.
#[derive(Debug, Clone)]
pub struct StatsQuery {
    /// The user whose figures to read; `None` for the server's.
    pub user: Option<UserId>,
    /// The day the series end on (`day_of` now).
    pub today: i32,
    /// How many days the daily series covers, ending on `today`.
    pub days: u32,
    /// How many calendar months the monthly series covers, ending with `today`'s.
    pub months: u32,
    /// How many hosts to name; the rest are summed.
    pub top_hosts: usize,
}

/// The figures of one scope (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// One per day, oldest first, zeros included: `(day, figures)`.
    pub days: Vec<(i32, StatsCell)>,
    /// One per calendar month, oldest first, zeros included: `((year, month), figures)`.
    pub months: Vec<((i32, u32), StatsCell)>,
    /// Every category, most images first.
    pub categories: Vec<(Category, StatsCell)>,
    /// The hosts with the most images, most first.
    pub hosts: Vec<(String, StatsCell)>,
    /// Images with a host not named in `hosts`.
    pub other_hosts: StatsCell,
    /// Live images whose page URL has no host (or that have none).
    pub no_host: StatsCell,
    pub totals: StatsTotals,
    /// Saved in the last 30 days (today included) in this scope, and in the server's.
    pub last_30_days: StatsCell,
    pub server_last_30_days: StatsCell,
}

/// The days the window of `days` days ending on `today` covers.
fn window(today: i32, days: u32) -> std::ops::RangeInclusive<i32> {
    today.saturating_sub(days.max(1) as i32 - 1)..=today
}

fn date_of(day: i32) -> chrono::NaiveDate {
    chrono::DateTime::from_timestamp(day as i64 * 86_400, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

fn day_of_date(date: chrono::NaiveDate) -> i32 {
    (date - chrono::NaiveDate::default()).num_days() as i32
}

/// The first day of the month `back` months before the month of `day`.
fn month_start(day: i32, back: u32) -> chrono::NaiveDate {
    use chrono::Datelike;
    let date = date_of(day);
    let index = date.year() * 12 + date.month0() as i32 - back as i32;
    chrono::NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
        .unwrap_or_default()
}

fn series(
    table: &impl ReadableTable<(&'static str, i32), &'static [u8]>,
    scope: &str,
    days: std::ops::RangeInclusive<i32>,
) -> Result<BTreeMap<i32, StatsCell>> {
    let mut out = BTreeMap::new();
    for entry in table.range((scope, *days.start())..=(scope, *days.end()))? {
        let (key, value) = entry?;
        out.insert(key.value().1, StatsCell::decode(value.value())?);
    }
    Ok(out)
}

impl Store {
    /// The figures of a user or of the server, in one read transaction: the rows of the days and
    /// months asked for, the scope's host rows (at most `MAX_HOSTS`) and a few totals.
    pub fn stats(&self, query: &StatsQuery) -> Result<Stats> {
        use chrono::Datelike;
        let tx = self.read()?;
        let scope = query.user.as_ref().map_or(SERVER_SCOPE, |u| u.as_str());
        let days_table = tx.open_table(STATS_DAYS)?;
        let first_month = month_start(query.today, query.months.max(1) - 1);
        let daily = window(query.today, query.days);
        let from = (*daily.start()).min(day_of_date(first_month));
        let read = series(&days_table, scope, from..=query.today)?;
        let mut stats = Stats {
            days: daily
                .map(|d| (d, read.get(&d).copied().unwrap_or_default()))
                .collect(),
            ..Stats::default()
        };
        let mut months: BTreeMap<(i32, u32), StatsCell> = BTreeMap::new();
        for back in (0..query.months.max(1)).rev() {
            let start = month_start(query.today, back);
            months.insert((start.year(), start.month()), StatsCell::default());
        }
        for (day, cell) in &read {
            let date = date_of(*day);
            if let Some(month) = months.get_mut(&(date.year(), date.month())) {
                add(month, *cell, 1);
            }
        }
        stats.months = months.into_iter().collect();
        let recent = window(query.today, 30);
        for (_, cell) in read.range(recent.clone()) {
            add(&mut stats.last_30_days, *cell, 1);
        }
        stats.server_last_30_days = if scope == SERVER_SCOPE {
            stats.last_30_days
        } else {
            let mut sum = StatsCell::default();
            for cell in series(&days_table, SERVER_SCOPE, recent)?.values() {
                add(&mut sum, *cell, 1);
            }
            sum
        };

        let categories = tx.open_table(STATS_CATEGORIES)?;
        for category in Category::ALL {
            let code = codes::category::to_code(category);
            let cell = categories
                .get((scope, code))?
                .map_or(Ok(StatsCell::default()), |v| StatsCell::decode(v.value()))?;
            stats.categories.push((category, cell));
        }
        stats
            .categories
            .sort_by_key(|c| std::cmp::Reverse(c.1.images));

        stats.totals = totals_in(&tx.open_table(STATS_TOTALS)?, scope)?;
        let mut hosts = Vec::new();
        for entry in tx
            .open_table(STATS_HOSTS)?
            .range((scope, "")..=(scope, "\u{10FFFF}"))?
        {
            let (key, value) = entry?;
            hosts.push((key.value().1.to_string(), StatsCell::decode(value.value())?));
        }
        hosts.sort_by(|a, b| b.1.images.cmp(&a.1.images).then_with(|| a.0.cmp(&b.0)));
        let mut other = stats.totals.other_hosts;
        let mut with_host = stats.totals.other_hosts;
        for (i, (_, cell)) in hosts.iter().enumerate() {
            add(&mut with_host, *cell, 1);
            if i >= query.top_hosts {
                add(&mut other, *cell, 1);
            }
        }
        hosts.truncate(query.top_hosts);
        stats.hosts = hosts;
        stats.other_hosts = other;
        stats.no_host = stats.totals.live;
        add(&mut stats.no_host, with_host, -1);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{add_user, new_image, temp_store};
    use super::super::{BatchAction, NewMedia};
    use super::*;

    fn save(store: &Store, id: &str, owner: &str, day: i64, bytes: &[u8], page: Option<&str>) {
        let (image, task) = new_image(id, owner, day * DAY + 5, bytes);
        let image = ImageRecord {
            page_url: page.map(str::to_string),
            ..image
        };
        store.save_image(&image, bytes, &task).unwrap();
    }

    fn of(store: &Store, user: Option<&str>) -> Stats {
        store
            .stats(&StatsQuery {
                user: user.map(UserId::from),
                today: 10,
                days: 11,
                months: 1,
                top_hosts: 5,
            })
            .unwrap()
    }

    fn clean(store: &Store, what: &str) {
        let report = store.check().unwrap();
        assert!(report.is_clean(), "after {what}: {:?}", report.problems);
    }

    fn c(images: u64, bytes: u64) -> StatsCell {
        StatsCell { images, bytes }
    }

    #[test]
    fn the_figures_follow_every_change_and_agree_with_check() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        add_user(&store, "v");
        save(&store, "a", "u", 3, b"aaaa", Some("https://www.shop.cn/x"));
        save(&store, "b", "u", 3, b"aaaa", Some("https://shop.cn/y"));
        save(&store, "c", "u", 7, b"cccccc", None);
        save(&store, "d", "v", 7, b"aaaa", Some("https://other.org/"));
        clean(&store, "saves");
        let u = of(&store, Some("u"));
        assert_eq!(u.days[3], (3, c(2, 8)));
        assert_eq!(u.days[7], (7, c(1, 6)));
        assert_eq!(u.totals.live, c(3, 14));
        // Two captures of the same bytes: one did not need storing again.
        assert_eq!(u.totals.dedup_bytes, 4);
        assert_eq!(u.hosts, [("shop.cn".to_string(), c(2, 8))]);
        assert_eq!(u.no_host, c(1, 6));
        assert_eq!(u.last_30_days, c(3, 14));
        assert_eq!(u.server_last_30_days, c(4, 18));
        let v = of(&store, Some("v"));
        // Another user's copy is not counted for them.
        assert_eq!((v.totals.live, v.totals.dedup_bytes), (c(1, 4), 0));
        let server = of(&store, None);
        assert_eq!(server.totals.live, c(4, 18));
        assert_eq!(server.totals.stored_bytes, 4 + 6);
        assert_eq!(server.totals.dedup_bytes, 4 + 4);
        assert_eq!(server.hosts.len(), 2);

        let user: UserId = "u".into();
        store.trash_image(&"a".into(), &user, 100).unwrap();
        clean(&store, "trash");
        let u = of(&store, Some("u"));
        assert_eq!((u.days[3].1, u.totals.trash), (c(1, 4), c(1, 4)));
        assert_eq!((u.totals.dedup_bytes, u.hosts[0].1), (0, c(1, 4)));
        store
            .batch(&user, &["a".into()], &BatchAction::Restore)
            .unwrap();
        clean(&store, "restore");
        assert_eq!(of(&store, Some("u")).totals.dedup_bytes, 4);

        store
            .batch(
                &user,
                &["c".into()],
                &BatchAction::SetCategory(Category::Char),
            )
            .unwrap();
        clean(&store, "category");
        let cats = of(&store, Some("u")).categories;
        assert_eq!(cats[0], (Category::Clothes, c(2, 8)));
        assert_eq!(cats[1], (Category::Char, c(1, 6)));

        let edit = NewMedia {
            bytes: b"edited bytes",
            kind: crate::media::ImageKind::Png,
            width: 1,
            height: 1,
        };
        let from = crate::domain::BlobHash::of(b"aaaa");
        store
            .change_media(&"b".into(), &user, &from, Some(edit))
            .unwrap();
        clean(&store, "edit");
        let u = of(&store, Some("u"));
        assert_eq!(u.days[3].1, c(2, 4 + 12));
        // Still two captures of the same content.
        assert_eq!(u.totals.dedup_bytes, 4);
        assert_eq!(of(&store, None).totals.stored_bytes, 4 + 6 + 12);

        store.delete_image(&"b".into(), &user).unwrap();
        store.trash_image(&"c".into(), &user, 100).unwrap();
        assert_eq!(store.purge_trash(None, 200).unwrap(), 1);
        clean(&store, "delete and purge");
        let u = of(&store, Some("u"));
        assert_eq!((u.totals.live, u.totals.trash), (c(1, 4), c(0, 0)));
        assert_eq!(u.days[7].1, c(0, 0));
        let server = of(&store, None);
        assert_eq!(
            (server.totals.stored_bytes, server.totals.dedup_bytes),
            (4, 4)
        );
    }

    #[test]
    fn check_finds_drifted_figures_and_repair_builds_them_again() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        save(&store, "a", "u", 3, b"aaaa", Some("https://shop.cn/x"));
        save(&store, "b", "u", 4, b"bbbb", None);
        let tx = store.write().unwrap();
        {
            let mut days = tx.open_table(STATS_DAYS).unwrap();
            days.insert(("u", 3), c(9, 9).encode().as_slice()).unwrap();
            let mut hosts = tx.open_table(STATS_HOSTS).unwrap();
            hosts
                .insert(("u", "ghost.example"), c(1, 4).encode().as_slice())
                .unwrap();
            tx.open_table(STATS_TOTALS)
                .unwrap()
                .remove(SERVER_SCOPE)
                .unwrap();
        }
        tx.commit().unwrap();
        let report = store.check().unwrap();
        let text: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            text,
            [
                "the statistics disagree with the records: 1 days, the totals of the server, \
              the source hosts of the server, the source hosts of user u (repairable)"
            ]
        );
        let repaired = store.repair().unwrap();
        assert!(repaired.after.is_clean(), "{:?}", repaired.after.problems);
        let u = of(&store, Some("u"));
        assert_eq!((u.days[3].1, u.hosts.len()), (c(1, 4), 1));
    }

    #[test]
    fn host_rows_stay_bounded_and_add_up_through_removals_and_a_rebuild() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let n = MAX_HOSTS as usize + 3;
        let uploads: Vec<_> = (0..n)
            .map(|i| {
                let id = format!("i{i:04}");
                let (image, task) = new_image(&id, "u", 5, id.as_bytes());
                let image = ImageRecord {
                    page_url: Some(format!("https://h{i:04}.example/")),
                    ..image
                };
                (image, task)
            })
            .collect();
        let list: Vec<_> = uploads
            .iter()
            .map(|(image, task)| {
                super::super::NewImage::plain(image, image.id.as_str().as_bytes(), task)
            })
            .collect();
        for outcome in store.save_images(&list).unwrap() {
            outcome.unwrap();
        }
        clean(&store, "save");
        let read = |store: &Store| {
            let tx = store.read().unwrap();
            let totals = totals_in(&tx.open_table(STATS_TOTALS).unwrap(), "u").unwrap();
            let rows = tx
                .open_table(STATS_HOSTS)
                .unwrap()
                .range(("u", "")..=("u", "\u{10FFFF}"))
                .unwrap()
                .count() as u64;
            (rows, totals.hosts, totals.other_hosts.images)
        };
        assert_eq!(read(&store), (MAX_HOSTS, MAX_HOSTS, 3));
        // A row freed, then an image of a host counted in `other_hosts` gets a row of its own.
        let user: UserId = "u".into();
        store.delete_image(&"i0000".into(), &user).unwrap();
        let (extra, task) = new_image("again", "u", 6, b"again");
        let extra = ImageRecord {
            page_url: Some(format!("https://h{:04}.example/", n - 1)),
            ..extra
        };
        store.save_image(&extra, b"again", &task).unwrap();
        clean(&store, "a freed row");
        assert_eq!(read(&store), (MAX_HOSTS, MAX_HOSTS, 3));
        // Its first image, counted in `other_hosts`, leaves the row.
        store
            .delete_image(&format!("i{:04}", n - 1).as_str().into(), &user)
            .unwrap();
        clean(&store, "removal through the row");
        assert_eq!(read(&store), (MAX_HOSTS - 1, MAX_HOSTS - 1, 3));
        let stats = of(&store, Some("u"));
        assert_eq!(stats.totals.live.images, n as u64 - 1);
        assert_eq!(stats.hosts.len(), 5);
        assert_eq!(stats.other_hosts.images, n as u64 - 1 - 5);
        assert_eq!(stats.no_host.images, 0);
        let tx = store.write().unwrap();
        rebuild(&tx).unwrap();
        tx.commit().unwrap();
        clean(&store, "rebuild");
        assert_eq!(read(&store), (MAX_HOSTS, MAX_HOSTS, 2));
    }

    #[test]
    fn hosts_are_counted_lowercase_without_www_and_only_when_there_is_one() {
        assert_eq!(
            host_of(Some("https://WWW.Example.COM./a?b")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host_of(Some("http://[::1]:8080/")).as_deref(),
            Some("[::1]")
        );
        assert_eq!(host_of(Some("not a url")), None);
        assert_eq!(host_of(Some("data:image/png;base64,AAAA")), None);
        assert_eq!(host_of(None), None);
        let long = format!("https://{}.com/", "a.".repeat(200));
        assert_eq!(host_of(Some(&long)), None);
    }

    #[test]
    fn days_and_months_are_utc_calendar_ones() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(DAY), 1);
        let day = day_of_date(chrono::NaiveDate::from_ymd_opt(2026, 3, 15).unwrap());
        assert_eq!(date_of(day).to_string(), "2026-03-15");
        assert_eq!(month_start(day, 0).to_string(), "2026-03-01");
        assert_eq!(month_start(day, 3).to_string(), "2025-12-01");
        assert_eq!(window(day, 30).count(), 30);
    }
}
