//! Where a PNG, GIF or WebP file ends and whether it carries metadata, read from its container
//! without decoding (JPEG's walk is in `jpeg`, AVIF's in `avif`).
//!
//! A file cut short is damaged and refused; bytes after the container's end are a trailer, kept as
//! sent (browsers, Pillow and vips all show such files). Metadata (EXIF, XMP, an ICC profile,
//! text) decides whether an original may serve as its own thumbnail: a thumbnail never passes on a
//! camera's GPS position.

use super::{ImageKind, MediaError};

/// What a container walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Offset just past the container's last byte.
    pub end: usize,
    /// EXIF, XMP, an ICC profile or text chunks.
    pub metadata: bool,
    /// More than one frame: an APNG's `acTL` counting several, a GIF of several images, a WebP
    /// with the animation flag or frames. Decoders here give the first frame only.
    pub animated: bool,
}

/// Follows PNG chunk lengths from the signature to `IEND`.
pub fn png(bytes: &[u8]) -> Result<Walked, MediaError> {
    let mut metadata = false;
    let mut animated = false;
    let mut pos = 8;
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else {
            return Err(MediaError::Damaged(ImageKind::Png));
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = pos + 12 + len;
        if end > bytes.len() {
            return Err(MediaError::Damaged(ImageKind::Png));
        }
        match &header[4..8] {
            b"IEND" => {
                return Ok(Walked {
                    end,
                    metadata,
                    animated,
                });
            }
            b"eXIf" | b"iCCP" | b"iTXt" | b"zTXt" | b"tEXt" => metadata = true,
            // APNG's animation control: the number of frames comes first.
            b"acTL" => {
                animated = bytes
                    .get(pos + 8..pos + 12)
                    .is_some_and(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) > 1);
            }
            _ => {}
        }
        pos = end;
    }
}

/// Follows GIF blocks (extensions and images, each a run of sub-blocks) to the trailer byte.
pub fn gif(bytes: &[u8]) -> Result<Walked, MediaError> {
    let damaged = MediaError::Damaged(ImageKind::Gif);
    let flags = *bytes.get(10).ok_or(damaged.clone())?;
    let mut pos = 13;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    let mut metadata = false;
    let mut images = 0;
    loop {
        match bytes.get(pos) {
            Some(0x3B) => {
                return Ok(Walked {
                    end: pos + 1,
                    metadata,
                    animated: images > 1,
                });
            }
            Some(0x21) => {
                let label = *bytes.get(pos + 1).ok_or(damaged.clone())?;
                // An application extension's first sub-block names it: XMP and ICC ride in them.
                if label == 0xFF {
                    let app = bytes.get(pos + 3..pos + 14).ok_or(damaged.clone())?;
                    metadata |= app == b"XMP DataXMP" || app == b"ICCRGBG1012";
                }
                pos = sub_blocks_end(bytes, pos + 2).ok_or(damaged.clone())?;
            }
            Some(0x2C) => {
                let local = *bytes.get(pos + 9).ok_or(damaged.clone())?;
                pos += 10;
                if local & 0x80 != 0 {
                    pos += 3 << ((local & 7) + 1);
                }
                // The LZW minimum code size, then the image data.
                pos = sub_blocks_end(bytes, pos + 1).ok_or(damaged.clone())?;
                images += 1;
            }
            // Browsers show a GIF that stops after a whole image without its trailer byte.
            None if images > 0 => {
                return Ok(Walked {
                    end: pos,
                    metadata,
                    animated: images > 1,
                });
            }
            None => return Err(damaged),
            Some(_) => return Err(MediaError::Malformed(ImageKind::Gif)),
        }
    }
}

/// The offset after the terminating empty sub-block of the run starting at `pos`.
fn sub_blocks_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            return Some(pos);
        }
        if pos > bytes.len() {
            return None;
        }
    }
}

/// RIFF states the payload length: a cut file is shorter than it claims. The extended header's
/// flags say whether ICC, EXIF or XMP chunks follow.
pub fn webp(bytes: &[u8]) -> Result<Walked, MediaError> {
    let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let end = declared.saturating_add(8);
    if bytes.len() < end {
        return Err(MediaError::Damaged(ImageKind::Webp));
    }
    let extended = bytes.get(12..16) == Some(b"VP8X");
    let flags = if extended {
        bytes.get(20).copied()
    } else {
        None
    };
    let metadata = flags.is_some_and(|flags| flags & 0b0010_1100 != 0);
    // The animation flag; an `ANIM` or `ANMF` chunk under a header that forgets it counts too.
    let animated = flags.is_some_and(|flags| flags & 0b0000_0010 != 0)
        || (extended && webp_has_frames(&bytes[..end]));
    Ok(Walked {
        end,
        metadata,
        animated,
    })
}

/// Whether the chunks of an extended WebP include animation ones.
fn webp_has_frames(bytes: &[u8]) -> bool {
    let mut pos = 12;
    while let Some(header) = bytes.get(pos..pos + 8) {
        if &header[..4] == b"ANIM" || &header[..4] == b"ANMF" {
            return true;
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        pos = pos
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len & 1);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn encode(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(16, 16, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn trailers_are_outside_and_cuts_are_damaged() {
        for (format, walk) in [
            (image::ImageFormat::Png, png as fn(&[u8]) -> _),
            (image::ImageFormat::Gif, gif),
            (image::ImageFormat::WebP, webp),
        ] {
            let bytes = encode(format);
            let mut trailed = bytes.clone();
            trailed.extend_from_slice(b"\0\0 trailing bytes \xFF\xD9");
            assert_eq!(walk(&trailed).unwrap().end, bytes.len(), "{format:?}");
            assert_eq!(walk(&bytes).unwrap().end, bytes.len(), "{format:?}");
            // Cut within the image data.
            let cut = &bytes[..bytes.len() * 2 / 3];
            assert!(
                matches!(walk(cut), Err(MediaError::Damaged(_))),
                "{format:?}"
            );
        }
    }

    #[test]
    fn a_gif_without_its_trailer_byte_is_whole_after_an_image() {
        let bytes = encode(image::ImageFormat::Gif);
        let without = &bytes[..bytes.len() - 1];
        assert_eq!(gif(without).unwrap().end, without.len());
        assert_eq!(gif(&bytes[..20]), Err(MediaError::Damaged(ImageKind::Gif)));
    }

    #[test]
    fn metadata_is_seen() {
        let plain = encode(image::ImageFormat::Png);
        assert!(!png(&plain).unwrap().metadata);
        // An eXIf chunk before IEND.
        let mut tagged = plain[..plain.len() - 12].to_vec();
        tagged.extend_from_slice(&[0, 0, 0, 0]);
        tagged.extend_from_slice(b"eXIf");
        tagged.extend_from_slice(&[0, 0, 0, 0]);
        tagged.extend_from_slice(&plain[plain.len() - 12..]);
        assert!(png(&tagged).unwrap().metadata);
        assert!(!webp(&encode(image::ImageFormat::WebP)).unwrap().metadata);
    }
}
