//! The collection the search and stats benches measure: one user's images as a real collection
//! looks (see `benches/search.rs` for what it holds), written straight into a fresh data file
//! through the library's `Store`, far faster than uploading it. Deterministic, so runs compare.
#![allow(dead_code)]

use std::path::Path;

use imgvault::clock::{DAY, Micros};
use imgvault::domain::{BlobHash, Category, Email, ImageId, Username};
use imgvault::media::ImageKind;
use imgvault::store::records::{ImageRecord, TaskRecord, TaskStatus, UserRecord};
use imgvault::store::{Batch, NewImage, Store, TaskEnd};
use serde_json::json;

/// Images written per commit while building a collection.
const BUILD_BATCH: usize = 2_000;

/// Deterministic, so every run measures the same collection.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16)]))
            .collect()
    }

    pub fn alnum(&mut self, n: usize) -> String {
        const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| char::from(SET[self.below(SET.len())]))
            .collect()
    }
}

pub const CHINESE: &[&str] = &[
    "夏季",
    "碎花",
    "连衣裙",
    "女装",
    "新款",
    "韩版",
    "宽松",
    "显瘦",
    "长袖",
    "短袖",
    "衬衫",
    "外套",
    "牛仔裤",
    "半身裙",
    "针织衫",
    "卫衣",
    "羽绒服",
    "大衣",
    "毛衣",
    "西装",
    "休闲",
    "复古",
    "法式",
    "学院风",
    "小清新",
    "气质",
    "百搭",
    "修身",
    "高腰",
    "春秋",
    "冬季",
    "纯棉",
    "真丝",
    "雪纺",
    "蕾丝",
    "格子",
    "条纹",
    "纯色",
    "印花",
    "刺绣",
    "小个子",
    "大码",
    "通勤",
    "度假",
    "碎花裙",
    "吊带",
    "背心",
    "阔腿裤",
    "短裤",
    "风衣",
    "马甲",
    "开衫",
    "套装",
    "旗袍",
    "汉服",
    "洛丽塔",
    "JK制服",
    "手办",
    "周边",
    "动漫",
    "同款",
    "明星",
    "博主",
    "穿搭",
];
pub const CHINESE_SITES: &[&str] = &["-淘宝网", "-tmall.com天猫", " - 小红书", " - 微博", ""];
pub const JAPANESE: &[&str] = &[
    "初音ミク",
    "フィギュア",
    "ワンピース",
    "コスプレ",
    "衣装",
    "春夏",
    "新作",
    "レディース",
    "イラスト",
    "キャラクター",
    "公式",
    "限定",
    "グッズ",
    "ねんどろいど",
    "制服",
    "和風",
    "浴衣",
    "ロリータ",
    "ゴスロリ",
    "メイド",
    "アニメ",
    "原神",
    "ホロライブ",
    "描いてみた",
    "落書き",
];
pub const JAPANESE_SITES: &[&str] = &[" - pixiv", " - Amazon.co.jp", " | ZOZOTOWN", " - X", ""];
pub const ENGLISH: &[&str] = &[
    "summer",
    "floral",
    "dress",
    "denim",
    "jacket",
    "vintage",
    "oversized",
    "cotton",
    "linen",
    "midi",
    "maxi",
    "wrap",
    "knit",
    "sweater",
    "cardigan",
    "blazer",
    "trench",
    "coat",
    "street",
    "style",
    "outfit",
    "ideas",
    "women",
    "fashion",
    "aesthetic",
    "casual",
    "cute",
    "korean",
    "cosplay",
    "character",
    "fan",
    "art",
    "anime",
    "figure",
    "costume",
];
pub const ENGLISH_SITES: &[&str] = &[" | Pinterest", " – Etsy", " | ASOS", " - Reddit", ""];
/// In about one title in a thousand: the rare word searched for.
pub const RARE: &str = "限定款";

/// A page: title, page URL, image URL, alt text.
pub fn page(rng: &mut Rng) -> (String, String, String, Option<String>) {
    let words = 3 + rng.below(3);
    let (title, url, image) = match rng.below(4) {
        0 | 1 => {
            let mut title: String = (0..words).map(|_| rng.pick(CHINESE)).collect();
            if rng.below(1000) == 0 {
                title.push_str(RARE);
            }
            title.push_str(rng.pick(CHINESE_SITES));
            let url = match rng.below(3) {
                0 => format!("https://item.taobao.com/item.htm?id=6{}", rng.digits(11)),
                1 => format!(
                    "https://detail.tmall.com/item.htm?id=7{}&skuId=5{}",
                    rng.digits(11),
                    rng.digits(12)
                ),
                _ => format!("https://www.xiaohongshu.com/explore/{}", rng.hex(24)),
            };
            let image = format!(
                "https://img.alicdn.com/imgextra/i{}/{}/O1CN01{}_!!{}.jpg",
                1 + rng.below(4),
                rng.digits(10),
                rng.alnum(22),
                rng.digits(10)
            );
            (title, url, image)
        }
        2 => {
            let mut title = (0..words)
                .map(|_| rng.pick(JAPANESE))
                .collect::<Vec<_>>()
                .join(" ");
            title.push_str(rng.pick(JAPANESE_SITES));
            let id = rng.digits(8);
            let url = format!("https://www.pixiv.net/artworks/1{id}");
            let image = format!(
                "https://i.pximg.net/img-master/img/2024/0{}/1{}/12/34/56/1{id}_p0_master1200.jpg",
                1 + rng.below(9),
                rng.below(10)
            );
            (title, url, image)
        }
        _ => {
            let mut title = (0..words)
                .map(|_| rng.pick(ENGLISH))
                .collect::<Vec<_>>()
                .join(" ");
            title.push_str(rng.pick(ENGLISH_SITES));
            let url = format!("https://www.pinterest.com/pin/{}/", rng.digits(18));
            let image = format!(
                "https://i.pinimg.com/736x/{}/{}/{}/{}.jpg",
                rng.hex(2),
                rng.hex(2),
                rng.hex(2),
                rng.hex(32)
            );
            (title, url, image)
        }
    };
    let alt = (rng.below(2) == 0).then(|| {
        let n = 1 + rng.below(3);
        (0..n).map(|_| rng.pick(CHINESE)).collect::<String>()
    });
    (title, url, image, alt)
}

/// 300 tags, most used first: the title words, then colours with items in each language.
pub fn vocabulary() -> Vec<String> {
    let mut tags: Vec<String> = CHINESE
        .iter()
        .chain(ENGLISH)
        .chain(JAPANESE)
        .map(|t| t.to_string())
        .collect();
    let colours: [(&[&str], &[&str], &str); 3] = [
        (&["红色", "白色", "黑色", "粉色"], CHINESE, ""),
        (&["black", "white", "blue", "grey"], ENGLISH, " "),
        (&["ピンク", "ブルー"], JAPANESE, ""),
    ];
    'more: for round in 0..4 {
        for (names, items, space) in colours {
            let Some(colour) = names.get(round) else {
                continue;
            };
            for item in items {
                if tags.len() == 300 {
                    break 'more;
                }
                tags.push(format!("{colour}{space}{item}"));
            }
        }
    }
    // Interleave the languages among the most used.
    let mut rng = Rng(99);
    for i in (1..tags.len()).rev() {
        tags.swap(i, rng.below(i + 1));
    }
    tags
}

/// `k` distinct tags drawn with Zipf weights 1/rank.
pub fn draw_tags(rng: &mut Rng, cumulative: &[f64], tags: &[String], k: usize) -> Vec<String> {
    let total = *cumulative.last().expect("tags");
    let mut drawn: Vec<String> = Vec::new();
    while drawn.len() < k {
        let x = (rng.next() % 1_000_000) as f64 / 1_000_000.0 * total;
        let rank = cumulative.partition_point(|&c| c < x).min(tags.len() - 1);
        if !drawn.contains(&tags[rank]) {
            drawn.push(tags[rank].clone());
        }
    }
    drawn
}

/// Writes `size` images of the account `username` (created here, with `password`) into a fresh
/// data file at `path`; their ids, oldest first.
pub fn build(
    path: &Path,
    size: usize,
    username: &str,
    password: &str,
) -> Result<Vec<String>, String> {
    let store =
        Store::open(path, imgvault::store::DEFAULT_CACHE_BYTES).map_err(|e| e.to_string())?;
    let user = UserRecord::new(
        &Username::parse(username).map_err(|e| e.0.to_string())?,
        &Email::parse(&format!("{username}@example.com")).map_err(|e| e.0.to_string())?,
        imgvault::secrets::hash_password(password),
    );
    store
        .create_user(&user, username, &format!("{username}@example.com"))
        .map_err(|e| e.to_string())?;
    let tags = vocabulary();
    let cumulative: Vec<f64> = (1..=tags.len())
        .scan(0.0, |sum, rank| {
            *sum += 1.0 / rank as f64;
            Some(*sum)
        })
        .collect();
    let mut rng = Rng(0x5eed_0000 + size as u64);
    let start: Micros = 1_640_995_200_000_000; // 2022-01-01
    let step = 3 * 365 * DAY / size as i64;
    let mut done = 0;
    let mut ids = Vec::with_capacity(size);
    while done < size {
        let n = BUILD_BATCH.min(size - done);
        let mut made = Vec::with_capacity(n);
        for i in done..done + n {
            let (title, url, image_url, alt) = page(&mut rng);
            let k = [0, 1, 1, 2, 2, 2, 3, 3, 4, 5][rng.below(10)];
            let category = if rng.below(10) < 7 {
                Category::Clothes
            } else {
                Category::Char
            };
            let bytes = format!("search bench image {i}").into_bytes();
            let saved_at = start + i as i64 * step;
            let id = ImageId::random();
            ids.push(id.to_string());
            let task_id = imgvault::domain::TaskId::random();
            let image = ImageRecord {
                id: id.clone(),
                user_id: user.user_id.clone(),
                filename: format!("{category}_{i:06}.jpg"),
                category,
                kind: ImageKind::Jpeg,
                blob: BlobHash::of(&bytes),
                original_url: Some(image_url),
                page_url: Some(url),
                page_title: Some(title),
                context_json: alt.map(|alt| json!({ "alt": alt }).to_string()),
                saved_at,
                file_size: (20_000.0 * 250f64.powf((rng.below(10_000) as f64) / 10_000.0)) as u64,
                width: 800,
                height: 1200,
                cloud_synced: false,
                task_id: task_id.clone(),
                tags: draw_tags(&mut rng, &cumulative, &tags, k),
                trashed_at: None,
                original: None,
                hub_stale: false,
            };
            let task = TaskRecord {
                task_id: task_id.clone(),
                user_id: user.user_id.clone(),
                image_id: id,
                status: TaskStatus::Processing,
                error: None,
                created_at: saved_at,
                updated_at: saved_at,
            };
            let end = TaskEnd {
                task_id,
                outcome: Ok(()),
                at: saved_at,
            };
            made.push((image, task, bytes, end));
        }
        let batch = Batch {
            uploads: made
                .iter()
                .map(|(image, task, bytes, _)| NewImage::plain(image, bytes, task))
                .collect(),
            thumbnails: Vec::new(),
            task_ends: made.iter().map(|(_, _, _, end)| end).collect(),
        };
        for outcome in store.commit(&batch).map_err(|e| e.to_string())? {
            outcome.map_err(|e| e.to_string())?;
        }
        done += n;
    }
    Ok(ids)
}
