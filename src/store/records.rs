//! The structs stored in the data file and their encoding.
//!
//! Each record is one version byte followed by its postcard encoding (postcard 1.x has a frozen,
//! documented wire format). A record type whose fields change gets a new version number and a
//! conversion in `migrate`; `decode` refuses versions it does not know rather than misreading them.
//! These types are the disk format, kept apart from the JSON shapes in `api` on purpose.
//!
//! postcard writes an enum as the index of its variant, so the order of an enum's variants is part
//! of the format. The enums of other layers that are stored here (`ImageKind`, `Category`) go
//! through the codes in `codes`, owned by this module, so reordering them elsewhere cannot change
//! a stored byte; the enums defined here say in their docs that their order is fixed. The golden
//! tests at the end hold the exact bytes of every record type.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::clock::Micros;
use crate::domain::{
    BlobHash, Category, Email, ImageId, KeyId, KeyScope, TaskId, UserId, Username,
};
use crate::media::ImageKind;

use super::StoreError;

/// A stored record type with its current encoding version.
pub trait Record: Serialize + DeserializeOwned {
    const NAME: &'static str;
    const VERSION: u8;

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![Self::VERSION];
        // Serializing plain structs into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).expect("postcard encodes plain structs"));
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.split_first() {
            Some((&v, rest)) if v == Self::VERSION => postcard::from_bytes(rest)
                .map_err(|e| StoreError::Corrupt(format!("{} record: {e}", Self::NAME))),
            Some((v, _)) => Err(StoreError::Corrupt(format!(
                "{} record has unknown version {v}",
                Self::NAME
            ))),
            None => Err(StoreError::Corrupt(format!("empty {} record", Self::NAME))),
        }
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub username: String,
    pub email: String,
    /// PHC string of an argon2id hash. Never leaves the store layer except to be verified.
    pub password_hash: String,
    pub created_at: Micros,
    pub last_login: Option<Micros>,
    pub cloud_sync_enabled: bool,
}

impl UserRecord {
    /// A new account with a fresh random id, created now.
    pub fn new(username: &Username, email: &Email, password_hash: String) -> Self {
        Self {
            user_id: UserId::random(),
            username: username.as_str().to_string(),
            email: email.as_str().to_string(),
            password_hash,
            created_at: crate::clock::now(),
            last_login: None,
            cloud_sync_enabled: false,
        }
    }
}

/// Written by hand so the password hash can never reach a log line through `{:?}`.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("created_at", &self.created_at)
            .field("last_login", &self.last_login)
            .field("cloud_sync_enabled", &self.cloud_sync_enabled)
            .finish_non_exhaustive()
    }
}

impl Record for UserRecord {
    const NAME: &'static str = "user";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: UserId,
    pub created_at: Micros,
    pub expires_at: Micros,
    pub remember_me: bool,
}

impl Record for SessionRecord {
    const NAME: &'static str = "session";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: ImageId,
    pub user_id: UserId,
    pub filename: String,
    #[serde(with = "codes::category")]
    pub category: Category,
    #[serde(with = "codes::kind")]
    pub kind: ImageKind,
    pub blob: BlobHash,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    /// `pageInfo.imageContext` as sent (a JSON object, kept as its text).
    pub context_json: Option<String>,
    pub saved_at: Micros,
    pub file_size: u64,
    pub width: u32,
    pub height: u32,
    pub cloud_synced: bool,
    pub task_id: TaskId,
    /// The image's tags as their owner wrote them, in their order, none equal once folded
    /// (`domain::Tags`). Version 2.
    pub tags: Vec<String>,
    /// When its owner moved it to the trash; `None` while it is live. A trashed image is in no
    /// index or count but the trash's (`USER_TRASH`). Version 3.
    pub trashed_at: Option<Micros>,
    /// The upload as first stored, once the image has been edited: `blob`, `kind`, `width`,
    /// `height` and `file_size` then describe the edited image, and both blobs hold a reference.
    /// Version 3.
    pub original: Option<OriginalMedia>,
    /// A change the hub has not seen yet (tags, category, trash, an edit) to an image it holds:
    /// the next sync sends the record again, without bytes the hub has. `cloud_synced` keeps
    /// saying the hub holds the image. Version 3.
    pub hub_stale: bool,
}

/// The bytes an edited image was uploaded as, kept so the edit can be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalMedia {
    pub blob: BlobHash,
    #[serde(with = "codes::kind")]
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
    pub file_size: u64,
}

impl ImageRecord {
    pub fn is_trashed(&self) -> bool {
        self.trashed_at.is_some()
    }

    pub fn is_edited(&self) -> bool {
        self.original.is_some()
    }

    /// Every blob the record holds a reference to: what it serves, and its original if edited.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobHash> {
        std::iter::once(&self.blob).chain(self.original.as_ref().map(|o| &o.blob))
    }

    /// The bytes as captured: the upload's, whatever edits made of it since. Captures of the same
    /// bytes are one content (`store::content`), and an edit leaves the image in its content.
    pub fn captured_blob(&self) -> &BlobHash {
        self.original.as_ref().map_or(&self.blob, |o| &o.blob)
    }
}

/// Version 2 had no trash, edits or `hub_stale`.
#[derive(Deserialize)]
struct ImageRecordV2 {
    id: ImageId,
    user_id: UserId,
    filename: String,
    #[serde(with = "codes::category")]
    category: Category,
    #[serde(with = "codes::kind")]
    kind: ImageKind,
    blob: BlobHash,
    original_url: Option<String>,
    page_url: Option<String>,
    page_title: Option<String>,
    context_json: Option<String>,
    saved_at: Micros,
    file_size: u64,
    width: u32,
    height: u32,
    cloud_synced: bool,
    task_id: TaskId,
    tags: Vec<String>,
}

impl From<ImageRecordV2> for ImageRecord {
    fn from(v2: ImageRecordV2) -> Self {
        Self {
            id: v2.id,
            user_id: v2.user_id,
            filename: v2.filename,
            category: v2.category,
            kind: v2.kind,
            blob: v2.blob,
            original_url: v2.original_url,
            page_url: v2.page_url,
            page_title: v2.page_title,
            context_json: v2.context_json,
            saved_at: v2.saved_at,
            file_size: v2.file_size,
            width: v2.width,
            height: v2.height,
            cloud_synced: v2.cloud_synced,
            task_id: v2.task_id,
            tags: v2.tags,
            trashed_at: None,
            original: None,
            hub_stale: false,
        }
    }
}

/// Version 1 had no tags.
#[derive(Deserialize)]
struct ImageRecordV1 {
    id: ImageId,
    user_id: UserId,
    filename: String,
    #[serde(with = "codes::category")]
    category: Category,
    #[serde(with = "codes::kind")]
    kind: ImageKind,
    blob: BlobHash,
    original_url: Option<String>,
    page_url: Option<String>,
    page_title: Option<String>,
    context_json: Option<String>,
    saved_at: Micros,
    file_size: u64,
    width: u32,
    height: u32,
    cloud_synced: bool,
    task_id: TaskId,
}

impl From<ImageRecordV1> for ImageRecordV2 {
    fn from(v1: ImageRecordV1) -> Self {
        Self {
            id: v1.id,
            user_id: v1.user_id,
            filename: v1.filename,
            category: v1.category,
            kind: v1.kind,
            blob: v1.blob,
            original_url: v1.original_url,
            page_url: v1.page_url,
            page_title: v1.page_title,
            context_json: v1.context_json,
            saved_at: v1.saved_at,
            file_size: v1.file_size,
            width: v1.width,
            height: v1.height,
            cloud_synced: v1.cloud_synced,
            task_id: v1.task_id,
            tags: Vec::new(),
        }
    }
}

/// The fields every version of an image record starts with, up to the blob, read in place.
#[derive(Deserialize)]
struct ImageBlobView<'a> {
    _id: &'a str,
    _user_id: &'a str,
    _filename: &'a str,
    _category: u8,
    _kind: u8,
    blob: BlobHash,
}

impl ImageRecord {
    /// The blob of stored image record bytes, without decoding the rest (a similar-image index
    /// reads every image of a user). Every version so far starts with the same fields up to it.
    pub fn blob_of(bytes: &[u8]) -> Result<BlobHash, StoreError> {
        match bytes.split_first() {
            Some((1..=3, rest)) => postcard::from_bytes::<ImageBlobView<'_>>(rest)
                .map(|view| view.blob)
                .map_err(|e| StoreError::Corrupt(format!("image record: {e}"))),
            Some((v, _)) => Err(StoreError::Corrupt(format!(
                "image record has unknown version {v}"
            ))),
            None => Err(StoreError::Corrupt("empty image record".into())),
        }
    }

    /// The seed's `context_info`: what the client sent as `imageContext`, plus the category.
    pub fn context_info(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut info = match self
            .context_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
        {
            Some(serde_json::Value::Object(map)) => map,
            Some(other) => serde_json::Map::from_iter([("value".to_string(), other)]),
            None => serde_json::Map::new(),
        };
        info.insert("category".into(), self.category.as_str().into());
        info
    }
}

impl Record for ImageRecord {
    const NAME: &'static str = "image";
    const VERSION: u8 = 3;

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |e: postcard::Error| StoreError::Corrupt(format!("image record: {e}"));
        match bytes.split_first() {
            Some((1, rest)) => Ok(ImageRecordV2::from(
                postcard::from_bytes::<ImageRecordV1>(rest).map_err(corrupt)?,
            )
            .into()),
            Some((2, rest)) => Ok(postcard::from_bytes::<ImageRecordV2>(rest)
                .map_err(corrupt)?
                .into()),
            Some((3, rest)) => postcard::from_bytes(rest).map_err(corrupt),
            Some((v, _)) => Err(StoreError::Corrupt(format!(
                "image record has unknown version {v}"
            ))),
            None => Err(StoreError::Corrupt("empty image record".into())),
        }
    }
}

/// How many of a user's images carry one tag, and the tag as first written (what autocomplete
/// offers). Keyed by the user and the folded tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    pub count: u64,
    pub shown: String,
}

impl Record for TagRecord {
    const NAME: &'static str = "tag";
    const VERSION: u8 = 1;
}

/// What search matches a live image by (`USER_SEARCH`, kept by `store::search`): beside the time
/// index, so that a user's search catalog is built from one range read instead of a record
/// lookup per image. Text and tags are folded by `text::fold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRecord {
    #[serde(with = "codes::category")]
    pub category: Category,
    pub file_size: u64,
    /// The image's tags, folded, in its order.
    pub tags: Vec<String>,
    /// The image's text fields, folded, one after another with a line break between them.
    pub text: String,
}

/// A `SearchRecord` read in place: its strings borrow the stored bytes.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct SearchView<'a> {
    #[serde(with = "codes::category")]
    pub category: Category,
    pub file_size: u64,
    #[serde(borrow)]
    pub tags: Vec<&'a str>,
    pub text: &'a str,
}

impl Record for SearchRecord {
    const NAME: &'static str = "search";
    const VERSION: u8 = 1;
}

impl SearchRecord {
    /// Reads stored bytes without copying their text (a catalog reads every row of a user).
    pub fn view(bytes: &[u8]) -> Result<SearchView<'_>, StoreError> {
        match bytes.split_first() {
            Some((&v, rest)) if v == Self::VERSION => postcard::from_bytes(rest)
                .map_err(|e| StoreError::Corrupt(format!("search record: {e}"))),
            Some((v, _)) => Err(StoreError::Corrupt(format!(
                "search record has unknown version {v}"
            ))),
            None => Err(StoreError::Corrupt("empty search record".into())),
        }
    }
}

/// Stored by variant index: the order of the variants is the disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    Processing,
    Completed,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task_id: TaskId,
    pub user_id: UserId,
    pub image_id: ImageId,
    pub status: TaskStatus,
    /// Why a task failed, for logs and the task endpoint.
    pub error: Option<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl Record for TaskRecord {
    const NAME: &'static str = "task";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub chunks: u32,
    /// How many image records point at this blob; the blob is freed when it reaches zero.
    pub refs: u64,
    /// Bytes in each chunk but the last.
    pub chunk_size: u32,
    /// The SHA-256 of the bytes, beside the blake3 key: what browsers can compute (WebCrypto) to
    /// ask whether the vault holds an image. Known for every blob an image was captured as
    /// (`ImageRecord::captured_blob`), except those stored before schema 12 that the background
    /// pass has not reached yet (`SHA256_BACKLOG`); a blob that is only a thumbnail has none.
    /// Version 3.
    pub sha256: Option<[u8; 32]>,
}

/// Version 2 had no `sha256`.
#[derive(Deserialize)]
struct BlobRecordV2 {
    size: u64,
    chunks: u32,
    refs: u64,
    chunk_size: u32,
}

/// Version 1 had no `chunk_size`: its blobs were cut in 32 KiB chunks.
#[derive(Deserialize)]
struct BlobRecordV1 {
    size: u64,
    chunks: u32,
    refs: u64,
}

/// The chunk size of blobs written before `chunk_size` was recorded.
pub const V1_CHUNK_SIZE: u32 = 32 * 1024;

impl Record for BlobRecord {
    const NAME: &'static str = "blob";
    const VERSION: u8 = 3;

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.split_first() {
            Some((1, rest)) => {
                let v1: BlobRecordV1 = postcard::from_bytes(rest)
                    .map_err(|e| StoreError::Corrupt(format!("blob record: {e}")))?;
                Ok(Self {
                    size: v1.size,
                    chunks: v1.chunks,
                    refs: v1.refs,
                    chunk_size: V1_CHUNK_SIZE,
                    sha256: None,
                })
            }
            Some((2, rest)) => {
                let v2: BlobRecordV2 = postcard::from_bytes(rest)
                    .map_err(|e| StoreError::Corrupt(format!("blob record: {e}")))?;
                Ok(Self {
                    size: v2.size,
                    chunks: v2.chunks,
                    refs: v2.refs,
                    chunk_size: v2.chunk_size,
                    sha256: None,
                })
            }
            Some((3, rest)) => postcard::from_bytes(rest)
                .map_err(|e| StoreError::Corrupt(format!("blob record: {e}"))),
            Some((v, _)) => Err(StoreError::Corrupt(format!(
                "blob record has unknown version {v}"
            ))),
            None => Err(StoreError::Corrupt("empty blob record".into())),
        }
    }
}

/// A capture stored under an `Idempotency-Key` (`IDEMPOTENCY`, kept by `store::idempotency`): what
/// the request carried and what it was answered, so that a replay gets the same answer instead of
/// a second image. Written in the commit that stores the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// A hash of what the request asked to store (its bytes or their source, and its metadata): a
    /// replay must match it, another request under the same key is refused.
    pub fingerprint: [u8; 32],
    pub created_at: Micros,
    pub image_id: ImageId,
    /// The answer's HTTP status and JSON body, as first sent.
    pub status: u16,
    pub answer: String,
}

impl Record for IdempotencyRecord {
    const NAME: &'static str = "idempotency";
    const VERSION: u8 = 1;
}

/// The thumbnail of one source blob, or why it could not be made. Stored by variant index: the
/// order of the variants is the disk format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThumbRecord {
    Ready {
        blob: BlobHash,
        #[serde(with = "codes::kind")]
        kind: ImageKind,
        width: u32,
        height: u32,
        /// The longest-side setting it was made for; another setting makes a new one.
        max_side: u32,
    },
    /// The source does not decode; the thumbnail route serves the original instead.
    Failed { reason: String },
}

impl Record for ThumbRecord {
    const NAME: &'static str = "thumbnail";
    const VERSION: u8 = 1;
}

/// The perceptual hash of one source blob (`media::phash`), and the algorithm that made it: hashes
/// of different algorithms are never compared, and those of an older one are made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhashRecord {
    pub algorithm: u8,
    /// Eight bytes, big-endian: the hash's first bit is the first byte's highest.
    pub hash: [u8; 8],
}

impl PhashRecord {
    pub fn new(algorithm: u8, hash: u64) -> Self {
        Self {
            algorithm,
            hash: hash.to_be_bytes(),
        }
    }

    pub fn hash(&self) -> u64 {
        u64::from_be_bytes(self.hash)
    }

    /// Whether it was made by the algorithm of this build.
    pub fn is_current(&self) -> bool {
        self.algorithm == crate::media::phash::ALGORITHM
    }
}

impl Record for PhashRecord {
    const NAME: &'static str = "perceptual hash";
    const VERSION: u8 = 1;
}

/// How many live images and how many bytes of them one statistics bucket holds (a day, a
/// category, a source host: `store::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsCell {
    pub images: u64,
    /// Their `file_size`s: the bytes they show (an edit's, not its original's).
    pub bytes: u64,
}

impl Record for StatsCell {
    const NAME: &'static str = "statistics cell";
    const VERSION: u8 = 1;
}

/// The figures of one statistics scope (a user, or the whole server) that are not a series
/// (`store::stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsTotals {
    /// Live images and their bytes.
    pub live: StatsCell,
    /// Trashed images and their bytes (they hold their bytes until deleted for good).
    pub trash: StatsCell,
    /// A user's: bytes of their live captures of contents they hold another live capture of.
    /// The server's: bytes every blob reference after a blob's first would have taken.
    pub dedup_bytes: u64,
    /// The server's: bytes of all blobs, each once (images, originals of edits, thumbnails).
    /// Zero in a user's scope.
    pub stored_bytes: u64,
    /// How many host rows the scope has in `STATS_HOSTS` (at most `stats::MAX_HOSTS`).
    pub hosts: u64,
    /// Live images of hosts that found the host table full, and their bytes.
    pub other_hosts: StatsCell,
}

impl Record for StatsTotals {
    const NAME: &'static str = "statistics totals";
    const VERSION: u8 = 1;
}

/// The stored codes of enums that other layers own. Each is one byte, the same byte postcard
/// wrote for the enum's variant index before these existed, so files written then read the same.
/// Table keys that hold one of these enums (the category index) use the same codes, through
/// `to_code` and `from_code`.
pub(super) mod codes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    macro_rules! code {
        ($name:ident, $ty:ty, { $($variant:path => $code:literal),+ $(,)? }) => {
            pub mod $name {
                use super::*;

                /// The byte stored for `value`.
                pub fn to_code(value: $ty) -> u8 {
                    match value { $($variant => $code),+ }
                }

                /// The value stored as `code`; `None` for a byte no value is stored as.
                pub fn from_code(code: u8) -> Option<$ty> {
                    match code {
                        $($code => Some($variant),)+
                        _ => None,
                    }
                }

                pub fn serialize<S: Serializer>(value: &$ty, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_u8(to_code(*value))
                }

                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    let code = u8::deserialize(d)?;
                    from_code(code).ok_or_else(|| D::Error::custom(format_args!(
                        "unknown {} code {code}", stringify!($name)
                    )))
                }
            }
        };
    }

    code!(kind, crate::media::ImageKind, {
        crate::media::ImageKind::Png => 0,
        crate::media::ImageKind::Jpeg => 1,
        crate::media::ImageKind::Gif => 2,
        crate::media::ImageKind::Webp => 3,
        crate::media::ImageKind::Avif => 4,
    });

    code!(category, crate::domain::Category, {
        crate::domain::Category::Clothes => 0,
        crate::domain::Category::Char => 1,
    });

    code!(scope, crate::domain::KeyScope, {
        crate::domain::KeyScope::Capture => 0,
        crate::domain::KeyScope::Read => 1,
        crate::domain::KeyScope::Full => 2,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_unknown_versions() {
        let blob = BlobRecord {
            size: 10,
            chunks: 1,
            refs: 2,
            chunk_size: 100,
            sha256: None,
        };
        let bytes = blob.encode();
        assert_eq!(bytes[0], BlobRecord::VERSION);
        assert_eq!(BlobRecord::decode(&bytes).unwrap(), blob);

        let mut future = bytes.clone();
        future[0] = 99;
        assert!(matches!(
            BlobRecord::decode(&future),
            Err(StoreError::Corrupt(_))
        ));
        assert!(BlobRecord::decode(&[]).is_err());
    }

    #[test]
    fn version_one_blob_records_read_as_32_kib_chunks() {
        let mut v1 = vec![1u8];
        v1.extend(postcard::to_stdvec(&(70_000u64, 3u32, 1u64)).unwrap());
        let blob = BlobRecord::decode(&v1).unwrap();
        assert_eq!((blob.size, blob.chunks, blob.refs), (70_000, 3, 1));
        assert_eq!(blob.chunk_size, V1_CHUNK_SIZE);
    }

    #[test]
    fn category_codes_are_fixed_and_unknown_codes_refused() {
        use codes::category::{from_code, to_code};
        assert_eq!(to_code(Category::Clothes), 0);
        assert_eq!(to_code(Category::Char), 1);
        for category in Category::ALL {
            assert_eq!(from_code(to_code(category)), Some(category));
        }
        assert_eq!(from_code(2), None);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn untagged(kind: ImageKind, category: Category) -> ImageRecord {
        ImageRecord {
            id: "i".into(),
            user_id: "u".into(),
            filename: "f.png".into(),
            category,
            kind,
            blob: BlobHash([7; 32]),
            original_url: Some("https://a/b".into()),
            page_url: None,
            page_title: Some("t".into()),
            context_json: None,
            saved_at: 1_700_000_000_000_000,
            file_size: 1234,
            width: 640,
            height: 480,
            cloud_synced: true,
            task_id: "t".into(),
            tags: Vec::new(),
            trashed_at: None,
            original: None,
            hub_stale: false,
        }
    }

    /// `record` encodes to exactly `expected` (hex) and decodes back to itself. These bytes are in
    /// data files people keep: a failure here means the format changed, which needs a new record
    /// version and a migration, never a new expected value.
    fn golden<R: Record + PartialEq + std::fmt::Debug>(record: R, expected: &str) {
        let bytes = record.encode();
        assert_eq!(hex(&bytes), expected, "{} record", R::NAME);
        assert_eq!(R::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn statistics_records_keep_their_bytes() {
        let cell = |images, bytes| StatsCell { images, bytes };
        golden(cell(3, 300), "0103ac02");
        golden(
            StatsTotals {
                live: cell(2, 1000),
                trash: cell(1, 5),
                dedup_bytes: 128,
                stored_bytes: 0,
                hosts: 4,
                other_hosts: cell(0, 0),
            },
            "0102e8070105800100040000",
        );
    }

    #[test]
    fn every_record_type_keeps_its_bytes() {
        golden(
            SessionRecord {
                user_id: "u1".into(),
                created_at: 1,
                expires_at: 300,
                remember_me: true,
            },
            "0102753102d80401",
        );
        for (kind, category, expected) in [
            (
                ImageKind::Png,
                Category::Clothes,
                "010169017505662e706e6700000707070707070707070707070707070707070707070707070707070707070707010b68747470733a2f2f612f6200010174008080f28183898506d2098005e003010174",
            ),
            (
                ImageKind::Jpeg,
                Category::Char,
                "010169017505662e706e6701010707070707070707070707070707070707070707070707070707070707070707010b68747470733a2f2f612f6200010174008080f28183898506d2098005e003010174",
            ),
            (
                ImageKind::Gif,
                Category::Clothes,
                "010169017505662e706e6700020707070707070707070707070707070707070707070707070707070707070707010b68747470733a2f2f612f6200010174008080f28183898506d2098005e003010174",
            ),
            (
                ImageKind::Webp,
                Category::Char,
                "010169017505662e706e6701030707070707070707070707070707070707070707070707070707070707070707010b68747470733a2f2f612f6200010174008080f28183898506d2098005e003010174",
            ),
        ] {
            // Version 1 (no tags): still read, as an untagged record.
            let v1 = hex_bytes(expected);
            let image = ImageRecord::decode(&v1).unwrap();
            assert_eq!(image, untagged(kind, category));
            // Version 2 is version 1's fields, then the tags; still read.
            let body = &expected[2..];
            let mut tagged = untagged(kind, category);
            tagged.tags = vec!["a".into(), "bc".into()];
            let v2 = hex_bytes(&format!("02{body}020161026263"));
            assert_eq!(ImageRecord::decode(&v2).unwrap(), tagged);
            // Version 3 is version 2's fields, then the trash time, the original and `hub_stale`.
            golden(image.clone(), &format!("03{body}00000000"));
            for bytes in [v1.clone(), v2.clone(), image.encode()] {
                assert_eq!(ImageRecord::blob_of(&bytes).unwrap(), image.blob);
            }
            golden(tagged.clone(), &format!("03{body}020161026263000000"));
            let mut changed = tagged;
            changed.trashed_at = Some(1);
            changed.original = Some(OriginalMedia {
                blob: BlobHash([9; 32]),
                kind: ImageKind::Jpeg,
                width: 3,
                height: 4,
                file_size: 5,
            });
            changed.hub_stale = true;
            golden(
                changed,
                // Some(1) zigzagged; Some(blob, jpeg, 3, 4, 5); true.
                &format!("03{body}020161026263_0102_01{}01030405_01", "09".repeat(32))
                    .replace('_', ""),
            );
        }
        for (status, expected) in [
            (TaskStatus::Processing, "0101740175016900000a0c"),
            (TaskStatus::Completed, "0101740175016901000a0c"),
            (TaskStatus::Failed, "010174017501690201036261640a0c"),
        ] {
            golden(
                TaskRecord {
                    task_id: "t".into(),
                    user_id: "u".into(),
                    image_id: "i".into(),
                    status,
                    error: (status == TaskStatus::Failed).then(|| "bad".into()),
                    created_at: 5,
                    updated_at: 6,
                },
                expected,
            );
        }
        // Version 2 had no SHA-256: still read, as a blob whose hash is not known yet.
        let v2 = BlobRecord {
            size: 70_000,
            chunks: 2,
            refs: 3,
            chunk_size: 65_536,
            sha256: None,
        };
        assert_eq!(
            BlobRecord::decode(&hex_bytes("02f0a2040203808004")).unwrap(),
            v2
        );
        golden(v2, "03f0a204020380800400");
        golden(
            BlobRecord {
                sha256: Some([5; 32]),
                ..v2
            },
            &format!("03f0a204020380800401{}", "05".repeat(32)),
        );
        golden(
            IdempotencyRecord {
                fingerprint: [4; 32],
                created_at: 3,
                image_id: "i".into(),
                status: 200,
                answer: "{}".into(),
            },
            &format!("01{}060169c801027b7d", "04".repeat(32)),
        );
        golden(
            ThumbRecord::Ready {
                blob: BlobHash([9; 32]),
                kind: ImageKind::Webp,
                width: 512,
                height: 384,
                max_side: 512,
            },
            "0100090909090909090909090909090909090909090909090909090909090909090903800480038004",
        );
        golden(ThumbRecord::Failed { reason: "x".into() }, "01010178");
        let phash = PhashRecord::new(1, 0x8001_0203_0405_06ff);
        golden(phash, "010180010203040506ff");
        assert_eq!(phash.hash(), 0x8001_0203_0405_06ff);
        golden(
            TagRecord {
                count: 300,
                shown: "Denim".into(),
            },
            "01ac020544656e696d",
        );
        let search = SearchRecord {
            category: Category::Char,
            file_size: 300,
            tags: vec!["red".into()],
            text: "夏\nx".into(),
        };
        golden(search.clone(), "0101ac02010372656405e5a48f0a78");
        let bytes = search.encode();
        let view = SearchRecord::view(&bytes).unwrap();
        assert_eq!(
            (view.category, view.file_size, view.tags, view.text),
            (Category::Char, 300, vec!["red"], "夏\nx")
        );
        golden(
            ApiKeyRecord {
                id: "k-1".into(),
                user_id: "u1".into(),
                name: "扩展".into(),
                scope: KeyScope::Read,
                created_at: 5,
                last_used_at: Some(7),
            },
            "01036b2d3102753106e689a9e5b195010a010e",
        );
        golden(
            HubSessionRecord {
                hub_user_id: "h".into(),
                nonce: [1; 12],
                sealed: vec![2, 3],
                expires_at: 9,
            },
            "01016801010101010101010101010102020312",
        );
        golden(
            SyncProgressRecord {
                total: 4,
                synced: 3,
                files_sent: 2,
                bytes_sent: 1000,
                batches: 1,
                missing: 1,
                refused: vec![("i".into(), "r".into())],
                refused_count: 1,
            },
            "01040302e8070101010169017201",
        );
        golden(
            HubSyncRecord {
                sync_id: "s".into(),
                at: 2,
                images: 3,
                accepted: 2,
                refused: 1,
                total_size: 300,
            },
            "01017304030201ac02",
        );
        let user = UserRecord {
            user_id: "u".into(),
            username: "alice".into(),
            email: "a@b.c".into(),
            password_hash: "$argon2id$x".into(),
            created_at: 1,
            last_login: Some(2),
            cloud_sync_enabled: false,
        };
        let bytes = user.encode();
        assert_eq!(
            hex(&bytes),
            "01017505616c696365056140622e630b246172676f6e326964247802010400",
            "user record"
        );
        assert!(UserRecord::decode(&bytes).unwrap() == user);
    }
}

/// An API key of a user, stored under the hash of the key itself (which is never stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub user_id: UserId,
    pub name: String,
    #[serde(with = "codes::scope")]
    pub scope: KeyScope,
    pub created_at: Micros,
    /// When a request last carried it, to the minute or so (see `Store::touch_key`).
    pub last_used_at: Option<Micros>,
}

impl Record for ApiKeyRecord {
    const NAME: &'static str = "api key";
    const VERSION: u8 = 1;
}

/// A local session's login on the hub. `sealed` is the hub's session token encrypted (AEAD) under
/// a key derived from the local session token, so a copy of the data file cannot act on the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubSessionRecord {
    pub hub_user_id: UserId,
    pub nonce: [u8; 12],
    pub sealed: Vec<u8>,
    pub expires_at: Micros,
}

impl Record for HubSessionRecord {
    const NAME: &'static str = "hub session";
    const VERSION: u8 = 1;
}

/// How far a cloud sync got, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncProgressRecord {
    /// Images that were not yet synced when the sync started.
    pub total: u64,
    /// Of those, how many the hub now holds.
    pub synced: u64,
    /// Image files sent over the network (others the hub already held).
    pub files_sent: u64,
    pub bytes_sent: u64,
    pub batches: u64,
    /// Images whose bytes were missing locally.
    pub missing: u64,
    /// Images the hub refused, with its reason, at most a few.
    pub refused: Vec<(String, String)>,
    pub refused_count: u64,
}

impl Record for SyncProgressRecord {
    const NAME: &'static str = "sync progress";
    const VERSION: u8 = 1;
}

/// The last sync a hub received for one account, for the original project's
/// `GET /api/user/{id}/sync/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubSyncRecord {
    pub sync_id: String,
    pub at: Micros,
    /// Metadata entries in the request.
    pub images: u64,
    pub accepted: u64,
    pub refused: u64,
    /// `file_size` of the accepted images, summed.
    pub total_size: u64,
}

impl Record for HubSyncRecord {
    const NAME: &'static str = "hub sync";
    const VERSION: u8 = 1;
}
