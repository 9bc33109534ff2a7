//! Statistics: the figures of the stats page (kept by `store::stats`) recomputed from the image
//! records, and from the blobs with the reference counts the records give them, and compared. Days, categories and totals must match exactly; host rows are
//! bounded (`MAX_HOSTS`) and may have been handed out in another order than a rebuild would, so
//! they must only add up with `other_hosts` to the images of each scope that have a host, and no
//! row may count more than its host's images. Any difference is repaired by building all the
//! figures again.

use super::blobs::BlobUse;
use super::*;
use crate::store::records::StatsCell;
use crate::store::stats::{self, MAX_HOSTS, Tally};

pub(super) fn check_stats(
    tx: &ReadTransaction,
    images: &Images,
    blobs: &BlobUse,
    out: &mut Findings,
) -> Result<()> {
    let mut want = Tally::default();
    for image in images.records.values() {
        want.image(image);
    }
    for &(size, refs) in blobs {
        want.blob(size, refs);
    }
    let want = want.finish();
    let have = stats::stored(tx)?;
    let mut wrong = Vec::new();
    match differing(&have.days, &want.days) {
        0 => {}
        n => wrong.push(format!("{n} days")),
    }
    match differing(&have.categories, &want.categories) {
        0 => {}
        n => wrong.push(format!("{n} categories")),
    }
    let scopes: BTreeSet<&String> = have.totals.keys().chain(want.totals.keys()).collect();
    for scope in scopes {
        let stored = have.totals.get(scope).copied().unwrap_or_default();
        let expected = want.totals.get(scope).copied().unwrap_or_default();
        let shown = if scope.is_empty() {
            "the server".to_string()
        } else {
            format!("user {scope}")
        };
        let comparable = |t: StatsTotals| (t.live, t.trash, t.dedup_bytes, t.stored_bytes);
        if comparable(stored) != comparable(expected) {
            wrong.push(format!("the totals of {shown}"));
        }
        let rows: Vec<(&String, &StatsCell)> = have
            .hosts
            .range((scope.clone(), String::new())..)
            .take_while(|((s, _), _)| s == scope)
            .map(|((_, host), cell)| (host, cell))
            .collect();
        let mut with_host = StatsCell::default();
        for ((s, _), cell) in &want.hosts {
            if s == scope {
                with_host.images += cell.images;
                with_host.bytes += cell.bytes;
            }
        }
        let mut counted = stored.other_hosts;
        let mut overcounted = 0;
        for (host, cell) in &rows {
            counted.images += cell.images;
            counted.bytes += cell.bytes;
            let real = want.hosts.get(&(scope.clone(), host.to_string()));
            if real.is_none_or(|real| cell.images > real.images || cell.images == 0) {
                overcounted += 1;
            }
        }
        if counted != with_host
            || overcounted > 0
            || rows.len() as u64 != stored.hosts
            || stored.hosts > MAX_HOSTS
        {
            wrong.push(format!("the source hosts of {shown}"));
        }
    }
    if !wrong.is_empty() {
        out.found(
            format!(
                "the statistics disagree with the records: {}",
                wrong.join(", ")
            ),
            images.all_known().then_some(Fix),
        );
    }
    Ok(())
}

/// How many keys `have` and `want` differ on (missing, extra or another value).
fn differing<K: Ord>(have: &BTreeMap<K, StatsCell>, want: &BTreeMap<K, StatsCell>) -> usize {
    let keys: BTreeSet<&K> = have.keys().chain(want.keys()).collect();
    keys.into_iter()
        .filter(|k| have.get(k) != want.get(k))
        .count()
}

/// Builds every statistic again from the records (`store::stats::rebuild`).
#[derive(Debug)]
pub(super) struct Fix;

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        crate::store::stats::rebuild(tx)
    }
}
