//! The hub's side of a sync: a SyncData body read as a stream, one image at a time, so a whole
//! collection in one request (the original project's local server sends everything on every sync)
//! costs the memory of one image, not of the body.
//!
//! `images_metadata` comes before `image_files` in the seed's order, which the original project
//! (Python dicts keep it) and imgvault's own client (serde keeps struct order) send. A client
//! whose JSON sorts its keys sends `image_files` first: its files are held, decoded, until the
//! metadata comes, up to `MAX_EARLY_FILES` (more is refused; such a client should send its
//! metadata first). Each file is decoded as it arrives, checked like an upload (decoded,
//! hashed, sniffed, probed, its decode cost checked, compared with its metadata) and handed to the
//! group-commit writer under the sender's hub account with the sender's id and file name; a few
//! stay in flight so that they share commits. Sending an image again stores nothing: an id this
//! account already holds is accepted without decoding its file, and its tags, category and trash
//! state are brought in step (`apply_updates`); with other bytes from an imgvault sender (an edit
//! there), the file replaces what the hub's record shows, keeping the first bytes to revert to.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use bytes::Bytes;

use super::wire::{Refusal, SyncImage, SyncReply};
use crate::clock;
use crate::domain::{BlobHash, Category, ImageId, Tags, UserId, portable};
use crate::ingest::{Incoming, Ingest, Submitted};
use crate::json_stream::{ScanError, Scanner};
use crate::media::data_url::{self, DataUrlError};
use crate::store::{ChangeOutcome, NewMedia, Store, StoreError, SyncUpdate};

/// Longest metadata entry, as JSON text.
const MAX_ENTRY: usize = 256 * 1024;
/// All metadata of one request, as JSON text: about 50,000 images' worth.
pub const MAX_METADATA_BYTES: u64 = 32 * 1024 * 1024;
/// Images in one request at most.
const MAX_IMAGES: usize = 100_000;
/// Longest top-level key or file name read.
const MAX_KEY: usize = 1024;
/// Decoded files held because they came before `images_metadata`, at most.
const MAX_EARLY_FILES: u64 = 16 * 1024 * 1024;
/// Image bytes handed to the writer and not yet committed, at most.
pub const IN_FLIGHT_BYTES: u64 = 8 * 1024 * 1024;
const IN_FLIGHT_IMAGES: usize = 64;

/// Why a sync body was refused as a whole (nothing of it is stored unless said otherwise).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not a SyncData document; images already taken in stay stored.
    #[error("{0}")]
    Malformed(String),
    /// The body, its metadata or a key was over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// The memory for the request is not free now.
    #[error("busy")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ScanError> for ReceiveError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Io(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
                Self::TooLarge(io.to_string())
            }
            ScanError::TooLarge(what) => Self::TooLarge(format!("{what} is too large")),
            other => Self::Malformed(other.to_string()),
        }
    }
}

/// What one sync request did.
#[derive(Default)]
pub struct Received {
    pub reply: SyncReply,
    /// Metadata entries in the request.
    pub total_images: u64,
    /// Of the accepted images, their `file_size` summed (what the original's hub reports).
    pub total_size: u64,
    /// The request's `sync_timestamp`, if it had one (echoed as the original's hub does).
    pub sync_timestamp: Option<serde_json::Value>,
}

/// Takes in one sync body from `input` for `user_id`. `grow` is asked to cover the memory the
/// request holds beyond its fixed working set (its metadata) before it is held.
pub fn receive(
    input: impl BufRead,
    store: &Store,
    ingest: &Ingest,
    user_id: &UserId,
    grow: &mut dyn FnMut(u64) -> Result<(), ReceiveError>,
) -> Result<Received, ReceiveError> {
    let mut hub = Receiver {
        store,
        ingest,
        user_id,
        grow,
        extra: 0,
        metadata_seen: false,
        early: HashMap::new(),
        entries: Vec::new(),
        waiting: HashMap::new(),
        first_of: HashMap::new(),
        in_flight: VecDeque::new(),
        in_flight_bytes: 0,
        out: Received::default(),
    };
    let mut scan = Scanner::new(input);
    scan.begin_object()?;
    while let Some(key) = scan.next_key(MAX_KEY)? {
        match key.as_str() {
            "images_metadata" if hub.metadata_seen => {
                return Err(ReceiveError::Malformed(
                    "images_metadata appears twice".into(),
                ));
            }
            "images_metadata" => hub.metadata(&mut scan)?,
            "image_files" => hub.files(&mut scan)?,
            "sync_timestamp" => {
                let raw = scan.capture_value(MAX_KEY, "sync_timestamp")?;
                hub.out.sync_timestamp = serde_json::from_slice(&raw).ok();
            }
            _ => scan.skip_value()?,
        }
    }
    scan.finish()?;
    hub.settle_all();
    hub.without_files()?;
    hub.settle_all();
    hub.apply_updates()?;
    Ok(hub.finish())
}

struct Entry {
    meta: SyncImage,
    /// An image this account holds with other bytes, edited (or reverted) on the sender: its
    /// file replaces what the hub's record shows, which shows this blob now.
    replace: Option<BlobHash>,
    /// Known once decided: `Ok` accepted, `Err` refused with the reason.
    outcome: Option<Result<(), String>>,
    /// An earlier entry with the same id: this one is answered like it.
    repeat_of: Option<usize>,
}

struct Receiver<'a> {
    store: &'a Store,
    ingest: &'a Ingest,
    user_id: &'a UserId,
    /// Asked to cover `extra` before it is held.
    grow: &'a mut dyn FnMut(u64) -> Result<(), ReceiveError>,
    /// Bytes held beyond the fixed working set: metadata, and files that came before it.
    extra: u64,
    metadata_seen: bool,
    /// Files that came before the metadata, by name, decoded (or why they could not be).
    early: HashMap<String, Result<Bytes, DataUrlError>>,
    entries: Vec<Entry>,
    /// File name → entries still waiting for that file.
    waiting: HashMap<String, Vec<usize>>,
    first_of: HashMap<ImageId, usize>,
    in_flight: VecDeque<(usize, Submitted, Option<u64>)>,
    in_flight_bytes: u64,
    out: Received,
}

impl Receiver<'_> {
    /// Counts `bytes` more as held, if the budget allows.
    fn hold(&mut self, bytes: u64) -> Result<(), ReceiveError> {
        self.extra += bytes;
        (self.grow)(self.extra)
    }

    fn metadata(&mut self, scan: &mut Scanner<impl BufRead>) -> Result<(), ReceiveError> {
        self.metadata_seen = true;
        let mut held_bytes = 0u64;
        scan.begin_array()?;
        while scan.next_element()? {
            if self.entries.len() >= MAX_IMAGES {
                return Err(ReceiveError::TooLarge(format!(
                    "more than {MAX_IMAGES} images in one request"
                )));
            }
            let raw = scan.capture_value(MAX_ENTRY, "an images_metadata entry")?;
            held_bytes += raw.len() as u64;
            if held_bytes > MAX_METADATA_BYTES {
                return Err(ReceiveError::TooLarge(
                    "images_metadata is too large".into(),
                ));
            }
            self.hold(held_in_memory(raw.len()))?;
            let meta: SyncImage = serde_json::from_slice(&raw).map_err(|e| {
                ReceiveError::Malformed(format!("images_metadata[{}]: {e}", self.entries.len()))
            })?;
            let index = self.entries.len();
            self.entries.push(Entry {
                meta,
                replace: None,
                outcome: None,
                repeat_of: None,
            });
            self.admit(index)?;
        }
        // Files that came first go to the entries that name them.
        for (name, file) in std::mem::take(&mut self.early) {
            if let Some(wanting) = self.waiting.remove(&name) {
                self.deliver(wanting, file)?;
            }
        }
        Ok(())
    }

    /// Decides what an entry needs: nothing (refused, or already held), or its file.
    fn admit(&mut self, index: usize) -> Result<(), ReceiveError> {
        let meta = &self.entries[index].meta;
        if let Some(&first) = self.first_of.get(&meta.id) {
            self.entries[index].repeat_of = Some(first);
            return Ok(());
        }
        self.first_of.insert(meta.id.clone(), index);
        let verdict = if !portable(meta.id.as_str(), 100) {
            Some(Err("invalid image id".to_string()))
        } else if !portable(&meta.filename, 255) {
            Some(Err("invalid file name".to_string()))
        } else if let Err(why) = tags_of(meta) {
            Some(Err(why))
        } else {
            match claimed(meta) {
                Err(why) => Some(Err(why)),
                Ok(claim) => match self.store.image(&meta.id)? {
                    Some(existing)
                        if existing.user_id == *self.user_id
                            && claim.is_none_or(|h| h == existing.blob) =>
                    {
                        Some(Ok(()))
                    }
                    // An imgvault sender's edit (or revert) of an image held here: its file
                    // replaces the bytes, as an edit there did.
                    Some(existing)
                        if existing.user_id == *self.user_id
                            && meta.tags.is_some()
                            && claim.is_some()
                            && !existing.is_trashed() =>
                    {
                        self.entries[index].replace = Some(existing.blob);
                        None
                    }
                    Some(_) => Some(Err(
                        "an image with this id already exists with other content".to_string(),
                    )),
                    None => None,
                },
            }
        };
        match verdict {
            Some(outcome) => self.entries[index].outcome = Some(outcome),
            None => {
                let name = self.entries[index].meta.filename.clone();
                self.waiting.entry(name).or_default().push(index);
            }
        }
        Ok(())
    }

    fn files(&mut self, scan: &mut Scanner<impl BufRead>) -> Result<(), ReceiveError> {
        scan.begin_object()?;
        while let Some(name) = scan.next_key(MAX_KEY)? {
            let wanting = self.waiting.remove(&name);
            let early = !self.metadata_seen && !self.early.contains_key(&name);
            if (wanting.is_none() && !early) || scan.peek_value()? != b'"' {
                scan.skip_value()?;
                if let Some(wanting) = wanting {
                    self.waiting.insert(name, wanting);
                }
                continue;
            }
            let mut decoder = data_url::Decoder::new();
            scan.string_value(|piece| {
                decoder.push(piece);
                Ok(())
            })?;
            let file = decoder.finish().map(Bytes::from);
            match wanting {
                Some(wanting) => self.deliver(wanting, file)?,
                None => {
                    let size = file.as_ref().map_or(0, |b| b.len() as u64);
                    if self.extra + size > MAX_METADATA_BYTES + MAX_EARLY_FILES {
                        return Err(ReceiveError::TooLarge(
                            "image_files before images_metadata (send images_metadata first)"
                                .into(),
                        ));
                    }
                    self.hold(size)?;
                    self.early.insert(name, file);
                }
            }
        }
        Ok(())
    }

    /// A file (or why it is unusable) to the entries that wait for it.
    fn deliver(
        &mut self,
        wanting: Vec<usize>,
        file: Result<Bytes, DataUrlError>,
    ) -> Result<(), ReceiveError> {
        match file {
            Ok(bytes) => {
                let received = Some(bytes.len() as u64);
                for (n, index) in wanting.into_iter().enumerate() {
                    self.take(index, bytes.clone(), received.filter(|_| n == 0))?;
                }
            }
            Err(e) => {
                let why = match e {
                    DataUrlError::TooLarge => "the file is larger than the upload limit",
                    DataUrlError::NotBase64 => "the file is not a base64 data URL",
                };
                for index in wanting {
                    self.entries[index].outcome = Some(Err(why.into()));
                }
            }
        }
        Ok(())
    }

    /// Entries whose file did not come: their bytes may be ones this account already holds
    /// (imgvault's own clients send each file once), found by their claimed hash.
    fn without_files(&mut self) -> Result<(), ReceiveError> {
        let waiting: Vec<usize> = self.waiting.drain().flat_map(|(_, v)| v).collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let held = self.store.user_blobs(self.user_id)?;
        for index in waiting {
            let claim = claimed(&self.entries[index].meta).ok().flatten();
            let Some(hash) = claim.filter(|h| held.contains(h)) else {
                let why = match claim {
                    None => "no file and no blake3 hash",
                    Some(_) => "the file is missing",
                };
                self.entries[index].outcome = Some(Err(why.into()));
                continue;
            };
            match self.store.blob_bytes(&hash)? {
                Some(bytes) => self.take(index, bytes, None)?,
                None => self.entries[index].outcome = Some(Err("the file is missing".into())),
            }
        }
        Ok(())
    }

    /// Checks an entry's bytes and hands them to the writer; `received` is the size of the file
    /// that came with it, if one did.
    fn take(
        &mut self,
        index: usize,
        bytes: Bytes,
        received: Option<u64>,
    ) -> Result<(), ReceiveError> {
        let checked = self.check(&self.entries[index].meta, &bytes);
        let (new, probe) = match checked {
            Ok(ready) => ready,
            Err(why) => {
                self.entries[index].outcome = Some(Err(why));
                return Ok(());
            }
        };
        if let Some(from) = self.entries[index].replace {
            let media = NewMedia {
                bytes: &bytes,
                kind: probe.kind,
                width: probe.width,
                height: probe.height,
            };
            let outcome = match self.store.change_media(
                &new.id.expect("sync ids are given"),
                self.user_id,
                &from,
                Some(media),
            )? {
                ChangeOutcome::Changed(_) | ChangeOutcome::Unchanged => {
                    self.stored(received);
                    Ok(())
                }
                _ => Err("the image changed on the hub during the sync".to_string()),
            };
            self.entries[index].outcome = Some(outcome);
            return Ok(());
        }
        let size = bytes.len() as u64;
        let submitted = self.ingest.submit_blocking(&new, &probe, bytes)?;
        self.in_flight.push_back((index, submitted, received));
        self.in_flight_bytes += size;
        while self.in_flight_bytes > IN_FLIGHT_BYTES || self.in_flight.len() > IN_FLIGHT_IMAGES {
            self.settle_one();
        }
        Ok(())
    }

    /// The image an entry describes, if its bytes match its metadata.
    fn check(
        &self,
        meta: &SyncImage,
        bytes: &Bytes,
    ) -> Result<(Incoming, crate::media::Probe), String> {
        let blob = BlobHash::of(bytes);
        if claimed(meta)?.is_some_and(|h| h != blob) {
            return Err("the file does not match its blake3 hash".into());
        }
        let probe = self.ingest.check(bytes).map_err(|e| e.to_string())?;
        if meta.file_size != bytes.len() as u64 {
            return Err(format!(
                "file_size {} does not match the file ({} bytes)",
                meta.file_size,
                bytes.len()
            ));
        }
        // The original's local server sends 0 × 0 when it could not read the dimensions, and a
        // vault from before oriented dimensions sends the header's figures for a turned photo.
        let stated = (meta.image_width, meta.image_height);
        if stated != (0, 0)
            && stated != (probe.width, probe.height)
            && stated != probe.stored_dimensions()
        {
            return Err(format!(
                "dimensions {}x{} do not match the file ({}x{})",
                meta.image_width, meta.image_height, probe.width, probe.height
            ));
        }
        let category = category_of(meta);
        let mut context = meta.context_info.clone();
        context.remove("category");
        let new = Incoming {
            owner: self.user_id.clone(),
            category,
            original_url: meta.original_url.clone(),
            page_url: meta.page_url.clone(),
            page_title: meta.page_title.clone(),
            context_json: (!context.is_empty())
                .then(|| serde_json::Value::Object(context).to_string()),
            saved_at: clock::parse_display(&meta.saved_at),
            filename: Some(meta.filename.clone()),
            id: Some(meta.id.clone()),
            tags: tags_of(meta)?,
            size: None,
        };
        Ok((new, probe))
    }

    /// Waits for the oldest image in flight.
    fn settle_one(&mut self) {
        let Some((index, submitted, received)) = self.in_flight.pop_front() else {
            return;
        };
        self.in_flight_bytes -= submitted.image.file_size;
        let outcome = match submitted.wait_blocking() {
            Ok(_) => {
                self.stored(received);
                Ok(())
            }
            Err(StoreError::Conflict) => Err("the file name is used by another image".to_string()),
            Err(e) => Err(format!("hub storage error: {e}")),
        };
        self.entries[index].outcome = Some(outcome);
    }

    /// Counts one image stored, and the file that came with it (`received` bytes), if one did.
    fn stored(&mut self, received: Option<u64>) {
        let reply = &mut self.out.reply;
        reply.stored += 1;
        if let Some(bytes) = received {
            reply.received_files += 1;
            reply.received_bytes += bytes;
        }
    }

    fn settle_all(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_one();
        }
    }

    /// Brings the accepted images whose sender keeps tags and a trash (imgvault's) to the state
    /// their entries describe, in one commit: a change to an image the hub holds travels as
    /// metadata alone.
    fn apply_updates(&mut self) -> Result<(), ReceiveError> {
        let mut updates = Vec::new();
        for entry in &self.entries {
            if entry.repeat_of.is_some() || !matches!(entry.outcome, Some(Ok(()))) {
                continue;
            }
            let meta = &entry.meta;
            if meta.tags.is_none() {
                continue;
            }
            let Ok(tags) = tags_of(meta) else { continue };
            updates.push(SyncUpdate {
                id: meta.id.clone(),
                tags,
                category: category_of(meta),
                trashed_at: meta.trashed_at_us,
            });
        }
        if !updates.is_empty() {
            self.store.apply_sync_updates(self.user_id, &updates)?;
        }
        Ok(())
    }

    /// One answer per entry, in the order they came.
    fn finish(mut self) -> Received {
        self.out.total_images = self.entries.len() as u64;
        for index in 0..self.entries.len() {
            let entry = &self.entries[index];
            let outcome = match entry.repeat_of {
                None => entry
                    .outcome
                    .clone()
                    .unwrap_or_else(|| Err("the file is missing".into())),
                Some(first) => {
                    let first = &self.entries[first];
                    let same = match (claimed(&entry.meta), claimed(&first.meta)) {
                        (Ok(Some(a)), Ok(Some(b))) => a == b,
                        (Ok(None), _) | (_, Ok(None)) => true,
                        _ => false,
                    };
                    match &first.outcome {
                        _ if !same => Err("the same id twice with other content".into()),
                        Some(outcome) => outcome.clone(),
                        None => Err("the file is missing".into()),
                    }
                }
            };
            let id = entry.meta.id.clone();
            match outcome {
                Ok(()) => {
                    self.out.total_size = self.out.total_size.saturating_add(entry.meta.file_size);
                    self.out.reply.accepted.push(id);
                }
                Err(reason) => self.out.reply.refused.push(Refusal { id, reason }),
            }
        }
        self.out
    }
}

/// What a metadata entry of `json_len` bytes of JSON costs once parsed and indexed: its strings,
/// the `context_info` map, and its places in the name and id maps. Measured with
/// `benches/sync_stream.rs`: about 1.9 KB an image for 640-byte entries, three times their JSON.
fn held_in_memory(json_len: usize) -> u64 {
    json_len as u64 * 2 + 1024
}

/// The category an entry names, in imgvault's field or the seed's `context_info`.
fn category_of(meta: &SyncImage) -> Category {
    Category::for_upload(
        meta.category
            .as_deref()
            .or_else(|| meta.context_info.get("category").and_then(|c| c.as_str())),
    )
}

/// An entry's tags (none from senders that do not send them), or why they are not acceptable.
fn tags_of(meta: &SyncImage) -> Result<Tags, String> {
    match &meta.tags {
        None => Ok(Tags::default()),
        Some(raw) => Tags::parse(raw).map_err(|e| format!("invalid tags: {}", e.0)),
    }
}

/// The `blake3` an entry claims for its bytes, if any.
fn claimed(meta: &SyncImage) -> Result<Option<BlobHash>, String> {
    meta.blake3
        .as_deref()
        .map(|h| BlobHash::from_hex(h).ok_or_else(|| "invalid blake3 hash".to_string()))
        .transpose()
}
