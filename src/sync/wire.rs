//! The JSON that travels between a server and its hub: the seed's SyncData shape for batches, and
//! imgvault's manifest exchange that comes before them (see DECISIONS.md).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::domain::{ImageId, UserId};
use crate::store::records::ImageRecord;

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestEntry {
    pub id: ImageId,
    pub blake3: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestRequest {
    pub images: Vec<ManifestEntry>,
    /// Images deleted for good on the sender, for the hub to delete too. Hubs from before the
    /// trash ignore it (and answer no `deleted`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<ImageId>,
}

#[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct ManifestReply {
    /// Ids the hub does not hold yet.
    pub needed: Vec<ImageId>,
    /// Of the hashes asked about, those the hub already holds for this user.
    pub have_blobs: Vec<String>,
    /// Of the `deleted` ids, those the hub no longer holds (deleted now or before); the sender
    /// forgets them. Absent from hubs that do not know deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<ImageId>>,
}

/// The seed's SyncData, plus a `blake3` and `category` per image (extra fields the seed's own
/// hub ignores) so the hub can verify each file and reuse bytes it holds, and `tags` and
/// `trashed_at_us` so an imgvault hub keeps its copy in step. None of imgvault's own state goes
/// into the seed's fields (`context_info` holds what the page sent, and the category).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncData {
    #[serde(default)]
    pub user_info: SyncUser,
    pub images_metadata: Vec<SyncImage>,
    #[serde(default)]
    pub image_files: HashMap<String, String>,
    #[serde(default)]
    pub sync_timestamp: String,
    #[serde(default)]
    pub sync_statistics: SyncStatistics,
}

/// Informational: the hub files images under the account that is logged in, not this one.
#[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct SyncUser {
    pub user_id: UserId,
    pub username: String,
    pub email: String,
    pub created_at: String,
    pub last_login: Option<String>,
    pub cloud_sync_enabled: bool,
}

#[derive(Serialize, Deserialize, Clone, utoipa::ToSchema)]
pub struct SyncImage {
    pub id: ImageId,
    #[serde(default)]
    pub user_id: UserId,
    pub filename: String,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    pub saved_at: String,
    pub file_size: u64,
    pub image_width: u32,
    pub image_height: u32,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context_info: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub cloud_synced: bool,
    #[serde(default)]
    pub blake3: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// The image's tags; present from senders that know tags, so an empty list clears them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// When the sender moved it to the trash; absent while it is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub trashed_at_us: Option<clock::Micros>,
}

impl SyncImage {
    pub fn of(image: &ImageRecord) -> Self {
        Self {
            id: image.id.clone(),
            user_id: image.user_id.clone(),
            filename: image.filename.clone(),
            original_url: image.original_url.clone(),
            page_url: image.page_url.clone(),
            page_title: image.page_title.clone(),
            saved_at: clock::display(image.saved_at),
            file_size: image.file_size,
            image_width: image.width,
            image_height: image.height,
            context_info: image.context_info(),
            status: "saved".into(),
            cloud_synced: image.cloud_synced,
            blake3: Some(image.blob.to_hex()),
            category: Some(image.category.as_str().into()),
            tags: Some(image.tags.clone()),
            trashed_at_us: image.trashed_at,
        }
    }
}

#[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct SyncStatistics {
    pub total_metadata_records: u64,
    pub total_files_found: u64,
    pub total_files_missing: u64,
    pub total_size: u64,
    pub categories: Vec<String>,
}

/// The hub's answer to one batch.
#[derive(Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct SyncReply {
    #[serde(default)]
    pub accepted: Vec<ImageId>,
    #[serde(default)]
    pub refused: Vec<Refusal>,
    #[serde(default)]
    pub stored: u64,
    #[serde(default)]
    pub received_files: u64,
    #[serde(default)]
    pub received_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, utoipa::ToSchema)]
pub struct Refusal {
    pub id: ImageId,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::new_image;

    /// The seed's hub reads the seed's fields; imgvault's own state travels beside them only.
    #[test]
    fn tags_and_the_trash_stay_out_of_the_seeds_fields() {
        let (mut image, _) = new_image("i", "u", 1, b"x");
        image.context_json = Some(r#"{"alt":"a dress"}"#.into());
        image.tags = vec!["Denim".into()];
        image.trashed_at = Some(5);
        let json = serde_json::to_value(SyncImage::of(&image)).unwrap();
        assert_eq!(
            json["context_info"],
            serde_json::json!({"alt": "a dress", "category": "clothes"})
        );
        assert_eq!(json["tags"], serde_json::json!(["Denim"]));
        assert_eq!(json["trashed_at_us"], 5);
        let seed_fields = [
            "id",
            "user_id",
            "filename",
            "original_url",
            "page_url",
            "page_title",
            "saved_at",
            "file_size",
            "image_width",
            "image_height",
            "context_info",
            "status",
            "cloud_synced",
        ];
        let text = serde_json::to_string(&json).unwrap();
        for field in seed_fields {
            assert!(
                !json[field].to_string().contains("Denim"),
                "{field}: {text}"
            );
        }
        // A live image names no trash time at all.
        image.trashed_at = None;
        let json = serde_json::to_value(SyncImage::of(&image)).unwrap();
        assert!(json.get("trashed_at_us").is_none());
    }
}
