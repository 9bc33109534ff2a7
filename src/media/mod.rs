//! Bytes in, facts out: which image format a byte string really is, its dimensions, and whether it is
//! whole, all without decoding pixels.
//!
//! Nothing here trusts a client's file name or MIME type. Everything here runs in bounded time and
//! memory on hostile input: it reads headers and walks container structure, it never inflates data.
//! It knows nothing of users, HTTP or storage.

pub mod cost;
pub mod data_url;
pub mod thumbnail;

use std::io::Cursor;

use image::ImageDecoder;
use serde::{Deserialize, Serialize};

/// The seed's upload limit, on an image's bytes.
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
/// Largest width or height accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest pixel count accepted: 64 megapixels (an 8000×8000 image, past every phone camera).
pub const MAX_PIXELS: u64 = 64_000_000;
/// Largest decoded pixel buffer accepted, from the header: 64 megapixels of 8-bit RGBA. What
/// decoding really costs, and whether that fits, is `cost`'s business.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// The formats imgvault stores. Anything else is refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    /// The file extension used in stored file names.
    pub fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Gif => image::ImageFormat::Gif,
            Self::Webp => image::ImageFormat::WebP,
        }
    }
}

/// What a probe learned about an acceptable image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("not a PNG, JPEG, GIF or WebP image")]
    UnknownFormat,
    #[error("the {0:?} image is truncated or malformed")]
    Malformed(ImageKind),
    #[error("{width}x{height} pixels is over the limit")]
    TooLarge { width: u32, height: u32 },
    #[error("decoding the {width}x{height} image would take {cost} bytes, over the budget")]
    OverBudget { width: u32, height: u32, cost: u64 },
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// Names the format from its magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageKind::Gif)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else {
        None
    }
}

/// Sniffs the format, reads the dimensions from the header, checks them against the limits and
/// checks that the file's container structure is complete (a truncated upload is refused here rather
/// than stored and found broken later).
pub fn probe(bytes: &[u8]) -> Result<Probe, MediaError> {
    let kind = sniff(bytes).ok_or(MediaError::UnknownFormat)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), kind.image_format());
    // Only the header is read here; the real limits apply where pixels are decoded.
    reader.no_limits();
    let decoder = reader
        .into_decoder()
        .map_err(|_| MediaError::Malformed(kind))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(MediaError::Malformed(kind));
    }
    let decoded = decoder.total_bytes();
    if width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
        || decoded > MAX_DECODE_BYTES
    {
        return Err(MediaError::TooLarge { width, height });
    }
    if !is_complete(kind, bytes) {
        return Err(MediaError::Malformed(kind));
    }
    Ok(Probe {
        kind,
        width,
        height,
    })
}

/// A reader for `bytes` under the decode limits: no side over `MAX_SIDE`, no allocation over
/// `max_alloc` (what the job was granted, and never more than `MAX_DECODE_BYTES` and a quarter).
fn limited_reader(
    bytes: &[u8],
    kind: ImageKind,
    max_alloc: u64,
) -> image::ImageReader<Cursor<&[u8]>> {
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), kind.image_format());
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(max_alloc.min(MAX_DECODE_BYTES + MAX_DECODE_BYTES / 4));
    reader.limits(limits);
    reader
}

/// Walks the container far enough to see that the file was not cut short.
fn is_complete(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        ImageKind::Png => png_complete(bytes),
        // A JPEG ends with the EOI marker; some encoders pad after it, so look near the end.
        ImageKind::Jpeg => {
            let tail = &bytes[bytes.len().saturating_sub(64)..];
            tail.windows(2).any(|w| w == [0xFF, 0xD9])
        }
        // A GIF ends with its trailer byte.
        ImageKind::Gif => bytes.last() == Some(&0x3B),
        // RIFF states the payload length; a cut file is shorter than it claims.
        ImageKind::Webp => {
            let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
            bytes.len() >= declared.saturating_add(8)
        }
    }
}

/// Follows PNG chunk lengths from the signature to `IEND`.
fn png_complete(bytes: &[u8]) -> bool {
    let mut pos = 8;
    loop {
        let Some(header) = bytes.get(pos..pos + 8) else {
            return false;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = pos + 12 + len;
        if end > bytes.len() {
            return false;
        }
        if &header[4..8] == b"IEND" {
            return true;
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba([200, 10, 10, 255]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn probes_every_supported_format() {
        for (format, kind) in [
            (image::ImageFormat::Png, ImageKind::Png),
            (image::ImageFormat::Gif, ImageKind::Gif),
            (image::ImageFormat::WebP, ImageKind::Webp),
        ] {
            let bytes = encode(format, 7, 5);
            assert_eq!(
                probe(&bytes),
                Ok(Probe {
                    kind,
                    width: 7,
                    height: 5
                })
            );
        }
        let img = image::RgbImage::from_pixel(9, 4, image::Rgb([1, 2, 3]));
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        assert_eq!(probe(jpeg.get_ref()).unwrap().kind, ImageKind::Jpeg);
    }

    #[test]
    fn truncated_files_are_malformed() {
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Gif,
            image::ImageFormat::WebP,
        ] {
            let bytes = encode(format, 16, 16);
            let cut = &bytes[..bytes.len() - 3];
            assert!(
                matches!(probe(cut), Err(MediaError::Malformed(_))),
                "{format:?}"
            );
        }
    }

    #[test]
    fn text_is_not_an_image() {
        assert_eq!(probe(b"hello, world"), Err(MediaError::UnknownFormat));
        assert_eq!(probe(b""), Err(MediaError::UnknownFormat));
    }

    #[test]
    fn huge_dimensions_are_refused_from_the_header() {
        let mut png = encode(image::ImageFormat::Png, 1, 1);
        // IHDR width and height sit at bytes 16..24; the CRC is not checked by the header reader.
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            probe(&png),
            Err(MediaError::TooLarge { .. } | MediaError::Malformed(_))
        ));
    }

    #[test]
    fn a_padded_png_of_zeros_is_judged_by_its_decode_cost_not_its_ratio() {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let img = image::RgbaImage::new(4000, 4000);
        let mut out = Cursor::new(Vec::new());
        let encoder =
            PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter);
        img.write_with_encoder(encoder).unwrap();
        let bytes = out.into_inner();
        let probe = probe(&bytes).unwrap();
        // Row by row it costs a few MiB, whatever its ratio (over 1000:1 here).
        let plan = cost::check(&bytes, &probe, 512, 60 * 1024 * 1024).unwrap();
        assert_eq!(plan.path, cost::Path::PngRows);
        assert!(64_000_000 / bytes.len() > 400);
    }
}
