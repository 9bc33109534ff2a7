//! The caller's images as the seed's paged list, searched and filtered (words, tags, category,
//! saved dates, order) with counts beside the page, and deleting one (to the trash).
//!
//! Parameters are checked here, once (a bad one is a 400 and nothing runs); the search itself is
//! `Store::search`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use warp::{Filter, Rejection, Reply};

use super::tags::TagCountView;
use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, reject, with_state};
use crate::clock;
use crate::domain::{Category, ImageId, Tags, UserId};
use crate::store::records::ImageRecord;
use crate::store::{CategoryFilter, DeleteOutcome, Facets, SearchQuery, Sort};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "user" / "images")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(warp::query::<Vec<(String, String)>>())
        .and_then(list);
    let delete = warp::path!("api" / "user" / "images" / ImageId)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and_then(delete);
    list.or(delete)
}

/// The seed's image object, with imgvault's additions.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ImageView {
    id: ImageId,
    user_id: UserId,
    filename: String,
    original_url: Option<String>,
    page_url: Option<String>,
    page_title: Option<String>,
    saved_at: String,
    file_size: u64,
    image_width: u32,
    image_height: u32,
    /// What the page told about the image (alt text, size shown, ...), as the extension sent it.
    #[schema(value_type = Object)]
    context_info: serde_json::Map<String, serde_json::Value>,
    /// `clothes` or `char`, as the original's list items carry it.
    category: &'static str,
    /// As their owner wrote them, in their order.
    tags: Vec<String>,
    status: &'static str,
    cloud_synced: bool,
    preview_url: String,
    thumbnail_url: String,
    /// Whether it has been edited (rotated, flipped, cropped) since it was uploaded.
    edited: bool,
    /// When it was moved to the trash, in trash listings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    trashed_at: Option<String>,
    /// How many live captures of the same bytes the caller has (this one included), in
    /// `distinct=1` listings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    captures: Option<u64>,
}

impl From<ImageRecord> for ImageView {
    fn from(r: ImageRecord) -> Self {
        let context_info = r.context_info();
        let query = match r.trashed_at {
            Some(_) => format!("?{}", super::files::TRASHED_QUERY),
            None => String::new(),
        };
        Self {
            preview_url: format!("/api/user/{}/images/{}{query}", r.user_id, r.filename),
            thumbnail_url: format!("/api/user/{}/thumbnails/{}{query}", r.user_id, r.filename),
            id: r.id,
            user_id: r.user_id,
            filename: r.filename,
            original_url: r.original_url,
            page_url: r.page_url,
            page_title: r.page_title,
            saved_at: clock::display(r.saved_at),
            file_size: r.file_size,
            image_width: r.width,
            image_height: r.height,
            context_info,
            category: r.category.as_str(),
            tags: r.tags,
            status: "saved",
            cloud_synced: r.cloud_synced,
            edited: r.original.is_some(),
            trashed_at: r.trashed_at.map(clock::display),
            captures: None,
        }
    }
}

/// A category's page walks its index from the newest end (`Store::list_images`), one key per
/// image before the page; past this offset that walk costs more than the hop to the blocking pool,
/// so it is made there. The list of all images starts deep pages from a mark and stays in place.
/// Searches always go to the pool.
const IN_PLACE_OFFSET: u64 = 512;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ImageList {
    pub images: Vec<ImageView>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    pub pages: u64,
    /// The `category` parameter as given: `null` when absent, `""` when empty.
    pub category: Option<String>,
    /// Counts beside a search (not in trash listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<FacetsView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct FacetsView {
    /// Matches in each category, whatever the `category` parameter.
    category: CategoryCounts,
    /// The most frequent tags among the matches.
    tags: Vec<TagCountView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CategoryCounts {
    clothes: u64,
    char: u64,
}

impl From<Facets> for FacetsView {
    fn from(facets: Facets) -> Self {
        let count = |wanted| {
            facets
                .categories
                .iter()
                .find(|(category, _)| *category == wanted)
                .map_or(0, |(_, n)| *n)
        };
        Self {
            category: CategoryCounts {
                clothes: count(Category::Clothes),
                char: count(Category::Char),
            },
            tags: facets.tags.into_iter().map(TagCountView::from).collect(),
        }
    }
}

/// The parameters `list` reads, for the OpenAPI document. `list` takes them as raw pairs: `tag`
/// repeats, and the seed's `page` and `per_page` fall back to their defaults when unparsable
/// rather than failing.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// Words to find in the title, URLs, file name, alt text and tags (all must match; ≤ 256
    /// characters).
    q: Option<String>,
    /// A tag the images must carry; repeat for several (all must match).
    tag: Option<Vec<String>>,
    /// `clothes` or `char`; empty for all. Another value matches nothing.
    category: Option<String>,
    /// Saved on or after this day (`YYYY-MM-DD`, the server's local time).
    from: Option<String>,
    /// Saved on or before this day (`YYYY-MM-DD`).
    to: Option<String>,
    /// `newest` (the default), `oldest`, `largest` or `smallest`.
    sort: Option<String>,
    /// From 1 (the default).
    page: Option<u64>,
    /// 1 to 100, 20 by default.
    per_page: Option<u64>,
    /// `1`: the newest capture of each content only, with `captures` counted; combines with
    /// `category` and paging only.
    distinct: Option<String>,
}

/// The longest `q`, in characters.
const MAX_QUERY_CHARS: usize = 256;

/// The search the parameters ask for; a 400 for a `q` too long, a date that is not `YYYY-MM-DD`,
/// `from` after `to`, or an unknown `sort`.
fn search_query(
    query: &HashMap<String, String>,
    tags: Tags,
    category: CategoryFilter,
    (page, per_page): (u64, u64),
) -> Result<SearchQuery, ApiError> {
    let bad = |message: &str| ApiError::BadRequest(message.to_string());
    let q = query.get("q").map_or("", String::as_str);
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(bad("搜索词不能超过256个字符"));
    }
    let date = |key: &str| match query.get(key).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(raw) => parse_date(raw)
            .map(Some)
            .ok_or_else(|| bad("日期格式应为 YYYY-MM-DD")),
    };
    let (from, to) = (date("from")?, date("to")?);
    if from.zip(to).is_some_and(|(from, to)| from > to) {
        return Err(bad("开始日期不能晚于结束日期"));
    }
    let sort = match query.get("sort").map(|v| v.trim()) {
        None | Some("") => Sort::default(),
        Some(raw) => Sort::parse(raw).ok_or_else(|| bad("不支持的排序方式"))?,
    };
    Ok(SearchQuery {
        words: crate::text::words(q),
        tags,
        category,
        from: from.map(clock::local_day_start),
        // The end of `to`: the start of the next day, or no end for the last day chrono knows.
        until: to.and_then(|to| to.succ_opt()).map(clock::local_day_start),
        sort,
        page,
        per_page,
    })
}

/// `YYYY-MM-DD`, exactly: ten characters, a real date.
fn parse_date(raw: &str) -> Option<chrono::NaiveDate> {
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    shaped
        .then(|| chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
        .flatten()
}

/// `page` and `per_page` as the seed reads them: unparsable numbers fall back to the defaults,
/// `per_page` is kept within 1..=100.
pub(super) fn paging(query: &HashMap<String, String>) -> (u64, u64) {
    let number = |key: &str, default: u64| {
        query
            .get(key)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default)
    };
    (number("page", 1), number("per_page", 20).min(100))
}

/// Whether the list is asked for with `distinct` (`1` or `true`): the newest capture of each
/// content, which combines with `category`, paging and `sort=newest` only (400 with a search,
/// tags, dates or another order).
fn distinct(pairs: &[(String, String)]) -> Result<bool, ApiError> {
    let asked = pairs
        .iter()
        .any(|(k, v)| k == "distinct" && matches!(v.trim(), "1" | "true"));
    // What it cannot combine with, given a value: words, tags, dates, an order but the newest.
    let refused = |(key, value): &(String, String)| {
        let value = value.trim();
        !value.is_empty()
            && match key.as_str() {
                "q" | "tag" | "from" | "to" => true,
                "sort" => value != "newest",
                _ => false,
            }
    };
    if asked && pairs.iter().any(refused) {
        return Err(ApiError::BadRequest(
            "distinct=1 只能与 category、page、per_page 一起使用".into(),
        ));
    }
    Ok(asked)
}

/// The newest capture of each of the caller's contents (`distinct=1`), with its capture count.
/// A page costs its offset in index keys, then its records (`Store::list_contents`).
async fn list_distinct(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<warp::reply::Response, Rejection> {
    let (page, per_page) = paging(&query);
    let given = query.get("category").cloned();
    let category = match given.as_deref() {
        None | Some("") => Ok(None),
        Some(raw) => Category::parse(raw).map(Some).ok_or(()),
    };
    let user_id = caller.user.user_id;
    let found = match category {
        Ok(category) => blocking(move || {
            Ok(state
                .store
                .list_contents(&user_id, category, page, per_page)?)
        })
        .await
        .map_err(reject)?,
        // As the plain list: a category that names none matches nothing.
        Err(()) => crate::store::ContentPage {
            images: Vec::new(),
            total: 0,
        },
    };
    let images = found
        .images
        .into_iter()
        .map(|(image, captures)| ImageView {
            captures: Some(captures),
            ..ImageView::from(image)
        })
        .collect();
    Ok(warp::reply::json(&ImageList {
        pages: found.total.div_ceil(per_page),
        images,
        total: found.total,
        page,
        per_page,
        category: given,
        facets: None,
    })
    .into_response())
}

/// The caller's images, newest first: the seed's paged list, searched and filtered, with counts
/// by category and tag beside the page.
#[utoipa::path(
    get,
    path = "/api/user/images",
    operation_id = "list_images",
    tag = "images",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of images.", body = ImageList),
        (status = 400, description = "A bad parameter (date, sort, tag, `q` too long).", body = ErrorReply),
    )
)]
async fn list(
    state: Arc<AppState>,
    caller: Caller,
    pairs: Vec<(String, String)>,
) -> Result<warp::reply::Response, Rejection> {
    if distinct(&pairs).map_err(reject)? {
        let query = pairs.into_iter().collect();
        return list_distinct(state, caller, query).await;
    }
    // `tag` may be given more than once (all must match); every other parameter once.
    let tags = Tags::parse(pairs.iter().filter(|(k, _)| k == "tag").map(|(_, v)| v))
        .map_err(|e| reject(ApiError::BadRequest(e.0.to_string())))?;
    let query: HashMap<String, String> = pairs.into_iter().filter(|(k, _)| k != "tag").collect();
    let (page, per_page) = paging(&query);
    let given = query.get("category").cloned();
    // As the original: an empty `category` is no filter, and one that names no category matches
    // nothing (its query compared it with the stored column), which is an empty page, not an error.
    let category = match given.as_deref() {
        None | Some("") => CategoryFilter::Any,
        Some(raw) => Category::parse(raw).map_or(CategoryFilter::Nothing, CategoryFilter::Only),
    };
    let search = search_query(&query, tags, category, (page, per_page)).map_err(reject)?;
    let user_id = caller.user.user_id;
    let offset = page.saturating_sub(1).saturating_mul(per_page);
    let in_place = search.is_plain()
        && (!matches!(category, CategoryFilter::Only(_)) || offset <= IN_PLACE_OFFSET);
    let found = if in_place {
        // Reads from the in-memory page marks, cached index pages and counters (see `blocking`).
        state
            .store
            .search(&user_id, &search)
            .map_err(|e| reject(e.into()))?
    } else {
        // Searches a catalog (built first, if need be) or reads index pages: off the runtime.
        blocking(move || Ok(state.store.search(&user_id, &search)?))
            .await
            .map_err(reject)?
    };
    Ok(warp::reply::json(&ImageList {
        pages: found.total.div_ceil(per_page),
        images: found.images.into_iter().map(ImageView::from).collect(),
        total: found.total,
        page,
        per_page,
        category: given,
        facets: Some(found.facets.into()),
    })
    .into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct Deleted {
    success: bool,
    message: &'static str,
    #[serde(rename = "imageId")]
    image_id: ImageId,
}

/// Moves an image to the trash (restore it with `/api/user/images/batch`).
#[utoipa::path(
    delete,
    path = "/api/user/images/{image_id}",
    operation_id = "delete_image",
    tag = "images",
    params(("image_id" = ImageId, Path, description = "The image's `id`.")),
    responses(
        (status = 200, description = "In the trash.", body = Deleted),
        (status = 403, description = "Another user's image: `{\"error\": \"权限不足\"}`.", body = ErrorReply),
        (status = 404, description = "No such image: `{\"error\": \"图片不存在\"}`.", body = ErrorReply),
    )
)]
async fn delete(
    image_id: ImageId,
    state: Arc<AppState>,
    caller: Caller,
) -> Result<impl Reply, Rejection> {
    let id = image_id.clone();
    let outcome = blocking(move || {
        Ok(state
            .store
            .trash_image(&id, &caller.user.user_id, clock::now())?)
    })
    .await
    .map_err(reject)?;
    match outcome {
        DeleteOutcome::Deleted => {
            tracing::info!(%image_id, "image moved to the trash");
            Ok(warp::reply::json(&Deleted {
                success: true,
                message: "图片已删除",
                image_id,
            }))
        }
        DeleteOutcome::NotFound => Err(reject(ApiError::ImageNotFound)),
        DeleteOutcome::NotOwner => Err(reject(ApiError::Forbidden)),
    }
}
