//! Entry points for `tests/fuzz.rs` into code that is not public otherwise. Not an API: hidden from
//! the docs, kept to what the fuzz targets need, and each one runs the same code as the server.

use crate::cloud::{SyncData, SyncReply};
use crate::store::Store;

/// A sync request body received by a hub, as `POST /api/sync/user/{id}` handles it after
/// authentication: parsed as `SyncData` and ingested into `store` for `user_id`. Thumbnail jobs
/// are not queued. `Err` says why the body was refused as a whole.
pub fn sync_batch(store: &Store, user_id: &str, body: &[u8]) -> Result<SyncReply, String> {
    let data: SyncData = super::body::parse_json(body).map_err(|r| format!("{r:?}"))?;
    super::sync::ingest(store, user_id, data)
        .map(|(reply, _)| reply)
        .map_err(|e| e.to_string())
}
