//! Phase 3, thumbnails: fetches the thumbnail of every ingested image and adds up the bytes the
//! stored ones take, for the disk figures.

use std::collections::HashMap;
use std::sync::Arc;

use super::FETCH_CONCURRENCY;
use crate::client::{Fetched, Session, Stored, fetch_file, hammer, http_client};
use crate::measure::{Measurement, Monitor, measure};

/// Thumbnail bytes the data file holds for the ingested images.
#[derive(Default)]
pub(crate) struct ThumbBytes {
    /// Distinct stored thumbnails and their total size.
    pub(crate) stored: usize,
    pub(crate) bytes: u64,
    /// Images that are their own thumbnail (nothing stored for it).
    pub(crate) originals: usize,
}

/// `GET` every ingested image's thumbnail at c=16 and adds up the stored ones.
pub(crate) async fn thumbnail_phase(
    base: &str,
    monitor: &Monitor,
    admin: &Session,
    stored: &Arc<Vec<Stored>>,
) -> Result<(Measurement, ThumbBytes), String> {
    println!("thumbnails:");
    let (client, base_url) = (http_client(), base.to_string());
    let (admin, images) = (admin.clone(), stored.clone());
    let work = hammer(FETCH_CONCURRENCY, stored.len(), move |_, index| {
        let image = images[index].clone();
        let request = admin.get_file(&client, &base_url, "thumbnails", &image.filename);
        async move {
            let (latency, got) = fetch_file(request).await?;
            check_thumbnail(&got, &image)?;
            Ok((latency, got))
        }
    });
    let name = "thumbnail of each ingested".to_string();
    let (m, fetched) = measure(monitor, name, FETCH_CONCURRENCY, work).await?;
    Ok((m, thumb_bytes(stored, &fetched)))
}

/// A thumbnail is not empty, and one served as the original is exactly the original.
fn check_thumbnail(got: &Fetched, image: &Stored) -> Result<(), String> {
    if got.len == 0 || got.etag.is_empty() {
        return Err(format!(
            "thumbnail of {}: {} bytes, ETag {:?}",
            image.filename, got.len, got.etag
        ));
    }
    if got.etag == image.etag && got.len != image.bytes {
        return Err(format!(
            "thumbnail of {} has the original's ETag but {} bytes, not {}",
            image.filename, got.len, image.bytes
        ));
    }
    Ok(())
}

fn thumb_bytes(stored: &[Stored], fetched: &[Fetched]) -> ThumbBytes {
    let mut distinct: HashMap<&str, u64> = HashMap::new();
    let mut originals = 0;
    for (image, got) in stored.iter().zip(fetched) {
        if got.etag == image.etag {
            originals += 1;
        } else {
            distinct.insert(&got.etag, got.len);
        }
    }
    ThumbBytes {
        stored: distinct.len(),
        bytes: distinct.values().sum(),
        originals,
    }
}
