//! Cloud sync, both ends. A server sends a user's unsynced images to its hub (another imgvault at
//! `--cloud-url`, see DECISIONS.md, or the original project's cloud server): `job` runs one sync,
//! `hub` is its HTTP client, `seal` keeps the hub's session token unusable from a copied data
//! file. A hub takes them in through `receive`, which reads the body as a stream, checks every
//! file like an upload and stores it under the sender's hub account.
//! `wire` holds the JSON both ends speak. The routes of both ends are in `api::sync`.

mod hub;
mod job;
mod receive;
mod seal;
mod wire;

pub use hub::{BatchAnswer, Hub, HubError, HubLogin};
pub use job::{BATCH_BYTES, BATCH_IMAGES, Running, SyncJob};
pub use receive::{IN_FLIGHT_BYTES, MAX_METADATA_BYTES, ReceiveError, Received, receive};
pub use seal::{seal, unseal};
pub use wire::*;
