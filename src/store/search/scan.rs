//! A search without a catalog, for a user whose catalog would not fit the memory budget: the
//! user's search rows are read one by one from the snapshot and matched as `catalog` matches them,
//! holding only the page being gathered and the tag counts. It costs a read of every row in the
//! date range per query.

use std::collections::HashMap;

use redb::ReadTransaction;

use super::{FirstK, Found, Prepared, Result, USER_SEARCH, order_key, top_tags};
use crate::clock::Micros;
use crate::store::records::{SearchRecord, codes};

pub(super) fn find(
    tx: &ReadTransaction,
    user: &str,
    query: &Prepared<'_>,
) -> Result<Found<String>> {
    let q = query.query;
    if query.from >= query.until {
        return Ok(Found::nothing());
    }
    let wanted: Vec<&str> = q.tags.iter().map(|t| t.folded()).collect();
    let rows = tx.open_table(USER_SEARCH)?;
    let mut first = FirstK::new(query.keep());
    let mut by_category = [0u64; 2];
    let mut total = 0u64;
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut text = Vec::new();
    let range = (user, query.from, "")..(user, query.until, "");
    let range = match q.until {
        Some(_) => rows.range(range)?,
        None => rows.range((user, query.from, "")..=(user, Micros::MAX, "\u{10FFFF}"))?,
    };
    // Positions within the range keep the time order, which is all `order_key` needs.
    for (position, entry) in range.enumerate() {
        let (key, value) = entry?;
        let (_, _, id) = key.value();
        let row = SearchRecord::view(value.value())?;
        if !wanted.iter().all(|t| row.tags.contains(t)) {
            continue;
        }
        if !query.finders.is_empty() {
            text.clear();
            text.extend_from_slice(row.text.as_bytes());
            for tag in &row.tags {
                text.push(b'\n');
                text.extend_from_slice(tag.as_bytes());
            }
            if !query.text_matches(&text) {
                continue;
            }
        }
        by_category[usize::from(codes::category::to_code(row.category))] += 1;
        if !q.category.keeps(row.category) {
            continue;
        }
        total += 1;
        let position = u32::try_from(position).unwrap_or(u32::MAX);
        first.offer(order_key(q.sort, position, row.file_size), || {
            id.to_string()
        });
        for tag in &row.tags {
            match counts.get_mut(*tag) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(tag.to_string(), 1);
                }
            }
        }
    }
    Ok(Found {
        page: first.page(q.skip()),
        total,
        by_category,
        tags: top_tags(counts.iter().map(|(t, &n)| (t.as_str(), n))),
    })
}
