//! `imgvault import DIR`: brings a folder of images, or an export, into the data file.
//!
//! Every file goes through the same door as an upload: sniffed and probed from its bytes under the
//! same limits, stored through `ingest` with a processing task (so the server makes its thumbnail
//! at its next start), and skipped if its owner already has the same bytes. Nothing is trusted
//! from the tree itself: directory names only choose an owner and a category, and `metadata.json`
//! only restores fields an upload could have sent.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::export::{
    ExportedImage, IMAGES_DIR, METADATA_FILE, Metadata, ORIGINALS_DIR, safe_component,
};
use super::progress::{Progress, Unit};
use super::{OpsError, Outcome, human_bytes};
use crate::cli::ImportArgs;
use crate::clock::{self, Micros};
use crate::domain::{BlobHash, Category, Email, Tag, Tags, UserId, Username};
use crate::ingest::{self, Incoming};
use crate::media;
use crate::media::MAX_IMAGE_BYTES;
use crate::store::records::UserRecord;
use crate::store::{DEFAULT_CACHE_BYTES, NewMedia, Store, StoreError};

/// A file to import and where it goes.
struct Item {
    path: PathBuf,
    /// The path as shown in messages: relative to the imported directory.
    shown: String,
    owner: UserId,
    category: Category,
}

pub fn run(args: ImportArgs) -> Result<Outcome, OpsError> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(OpsError::Refused(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let data = &args.data.data;
    let new_file = !data.exists();
    let store = Store::open(data, DEFAULT_CACHE_BYTES).map_err(OpsError::store(data, ""))?;
    if new_file {
        println!("created the data file {}", data.display());
    }
    let password = std::env::var("IMGVAULT_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let admin_id =
        super::users::ensure_admin(&store, password).map_err(OpsError::store(data, ""))?;
    let fallback = store
        .user_by_username(&args.user.trim().to_lowercase())
        .map_err(OpsError::store(data, ""))?
        .ok_or_else(|| {
            OpsError::Refused(format!(
                "there is no user {:?} to import into (see `imgvault user list`)",
                args.user
            ))
        })?;

    let mut planner = Planner {
        store: &store,
        base: dir.clone(),
        admin_id,
        fallback,
        category: args.category,
        metadata: None,
        items: Vec::new(),
        notes: Vec::new(),
        skipped: Vec::new(),
    };
    planner.plan()?;
    for note in &planner.notes {
        println!("{note}");
    }
    let by_path: HashMap<&str, &ExportedImage> = planner
        .metadata
        .iter()
        .flat_map(|m| m.images.iter())
        .map(|i| (i.path.as_str(), i))
        .collect();

    let mut importer = Importer {
        store: &store,
        base: planner.base.clone(),
        known: HashMap::new(),
        imported: BTreeMap::new(),
        bytes: 0,
        skipped: std::mem::take(&mut planner.skipped),
    };
    let mut progress = Progress::new("importing", Some(planner.items.len() as u64), Unit::Files);
    for item in &planner.items {
        let meta = by_path.get(item.shown.as_str()).copied();
        if let Some(why) = importer
            .import(item, meta)
            .map_err(OpsError::store(data, ""))?
        {
            importer.skipped.push((item.shown.clone(), why));
        }
        progress.add(1);
    }
    progress.finish();
    importer.report();
    Ok(Outcome::Done)
}

/// Decides which files to import, for whom and in which category.
struct Planner<'a> {
    store: &'a Store,
    base: PathBuf,
    admin_id: UserId,
    fallback: UserRecord,
    category: Category,
    metadata: Option<Metadata>,
    items: Vec<Item>,
    notes: Vec<String>,
    /// Directories left out, with the reason.
    skipped: Vec<(String, String)>,
}

impl Planner<'_> {
    fn plan(&mut self) -> Result<(), OpsError> {
        let base = self.base.clone();
        let export_root = if base.join(IMAGES_DIR).is_dir() {
            Some(base.join(IMAGES_DIR))
        } else if base.file_name().is_some_and(|n| n == IMAGES_DIR) {
            self.base = base
                .parent()
                .map_or_else(|| base.clone(), Path::to_path_buf);
            Some(base.clone())
        } else {
            None
        };
        let Some(root) = export_root else {
            let (owner, category) = (self.fallback.user_id.clone(), self.category);
            return self.add_tree(&base, &owner, category);
        };
        let metadata_path = self.base.join(METADATA_FILE);
        if metadata_path.is_file() {
            self.metadata = Some(read_metadata(&metadata_path)?);
        }
        for entry in sorted_entries(&root)? {
            if entry.is_dir() {
                let name = file_name(&entry);
                let owner = self.owner_of(&name)?;
                for inner in sorted_entries(&entry)? {
                    let category = match Category::parse(&file_name(&inner)) {
                        Some(c) if inner.is_dir() => c,
                        _ => self.category,
                    };
                    self.add_tree(&inner, &owner, category)?;
                }
            } else {
                let owner = self.fallback.user_id.clone();
                self.add_tree(&entry, &owner, self.category)?;
            }
        }
        Ok(())
    }

    /// Adds `path` (a file, or every file below a directory) for `owner`.
    fn add_tree(
        &mut self,
        path: &Path,
        owner: &UserId,
        category: Category,
    ) -> Result<(), OpsError> {
        if !path.is_dir() {
            self.items.push(Item {
                path: path.to_path_buf(),
                shown: relative(&self.base, path),
                owner: owner.clone(),
                category,
            });
            return Ok(());
        }
        for entry in sorted_entries(path)? {
            let shown = relative(&self.base, &entry);
            if !entry.is_dir() {
                self.add_tree(&entry, owner, category)?;
            } else if entry.is_symlink() {
                // Not followed, so a link cannot loop or lead out of the tree.
                self.skipped
                    .push((shown, "symbolic link to a directory".into()));
            } else if file_name(&entry).starts_with(['.', '@']) {
                // Where NAS systems keep their own thumbnails (`@eaDir`, `.@__thumb`).
                self.skipped
                    .push((shown, "hidden or system directory".into()));
            } else {
                self.add_tree(&entry, owner, category)?;
            }
        }
        Ok(())
    }

    /// The owner of an exported user directory `name` (see `imgvault import --help`).
    fn owner_of(&mut self, name: &str) -> Result<UserId, OpsError> {
        let store_error = |e: StoreError| OpsError::Refused(format!("the data file: {e}"));
        if self
            .store
            .user(&name.into())
            .map_err(store_error)?
            .is_some()
        {
            return Ok(name.into());
        }
        if name.starts_with("default-user-") {
            return Ok(self.admin_id.clone());
        }
        let exported = self
            .metadata
            .as_ref()
            .and_then(|m| m.users.iter().find(|u| u.user_id == name));
        if let Some(exported) = exported {
            let key = exported.username.to_lowercase();
            if let Some(user) = self.store.user_by_username(&key).map_err(store_error)? {
                return Ok(user.user_id);
            }
            match self.create_user(
                name,
                &exported.username,
                &exported.email,
                exported.created_at_us,
            ) {
                Ok(()) => {
                    self.notes.push(format!(
                        "created user {} without a password; set one with `imgvault user passwd {}`",
                        exported.username, exported.username
                    ));
                    return Ok(name.into());
                }
                Err(why) => self.notes.push(format!(
                    "could not create user {}: {why}",
                    exported.username
                )),
            }
        } else if let Some(user) = self
            .store
            .user_by_username(&name.to_lowercase())
            .map_err(store_error)?
        {
            return Ok(user.user_id);
        }
        self.notes.push(format!(
            "{IMAGES_DIR}/{name}: no such user here; its images go to {}",
            self.fallback.username
        ));
        Ok(self.fallback.user_id.clone())
    }

    fn create_user(
        &self,
        user_id: &str,
        username: &str,
        email: &str,
        created_at: Option<Micros>,
    ) -> Result<(), String> {
        if !safe_component(user_id) {
            return Err(format!("{user_id:?} is not a usable user id"));
        }
        let username = Username::parse(username).map_err(|e| e.0.to_string())?;
        let email = Email::parse(email).map_err(|e| e.0.to_string())?;
        let user = UserRecord {
            user_id: user_id.into(),
            created_at: created_at.unwrap_or_else(clock::now),
            // An empty hash matches no password: the account opens once the admin sets one.
            ..UserRecord::new(&username, &email, String::new())
        };
        match self.store.create_user(&user, &username.key(), &email.key()) {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err("its username or email is taken".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn read_metadata(path: &Path) -> Result<Metadata, OpsError> {
    let text = std::fs::read(path).map_err(OpsError::io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        OpsError::Refused(format!(
            "{} is not an imgvault export's metadata ({e}); move it away to import the files \
             without it",
            path.display()
        ))
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, OpsError> {
    let what = || format!("reading {}", dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(OpsError::io(what()))? {
        out.push(entry.map_err(OpsError::io(what()))?.path());
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` relative to `base`, with `/` separators, as `metadata.json` names files.
fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Imports files one by one and remembers what each owner has, to skip duplicates.
struct Importer<'a> {
    store: &'a Store,
    /// The export directory, which `metadata.json`'s paths are relative to.
    base: PathBuf,
    /// Per owner: the blobs they have, with the file name of one image of each.
    known: HashMap<UserId, HashMap<BlobHash, String>>,
    /// Images imported per owner's username.
    imported: BTreeMap<String, u64>,
    bytes: u64,
    skipped: Vec<(String, String)>,
}

impl Importer<'_> {
    /// Imports one file; `Ok(Some(reason))` when it is skipped. Only a failing data file is an
    /// error: a bad file is a reason to skip it.
    fn import(
        &mut self,
        item: &Item,
        meta: Option<&ExportedImage>,
    ) -> Result<Option<String>, StoreError> {
        if file_name(&item.path).starts_with('.') {
            return Ok(Some("hidden file".into()));
        }
        let info = match std::fs::metadata(&item.path) {
            Ok(info) => info,
            Err(e) => return Ok(Some(e.to_string())),
        };
        if info.len() > MAX_IMAGE_BYTES {
            return Ok(Some(format!(
                "{}, over the 10 MiB limit",
                human_bytes(info.len())
            )));
        }
        let file = match std::fs::read(&item.path) {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Some(e.to_string())),
        };
        // An edited image comes in as its upload, then is edited again to the file.
        let (bytes, edited) = match meta.and_then(|m| m.original.as_ref()) {
            None => (file, None),
            Some(original) => match self.original(&original.path) {
                Ok(bytes) => (bytes, Some(file)),
                Err(why) => return Ok(Some(format!("its original: {why}"))),
            },
        };
        let probe = match media::probe(&bytes) {
            Ok(probe) => probe,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let blob = BlobHash::of(&bytes);
        let owner = &item.owner;
        if !self.known.contains_key(owner) {
            let images = self.store.user_images(owner)?;
            let blobs = images.into_iter().map(|i| (i.blob, i.filename)).collect();
            self.known.insert(owner.clone(), blobs);
        }
        let username = self
            .store
            .user(owner)?
            .map_or_else(|| owner.to_string(), |u| u.username);
        if let Some(existing) = self.known.get(owner).and_then(|k| k.get(&blob)) {
            return Ok(Some(format!("{username} already has it as {existing}")));
        }
        // A file name from an export is kept when it is one imgvault could have made for this
        // image; anything else gets a fresh name.
        let keep_name = meta.map(|m| m.filename.clone()).filter(|name| {
            safe_component(name)
                && name.starts_with(&format!("{}_", item.category))
                && name.ends_with(&format!(".{}", probe.kind.ext()))
        });
        let new = Incoming {
            owner: owner.clone(),
            category: item.category,
            original_url: meta.and_then(|m| m.original_url.clone()),
            page_url: meta.and_then(|m| m.page_url.clone()),
            page_title: meta.and_then(|m| m.page_title.clone()),
            context_json: meta
                .and_then(|m| m.context_info.as_ref())
                .filter(|v| !v.is_null())
                .map(|v| v.to_string()),
            saved_at: Some(
                meta.and_then(|m| m.saved_at_us)
                    .unwrap_or_else(|| modified_at(&info)),
            ),
            filename: keep_name,
            id: None,
            // Tags that are no longer valid are dropped rather than costing the image.
            tags: meta.map_or_else(Tags::default, |m| {
                let mut tags = Tags::default();
                for tag in m.tags.iter().filter_map(|t| Tag::parse(t).ok()) {
                    let _ = tags.push(tag);
                }
                tags
            }),
            size: None,
        };
        let (image, _task) = ingest::save(self.store, &new, &probe, &bytes)?;
        if let Some(edited) = &edited {
            match media::probe(edited) {
                Ok(shown) => {
                    let media = NewMedia {
                        bytes: edited,
                        kind: shown.kind,
                        width: shown.width,
                        height: shown.height,
                    };
                    self.store
                        .change_media(&image.id, owner, &image.blob, Some(media))?;
                    self.bytes += edited.len() as u64;
                }
                Err(e) => self.skipped.push((
                    item.shown.clone(),
                    format!("its edit ({e}); imported unedited"),
                )),
            }
        }
        if let Some(at) = meta.and_then(|m| m.trashed_at_us) {
            self.store.trash_image(&image.id, owner, at)?;
        }
        self.bytes += bytes.len() as u64;
        *self.imported.entry(username).or_default() += 1;
        self.known
            .entry(owner.clone())
            .or_default()
            .insert(blob, image.filename);
        Ok(None)
    }

    /// The bytes of an edited image's upload at `relative` (from `metadata.json`, so only a path
    /// under `originals/` of plain names is read).
    fn original(&self, relative: &str) -> Result<Vec<u8>, String> {
        let mut parts = relative.split('/');
        if parts.next() != Some(ORIGINALS_DIR) || !parts.all(safe_component) {
            return Err(format!("{relative} is not a path under {ORIGINALS_DIR}/"));
        }
        let path = self.base.join(relative);
        match std::fs::metadata(&path) {
            Ok(info) if info.len() > MAX_IMAGE_BYTES => {
                return Err(format!(
                    "{}, over the 10 MiB limit",
                    human_bytes(info.len())
                ));
            }
            Err(e) => return Err(format!("{relative}: {e}")),
            Ok(_) => {}
        }
        std::fs::read(&path).map_err(|e| format!("{relative}: {e}"))
    }

    fn report(&self) {
        let total: u64 = self.imported.values().sum();
        let per_user: Vec<String> = self
            .imported
            .iter()
            .map(|(user, n)| format!("{user} {n}"))
            .collect();
        let per_user = match per_user.is_empty() {
            true => String::new(),
            false => format!(": {}", per_user.join(", ")),
        };
        println!(
            "imported {total} images ({}){per_user}",
            human_bytes(self.bytes)
        );
        if !self.skipped.is_empty() {
            println!("skipped {}:", self.skipped.len());
            for (path, why) in &self.skipped {
                println!("  {path}: {why}");
            }
        }
        if total > 0 {
            println!("thumbnails are made by the server when it next starts");
        }
    }
}

/// A file's modification time as a save date; now if it has none or it lies in the future.
fn modified_at(info: &std::fs::Metadata) -> Micros {
    let now = clock::now();
    info.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| Micros::try_from(d.as_micros()).ok())
        .filter(|&at| at <= now)
        .unwrap_or(now)
}
