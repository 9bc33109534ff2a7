//! Images over HTTP: the three upload routes, the paged list, the file routes and delete.
//!
//! Uploads are sniffed and probed from their bytes (the client's name and type are never trusted),
//! stored with their task in one commit, and only then acknowledged. File routes serve the blob
//! with its blake3 hash as `ETag`; large blobs are streamed chunk by chunk.
//!
//! Uploads without a session are owned by `admin` and held to a quota per client address (images
//! and bytes a minute, 429 past it), or refused when `--anonymous-uploads false`; a session's own
//! uploads are never counted.
//!
//! `upload` takes images in (by bytes, URL or the SHA-256 of bytes the caller has, once per
//! `Idempotency-Key`), `capture` says which images a page shows are stored already and where an
//! image was seen, `list` pages through them (searched by words, tags, category and
//! saved date, with facets) and moves them to the trash, `trash` lists and empties it, `tags` sets
//! an image's tags and completes tag names, `batch` acts on many images at once, `edit` turns,
//! mirrors, crops and reverts one, `files` serves their bytes, `paths` lists the routes that
//! serve them in the original server's file-path shape, `similar` finds near-duplicates.

mod batch;
mod capture;
mod edit;
mod files;
mod list;
mod paths;
mod similar;
mod tags;
mod trash;
mod upload;

use std::sync::Arc;

use warp::{Filter, Rejection, Reply};

use super::AppState;
use crate::domain::ImageId;

/// The path parameter of the routes about one image, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct ImagePath {
    /// The image's `id`.
    image_id: ImageId,
}

/// The operations of this module in the OpenAPI document (`openapi`), a part per submodule.
pub fn doc() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(OpenApi)]
    #[openapi(paths(
        upload::receive_image,
        upload::upload_clipboard,
        upload::upload_file,
        capture::lookup,
        capture::sources,
        similar::similar,
        similar::duplicates,
        list::list,
        list::delete,
        batch::batch,
        edit::edit,
        edit::revert,
        tags::set_tags,
        tags::suggest,
        trash::list,
        trash::empty,
        paths::own,
        paths::by_id,
        files::original,
        files::by_category,
        files::thumbnail,
    ))]
    struct Doc;
    Doc::openapi()
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    upload::routes(state.clone())
        .or(capture::routes(state.clone()))
        .or(batch::routes(state.clone()))
        .or(edit::routes(state.clone()))
        .or(list::routes(state.clone()))
        .or(paths::routes(state.clone()))
        .or(tags::routes(state.clone()))
        .or(trash::routes(state.clone()))
        .or(similar::routes(state.clone()))
        .or(files::routes(state))
}
