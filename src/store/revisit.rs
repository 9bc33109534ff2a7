//! Images stored before imgvault read EXIF orientation and colour profiles, looked at again: the
//! schema-7 migration lists them (`REVISIT`), and the server works through the list in the
//! background (`thumbnails::Jobs::revisit`), correcting each record's size to the image as shown
//! and sending thumbnails that would now come out different to be made again.

use redb::ReadableTable;

use super::records::{ImageRecord, Record};
use super::tables::*;
use super::{Result, Store, thumbs};
use crate::domain::{BlobHash, ImageId};

/// What looking at one listed image again found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revisited {
    pub image_id: ImageId,
    /// The size of the image as shown, when the record says otherwise.
    pub size: Option<(u32, u32)>,
    /// The source whose thumbnail must be made again.
    pub remake: Option<BlobHash>,
}

impl Store {
    /// Up to `limit` listed images (those deleted since are dropped from the list).
    pub fn to_revisit(&self, limit: usize) -> Result<Vec<ImageRecord>> {
        let (found, gone) = {
            let tx = self.read()?;
            let listed = tx.open_table(REVISIT)?;
            let images = tx.open_table(IMAGES)?;
            let (mut found, mut gone) = (Vec::new(), Vec::new());
            for entry in listed.iter()?.take(limit) {
                let id = entry?.0.value().to_string();
                match images.get(id.as_str())? {
                    Some(raw) => found.push(ImageRecord::decode(raw.value())?),
                    None => gone.push(id),
                }
            }
            (found, gone)
        };
        if !gone.is_empty() {
            let tx = self.write_derived()?;
            {
                let mut listed = tx.open_table(REVISIT)?;
                for id in &gone {
                    listed.remove(id.as_str())?;
                }
            }
            self.finish(tx)?;
        }
        Ok(found)
    }

    /// Records what was found and takes the images off the list, in one commit. A thumbnail to
    /// remake is dropped and its source put on the thumbnail backlog, so that a restart before it
    /// is made makes it then.
    pub fn revisited(&self, found: &[Revisited]) -> Result<()> {
        let tx = self.write_derived()?;
        for seen in found {
            tx.open_table(REVISIT)?.remove(seen.image_id.as_str())?;
            if let Some((width, height)) = seen.size {
                let mut images = tx.open_table(IMAGES)?;
                let record = images
                    .get(seen.image_id.as_str())?
                    .map(|v| ImageRecord::decode(v.value()))
                    .transpose()?;
                if let Some(mut image) = record {
                    (image.width, image.height) = (width, height);
                    images.insert(image.id.as_str(), image.encode().as_slice())?;
                }
            }
            if let Some(source) = &seen.remake {
                if tx.open_table(BLOBS)?.get(&source.0)?.is_some() {
                    thumbs::release_for(&tx, source)?;
                    tx.open_table(THUMB_BACKLOG)?.insert(&source.0, ())?;
                }
            }
        }
        self.finish(tx)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::ThumbRecord;
    use super::super::test_support::{add_user, new_image, temp_store};
    use super::*;
    use crate::media::ImageKind;

    #[test]
    fn sizes_are_corrected_thumbnails_sent_back_and_the_list_drained() {
        let (_dir, store) = temp_store();
        add_user(&store, "u");
        let (mut image, task) = new_image("i-1", "u", 1, b"portrait");
        (image.width, image.height) = (40, 30);
        store.save_image(&image, b"portrait", &task).unwrap();
        let (other, other_task) = new_image("i-2", "u", 2, b"other");
        store.save_image(&other, b"other", &other_task).unwrap();
        let thumb = ThumbRecord::Ready {
            blob: BlobHash::of(b"thumb"),
            kind: ImageKind::Jpeg,
            width: 8,
            height: 4,
            max_side: 512,
        };
        store
            .put_thumbnail(&image.blob, &thumb, b"thumb", None)
            .unwrap();
        {
            let tx = store.write().unwrap();
            tx.open_table(REVISIT)
                .unwrap()
                .insert(image.id.as_str(), ())
                .unwrap();
            tx.open_table(REVISIT)
                .unwrap()
                .insert("i-gone", ())
                .unwrap();
            tx.commit().unwrap();
        }
        let listed = store.to_revisit(10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, image.id);

        store
            .revisited(&[Revisited {
                image_id: image.id.clone(),
                size: Some((image.height, image.width)),
                remake: Some(image.blob),
            }])
            .unwrap();
        let after = store.image(&image.id).unwrap().unwrap();
        assert_eq!((after.width, after.height), (image.height, image.width));
        assert_eq!(store.thumbnail(&image.blob).unwrap(), None);
        assert!(store.blob(&BlobHash::of(b"thumb")).unwrap().is_none());
        assert_eq!(store.thumb_backlog().unwrap(), vec![image.blob]);
        assert!(store.to_revisit(10).unwrap().is_empty());
        let problems = store.check().unwrap().problems;
        assert!(problems.is_empty(), "{problems:?}");
    }
}
