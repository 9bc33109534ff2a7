use super::catalog::{Catalog, Covers};
use super::*;
use crate::domain::ImageId;
use crate::store::records::TaskRecord;
use crate::store::test_support::{add_user, new_image, save_records, temp_store};
use crate::store::{BatchAction, DeleteOutcome};

const DAY: Micros = crate::clock::DAY;

/// An image of "u" saved on day `day` (at noon UTC), with a title, tags and a size.
fn image(
    id: &str,
    day: i64,
    category: Category,
    title: &str,
    tags: &[&str],
    size: u64,
) -> (ImageRecord, TaskRecord) {
    let (mut image, task) = new_image(id, "u", day * DAY + DAY / 2, id.as_bytes());
    image.category = category;
    image.page_title = Some(title.to_string());
    image.tags = tags.iter().map(|t| t.to_string()).collect();
    image.file_size = size;
    (image, task)
}

fn query() -> SearchQuery {
    SearchQuery {
        page: 1,
        per_page: 20,
        ..SearchQuery::default()
    }
}

fn words(q: &str) -> SearchQuery {
    SearchQuery {
        words: crate::text::words(q),
        ..query()
    }
}

fn tagged(tags: &[&str]) -> SearchQuery {
    SearchQuery {
        tags: Tags::parse(tags).unwrap(),
        ..query()
    }
}

fn ids(page: &SearchPage) -> Vec<&str> {
    page.images.iter().map(|i| i.id.as_str()).collect()
}

fn shown(facets: &Facets) -> Vec<(&str, u64)> {
    facets
        .tags
        .iter()
        .map(|t| (t.tag.as_str(), t.count))
        .collect()
}

fn categories(facets: &Facets) -> [u64; 2] {
    facets.categories.map(|(_, n)| n)
}

/// Five images of "u" (and one of "v" that no search of "u" may find).
fn sample() -> (tempfile::TempDir, Store) {
    let (dir, store) = temp_store();
    add_user(&store, "u");
    add_user(&store, "v");
    save_records(
        &store,
        &[
            image(
                "a",
                1,
                Category::Clothes,
                "夏季碎花连衣裙",
                &["Summer", "dress"],
                300,
            ),
            image("b", 2, Category::Clothes, "DENIM jacket", &["denim"], 100),
            image("c", 3, Category::Char, "初音ミク figure", &["miku"], 500),
            image(
                "d",
                4,
                Category::Clothes,
                "Café au lait denim",
                &["denim", "summer"],
                200,
            ),
            image("e", 5, Category::Char, "ｶﾞﾝﾀﾞﾑ", &[], 400),
        ],
    );
    let (mut other, task) = new_image("x", "v", DAY, b"x");
    other.page_title = Some("denim".into());
    save_records(&store, &[(other, task)]);
    (dir, store)
}

#[test]
fn a_search_row_holds_every_text_field_folded_one_per_line() {
    let (mut image, _) = image(
        "i",
        1,
        Category::Char,
        "Ｔｉｔｌｅ",
        &["Red", "ＤＥＮＩＭ"],
        9,
    );
    image.context_json = Some(
        r#"{"alt":"Alt","caption":"","title":"T2","srcset":"no","original_filename":"Ｆ.png","converted":true}"#
            .into(),
    );
    image.page_url = Some("https://Shop.example/%E8%BF%9E%E8%A1%A3%E8%A3%99?q=%ZZ".into());
    image.original_url = Some("https://cdn.example/%FF.jpg".into());
    let row = record_of(&image);
    assert_eq!(
        row,
        SearchRecord {
            category: Category::Char,
            file_size: 9,
            tags: vec!["red".into(), "denim".into()],
            // Escapes that are not UTF-8 leave the URL as it was.
            text: "title\nalt\nt2\nf.png\nhttps://shop.example/连衣裙?q=%zz\nhttps://cdn.example/%ff.jpg"
                .into(),
        }
    );
}

#[test]
fn words_match_as_substrings_of_any_field_folded_and_all_of_them() {
    let (_dir, store) = sample();
    let user: UserId = "u".into();
    let find = |q: &str| {
        let page = store.search(&user, &words(q)).unwrap();
        (page.total, ids(&page).join(","))
    };
    assert_eq!(find("连衣裙"), (1, "a".into()));
    assert_eq!(find("ＤＥＮＩＭ"), (2, "d,b".into()));
    assert_eq!(find("ﾐｸ"), (1, "c".into()));
    assert_eq!(find("CAFÉ"), (1, "d".into()));
    assert_eq!(find("ガンダム"), (1, "e".into()));
    // Tags are searched as text too; every word must match.
    assert_eq!(find("summer"), (2, "d,a".into()));
    assert_eq!(find("denim lait"), (1, "d".into()));
    assert_eq!(find("denim nothing"), (0, String::new()));
    // A word never spans two fields: "jacket" ends the title, "denim" is the next line (a tag).
    assert_eq!(find("jacketdenim"), (0, String::new()));
    assert_eq!(find("jacket\ndenim"), (1, "b".into()));
}

#[test]
fn filters_combine_and_facets_count_categories_without_the_category_filter() {
    let (_dir, store) = sample();
    let user: UserId = "u".into();
    let everything = store
        .search(
            &user,
            &SearchQuery {
                sort: Sort::Oldest,
                ..query()
            },
        )
        .unwrap();
    assert_eq!(ids(&everything), ["a", "b", "c", "d", "e"]);
    assert_eq!(categories(&everything.facets), [3, 2]);
    assert_eq!(
        shown(&everything.facets),
        [("denim", 2), ("Summer", 2), ("dress", 1), ("miku", 1)]
    );

    let denim_clothes = SearchQuery {
        category: CategoryFilter::Only(Category::Clothes),
        ..tagged(&["Denim"])
    };
    let page = store.search(&user, &denim_clothes).unwrap();
    assert_eq!((page.total, ids(&page)), (2, vec!["d", "b"]));
    assert_eq!(categories(&page.facets), [2, 0]);
    assert_eq!(shown(&page.facets), [("denim", 2), ("Summer", 1)]);

    // Category counts ignore the category filter: each tab shows its count.
    let chars = SearchQuery {
        category: CategoryFilter::Only(Category::Char),
        ..words("i")
    };
    let page = store.search(&user, &chars).unwrap();
    assert_eq!((page.total, ids(&page)), (1, vec!["c"]));
    assert_eq!(categories(&page.facets), [2, 1]);
    assert_eq!(shown(&page.facets), [("miku", 1)]);

    // Saved dates: day 2 to day 4 inclusive.
    let days = SearchQuery {
        from: Some(2 * DAY),
        until: Some(5 * DAY),
        ..query()
    };
    let page = store.search(&user, &days).unwrap();
    assert_eq!((page.total, ids(&page)), (3, vec!["d", "c", "b"]));
    let both = SearchQuery {
        words: vec!["denim".into()],
        tags: Tags::parse(["summer"]).unwrap(),
        ..days
    };
    assert_eq!(ids(&store.search(&user, &both).unwrap()), ["d"]);

    // Orders by size, ties newest first; pages.
    let by_size = |sort, page| SearchQuery {
        sort,
        page,
        per_page: 2,
        ..query()
    };
    let largest: Vec<Vec<String>> = (1..=3)
        .map(|p| {
            let found = store.search(&user, &by_size(Sort::Largest, p)).unwrap();
            assert_eq!(found.total, 5);
            ids(&found).iter().map(|s| s.to_string()).collect()
        })
        .collect();
    assert_eq!(largest, [vec!["c", "e"], vec!["a", "d"], vec!["b"]]);
    let smallest = store.search(&user, &by_size(Sort::Smallest, 1)).unwrap();
    assert_eq!(ids(&smallest), ["b", "d"]);

    // A tag nobody carries, an unknown category: nothing, with the categories still counted.
    let page = store.search(&user, &tagged(&["nothing"])).unwrap();
    assert_eq!((page.total, categories(&page.facets)), (0, [0, 0]));
    let unknown = SearchQuery {
        category: CategoryFilter::Nothing,
        ..words("denim")
    };
    let page = store.search(&user, &unknown).unwrap();
    assert_eq!(
        (page.total, categories(&page.facets), page.facets.tags.len()),
        (0, [2, 0], 0)
    );
}

#[test]
fn a_plain_listing_reads_the_indexes_and_counts_tags_from_the_counters() {
    let (_dir, store) = sample();
    let user: UserId = "u".into();
    let page = store.search(&user, &query()).unwrap();
    assert_eq!((page.total, ids(&page)), (5, vec!["e", "d", "c", "b", "a"]));
    assert_eq!(categories(&page.facets), [3, 2]);
    assert_eq!(
        shown(&page.facets),
        [("denim", 2), ("Summer", 2), ("dress", 1), ("miku", 1)]
    );
    let clothes = SearchQuery {
        category: CategoryFilter::Only(Category::Clothes),
        ..query()
    };
    let page = store.search(&user, &clothes).unwrap();
    assert_eq!((page.total, ids(&page)), (3, vec!["d", "b", "a"]));
    assert_eq!(categories(&page.facets), [3, 2]);
    assert_eq!(
        shown(&page.facets),
        [("denim", 2), ("Summer", 2), ("dress", 1)]
    );
    // The same answers from the catalog, asked for oldest first.
    let oldest = store
        .search(
            &user,
            &SearchQuery {
                sort: Sort::Oldest,
                ..clothes
            },
        )
        .unwrap();
    assert_eq!(ids(&oldest), ["a", "b", "d"]);
    assert_eq!(oldest.facets, page.facets);
}

#[test]
fn every_change_is_searched_at_once_and_trashed_images_never() {
    let (_dir, store) = sample();
    let user: UserId = "u".into();
    let find = |q: SearchQuery| ids(&store.search(&user, &q).unwrap()).join(",");
    assert_eq!(find(tagged(&["wool"])), "");
    let epoch_now = || {
        let tx = store.read().unwrap();
        epoch(&tx.open_table(META).unwrap(), "u").unwrap()
    };

    // An upload at the newest end extends the catalog without a new epoch.
    let before = epoch_now();
    save_records(
        &store,
        &[image("f", 6, Category::Clothes, "wool coat", &[], 10)],
    );
    assert_eq!(epoch_now(), before);
    assert_eq!(find(words("wool")), "f");
    // One saved among older images moves positions: a new epoch.
    save_records(
        &store,
        &[image("g", 0, Category::Clothes, "old wool", &[], 10)],
    );
    assert!(epoch_now() > before);
    assert_eq!(find(words("wool")), "f,g");

    store
        .set_tags(&"b".into(), &user, &Tags::parse(["Wool"]).unwrap())
        .unwrap();
    assert_eq!(find(tagged(&["wool"])), "b");
    assert_eq!(find(tagged(&["denim"])), "d");
    store
        .set_tags(&"b".into(), &user, &Tags::parse(["linen"]).unwrap())
        .unwrap();
    assert_eq!(find(tagged(&["wool"])), "");
    let set_char = BatchAction::SetCategory(Category::Char);
    store.batch(&user, &["d".into()], &set_char).unwrap();
    let chars = SearchQuery {
        category: CategoryFilter::Only(Category::Char),
        ..words("denim")
    };
    assert_eq!(find(chars.clone()), "d");
    let add = BatchAction::AddTags(Tags::parse(["wool"]).unwrap());
    store.batch(&user, &["a".into(), "c".into()], &add).unwrap();
    assert_eq!(find(tagged(&["wool"])), "c,a");

    assert_eq!(
        store.trash_image(&"d".into(), &user, 1).unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(find(chars.clone()), "");
    assert_eq!(find(words("denim")), "b");
    store
        .batch(&user, &["d".into()], &BatchAction::Restore)
        .unwrap();
    assert_eq!(find(chars), "d");
    store.delete_image(&"a".into(), &user).unwrap();
    assert_eq!(find(tagged(&["wool"])), "c");

    // The tags counted beside a tag's images follow uploads too.
    let facets = |tag: &str| {
        let page = store.search(&user, &tagged(&[tag])).unwrap();
        let counted: Vec<(String, u64)> = page
            .facets
            .tags
            .into_iter()
            .map(|t| (t.tag, t.count))
            .collect();
        counted
    };
    let owned = |list: &[(&str, u64)]| -> Vec<(String, u64)> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    };
    assert_eq!(facets("miku"), owned(&[("miku", 1), ("wool", 1)]));
    save_records(
        &store,
        &[image("h", 7, Category::Char, "", &["Miku", "new"], 1)],
    );
    assert_eq!(
        facets("miku"),
        owned(&[("miku", 2), ("new", 1), ("wool", 1)])
    );
    assert!(store.check().unwrap().is_clean());
}

/// A deterministic generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn the_catalog_and_the_row_by_row_scan_give_the_same_answers() {
    let (_dir, store) = temp_store();
    add_user(&store, "u");
    let vocabulary = [
        "red",
        "denim",
        "连衣裙",
        "ミク",
        "cafe",
        "wool",
        "夏季",
        "coat",
    ];
    let mut rng = Rng(7);
    let made: Vec<_> = (0..300)
        .map(|i| {
            let title: Vec<&str> = (0..3)
                .map(|_| vocabulary[rng.next(vocabulary.len() as u64) as usize])
                .collect();
            let tags: Vec<&str> = (0..rng.next(3))
                .map(|_| vocabulary[rng.next(4) as usize])
                .collect();
            let category = if rng.next(3) == 0 {
                Category::Char
            } else {
                Category::Clothes
            };
            let mut made = image(
                &format!("i{i:03}"),
                rng.next(30) as i64,
                category,
                &title.join(""),
                &[],
                rng.next(5),
            );
            made.0.tags = Tags::parse(tags)
                .unwrap()
                .iter()
                .map(|t| t.as_str().to_string())
                .collect();
            made
        })
        .collect();
    save_records(&store, &made);
    let user: UserId = "u".into();
    let mut queries = Vec::new();
    for q in ["", "red", "连衣", "ミク cafe", "d", "zzz"] {
        for tags in [&[][..], &["red"][..], &["denim", "red"][..]] {
            for category in [
                CategoryFilter::Any,
                CategoryFilter::Only(Category::Char),
                CategoryFilter::Nothing,
            ] {
                for sort in [Sort::Newest, Sort::Oldest, Sort::Largest, Sort::Smallest] {
                    for (from, until) in [(None, None), (Some(5 * DAY), Some(20 * DAY))] {
                        queries.push(SearchQuery {
                            words: crate::text::words(q),
                            tags: Tags::parse(tags).unwrap(),
                            category,
                            from,
                            until,
                            sort,
                            page: 1 + rng.next(3),
                            per_page: 1 + rng.next(40),
                        });
                    }
                }
            }
        }
    }
    let answer = |q: &SearchQuery| {
        let page = store.search(&user, q).unwrap();
        let ids: Vec<ImageId> = page.images.into_iter().map(|i| i.id).collect();
        (ids, page.total, page.facets)
    };
    let from_catalog: Vec<_> = queries.iter().map(answer).collect();
    assert!(store.catalogs.held() > 0);
    store.set_search_budget(0);
    for (q, catalog) in queries.iter().zip(&from_catalog) {
        assert_eq!(&answer(q), catalog, "{q:?}");
    }
    assert_eq!(store.catalogs.held(), 0);
    assert!(from_catalog.iter().any(|(ids, _, _)| ids.len() > 3));
}

#[test]
fn a_catalog_answers_an_older_snapshot_with_the_rows_it_held() {
    let (_dir, store) = sample();
    let old = store.read().unwrap();
    let old_snapshot = Snapshot::read(&old, "u").unwrap();
    let mut catalog = Catalog::load(&old, "u", old_snapshot.epoch, &mut |_| true)
        .unwrap()
        .unwrap();
    assert_eq!(catalog.covers(&old_snapshot), Covers::Rows(5));

    save_records(&store, &[image("f", 9, Category::Clothes, "new", &[], 1)]);
    let new = store.read().unwrap();
    let new_snapshot = Snapshot::read(&new, "u").unwrap();
    assert_eq!(catalog.covers(&new_snapshot), Covers::Behind);
    catalog.extend(&new, "u").unwrap();
    assert_eq!(catalog.covers(&new_snapshot), Covers::Rows(6));
    assert_eq!(catalog.covers(&old_snapshot), Covers::Rows(5));
    let everything = query();
    let prepared = Prepared::new(&everything);
    let sort_oldest = SearchQuery {
        sort: Sort::Oldest,
        ..words("denim")
    };
    assert_eq!(catalog.find(5, &prepared).total, 5);
    assert_eq!(catalog.find(6, &prepared).total, 6);
    let found = catalog.find(5, &Prepared::new(&sort_oldest));
    assert_eq!((found.total, found.page), (2, vec!["b".into(), "d".into()]));

    store.delete_image(&"f".into(), &"u".into()).unwrap();
    let after = Snapshot::read(&store.read().unwrap(), "u").unwrap();
    assert_eq!(catalog.covers(&after), Covers::Stale);
}

#[test]
fn catalogs_stay_within_the_budget_least_recently_used_out_first() {
    let (_dir, store) = temp_store();
    for user in ["u", "v", "w"] {
        add_user(&store, user);
        let made: Vec<_> = (0..200)
            .map(|i| {
                let (mut image, task) = new_image(
                    &format!("{user}{i}"),
                    user,
                    i,
                    format!("{user}{i}").as_bytes(),
                );
                image.page_title = Some(format!("title number {i} of {user}"));
                (image, task)
            })
            .collect();
        save_records(&store, &made);
    }
    let search = |user: &str| store.search(&user.into(), &words("number")).unwrap().total;
    assert_eq!(search("u"), 200);
    let one = store.catalogs.held();
    assert!(one > 200 * 40, "{one} bytes");
    store.set_search_budget(one * 2 + one / 2);
    assert_eq!(search("v"), 200);
    assert_eq!(store.catalogs.held(), 2 * one);
    // A third pushes out the least recently used.
    assert_eq!(search("u"), 200);
    assert_eq!(search("w"), 200);
    assert_eq!(store.catalogs.held(), 2 * one);
    assert_eq!(store.catalogs.kept(), ["u", "w"]);
    // One that cannot fit alone is searched row by row, with the same answer.
    store.set_search_budget(one / 2);
    assert_eq!(search("u"), 200);
    assert_eq!(store.catalogs.held(), 0);
}
