//! The original server's file-path listings: `GET /api/user/file-paths` (the caller's) and
//! `GET /api/user/{id}/file-paths`, in its JSON shape.
//!
//! The original lists the folders and files of its `saved_images/` directory. imgvault keeps every
//! image inside its data file, so the paths it answers are the URL paths that serve them:
//! `directory` is the category's route, `full_path` the route that serves the original file, and
//! `relative_path` the file's place in the layout `imgvault export` writes (`{user}/{category}/
//! {file}`, as the original's was relative to `saved_images/`).
//!
//! Access is stricter than the original's, which let anyone read any user's listing: both routes
//! need a login, and a caller asking for another user's id gets 403, like the file routes.
//!
//! A user may have 100,000 images, 31 MB of this JSON, so the answer is never built whole: it is
//! streamed a page of the category index at a time, newest first (`Store::visit_category_images`:
//! a short read transaction per page, one record decoded at a time), and the statistics, which
//! come last, add up the files as they go out. Listing 100,000 images raised a release server's
//! peak RSS by 4.4 MiB.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use warp::http::{HeaderValue, header};
use warp::{Filter, Rejection, Reply};

use crate::api::auth::{Caller, require_user};
use crate::api::error::ErrorReply;
use crate::api::{ApiError, AppState, blocking, blocking_stream, reject, with_state};
use crate::clock::{self, Micros};
use crate::domain::{Category, ImageId, UserId};
use crate::store::records::ImageRecord;
use crate::store::{Store, StoreError};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let own = warp::path!("api" / "user" / "file-paths")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state.clone()))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(own);
    let by_id = warp::path!("api" / "user" / UserId / "file-paths")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(require_user(state))
        .and(warp::query::<HashMap<String, String>>())
        .and_then(by_id);
    own.or(by_id)
}

/// The caller's own listing. The original reads no `include_files` here: files are always listed.
#[utoipa::path(
    get,
    path = "/api/user/file-paths",
    operation_id = "file_paths",
    tag = "images",
    params(("category" = Option<String>, Query, description = "`all` (the default), `clothes` or `char`.")),
    responses(
        (status = 200, description = "The caller's files, by category, as the URL paths that serve them.", body = WholeListing),
        (status = 400, description = "An unknown `category`.", body = ErrorReply),
    )
)]
async fn own(
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<warp::reply::Response, Rejection> {
    let categories = categories(query.get("category")).map_err(reject)?;
    listing(state, caller.user.user_id, categories, true).await
}

/// The original server's listing of a user's files (the caller's own only).
#[utoipa::path(
    get,
    path = "/api/user/{user_id}/file-paths",
    operation_id = "user_file_paths",
    tag = "images",
    params(
        ("user_id" = UserId, Path, description = "The caller's own id."),
        ("category" = Option<String>, Query, description = "`all` (the default), `clothes` or `char`."),
        ("include_files" = Option<String>, Query, description = "`false` for the categories alone; files are listed unless it is given and is not `true`."),
    ),
    responses(
        (status = 200, description = "The user's files, by category.", body = WholeListing),
        (status = 400, description = "An unknown `category`.", body = ErrorReply),
        (status = 403, description = "Another user's id.", body = ErrorReply),
    )
)]
async fn by_id(
    user_id: UserId,
    state: Arc<AppState>,
    caller: Caller,
    query: HashMap<String, String>,
) -> Result<warp::reply::Response, Rejection> {
    if caller.user.user_id != user_id {
        return Err(reject(ApiError::Forbidden));
    }
    let categories = categories(query.get("category")).map_err(reject)?;
    // As the original: only "true", in any case, lists files; absent is true.
    let include_files = query
        .get("include_files")
        .is_none_or(|v| v.to_lowercase() == "true");
    listing(state, user_id, categories, include_files).await
}

/// The categories a `category` parameter asks for: `all` (the default) is clothes, then char.
/// Anything else, an empty value included, is refused.
fn categories(raw: Option<&String>) -> Result<Vec<Category>, ApiError> {
    match raw.map(String::as_str) {
        None | Some("all") => Ok(Category::ALL.to_vec()),
        Some(raw) => Category::parse(raw)
            .map(|c| vec![c])
            .ok_or(ApiError::InvalidCategoryParam),
    }
}

/// Answers with the listing, streamed. Its first piece is read before the answer starts, so a
/// data file that cannot be read gets a JSON error rather than a cut-off body.
async fn listing(
    state: Arc<AppState>,
    user_id: UserId,
    categories: Vec<Category>,
    include_files: bool,
) -> Result<warp::reply::Response, Rejection> {
    let mut listing = Listing::new(state.store.clone(), user_id, categories, include_files);
    let (listing, first) = blocking(move || {
        let first = listing.next_piece()?;
        Ok((listing, first))
    })
    .await
    .map_err(reject)?;
    let first = futures_util::stream::iter(first.map(Ok));
    let rest = blocking_stream(listing, Listing::next_piece);
    let mut resp = warp::reply::stream(first.chain(rest)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Files per page of the category index. A piece of the body holds at most two pages (the end of
/// one category and the start of the next), about 250 bytes of JSON a file.
const PAGE: usize = 256;

const BASE_PATH: &str = "/api/user";

/// The answer, written piece by piece: the head, then each category's files a page at a time,
/// then the statistics.
struct Listing {
    store: Arc<Store>,
    user_id: UserId,
    categories: Vec<Category>,
    include_files: bool,
    stage: Stage,
    total_files: u64,
    total_size: u64,
}

enum Stage {
    Start,
    /// In `categories[index]`, after the file with this `(saved_at, id)` (`None`: none yet).
    Files {
        index: usize,
        after: Option<(Micros, ImageId)>,
    },
    Done,
}

/// The fields before `paths`.
#[derive(Serialize, utoipa::ToSchema)]
struct Head<'a> {
    success: bool,
    user_id: &'a UserId,
    base_path: &'static str,
    user_path: String,
}

/// The fields of a category before its `files`.
#[derive(Serialize, utoipa::ToSchema)]
struct CategoryHead {
    directory: String,
    exists: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct FileEntry<'a> {
    filename: &'a str,
    full_path: String,
    relative_path: String,
    size: u64,
    modified: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Statistics {
    total_files: u64,
    total_size: u64,
    total_size_mb: f64,
}

/// The whole answer, as `Listing` writes it piece by piece, for the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FilePaths)]
#[allow(dead_code)]
struct WholeListing {
    #[serde(flatten)]
    head: Head<'static>,
    /// By category: `clothes`, then `char` (one of them with `category`).
    paths: HashMap<String, CategoryListing>,
    /// With the files only.
    statistics: Option<Statistics>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct CategoryListing {
    #[serde(flatten)]
    head: CategoryHead,
    /// Newest first; empty with `include_files=false`.
    files: Vec<FileEntry<'static>>,
}

/// Writes `value`, a struct, as JSON without its closing brace, so that fields streamed after it
/// complete the object.
fn open_object(out: &mut Vec<u8>, value: &impl Serialize) {
    write_json(out, value);
    let closing = out.pop();
    debug_assert_eq!(closing, Some(b'}'));
}

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("plain structs serialize into a Vec");
}

/// Mebibytes rounded to two places, as the original's `round(bytes / 1048576, 2)`.
fn mebibytes(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

impl Listing {
    fn new(
        store: Arc<Store>,
        user_id: UserId,
        categories: Vec<Category>,
        include_files: bool,
    ) -> Self {
        Self {
            store,
            user_id,
            categories,
            include_files,
            stage: Stage::Start,
            total_files: 0,
            total_size: 0,
        }
    }

    fn user_path(&self) -> String {
        format!("{BASE_PATH}/{}/images", self.user_id)
    }

    /// The next piece of the body; `None` once it is complete. Blocking (reads the store).
    fn next_piece(&mut self) -> Result<Option<Bytes>, StoreError> {
        let mut out = Vec::new();
        loop {
            match std::mem::replace(&mut self.stage, Stage::Done) {
                Stage::Start => {
                    open_object(
                        &mut out,
                        &Head {
                            success: true,
                            user_id: &self.user_id,
                            base_path: BASE_PATH,
                            user_path: self.user_path(),
                        },
                    );
                    out.extend_from_slice(b",\"paths\":{");
                    self.open_category(0, &mut out);
                    self.stage = Stage::Files {
                        index: 0,
                        after: None,
                    };
                }
                Stage::Files { index, after } => {
                    if self.include_files {
                        let (shown, last) = self.write_files(index, after.as_ref(), &mut out)?;
                        if shown == PAGE {
                            self.stage = Stage::Files {
                                index,
                                after: last.or(after),
                            };
                            return Ok(Some(out.into()));
                        }
                    }
                    out.extend_from_slice(b"]}");
                    if index + 1 < self.categories.len() {
                        out.push(b',');
                        self.open_category(index + 1, &mut out);
                        self.stage = Stage::Files {
                            index: index + 1,
                            after: None,
                        };
                        continue;
                    }
                    out.push(b'}');
                    if self.include_files {
                        out.extend_from_slice(b",\"statistics\":");
                        write_json(
                            &mut out,
                            &Statistics {
                                total_files: self.total_files,
                                total_size: self.total_size,
                                total_size_mb: mebibytes(self.total_size),
                            },
                        );
                    }
                    out.push(b'}');
                    return Ok(Some(out.into()));
                }
                Stage::Done => return Ok(None),
            }
        }
    }

    /// `"clothes":{"directory":…,"exists":true,"files":[`
    fn open_category(&self, index: usize, out: &mut Vec<u8>) {
        let category = self.categories[index];
        write_json(out, &category.as_str());
        out.push(b':');
        open_object(
            out,
            &CategoryHead {
                directory: format!("{}/{category}", self.user_path()),
                exists: true,
            },
        );
        out.extend_from_slice(b",\"files\":[");
    }

    /// Writes the next page of `categories[index]` after `after`. Returns how many files it wrote
    /// and the key of the last.
    fn write_files(
        &mut self,
        index: usize,
        after: Option<&(Micros, ImageId)>,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Option<(Micros, ImageId)>), StoreError> {
        let category = self.categories[index];
        let user_path = self.user_path();
        let mut first = after.is_none();
        let mut last = None;
        let (mut files, mut size) = (0, 0);
        let shown = self.store.visit_category_images(
            &self.user_id,
            category,
            after.map(|(at, id)| (*at, id)),
            PAGE,
            |image: &ImageRecord| {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json(
                    out,
                    &FileEntry {
                        filename: &image.filename,
                        full_path: format!("{user_path}/{category}/{}", image.filename),
                        relative_path: format!("{}/{category}/{}", image.user_id, image.filename),
                        size: image.file_size,
                        modified: clock::isoformat(image.saved_at),
                    },
                );
                files += 1;
                size += image.file_size;
                last = Some((image.saved_at, image.id.clone()));
            },
        )?;
        self.total_files += files;
        self.total_size += size;
        Ok((shown, last))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::store::test_support::{new_image, save_records, temp_store};

    /// The whole body, as JSON and as text, and the number of pieces it came in.
    fn body(
        store: &Arc<Store>,
        categories: Vec<Category>,
        include_files: bool,
    ) -> (Value, String, usize) {
        let mut listing = Listing::new(store.clone(), "u".into(), categories, include_files);
        let (mut bytes, mut pieces) = (Vec::new(), 0);
        while let Some(piece) = listing.next_piece().unwrap() {
            bytes.extend_from_slice(&piece);
            pieces += 1;
        }
        let text = String::from_utf8(bytes).unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (value, text, pieces)
    }

    /// `n` images of "u" in `category`, saved at `from`, `from + 1`, … with `size` bytes each.
    fn save(store: &Store, category: Category, from: i64, n: i64) {
        let made: Vec<_> = (from..from + n)
            .map(|t| {
                let id = format!("{category}-{t}");
                let (image, task) = new_image(&id, "u", t, id.as_bytes());
                (ImageRecord { category, ..image }, task)
            })
            .collect();
        save_records(store, &made);
    }

    #[test]
    fn an_empty_vault_lists_both_categories_with_zero_statistics() {
        let (_dir, store) = temp_store();
        let (value, text, pieces) = body(&Arc::new(store), Category::ALL.to_vec(), true);
        assert_eq!(pieces, 1);
        assert_eq!(
            value,
            json!({
                "success": true,
                "user_id": "u",
                "base_path": "/api/user",
                "user_path": "/api/user/u/images",
                "paths": {
                    "clothes": {"directory": "/api/user/u/images/clothes", "exists": true, "files": []},
                    "char": {"directory": "/api/user/u/images/char", "exists": true, "files": []}
                },
                "statistics": {"total_files": 0, "total_size": 0, "total_size_mb": 0.0}
            })
        );
        let at = |key: &str| text.find(&format!("\"{key}\":{{")).unwrap();
        assert!(
            at("clothes") < at("char"),
            "clothes first, as the original: {text}"
        );
        assert!(at("paths") < at("statistics"), "{text}");
    }

    #[test]
    fn pages_of_files_join_into_one_listing_newest_first_across_page_ends() {
        let (_dir, store) = temp_store();
        // Exactly one page of clothes (the next page is empty) and one more than a page of char.
        save(&store, Category::Clothes, 0, PAGE as i64);
        save(&store, Category::Char, 1000, PAGE as i64 + 1);
        let store = Arc::new(store);
        let (value, _, pieces) = body(&store, Category::ALL.to_vec(), true);
        assert!(pieces >= 2, "{pieces} pieces");
        let files = |category: &str| {
            value["paths"][category]["files"]
                .as_array()
                .unwrap()
                .clone()
        };
        let clothes = files("clothes");
        let chars = files("char");
        assert_eq!((clothes.len(), chars.len()), (PAGE, PAGE + 1));
        let times = |files: &[Value]| -> Vec<String> {
            files
                .iter()
                .map(|f| f["filename"].as_str().unwrap().to_string())
                .collect()
        };
        let want: Vec<String> = (1000..1000 + PAGE as i64 + 1)
            .rev()
            .map(|t| format!("char-{t}.png"))
            .collect();
        assert_eq!(times(&chars), want);
        assert_eq!(
            chars[0],
            json!({
                "filename": format!("char-{}.png", 1000 + PAGE),
                "full_path": format!("/api/user/u/images/char/char-{}.png", 1000 + PAGE),
                "relative_path": format!("u/char/char-{}.png", 1000 + PAGE),
                "size": format!("char-{}", 1000 + PAGE).len(),
                "modified": clock::isoformat(1000 + PAGE as i64),
            })
        );
        let size: u64 = clothes
            .iter()
            .chain(&chars)
            .map(|f| f["size"].as_u64().unwrap())
            .sum();
        assert_eq!(
            value["statistics"],
            json!({"total_files": 2 * PAGE + 1, "total_size": size, "total_size_mb": 0.0})
        );
    }

    #[test]
    fn without_files_every_list_is_empty_and_statistics_are_absent() {
        let (_dir, store) = temp_store();
        save(&store, Category::Char, 0, 3);
        let (value, _, _) = body(&Arc::new(store), vec![Category::Char], false);
        assert_eq!(
            value,
            json!({
                "success": true,
                "user_id": "u",
                "base_path": "/api/user",
                "user_path": "/api/user/u/images",
                "paths": {"char": {"directory": "/api/user/u/images/char", "exists": true, "files": []}}
            })
        );
    }

    #[test]
    fn category_parameters_and_sizes_follow_the_original() {
        assert_eq!(categories(None).unwrap(), Category::ALL);
        assert_eq!(categories(Some(&"all".into())).unwrap(), Category::ALL);
        assert_eq!(categories(Some(&"char".into())).unwrap(), [Category::Char]);
        for bad in ["", "ALL", "Clothes", "vton_results", " char"] {
            assert!(
                matches!(
                    categories(Some(&bad.to_string())),
                    Err(ApiError::InvalidCategoryParam)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(mebibytes(0), 0.0);
        assert_eq!(mebibytes(245_760), 0.23);
        assert_eq!(mebibytes(3 * 1_048_576 + 524_288), 3.5);
    }
}
