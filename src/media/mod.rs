//! Bytes in, facts out: which image format a byte string really is, its dimensions, and whether it is
//! whole, all without decoding pixels.
//!
//! Nothing here trusts a client's file name or MIME type. Everything here runs in bounded time and
//! memory on hostile input: it reads headers and walks container structure, it never inflates data.
//! It knows nothing of users, HTTP or storage.

#[cfg(avif)]
pub mod avif;
pub mod colour;
pub mod container;
pub mod cost;
pub mod data_url;
pub mod edit;
pub mod jpeg;
pub mod phash;
pub mod thumbnail;

use std::io::Cursor;

use image::ImageDecoder;
use image::metadata::Orientation;
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
/// What reading a header may allocate: metadata chunks (a PNG's compressed ICC profile or text)
/// are inflated while the header is read, and a megabyte of them can inflate to gigabytes.
const MAX_HEADER_ALLOC: u64 = 16 * 1024 * 1024;

/// The formats imgvault stores. Anything else is refused at the door. Records keep their kind
/// whatever the build: a build without AVIF decoding still lists and serves stored AVIF files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Avif,
}

impl ImageKind {
    /// The kinds this build accepts, in the order the refusal message and `Accept` list them.
    pub const ACCEPTED: &[ImageKind] = &[
        Self::Png,
        Self::Jpeg,
        Self::Gif,
        Self::Webp,
        #[cfg(avif)]
        Self::Avif,
    ];

    /// The accepted kinds' names, as a list in prose: "PNG, JPEG, GIF or WebP".
    pub fn accepted_names() -> String {
        let names: Vec<&str> = Self::ACCEPTED.iter().map(|kind| kind.name()).collect();
        match names.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The format's name, as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
            Self::Avif => "AVIF",
        }
    }

    /// The file extension used in stored file names.
    pub fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
            Self::Avif => "avif",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The decoder `image` uses for the kinds it decodes here (JPEG and AVIF have their own).
    fn image_format(self) -> image::ImageFormat {
        match self {
            Self::Png => image::ImageFormat::Png,
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Gif => image::ImageFormat::Gif,
            Self::Webp => image::ImageFormat::WebP,
            Self::Avif => image::ImageFormat::Avif,
        }
    }
}

/// What a probe learned about an acceptable image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub kind: ImageKind,
    /// The image as shown: EXIF orientations that turn it by 90° swap the stored sides.
    pub width: u32,
    pub height: u32,
    /// The EXIF orientation (AVIF: its `irot`/`imir` transforms) the thumbnail applies.
    pub orientation: Orientation,
    /// EXIF, XMP, an ICC profile or text, which a thumbnail must not pass on as-is.
    pub metadata: bool,
    /// Offset just past the image's own data; bytes after it are a trailer.
    pub end: usize,
}

impl Probe {
    /// Width and height as stored, before the orientation is applied.
    pub fn stored_dimensions(&self) -> (u32, u32) {
        if turns(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

#[cfg(test)]
impl Probe {
    /// A probe of an image with no orientation and no metadata.
    pub(crate) fn plain(kind: ImageKind, width: u32, height: u32) -> Self {
        Self {
            kind,
            width,
            height,
            orientation: Orientation::NoTransforms,
            metadata: false,
            end: 0,
        }
    }
}

/// Whether `orientation` turns the image by 90° one way or the other.
fn turns(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("not a {} image", ImageKind::accepted_names())]
    UnknownFormat,
    #[error("the {} image is malformed", .0.name())]
    Malformed(ImageKind),
    #[error("the {} image is truncated: its data ends before the image does", .0.name())]
    Damaged(ImageKind),
    #[error("{0} is not supported")]
    Unsupported(Variant),
    #[error("{width}x{height} pixels is over the limit")]
    TooLarge { width: u32, height: u32 },
    #[error(
        "decoding the {width}x{height} image would take {cost} bytes, over the budget of {budget}"
    )]
    OverBudget {
        width: u32,
        height: u32,
        cost: u64,
        budget: u64,
    },
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// A file of an accepted format in a variant that is not, named for the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Variant {
    #[error("lossless JPEG")]
    LosslessJpeg,
    #[error("hierarchical JPEG")]
    HierarchicalJpeg,
    #[error("12-bit JPEG")]
    Jpeg12Bit,
    #[error("animated AVIF")]
    AnimatedAvif,
    #[error("an AVIF grid of more than 1024 tiles")]
    AvifGridTiles,
    #[error("AVIF with a feature this server does not decode")]
    AvifFeature,
    #[error("metadata over 16 MiB")]
    HugeMetadata,
}

impl Variant {
    /// The name in the API's language.
    pub fn zh(self) -> &'static str {
        match self {
            Self::LosslessJpeg => "无损 JPEG",
            Self::HierarchicalJpeg => "分层 JPEG",
            Self::Jpeg12Bit => "12 位 JPEG",
            Self::AnimatedAvif => "动画 AVIF",
            Self::AvifGridTiles => "超过 1024 块的 AVIF 网格图",
            Self::AvifFeature => "含本服务器不支持特性的 AVIF",
            Self::HugeMetadata => "超过 16 MiB 的元数据",
        }
    }
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
    } else if is_avif(bytes) {
        Some(ImageKind::Avif)
    } else {
        None
    }
}

#[cfg(avif)]
fn is_avif(bytes: &[u8]) -> bool {
    avif::sniff(bytes)
}

#[cfg(not(avif))]
fn is_avif(_: &[u8]) -> bool {
    false
}

/// Sniffs the format, reads the dimensions and orientation from the header, checks them against
/// the limits and walks the file's structure to its end: a truncated upload is refused here as
/// damaged rather than stored and found broken later, and bytes after the end are a trailer.
pub fn probe(bytes: &[u8]) -> Result<Probe, MediaError> {
    let kind = sniff(bytes).ok_or(MediaError::UnknownFormat)?;
    let (width, height, orientation, metadata, end) = match kind {
        ImageKind::Jpeg => {
            let found = jpeg::structure(bytes)?;
            let (w, h) = (u32::from(found.frame.width), u32::from(found.frame.height));
            check_dimensions(kind, w, h)?;
            jpeg::check_header(bytes)?;
            let orientation = found.exif.and_then(Orientation::from_exif_chunk);
            let metadata = found.exif.is_some() || found.xmp || found.icc.is_some();
            (w, h, orientation, metadata, found.end)
        }
        ImageKind::Avif => probe_avif(bytes)?,
        _ => {
            let walked = match kind {
                ImageKind::Png => container::png(bytes),
                ImageKind::Gif => container::gif(bytes),
                _ => container::webp(bytes),
            };
            let mut reader =
                image::ImageReader::with_format(Cursor::new(bytes), kind.image_format());
            let mut limits = image::Limits::no_limits();
            limits.max_alloc = Some(MAX_HEADER_ALLOC);
            reader.limits(limits);
            let mut decoder = reader.into_decoder().map_err(|e| match e {
                image::ImageError::Limits(_) => MediaError::Unsupported(Variant::HugeMetadata),
                // A header the decoder cannot read in a file cut short is the cut's fault.
                _ => walked.clone().err().unwrap_or(MediaError::Malformed(kind)),
            })?;
            let walked = walked?;
            let (w, h) = decoder.dimensions();
            check_dimensions(kind, w, h)?;
            if decoder.total_bytes() > MAX_DECODE_BYTES {
                return Err(MediaError::TooLarge {
                    width: w,
                    height: h,
                });
            }
            let orientation = decoder.orientation().ok();
            (w, h, orientation, walked.metadata, walked.end)
        }
    };
    let orientation = orientation.unwrap_or(Orientation::NoTransforms);
    let (width, height) = if turns(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Probe {
        kind,
        width,
        height,
        orientation,
        metadata,
        end,
    })
}

type Header = (u32, u32, Option<Orientation>, bool, usize);

#[cfg(avif)]
fn probe_avif(bytes: &[u8]) -> Result<Header, MediaError> {
    let header = avif::header(bytes)?;
    check_dimensions(ImageKind::Avif, header.width, header.height)?;
    Ok((
        header.width,
        header.height,
        Some(header.orientation),
        header.metadata,
        header.end,
    ))
}

#[cfg(not(avif))]
fn probe_avif(_: &[u8]) -> Result<Header, MediaError> {
    Err(MediaError::UnknownFormat)
}

/// The size that fits `max_side` keeping the aspect ratio, never larger than the source.
pub fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest))
            .max(1) as u32
    };
    (scale(width), scale(height))
}

fn check_dimensions(kind: ImageKind, width: u32, height: u32) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Malformed(kind));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(MediaError::TooLarge { width, height });
    }
    Ok(())
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
            let found = probe(&bytes).unwrap();
            assert_eq!(
                (found.kind, found.width, found.height, found.end),
                (kind, 7, 5, bytes.len())
            );
        }
        let img = image::RgbImage::from_pixel(9, 4, image::Rgb([1, 2, 3]));
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        assert_eq!(probe(jpeg.get_ref()).unwrap().kind, ImageKind::Jpeg);
    }

    #[test]
    fn truncated_files_are_damaged() {
        for format in [
            image::ImageFormat::Png,
            image::ImageFormat::Gif,
            image::ImageFormat::WebP,
        ] {
            let bytes = encode(format, 16, 16);
            let cut = &bytes[..bytes.len() - 3];
            assert!(
                matches!(probe(cut), Err(MediaError::Damaged(_))),
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

#[cfg(test)]
pub(crate) mod test_support {
    /// `jpeg` with an EXIF APP1 segment holding only `orientation`, right after its SOI.
    pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&1u16.to_le_bytes());
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&segment);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
