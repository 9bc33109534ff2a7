//! One user's search catalog: every live image's search row (`USER_SEARCH`) in a few flat arrays,
//! in time-index order, with the positions of each tag's and each category's images. Positions
//! are places in that order (oldest first), so a list of them is in time order too, and a prefix
//! of the catalog is the user's rows as an older snapshot saw them (see `Catalog::covers`).
//!
//! Per image: 32 bytes of `Entry`, its id, its text and tags (folded, one line each) and 4 bytes
//! per tag, plus 4 bytes in its category's list and per tag in the tag's list.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;

use redb::ReadTransaction;

use super::{CategoryFilter, FirstK, Found, Prepared, Snapshot, Sort, TagCounts};
use super::{Result, StoreError, USER_SEARCH, user_range};
use super::{order_key, top_tags};
use crate::clock::Micros;
use crate::domain::Category;
use crate::store::records::{SearchRecord, SearchView, codes};

/// Rows read between two checks that the catalog being built still fits the budget.
const ROOM_EVERY: usize = 4096;
/// One-tag queries whose facet tags a catalog keeps (each at most `FACET_TAGS` tags); past it
/// they are all dropped and counted again as asked.
const TAG_FACETS_KEPT: usize = 256;

/// One image. Its id, text and tags are the ranges of the arenas that end at its `*_end`s and
/// start at the previous entry's.
#[derive(Debug, Clone, Copy)]
struct Entry {
    saved_at: Micros,
    file_size: u64,
    id_end: u32,
    text_end: u32,
    tags_end: u32,
    category: Category,
}

pub(in crate::store) struct Catalog {
    epoch: u64,
    entries: Vec<Entry>,
    ids: String,
    /// Each image's text, then each of its tags after a line break.
    text: Vec<u8>,
    /// Each image's tag ids.
    entry_tags: Vec<u32>,
    /// Tag id → folded tag.
    tag_names: Vec<Box<str>>,
    tag_ids: HashMap<Box<str>, u32>,
    /// Tag id → positions of the images carrying it.
    tag_positions: Vec<Vec<u32>>,
    /// Category code → positions of its images.
    category_positions: [Vec<u32>; 2],
    /// Category code → tag id → images of the category carrying the tag.
    category_tag_counts: [Vec<u32>; 2],
    /// Facet tags of one-tag queries already asked (see `tagged`); emptied when images are added.
    tag_facets: Mutex<HashMap<(u32, CategoryFilter), TagCounts>>,
}

/// How a catalog stands to a read snapshot of its user.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) enum Covers {
    /// Its first `n` images are the snapshot's.
    Rows(usize),
    /// The snapshot has newer uploads that the catalog lacks.
    Behind,
    /// The catalog is of a later epoch than the snapshot.
    Newer,
    /// The catalog is of an earlier epoch: it must be rebuilt.
    Stale,
}

/// The positions of `list` among the first `rows` images.
fn within(list: &[u32], rows: usize) -> &[u32] {
    &list[..list.partition_point(|&p| (p as usize) < rows)]
}

fn code(category: Category) -> usize {
    usize::from(codes::category::to_code(category))
}

impl Catalog {
    fn new(epoch: u64) -> Self {
        Self {
            epoch,
            entries: Vec::new(),
            ids: String::new(),
            text: Vec::new(),
            entry_tags: Vec::new(),
            tag_names: Vec::new(),
            tag_ids: HashMap::new(),
            tag_positions: Vec::new(),
            category_positions: [Vec::new(), Vec::new()],
            category_tag_counts: [Vec::new(), Vec::new()],
            tag_facets: Mutex::default(),
        }
    }

    /// Builds `user`'s catalog from the snapshot `tx` (of search epoch `epoch`). `room` is told the
    /// catalog's size as it grows; when it answers `false`, the build stops and gives `None`.
    pub(super) fn load(
        tx: &ReadTransaction,
        user: &str,
        epoch: u64,
        room: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Self>> {
        let mut catalog = Self::new(epoch);
        let rows = tx.open_table(USER_SEARCH)?;
        for (n, entry) in rows.range(user_range(user))?.enumerate() {
            let (key, value) = entry?;
            let (_, at, id) = key.value();
            catalog.push(at, id, &SearchRecord::view(value.value())?)?;
            if n % ROOM_EVERY == ROOM_EVERY - 1 && !room(catalog.bytes()) {
                return Ok(None);
            }
        }
        Ok(room(catalog.bytes()).then_some(catalog))
    }

    /// Appends the snapshot's rows newer than the catalog's newest (uploads since it was built).
    pub(super) fn extend(&mut self, tx: &ReadTransaction, user: &str) -> Result<()> {
        self.tag_facets
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let rows = tx.open_table(USER_SEARCH)?;
        let newest = self.newest().map(|(at, id)| (at, id.to_string()));
        let range = match &newest {
            Some((at, id)) => rows.range::<(&str, Micros, &str)>((
                Bound::Excluded((user, *at, id.as_str())),
                Bound::Included((user, Micros::MAX, "\u{10FFFF}")),
            ))?,
            None => rows.range(user_range(user))?,
        };
        for entry in range {
            let (key, value) = entry?;
            let (_, at, id) = key.value();
            self.push(at, id, &SearchRecord::view(value.value())?)?;
        }
        Ok(())
    }

    fn push(&mut self, saved_at: Micros, id: &str, row: &SearchView<'_>) -> Result<()> {
        let position = u32::try_from(self.entries.len())
            .map_err(|_| StoreError::Corrupt("too many images for a search catalog".into()))?;
        self.ids.push_str(id);
        self.text.extend_from_slice(row.text.as_bytes());
        let in_category = code(row.category);
        for &tag in &row.tags {
            self.text.push(b'\n');
            self.text.extend_from_slice(tag.as_bytes());
            let next = self.tag_names.len() as u32;
            let tag_id = *self.tag_ids.entry(tag.into()).or_insert_with(|| {
                self.tag_names.push(tag.into());
                self.tag_positions.push(Vec::new());
                next
            });
            self.entry_tags.push(tag_id);
            self.tag_positions[tag_id as usize].push(position);
            let counts = &mut self.category_tag_counts[in_category];
            if counts.len() <= tag_id as usize {
                counts.resize(tag_id as usize + 1, 0);
            }
            counts[tag_id as usize] += 1;
        }
        self.category_positions[in_category].push(position);
        let end = |len: usize| {
            u32::try_from(len)
                .map_err(|_| StoreError::Corrupt("search catalog text past 4 GiB".into()))
        };
        self.entries.push(Entry {
            saved_at,
            file_size: row.file_size,
            id_end: end(self.ids.len())?,
            text_end: end(self.text.len())?,
            tags_end: end(self.entry_tags.len())?,
            category: row.category,
        });
        Ok(())
    }

    /// Bytes of memory the catalog holds (the data in its arrays, and what the maps cost).
    pub(super) fn bytes(&self) -> usize {
        let positions: usize = self.tag_positions.iter().map(Vec::len).sum::<usize>()
            + self.category_positions.iter().map(Vec::len).sum::<usize>();
        let counts: usize = self.category_tag_counts.iter().map(Vec::len).sum();
        let names: usize = self.tag_names.iter().map(|n| n.len()).sum();
        self.entries.len() * size_of::<Entry>()
            + self.ids.len()
            + self.text.len()
            + 4 * (self.entry_tags.len() + positions + counts)
            // Each tag's name twice, its list's header, and the map's slot.
            + 2 * names
            + self.tag_names.len() * 80
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn id(&self, position: usize) -> &str {
        let start = position
            .checked_sub(1)
            .map_or(0, |p| self.entries[p].id_end as usize);
        &self.ids[start..self.entries[position].id_end as usize]
    }

    fn text(&self, position: usize) -> &[u8] {
        let start = position
            .checked_sub(1)
            .map_or(0, |p| self.entries[p].text_end as usize);
        &self.text[start..self.entries[position].text_end as usize]
    }

    fn tags(&self, position: usize) -> &[u32] {
        let start = position
            .checked_sub(1)
            .map_or(0, |p| self.entries[p].tags_end as usize);
        &self.entry_tags[start..self.entries[position].tags_end as usize]
    }

    fn newest(&self) -> Option<(Micros, &str)> {
        let last = self.entries.len().checked_sub(1)?;
        Some((self.entries[last].saved_at, self.id(last)))
    }

    pub(super) fn covers(&self, snapshot: &Snapshot) -> Covers {
        if self.epoch < snapshot.epoch {
            return Covers::Stale;
        }
        if self.epoch > snapshot.epoch {
            return Covers::Newer;
        }
        let Some((at, id)) = &snapshot.newest else {
            return Covers::Rows(0);
        };
        let wanted = (*at, id.as_str());
        match self.newest() {
            None => Covers::Behind,
            Some(newest) if newest == wanted => Covers::Rows(self.len()),
            Some(newest) if newest < wanted => Covers::Behind,
            Some(_) => Covers::Rows(self.rows_up_to(wanted)),
        }
    }

    /// How many images are at or before `key` in time-index order.
    fn rows_up_to(&self, key: (Micros, &str)) -> usize {
        let (mut lo, mut hi) = (0, self.entries.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if (self.entries[mid].saved_at, self.id(mid)) <= key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The answer to `query` over the first `rows` images.
    pub(super) fn find(&self, rows: usize, query: &Prepared<'_>) -> Found<String> {
        let rows = rows.min(self.len());
        let q = query.query;
        let mut wanted = Vec::with_capacity(q.tags.len());
        for tag in q.tags.iter() {
            match self.tag_ids.get(tag.folded()) {
                Some(&id) => wanted.push(id),
                // A tag no image carries: nothing matches.
                None => return Found::nothing(),
            }
        }
        let categories = self
            .category_positions
            .each_ref()
            .map(|list| within(list, rows).len() as u64);
        if query.finders.is_empty() && !query.has_range() {
            match wanted[..] {
                [] => return self.listing(rows, query, categories),
                [tag] if rows == self.len() => return self.tagged(tag, query),
                _ => {}
            }
        }

        // In a time order the candidates are visited in the answer's order and the page is the
        // matches from `skip` on; by size, the first of them are selected as they come.
        let in_order = matches!(q.sort, Sort::Newest | Sort::Oldest);
        let (skip, per_page) = (q.skip(), q.per_page);
        let mut page = Vec::new();
        let mut first = FirstK::new(if in_order { 0 } else { query.keep() });
        let mut by_category = [0u64; 2];
        let mut total = 0u64;
        let mut counts = vec![0u32; self.tag_names.len()];
        let mut visit = |p: u32| {
            let position = p as usize;
            let entry = &self.entries[position];
            if !query.in_range(entry.saved_at) {
                return;
            }
            if wanted.len() > 1 {
                let tags = self.tags(position);
                if !wanted.iter().all(|t| tags.contains(t)) {
                    return;
                }
            }
            if !query.text_matches(self.text(position)) {
                return;
            }
            by_category[code(entry.category)] += 1;
            if !q.category.keeps(entry.category) {
                return;
            }
            total += 1;
            if !in_order {
                first.offer(order_key(q.sort, p, entry.file_size), || p);
            } else if total > skip && (page.len() as u64) < per_page {
                page.push(p);
            }
            for &tag in self.tags(position) {
                counts[tag as usize] += 1;
            }
        };
        let rarest = wanted
            .iter()
            .map(|&t| within(&self.tag_positions[t as usize], rows))
            .min_by_key(|list| list.len());
        let oldest_first = q.sort == Sort::Oldest;
        match rarest {
            Some(list) if oldest_first => list.iter().for_each(|&p| visit(p)),
            Some(list) => list.iter().rev().for_each(|&p| visit(p)),
            None => {
                let entries = &self.entries[..rows];
                let lo = entries.partition_point(|e| e.saved_at < query.from);
                let hi = entries.partition_point(|e| e.saved_at < query.until);
                let range = lo as u32..hi.max(lo) as u32;
                if oldest_first {
                    range.for_each(visit);
                } else {
                    range.rev().for_each(visit);
                }
            }
        }
        if !in_order {
            page = first.page(skip);
        }
        Found {
            page: self.ids_of(page),
            total,
            by_category,
            tags: top_tags(
                counts
                    .iter()
                    .enumerate()
                    .map(|(t, &n)| (&*self.tag_names[t], u64::from(n))),
            ),
        }
    }

    /// A query of one tag (and maybe a category and an order) over the whole catalog: its
    /// counts per category are kept, its page is a walk of the tag's list to the page, and the
    /// tags among its images are counted once per catalog (`tag_facets`), so it costs the page,
    /// not the tag's images. Ordered by size, it selects from all of them.
    fn tagged(&self, tag: u32, query: &Prepared<'_>) -> Found<String> {
        let q = query.query;
        let list = &self.tag_positions[tag as usize];
        let by_category = [0, 1].map(|c| {
            u64::from(
                self.category_tag_counts[c]
                    .get(tag as usize)
                    .copied()
                    .unwrap_or(0),
            )
        });
        let total = match q.category {
            CategoryFilter::Any => list.len() as u64,
            CategoryFilter::Only(only) => by_category[code(only)],
            CategoryFilter::Nothing => 0,
        };
        let matching = |p: &&u32| q.category.keeps(self.entries[**p as usize].category);
        let skip = usize::try_from(q.skip()).unwrap_or(usize::MAX);
        let take = usize::try_from(q.per_page).unwrap_or(usize::MAX);
        let page: Vec<u32> = match q.sort {
            Sort::Newest => list
                .iter()
                .rev()
                .filter(matching)
                .skip(skip)
                .take(take)
                .copied()
                .collect(),
            Sort::Oldest => list
                .iter()
                .filter(matching)
                .skip(skip)
                .take(take)
                .copied()
                .collect(),
            Sort::Largest | Sort::Smallest => {
                let mut first = FirstK::new(query.keep());
                for &p in list.iter().filter(matching) {
                    let size = self.entries[p as usize].file_size;
                    first.offer(order_key(q.sort, p, size), || p);
                }
                first.page(q.skip())
            }
        };
        let tags = if total == 0 {
            Vec::new()
        } else {
            self.tag_facets(tag, q.category)
        };
        Found {
            page: self.ids_of(page),
            total,
            by_category,
            tags,
        }
    }

    /// The facet tags of the images carrying `tag` (of the category, if one is kept), counted on
    /// the first query that asks and kept until the catalog changes.
    fn tag_facets(&self, tag: u32, category: CategoryFilter) -> TagCounts {
        let key = (tag, category);
        let mut cache = self
            .tag_facets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = cache.get(&key) {
            return found.clone();
        }
        let mut counts = vec![0u64; self.tag_names.len()];
        for &p in &self.tag_positions[tag as usize] {
            if category.keeps(self.entries[p as usize].category) {
                for &other in self.tags(p as usize) {
                    counts[other as usize] += 1;
                }
            }
        }
        let found = top_tags(
            counts
                .iter()
                .enumerate()
                .map(|(t, &n)| (&*self.tag_names[t], n)),
        );
        if cache.len() >= TAG_FACETS_KEPT {
            cache.clear();
        }
        cache.insert(key, found.clone());
        found
    }

    /// A query without words, tags or dates: the category's list (or every image) is the answer,
    /// so its total is a length and its page a slice, or a selection by size.
    fn listing(&self, rows: usize, query: &Prepared<'_>, categories: [u64; 2]) -> Found<String> {
        let q = query.query;
        // `None`: every image of the first `rows`.
        let matches: Option<&[u32]> = match q.category {
            CategoryFilter::Nothing => Some(&[]),
            CategoryFilter::Only(category) => {
                let all = &self.category_positions[code(category)];
                Some(&all[..categories[code(category)] as usize])
            }
            CategoryFilter::Any => None,
        };
        let len = matches.map_or(rows, <[u32]>::len);
        let at = |i: usize| matches.map_or(i as u32, |list| list[i]);
        let skip = usize::try_from(q.skip()).unwrap_or(usize::MAX);
        let take = usize::try_from(q.per_page).unwrap_or(usize::MAX);
        let page: Vec<u32> = match q.sort {
            Sort::Newest => (0..len).rev().skip(skip).take(take).map(at).collect(),
            Sort::Oldest => (0..len).skip(skip).take(take).map(at).collect(),
            Sort::Largest | Sort::Smallest => {
                let mut first = FirstK::new(query.keep());
                for p in (0..len).map(at) {
                    let size = self.entries[p as usize].file_size;
                    first.offer(order_key(q.sort, p, size), || p);
                }
                first.page(q.skip())
            }
        };
        let tags = if len == 0 {
            Vec::new()
        } else if rows == self.len() {
            let count = |t: usize| -> u64 {
                let of =
                    |c: usize| u64::from(self.category_tag_counts[c].get(t).copied().unwrap_or(0));
                match q.category {
                    CategoryFilter::Only(category) => of(code(category)),
                    _ => of(0) + of(1),
                }
            };
            top_tags((0..self.tag_names.len()).map(|t| (&*self.tag_names[t], count(t))))
        } else {
            let mut counts = vec![0u64; self.tag_names.len()];
            for p in (0..len).map(at) {
                for &tag in self.tags(p as usize) {
                    counts[tag as usize] += 1;
                }
            }
            top_tags(
                counts
                    .iter()
                    .enumerate()
                    .map(|(t, &n)| (&*self.tag_names[t], n)),
            )
        };
        Found {
            page: self.ids_of(page),
            total: len as u64,
            by_category: categories,
            tags,
        }
    }

    fn ids_of(&self, positions: Vec<u32>) -> Vec<String> {
        positions
            .into_iter()
            .map(|p| self.id(p as usize).to_string())
            .collect()
    }
}
