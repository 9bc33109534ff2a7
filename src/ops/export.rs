//! `imgvault export DIR`: every image as a plain file in the original server's layout,
//! `saved_images/{user_id}/{category}/{filename}` (trashed images too, marked in the metadata;
//! an edited image as edited, its upload under `originals/`), plus `metadata.json` with everything
//! else, so a collection can always leave imgvault. `import` reads the same layout back.
//!
//! Each file is checked against its blake3 hash while it is written, and `metadata.json` is
//! written last, under a temporary name: an export with a `metadata.json` is complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::progress::{Progress, Unit};
use super::{OpsError, Outcome, human_bytes, open_existing};
use crate::atomic_file;
use crate::cli::ExportArgs;
use crate::clock::{self, Micros};
use crate::domain::{BlobHash, ImageId, UserId};
use crate::store::Store;
use crate::store::records::{ImageRecord, UserRecord};

pub const IMAGES_DIR: &str = "saved_images";
/// Where an edited image's upload goes, as `originals/{user_id}/{filename}`: outside
/// `saved_images`, so tools that read the original server's layout see each image once, edited.
pub const ORIGINALS_DIR: &str = "originals";
pub const METADATA_FILE: &str = "metadata.json";
const FORMAT: &str = "imgvault-export";
const FORMAT_VERSION: u32 = 1;

/// `metadata.json`. Field names follow the seed's image and user objects where they overlap, so
/// scripts written for the seed's sync data can read it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Metadata {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub exported_at: String,
    #[serde(default)]
    pub imgvault_version: String,
    #[serde(default)]
    pub users: Vec<ExportedUser>,
    #[serde(default)]
    pub images: Vec<ExportedImage>,
}

/// An account without its password hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedUser {
    pub user_id: UserId,
    pub username: String,
    pub email: String,
    /// In the seed's format and local time; `created_at_us` is exact.
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub created_at_us: Option<Micros>,
    #[serde(default)]
    pub last_login: Option<String>,
    #[serde(default)]
    pub cloud_sync_enabled: bool,
    #[serde(default)]
    pub image_count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedImage {
    pub id: ImageId,
    pub user_id: UserId,
    pub filename: String,
    pub category: String,
    /// Where the file is, relative to the export directory, with `/` separators.
    pub path: String,
    pub original_url: Option<String>,
    pub page_url: Option<String>,
    pub page_title: Option<String>,
    /// In the seed's format and local time; `saved_at_us` is exact.
    #[serde(default)]
    pub saved_at: String,
    #[serde(default)]
    pub saved_at_us: Option<Micros>,
    #[serde(default)]
    pub file_size: u64,
    #[serde(default)]
    pub image_width: u32,
    #[serde(default)]
    pub image_height: u32,
    /// The page's `imageContext` as it was sent.
    #[serde(default)]
    pub context_info: Option<serde_json::Value>,
    #[serde(default)]
    pub cloud_synced: bool,
    #[serde(default)]
    pub mime: String,
    #[serde(default)]
    pub blake3: String,
    /// As their owner wrote them; absent in exports made before tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When it was moved to the trash; absent for live images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trashed_at_us: Option<Micros>,
    /// For an edited image (the file at `path` is the edit): the upload it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<ExportedOriginal>,
}

/// The upload an edited image was made from, kept so the edit can be undone.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedOriginal {
    /// Relative to the export directory, with `/` separators.
    pub path: String,
    pub mime: String,
    pub blake3: String,
    pub file_size: u64,
    pub image_width: u32,
    pub image_height: u32,
}

/// Names that are safe as one path component: what imgvault generates, and nothing that could
/// climb out of the export directory.
pub fn safe_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub fn run(args: ExportArgs) -> Result<Outcome, OpsError> {
    let store = open_existing(&args.data.data)?;
    let dir = &args.dir;
    for existing in [IMAGES_DIR, METADATA_FILE] {
        if dir.join(existing).exists() {
            return Err(OpsError::Refused(format!(
                "{} already holds an export ({existing}); choose an empty directory",
                dir.display()
            )));
        }
    }
    let store_error = OpsError::store(&args.data.data, "");
    let users = store.users().map_err(store_error)?;
    let mut images = store
        .all_images()
        .map_err(OpsError::store(&args.data.data, ""))?;
    images.sort_by(|a, b| (&a.user_id, a.saved_at, &a.id).cmp(&(&b.user_id, b.saved_at, &b.id)));

    let mut progress = Progress::new("exporting", Some(images.len() as u64), Unit::Files);
    let mut exported = Vec::with_capacity(images.len());
    let mut failures = Vec::new();
    let mut bytes = 0u64;
    for image in &images {
        match export_image(&store, dir, image) {
            Ok(entry) => {
                bytes += image.file_size;
                exported.push(entry);
            }
            Err(why) => failures.push(format!("image {} ({}): {why}", image.id, image.filename)),
        }
        progress.add(1);
    }
    progress.finish();

    let metadata = Metadata {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        exported_at: chrono::Utc::now().to_rfc3339(),
        imgvault_version: env!("CARGO_PKG_VERSION").into(),
        users: users.iter().map(|u| exported_user(&store, u)).collect(),
        images: exported,
    };
    let json = serde_json::to_vec_pretty(&metadata).expect("metadata serialises");
    let target = dir.join(METADATA_FILE);
    atomic_file::write_with(&target, |partial| std::fs::write(partial, &json))
        .map_err(OpsError::io(format!("writing {}", target.display())))?;

    println!(
        "exported {} images ({}) of {} users to {}",
        metadata.images.len(),
        human_bytes(bytes),
        metadata.users.len(),
        dir.display()
    );
    if failures.is_empty() {
        return Ok(Outcome::Done);
    }
    println!("{} images could not be exported:", failures.len());
    for failure in &failures {
        println!("  {failure}");
    }
    println!("`imgvault check` tells more about them");
    Ok(Outcome::Problems)
}

fn exported_user(store: &Store, user: &UserRecord) -> ExportedUser {
    ExportedUser {
        user_id: user.user_id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        created_at: clock::display(user.created_at),
        created_at_us: Some(user.created_at),
        last_login: user.last_login.map(clock::display),
        cloud_sync_enabled: user.cloud_sync_enabled,
        image_count: store.user_image_count(&user.user_id).unwrap_or(0),
    }
}

/// Writes one image's bytes, checking their hash on the way, and describes it for the metadata.
fn export_image(store: &Store, dir: &Path, image: &ImageRecord) -> Result<ExportedImage, String> {
    if !safe_component(image.user_id.as_str()) || !safe_component(&image.filename) {
        return Err("its user id or file name cannot be a file name".into());
    }
    let relative = format!(
        "{IMAGES_DIR}/{}/{}/{}",
        image.user_id, image.category, image.filename
    );
    write_blob(store, dir, &relative, &image.blob, image.saved_at)?;
    let original = match &image.original {
        None => None,
        Some(original) => {
            let path = format!("{ORIGINALS_DIR}/{}/{}", image.user_id, image.filename);
            write_blob(store, dir, &path, &original.blob, image.saved_at)?;
            Some(ExportedOriginal {
                path,
                mime: original.kind.mime().into(),
                blake3: original.blob.to_hex(),
                file_size: original.file_size,
                image_width: original.width,
                image_height: original.height,
            })
        }
    };
    Ok(ExportedImage {
        id: image.id.clone(),
        user_id: image.user_id.clone(),
        filename: image.filename.clone(),
        category: image.category.as_str().into(),
        path: relative,
        original_url: image.original_url.clone(),
        page_url: image.page_url.clone(),
        page_title: image.page_title.clone(),
        saved_at: clock::display(image.saved_at),
        saved_at_us: Some(image.saved_at),
        file_size: image.file_size,
        image_width: image.width,
        image_height: image.height,
        context_info: image
            .context_json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok()),
        cloud_synced: image.cloud_synced,
        mime: image.kind.mime().into(),
        blake3: image.blob.to_hex(),
        tags: image.tags.clone(),
        trashed_at_us: image.trashed_at,
        original,
    })
}

/// Writes the blob `hash` to `relative` under `dir`, checking its hash on the way, dated `at`.
fn write_blob(
    store: &Store,
    dir: &Path,
    relative: &str,
    hash: &BlobHash,
    at: Micros,
) -> Result<(), String> {
    let path: PathBuf = dir.join(relative);
    let mut blob = store
        .blob(hash)
        .map_err(|e| e.to_string())?
        .ok_or("its bytes are missing from the data file")?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::create(&path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    while let Some(piece) = blob.next_bytes(1 << 20).map_err(|e| e.to_string())? {
        hasher.update(&piece);
        file.write_all(&piece).map_err(io)?;
    }
    if BlobHash(*hasher.finalize().as_bytes()) != *hash {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err("its bytes do not match their hash".into());
    }
    if let Some(at) = chrono::DateTime::from_timestamp_micros(at) {
        // The save date as the file's modification time, so file managers sort by it.
        let _ = file.set_modified(at.into());
    }
    file.sync_all().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_path_components() {
        assert!(safe_component("clothes_20260101_101010_1a2b3c4d.png"));
        assert!(safe_component("default-user-1a2b3c4d"));
        assert!(safe_component("6f0d2c1e-8d2a-4d47-9a3b-0f9b6b1d2e3f"));
        for bad in ["", ".", "..", "a/b", "..\\x", "a b", &"x".repeat(256)] {
            assert!(!safe_component(bad), "{bad:?}");
        }
    }
}
