//! A search without a catalog, for a user whose catalog would not fit the memory budget: the
//! user's search rows are read from the snapshot and matched as `catalog` matches them, holding
//! only the page being gathered and the tag counts. With a tag, the rows read are those of the
//! rarest tag's images (from `USER_TAG_IMAGES`), so it costs that tag's images; otherwise a read
//! of every row in the date range per query.

use std::collections::HashMap;

use redb::ReadTransaction;

use super::{FirstK, Found, Prepared, Result, StoreError, order_key, top_tags};
use super::{USER_SEARCH, USER_TAG_IMAGES, USER_TAGS};
use crate::clock::Micros;
use crate::store::records::{Record, SearchRecord, TagRecord, codes};

/// What the rows seen so far found.
struct Gathered<'q> {
    query: &'q Prepared<'q>,
    wanted: Vec<&'q str>,
    first: FirstK<String>,
    by_category: [u64; 2],
    total: u64,
    counts: HashMap<String, u64>,
    /// Reused for each row's text and tags.
    text: Vec<u8>,
}

impl<'q> Gathered<'q> {
    /// Matches one row; `position` orders it in time among the rows seen.
    fn consider(&mut self, position: usize, id: &str, stored: &[u8]) -> Result<()> {
        let q = self.query.query;
        let row = SearchRecord::view(stored)?;
        if !self.wanted.iter().all(|t| row.tags.contains(t)) {
            return Ok(());
        }
        if !self.query.finders.is_empty() {
            self.text.clear();
            self.text.extend_from_slice(row.text.as_bytes());
            for tag in &row.tags {
                self.text.push(b'\n');
                self.text.extend_from_slice(tag.as_bytes());
            }
            if !self.query.text_matches(&self.text) {
                return Ok(());
            }
        }
        self.by_category[usize::from(codes::category::to_code(row.category))] += 1;
        if !q.category.keeps(row.category) {
            return Ok(());
        }
        self.total += 1;
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        self.first
            .offer(order_key(q.sort, position, row.file_size), || {
                id.to_string()
            });
        for tag in &row.tags {
            match self.counts.get_mut(*tag) {
                Some(n) => *n += 1,
                None => {
                    self.counts.insert(tag.to_string(), 1);
                }
            }
        }
        Ok(())
    }
}

pub(super) fn find(
    tx: &ReadTransaction,
    user: &str,
    query: &Prepared<'_>,
) -> Result<Found<String>> {
    let q = query.query;
    if query.from >= query.until {
        return Ok(Found::nothing());
    }
    let counts = tx.open_table(USER_TAGS)?;
    let mut rarest: Option<(&str, u64)> = None;
    for tag in q.tags.iter() {
        let Some(stored) = counts.get((user, tag.folded()))? else {
            // A tag no image carries: nothing matches.
            return Ok(Found::nothing());
        };
        let count = TagRecord::decode(stored.value())?.count;
        if rarest.is_none_or(|(_, least)| count < least) {
            rarest = Some((tag.folded(), count));
        }
    }
    let mut gathered = Gathered {
        query,
        wanted: q.tags.iter().map(|t| t.folded()).collect(),
        first: FirstK::new(query.keep()),
        by_category: [0; 2],
        total: 0,
        counts: HashMap::new(),
        text: Vec::new(),
    };
    let rows = tx.open_table(USER_SEARCH)?;
    // Positions within what is walked keep the time order, which is all `order_key` needs.
    match rarest {
        Some((tag, _)) => {
            let index = tx.open_table(USER_TAG_IMAGES)?;
            let range = (user, tag, query.from, "")..=(user, tag, query.until, "");
            for (position, entry) in index.range(range)?.enumerate() {
                let (key, _) = entry?;
                let (_, _, at, id) = key.value();
                if !query.in_range(at) {
                    continue;
                }
                let row = rows.get((user, at, id))?.ok_or_else(|| {
                    StoreError::Corrupt(format!("image {id} has a tag but no search row"))
                })?;
                gathered.consider(position, id, row.value())?;
            }
        }
        None => {
            let until = match q.until {
                Some(until) => (user, until, ""),
                None => (user, Micros::MAX, "\u{10FFFF}"),
            };
            for (position, entry) in rows.range((user, query.from, "")..=until)?.enumerate() {
                let (key, value) = entry?;
                let (_, at, id) = key.value();
                if query.in_range(at) {
                    gathered.consider(position, id, value.value())?;
                }
            }
        }
    }
    Ok(Found {
        page: gathered.first.page(q.skip()),
        total: gathered.total,
        by_category: gathered.by_category,
        tags: top_tags(gathered.counts.iter().map(|(t, &n)| (t.as_str(), n))),
    })
}
