//! Groups of near-duplicates among one collection's hashes: what the find-duplicates page shows
//! (`Store::duplicates`).
//!
//! A group is one image, its **centre**, and the images within the distance of it that no earlier
//! centre took; centres are taken most-connected first (the image with the most others within the
//! distance), so the centre of a photo's copies is the copy the others are nearest to. Any two
//! images of a group are then within twice the distance of each other. Joining every pair within
//! the distance instead (connected components) chains: A is near B, B near C, and A and C end up
//! together although they are not alike. On the 260 photos of `benches/phash.rs` (13 copies each)
//! components mixed different photos in 26 groups, 11 photos in the largest; in a collection of
//! many similar pictures (clothes on a white background) the chains join into one group of
//! thousands. The bench prints both ways of grouping.
//!
//! Comparing all pairs would be 5·10⁹ comparisons at 100,000 images. Instead the hashes are cut
//! into four 16-bit blocks: two hashes within `d` bits agree within `d / 4` bits on at least one
//! block (pigeonhole), so each hash is compared only with those whose block is that close to one
//! of its own, found in a table of buckets per block. Identical hashes go together and are
//! searched once. Two passes: the first counts each hash's neighbours and keeps the near pairs it
//! finds, the second takes centres and their neighbours from those pairs (or, when they were too
//! many to keep, searches again from each centre). The work is bounded (`MAX_COMPARISONS` over
//! both); a collection that needs more (hashes packed in one place) gets the groups found within
//! it, marked incomplete.

use std::cmp::Reverse;

use super::distance;

/// Candidate comparisons one grouping may make.
pub const MAX_COMPARISONS: u64 = 200_000_000;
/// Near pairs the first pass keeps for the second (16 bytes each, both ways); past it, the
/// second pass searches from each centre again.
const MAX_KEPT_PAIRS: usize = 1 << 18;

/// Groups of positions in the slice of hashes given, largest first (then by their highest
/// position), each highest position first; and whether the search was complete.
#[derive(Debug)]
pub struct Groups {
    pub lists: Vec<Vec<u32>>,
    pub complete: bool,
}

/// The groups within `max_distance` of the hashes whose `known` is set (see the module docs).
/// `max_distance / 4` sets how many buckets each search opens: past 12 bits, grouping costs far
/// more.
pub fn group(hashes: &[u64], known: &[bool], max_distance: u32) -> Groups {
    group_within(hashes, known, max_distance, MAX_COMPARISONS, MAX_KEPT_PAIRS)
}

fn group_within(
    hashes: &[u64],
    known: &[bool],
    max_distance: u32,
    budget: u64,
    max_pairs: usize,
) -> Groups {
    // Positions by hash; `first[i]..first[i + 1]` are the copies of the i-th distinct hash.
    let mut by_hash: Vec<(u64, u32)> = hashes
        .iter()
        .zip(known)
        .enumerate()
        .filter(|(_, (_, known))| **known)
        .map(|(p, (&h, _))| (h, p as u32))
        .collect();
    by_hash.sort_unstable();
    let mut distinct: Vec<u64> = Vec::new();
    let mut first: Vec<u32> = Vec::new();
    for (i, &(h, _)) in by_hash.iter().enumerate() {
        if distinct.last() != Some(&h) {
            distinct.push(h);
            first.push(i as u32);
        }
    }
    first.push(by_hash.len() as u32);
    let copies = |i: usize| first[i + 1] - first[i];
    let mut search = Search {
        buckets: Buckets::new(&distinct),
        distinct: &distinct,
        radius: max_distance / 4,
        max_distance,
        comparisons: 0,
        budget,
        probes: Vec::new(),
    };

    // 1. How many other images lie within the distance of each distinct hash; the pairs found,
    //    both ways (`i << 32 | j`), while they are not too many.
    let mut near: Vec<u32> = (0..distinct.len()).map(|i| copies(i) - 1).collect();
    let mut pairs: Option<Vec<u64>> = Some(Vec::new());
    let mut counted = true;
    for i in 0..distinct.len() {
        let within = search.neighbours(i, true, |j| {
            near[i] += copies(j);
            near[j] += copies(i);
            if let Some(kept) = &mut pairs {
                if kept.len() < 2 * max_pairs {
                    kept.extend([(i as u64) << 32 | j as u64, (j as u64) << 32 | i as u64]);
                } else {
                    pairs = None;
                }
            }
        });
        if !within {
            counted = false;
            break;
        }
    }
    let pairs = pairs.filter(|_| counted).map(|mut kept| {
        kept.sort_unstable();
        kept
    });

    // 2. Centres, most neighbours first, each taking the images near it that are still free.
    let mut order: Vec<u32> = (0..distinct.len() as u32).collect();
    order.sort_unstable_by_key(|&i| (Reverse(near[i as usize]), i));
    const FREE: u32 = u32::MAX;
    let mut centre_of = vec![FREE; distinct.len()];
    let mut searching = true;
    for &c in &order {
        let c = c as usize;
        if centre_of[c] != FREE {
            continue;
        }
        centre_of[c] = c as u32;
        // With every neighbour counted, one without any needs no search.
        let alone = counted && near[c] == copies(c) - 1;
        if alone {
            continue;
        }
        let mut take = |j: usize| {
            if centre_of[j] == FREE {
                centre_of[j] = c as u32;
            }
        };
        if let Some(pairs) = &pairs {
            let from = pairs.partition_point(|&p| p >> 32 < c as u64);
            for &p in pairs[from..].iter().take_while(|&&p| p >> 32 == c as u64) {
                take(p as u32 as usize);
            }
        } else if searching {
            searching = search.neighbours(c, false, take);
        }
    }

    // Each image under its centre, highest position first.
    let mut members: Vec<(u32, Reverse<u32>)> = Vec::with_capacity(by_hash.len());
    for (i, &c) in centre_of.iter().enumerate() {
        let copies = &by_hash[first[i] as usize..first[i + 1] as usize];
        members.extend(copies.iter().map(|&(_, p)| (c, Reverse(p))));
    }
    members.sort_unstable();
    let mut lists: Vec<Vec<u32>> = members
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|g| g.len() > 1)
        .map(|g| g.iter().map(|&(_, Reverse(p))| p).collect())
        .collect();
    lists.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then(b[0].cmp(&a[0])));
    Groups {
        lists,
        complete: counted && searching,
    }
}

/// Per block of 16 bits: the indexes of the distinct hashes with each value, as one list cut by
/// `starts` (a bucket is found in O(1)).
struct Buckets([(Vec<u32>, Vec<u32>); 4]);

impl Buckets {
    fn new(distinct: &[u64]) -> Self {
        Self(std::array::from_fn(|b| {
            let mut starts = vec![0u32; (1 << 16) + 1];
            for &h in distinct {
                starts[usize::from(block(h, b)) + 1] += 1;
            }
            for v in 0..1 << 16 {
                starts[v + 1] += starts[v];
            }
            let mut next = starts.clone();
            let mut members = vec![0u32; distinct.len()];
            for (i, &h) in distinct.iter().enumerate() {
                let v = usize::from(block(h, b));
                members[next[v] as usize] = i as u32;
                next[v] += 1;
            }
            (starts, members)
        }))
    }

    fn bucket(&self, b: usize, value: u16) -> &[u32] {
        let (starts, members) = &self.0[b];
        let v = usize::from(value);
        &members[starts[v] as usize..starts[v + 1] as usize]
    }
}

fn block(h: u64, b: usize) -> u16 {
    (h >> (16 * b)) as u16
}

/// The distinct hashes, searched through their buckets within a budget of comparisons.
struct Search<'a> {
    buckets: Buckets,
    distinct: &'a [u64],
    /// Bits a block may differ by: `max_distance / 4`.
    radius: u32,
    max_distance: u32,
    comparisons: u64,
    budget: u64,
    probes: Vec<u16>,
}

impl Search<'_> {
    /// Calls `found` once for each distinct hash other than the `i`-th within `max_distance` of
    /// it (only those after it when `after`); false once the budget is spent, the search cut short.
    fn neighbours(&mut self, i: usize, after: bool, mut found: impl FnMut(usize)) -> bool {
        let (radius, distinct) = (self.radius, self.distinct);
        let h = distinct[i];
        for b in 0..4 {
            within_bits(block(h, b), radius, &mut self.probes);
            for &probe in &self.probes {
                for &j in self.buckets.bucket(b, probe) {
                    let j = j as usize;
                    if j == i || (after && j < i) {
                        continue;
                    }
                    self.comparisons += 1;
                    let other = distinct[j];
                    if distance(h, other) > self.max_distance {
                        continue;
                    }
                    // A pair close on several blocks is found in each: taken at the first only.
                    if (0..b).all(|e| (block(h, e) ^ block(other, e)).count_ones() > radius) {
                        found(j);
                    }
                }
            }
            if self.comparisons > self.budget {
                return false;
            }
        }
        true
    }
}

/// Every 16-bit value within `radius` bits of `value`, `value` first.
fn within_bits(value: u16, radius: u32, out: &mut Vec<u16>) {
    out.clear();
    out.push(value);
    let mut frontier = vec![(value, 0u32)];
    for _ in 0..radius {
        let mut next = Vec::new();
        for &(v, lowest) in &frontier {
            for bit in lowest..16 {
                let flipped = v ^ (1 << bit);
                out.push(flipped);
                next.push((flipped, bit + 1));
            }
        }
        frontier = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same grouping by brute force: every pair compared.
    fn brute(hashes: &[u64], d: u32) -> Vec<Vec<u32>> {
        let n = hashes.len();
        let near_pairs =
            |i: usize| (0..n).filter(move |&j| j != i && distance(hashes[i], hashes[j]) <= d);
        // Identical hashes count and go together; the order is the distinct hashes' (by value).
        let mut distinct: Vec<u64> = hashes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let index = |h: u64| distinct.binary_search(&h).unwrap();
        let mut near = vec![0u32; distinct.len()];
        for i in 0..n {
            near[index(hashes[i])] = near_pairs(i).count() as u32;
        }
        let mut order: Vec<usize> = (0..distinct.len()).collect();
        order.sort_by_key(|&i| (Reverse(near[i]), i));
        let mut centre = vec![usize::MAX; distinct.len()];
        for &c in &order {
            if centre[c] != usize::MAX {
                continue;
            }
            for (j, &h) in distinct.iter().enumerate() {
                if centre[j] == usize::MAX && distance(distinct[c], h) <= d {
                    centre[j] = c;
                }
            }
        }
        let mut groups: std::collections::BTreeMap<usize, Vec<u32>> = Default::default();
        for (p, &h) in hashes.iter().enumerate() {
            groups.entry(centre[index(h)]).or_default().push(p as u32);
        }
        sorted(groups.into_values().filter(|g| g.len() > 1).collect())
    }

    fn sorted(mut groups: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
        for g in &mut groups {
            g.sort_unstable();
        }
        groups.sort();
        groups
    }

    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Clusters of variants around random centres, plus exact copies.
    fn collection() -> Vec<u64> {
        let mut next = xorshift(0x1234_5678_9abc_def0);
        let mut hashes = Vec::new();
        for _ in 0..300 {
            let centre = next();
            for _ in 0..(next() % 5) {
                let mut h = centre;
                for _ in 0..(next() % 8) {
                    h ^= 1 << (next() % 64);
                }
                hashes.push(h);
            }
            hashes.push(centre);
            if next() % 4 == 0 {
                hashes.push(centre);
            }
        }
        hashes
    }

    #[test]
    fn the_buckets_find_what_comparing_every_pair_finds() {
        let hashes = collection();
        let known = vec![true; hashes.len()];
        for d in [0, 4, 7, 10, 12] {
            // With the near pairs kept between the passes, and searched for again.
            for max_pairs in [MAX_KEPT_PAIRS, 0] {
                let found = group_within(&hashes, &known, d, MAX_COMPARISONS, max_pairs);
                assert!(found.complete);
                assert_eq!(
                    sorted(found.lists),
                    brute(&hashes, d),
                    "at {d} bits, {max_pairs}"
                );
            }
        }
    }

    #[test]
    fn a_chain_of_near_pairs_is_not_one_group() {
        // Each 6 bits from the next: the ends are 30 bits apart.
        let start = 0x0f0f_f0f0_3c3c_c3c3u64;
        let chain: Vec<u64> = (0..6)
            .map(|k| (0..k).fold(start, |h, s| h ^ (0x3f << (6 * s))))
            .collect();
        let found = group(&chain, &[true; 6], 10);
        assert!(found.lists.len() >= 2, "{:?}", found.lists);
        for list in &found.lists {
            for &a in list {
                for &b in list {
                    assert!(
                        distance(chain[a as usize], chain[b as usize]) <= 20,
                        "{list:?} holds images {} bits apart",
                        distance(chain[a as usize], chain[b as usize])
                    );
                }
            }
        }
    }

    #[test]
    fn the_most_connected_copy_is_the_centre() {
        // b is near a and c; a and c are 12 bits apart: one group around b.
        let a = 0u64;
        let b = 0x3f;
        let c = 0xfff;
        let found = group(&[a, b, c, 0xffff_ffff_0000_0000], &[true; 4], 10);
        assert_eq!(found.lists, [vec![2, 1, 0]], "highest position first");
    }

    #[test]
    fn groups_are_largest_first_and_unknown_hashes_left_out() {
        let hashes = [5u64, 5, 5, 0xff00, 0xff01, 7];
        let known = [true, true, false, true, true, true];
        let found = group(&hashes, &known, 2);
        assert_eq!(found.lists, [vec![5, 1, 0], vec![4, 3]]);
    }

    #[test]
    fn a_spent_budget_marks_the_groups_incomplete() {
        let hashes = collection();
        let known = vec![true; hashes.len()];
        let found = group_within(&hashes, &known, 10, 50, MAX_KEPT_PAIRS);
        assert!(!found.complete);
        // Whatever was found is still a grouping: no image in two groups.
        let mut seen = std::collections::HashSet::new();
        for &p in found.lists.iter().flatten() {
            assert!(seen.insert(p), "position {p} in two groups");
        }
    }
}
