//! Editing a stored image: quarter turns, mirrors and a crop, turned into the bytes that replace
//! the original.
//!
//! The edit endpoint serves people who uploaded a photo sideways or with a border to lose; what
//! they see afterwards is the edited file, so the edit must look like the original did where it
//! kept it (same colours, about the same quality and size) and must never lose what it cannot
//! carry over silently.
//!
//! - The edit is made in the coordinates of the image as shown: its EXIF orientation (an AVIF's
//!   `irot`/`imir`) already applied. That orientation and the edit make one of the eight
//!   turns-and-mirrors of a rectangle (`Transform`), applied once to the stored pixels; the output
//!   carries no orientation, because it carries no EXIF at all (which also drops a camera's GPS
//!   position, as thumbnails do). Bytes after the image's end (a motion photo's video) are dropped
//!   with it: they belong to the unedited picture.
//! - JPEGs are turned, mirrored and cropped without decoding when their blocks allow it
//!   (`lossless`): along each axis, the edge that becomes the output's top or left must lie on an
//!   iMCU boundary (jpegtran's `-perfect`). Otherwise they are decoded and re-encoded at the
//!   quality their quantisation tables show (`quality::jpeg`, clamped to 60–95), with their chroma
//!   subsampling, which keeps the file about its original size.
//! - PNG stays PNG (16-bit stays 16-bit, palettes stay palettes when they still fit 256 colours),
//!   a still GIF becomes a palette PNG (a lossless copy, where re-quantising to GIF would not be),
//!   WebP stays WebP (lossless as lossless, lossy at its estimated quality, `quality::webp`). AVIF,
//!   which nothing here encodes, becomes lossy WebP (q 85) when it has transparency, else JPEG
//!   (q 88).
//! - Colour: the ICC profile is kept where the output format carries it: JPEG (APP2 segments,
//!   copied also on the lossless path), PNG (`iCCP`), WebP (`ICCP`). CMYK JPEGs being re-encoded,
//!   and AVIFs (whose colour may be CICP code points no output here carries), are converted to
//!   sRGB by `media::colour` instead; a CMYK JPEG turned losslessly stays CMYK with its profile.
//! - Animations (APNG, GIF of several images, animated WebP, AVIF image sequences) are refused:
//!   the decoders here give one frame, and an edit must not drop the others.
//! - Memory: what the path costs (coefficients, decoded pixels, the transformed copy, colour
//!   conversion, the encoder) is computed from the header before anything is decoded, as
//!   `media::cost` does for thumbnails, and an image over the caller's allowance is refused.

mod lossless;
mod quality;

use std::collections::HashMap;

use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer, ImageDecoder, ImageEncoder, Pixel, RgbaImage};

use super::colour::{self, Pixels, Profile};
use super::cost::{COLOUR, FIXED};
use super::{ImageKind, MediaError, Probe, jpeg};

/// Quality of the JPEG an AVIF becomes, and of a re-encoded JPEG whose tables say nothing.
const JPEG_QUALITY: u8 = 88;
/// Quality of the lossy WebP an AVIF with transparency becomes, and of a lossy WebP whose
/// header says nothing.
const WEBP_QUALITY: f32 = 85.0;
/// Bounds of the estimated quality a JPEG is re-encoded at: below, the artefacts of a second pass
/// show; above, the file grows for nothing the eye sees.
const JPEG_QUALITIES: (u8, u8) = (60, 95);
/// libwebp's working set per output pixel, a bound: the lossy encoder's YUV planes and
/// per-macroblock data; the lossless encoder's ARGB copies, hash chain and backward references.
const WEBP_LOSSY_PER_PIXEL: u64 = 8;
const WEBP_LOSSLESS_PER_PIXEL: u64 = 40;

/// A clockwise quarter turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    None,
    R90,
    R180,
    R270,
}

impl Rotation {
    /// 0, 90, 180 or 270 degrees clockwise; `None` for any other angle.
    pub fn from_degrees(degrees: u32) -> Option<Self> {
        match degrees {
            0 => Some(Self::None),
            90 => Some(Self::R90),
            180 => Some(Self::R180),
            270 => Some(Self::R270),
            _ => None,
        }
    }
}

/// A mirror: `H` swaps left and right, `V` top and bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    H,
    V,
}

/// A rectangle of the image as it looks after the rotation and the flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Rotate, then flip, then crop, all in the image's shown coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Edit {
    pub rotate: Rotation,
    pub flip: Option<Flip>,
    pub crop: Option<Crop>,
}

/// The edited file.
#[derive(Debug, Clone)]
pub struct Edited {
    pub bytes: Vec<u8>,
    /// The format of `bytes`: a GIF becomes PNG, an AVIF WebP or JPEG.
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
    /// Made from the JPEG's coefficients, without decoding and re-encoding.
    pub lossless: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("animated images cannot be edited")]
    Animated,
    #[error("the crop must be at least one pixel wide and high")]
    EmptyCrop,
    #[error(
        "the crop of {width}x{height} at {x},{y} is outside the {image_width}x{image_height} image"
    )]
    CropOutside {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        image_width: u32,
        image_height: u32,
    },
    #[error("the edit changes nothing")]
    Nothing,
    /// The image does not decode, or costs more than the allowance: the upload's errors.
    #[error(transparent)]
    Media(#[from] MediaError),
}

impl EditError {
    /// The message in the API's language; `None` for `Media`, which the API words as it words the
    /// same errors of an upload.
    pub fn zh(&self) -> Option<&'static str> {
        match self {
            Self::Animated => Some("动图不支持编辑"),
            Self::EmptyCrop => Some("裁剪区域的宽和高必须大于 0"),
            Self::CropOutside { .. } => Some("裁剪区域超出图片范围"),
            Self::Nothing => Some("没有要做的修改"),
            Self::Media(_) => None,
        }
    }
}

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

impl Rect {
    fn whole(width: u32, height: u32) -> Self {
        Self {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// One of the eight turns and mirrors of a rectangle: a source pixel (x, y) of a W×H image is
/// mirrored to (W−1−x) when `mirror_x`, to (H−1−y) when `mirror_y`, then its coordinates are
/// swapped when `transpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transform {
    transpose: bool,
    mirror_x: bool,
    mirror_y: bool,
}

impl Transform {
    const IDENTITY: Self = Self::new(false, false, false);
    /// Clockwise: (x, y) → (H−1−y, x).
    const ROTATE_90: Self = Self::new(true, false, true);
    const ROTATE_180: Self = Self::new(false, true, true);
    /// Counter-clockwise: (x, y) → (y, W−1−x).
    const ROTATE_270: Self = Self::new(true, true, false);
    const FLIP_H: Self = Self::new(false, true, false);
    const FLIP_V: Self = Self::new(false, false, true);
    const TRANSPOSE: Self = Self::new(true, false, false);
    const TRANSVERSE: Self = Self::new(true, true, true);

    const fn new(transpose: bool, mirror_x: bool, mirror_y: bool) -> Self {
        Self {
            transpose,
            mirror_x,
            mirror_y,
        }
    }

    /// What shows an image stored with `orientation` as it should be seen.
    fn of_orientation(orientation: Orientation) -> Self {
        match orientation {
            Orientation::NoTransforms => Self::IDENTITY,
            Orientation::Rotate90 => Self::ROTATE_90,
            Orientation::Rotate180 => Self::ROTATE_180,
            Orientation::Rotate270 => Self::ROTATE_270,
            Orientation::FlipHorizontal => Self::FLIP_H,
            Orientation::FlipVertical => Self::FLIP_V,
            // `image` turns clockwise, then mirrors left-right.
            Orientation::Rotate90FlipH => Self::TRANSPOSE,
            Orientation::Rotate270FlipH => Self::TRANSVERSE,
        }
    }

    fn of_rotation(rotation: Rotation) -> Self {
        match rotation {
            Rotation::None => Self::IDENTITY,
            Rotation::R90 => Self::ROTATE_90,
            Rotation::R180 => Self::ROTATE_180,
            Rotation::R270 => Self::ROTATE_270,
        }
    }

    fn of_flip(flip: Flip) -> Self {
        match flip {
            Flip::H => Self::FLIP_H,
            Flip::V => Self::FLIP_V,
        }
    }

    /// `self`, then `next`. After a transposition, `next`'s mirror of the first axis mirrors
    /// what was the second.
    fn then(self, next: Self) -> Self {
        let (x, y) = if self.transpose {
            (next.mirror_y, next.mirror_x)
        } else {
            (next.mirror_x, next.mirror_y)
        };
        Self::new(
            self.transpose != next.transpose,
            self.mirror_x != x,
            self.mirror_y != y,
        )
    }

    /// The size of a `width`×`height` image once transformed.
    fn dimensions(self, width: u32, height: u32) -> (u32, u32) {
        if self.transpose {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// The rectangle of a `width`×`height` source that becomes `region` of the output.
    fn source_region(self, region: Rect, width: u32, height: u32) -> Rect {
        let (x, w, y, h) = if self.transpose {
            (region.y, region.height, region.x, region.width)
        } else {
            (region.x, region.width, region.y, region.height)
        };
        Rect {
            x: if self.mirror_x { width - x - w } else { x },
            y: if self.mirror_y { height - y - h } else { y },
            width: w,
            height: h,
        }
    }
}

/// Applies `edit` to the image `bytes`, allocating at most about `allowance` bytes
/// (`MediaError::OverBudget` when it would take more, known before decoding).
pub fn apply(bytes: &[u8], edit: &Edit, allowance: u64) -> Result<Edited, EditError> {
    apply_with(bytes, edit, allowance, true)
}

fn apply_with(
    bytes: &[u8],
    edit: &Edit,
    allowance: u64,
    lossless: bool,
) -> Result<Edited, EditError> {
    let probe = super::probe(bytes)?;
    // A trailer (a motion photo's video, a Samsung block) belongs to the unedited picture.
    let bytes = &bytes[..probe.end];
    if animated(bytes, &probe) {
        return Err(EditError::Animated);
    }
    let mut asked = Transform::of_rotation(edit.rotate);
    if let Some(flip) = edit.flip {
        asked = asked.then(Transform::of_flip(flip));
    }
    let (width, height) = asked.dimensions(probe.width, probe.height);
    let region = match edit.crop {
        None => Rect::whole(width, height),
        Some(c) if c.width == 0 || c.height == 0 => return Err(EditError::EmptyCrop),
        Some(c)
            if u64::from(c.x) + u64::from(c.width) > u64::from(width)
                || u64::from(c.y) + u64::from(c.height) > u64::from(height) =>
        {
            return Err(EditError::CropOutside {
                x: c.x,
                y: c.y,
                width: c.width,
                height: c.height,
                image_width: width,
                image_height: height,
            });
        }
        Some(c) => Rect {
            x: c.x,
            y: c.y,
            width: c.width,
            height: c.height,
        },
    };
    if asked == Transform::IDENTITY && region == Rect::whole(width, height) {
        return Err(EditError::Nothing);
    }
    let t = Transform::of_orientation(probe.orientation).then(asked);
    let (sw, sh) = probe.stored_dimensions();
    let job = Job {
        bytes,
        probe,
        t,
        source: t.source_region(region, sw, sh),
        allowance,
    };
    Ok(match probe.kind {
        ImageKind::Jpeg => job.jpeg(lossless)?,
        ImageKind::Png | ImageKind::Gif | ImageKind::Webp => job.other()?,
        ImageKind::Avif => job.avif()?,
    })
}

/// Whether the file holds more frames than its decoder gives.
fn animated(bytes: &[u8], probe: &Probe) -> bool {
    let walked = match probe.kind {
        ImageKind::Png => super::container::png(bytes),
        ImageKind::Gif => super::container::gif(bytes),
        ImageKind::Webp => super::container::webp(bytes),
        ImageKind::Jpeg => return false,
        ImageKind::Avif => return avif_sequence(bytes),
    };
    walked.is_ok_and(|w| w.animated)
}

#[cfg(avif)]
fn avif_sequence(bytes: &[u8]) -> bool {
    super::avif::header(bytes).is_ok_and(|h| h.sequence)
}

#[cfg(not(avif))]
fn avif_sequence(_: &[u8]) -> bool {
    false
}

/// One edit of one probed image: `source` of the stored pixels, transformed by `t`.
struct Job<'a> {
    bytes: &'a [u8],
    probe: Probe,
    t: Transform,
    source: Rect,
    allowance: u64,
}

impl Job<'_> {
    /// Output pixels.
    fn pixels(&self) -> u64 {
        u64::from(self.source.width) * u64::from(self.source.height)
    }

    fn stored_pixels(&self) -> u64 {
        let (w, h) = self.probe.stored_dimensions();
        u64::from(w) * u64::from(h)
    }

    fn output_dimensions(&self) -> (u32, u32) {
        self.t.dimensions(self.source.width, self.source.height)
    }

    /// What every path holds: the source bytes, codec state, and a colour profile's parse when
    /// the file has metadata.
    fn base_cost(&self) -> u64 {
        let colour = if self.probe.metadata { COLOUR } else { 0 };
        self.bytes.len() as u64 + FIXED + colour
    }

    /// `OverBudget` when `cost` is over the allowance.
    fn afford(&self, cost: u64) -> Result<(), MediaError> {
        if cost > self.allowance {
            return Err(MediaError::OverBudget {
                width: self.probe.width,
                height: self.probe.height,
                cost,
                budget: self.allowance,
            });
        }
        Ok(())
    }

    fn edited(&self, bytes: Vec<u8>, kind: ImageKind, lossless: bool) -> Edited {
        let (width, height) = self.output_dimensions();
        Edited {
            bytes,
            kind,
            width,
            height,
            lossless,
        }
    }

    fn jpeg(&self, allow_lossless: bool) -> Result<Edited, MediaError> {
        let structure = jpeg::structure(self.bytes)?;
        let frame = structure.frame;
        let icc = structure.icc.as_deref();
        // A JPEG's profile is copied as bytes; only CMYK is converted, which parses it.
        let base = match frame.components {
            4 => self.base_cost(),
            _ => self.bytes.len() as u64 + FIXED,
        };
        let reencode_cost = base + self.jpeg_reencode_cost(&frame);
        if allow_lossless && lossless::possible(&frame, self.t, self.source) {
            let cost = base
                + lossless::cost(
                    &frame,
                    self.t,
                    self.source,
                    self.probe.stored_dimensions(),
                    self.bytes.len(),
                );
            self.afford(cost.min(reencode_cost))?;
            if cost <= self.allowance {
                match lossless::transform(self.bytes, self.t, self.source, icc) {
                    Ok(Some(bytes)) => return Ok(self.edited(bytes, ImageKind::Jpeg, true)),
                    Ok(None) => {}
                    Err(e) => tracing::debug!("lossless JPEG edit failed, re-encoding: {e}"),
                }
            }
        }
        self.afford(reencode_cost)?;
        let decoded = jpeg::decode_scaled(self.bytes, 8, structure.adobe)?;
        if (decoded.width, decoded.height) != self.probe.stored_dimensions() {
            return Err(MediaError::Damaged(ImageKind::Jpeg));
        }
        let channels = match decoded.samples {
            jpeg::Samples::Grey => 1,
            jpeg::Samples::Rgb => 3,
            jpeg::Samples::Cmyk => 4,
        };
        let (w, h) = self.output_dimensions();
        let quality = quality::jpeg(self.bytes).map_or(JPEG_QUALITY, |q| {
            q.clamp(JPEG_QUALITIES.0, JPEG_QUALITIES.1)
        });
        // Grey and RGB go to the encoder strip by strip, straight from the decoded samples.
        let strips = |rows: std::ops::Range<usize>, out: &mut Vec<u8>| {
            remap_rows(
                &decoded.pixels,
                decoded.width,
                channels,
                self.t,
                self.source,
                rows,
                out,
            )
        };
        let bytes = match decoded.samples {
            jpeg::Samples::Grey => encode_jpeg(w, h, true, quality, (1, 1), icc, strips)?,
            jpeg::Samples::Rgb => {
                let chroma = chroma_pixels(&frame, self.t);
                encode_jpeg(w, h, false, quality, chroma, icc, strips)?
            }
            jpeg::Samples::Cmyk => {
                let pixels = remap(
                    &decoded.pixels,
                    decoded.width,
                    channels,
                    self.t,
                    self.source,
                );
                let cmyk = RgbaImage::from_raw(w, h, pixels)
                    .ok_or(MediaError::Damaged(ImageKind::Jpeg))?;
                let rgb =
                    colour::to_srgb(Pixels::Cmyk(cmyk), &Profile::icc(structure.icc)).into_rgb8();
                encode_jpeg(
                    w,
                    h,
                    false,
                    quality,
                    (2, 2),
                    None,
                    whole(rgb.as_raw(), w, 3),
                )?
            }
        };
        Ok(self.edited(bytes, ImageKind::Jpeg, false))
    }

    /// libjpeg's coefficients (all of them for a progressive file, an MCU row otherwise), the
    /// full-size decode in its stored samples, the transformed copy, CMYK's RGB, and the encoded
    /// output growing in a `Vec`.
    fn jpeg_reencode_cost(&self, frame: &jpeg::Frame) -> u64 {
        let (w, h) = self.probe.stored_dimensions();
        let (w, h) = (u64::from(w), u64::from(h));
        let components = u64::from(frame.components.clamp(1, 4));
        let used = &frame.sampling[..components as usize];
        let hmax = u64::from(used.iter().map(|s| s.0).max().unwrap_or(1));
        let vmax = u64::from(used.iter().map(|s| s.1).max().unwrap_or(1));
        let held = if frame.whole_image_coefficients() {
            used.iter()
                .map(|&(hs, vs)| {
                    w.div_ceil(8 * hmax) * u64::from(hs) * h.div_ceil(8 * vmax) * u64::from(vs)
                })
                .sum::<u64>()
                * 128
        } else {
            w * vmax * 8 * components * 4
        };
        let out = self.pixels();
        // Grey and RGB stream to the encoder in strips; CMYK is transformed whole, then turned
        // into RGB.
        let transformed = match components {
            4 => out * 4 + out * 3,
            _ => STRIP_ROWS as u64 * u64::from(self.source.width.max(self.source.height)) * 3,
        };
        // The output grows in a `Vec` by doubling from an eighth of the raw samples: a bound of
        // half the raw samples covers a JPEG of up to a quarter of them (photos at quality 95
        // take about an eighth) with the doubling's slack.
        let encoded = out * components.min(3) / 2;
        held + self.stored_pixels() * components + transformed + encoded
    }

    /// PNG, GIF and WebP, decoded whole by `image`.
    fn other(&self) -> Result<Edited, MediaError> {
        let kind = self.probe.kind;
        let stored = self.stored_pixels();
        let out = self.pixels();
        let webp = (kind == ImageKind::Webp).then(|| quality::webp(self.bytes));
        // Per stored pixel: the decode. Per output pixel: the transformed copy, then the encoder
        // (its output, and for palettes an RGBA copy and the indices).
        let (decoded, transformed, encoder) = match kind {
            ImageKind::Png => {
                let header = super::cost::png_header(self.bytes);
                let bytes_per_pixel =
                    header.map_or(8, |h| h.channels() * if h.bit_depth == 16 { 2 } else { 1 });
                let palette = if header.is_some_and(|h| h.color_type == 3) {
                    5
                } else {
                    0
                };
                (
                    bytes_per_pixel,
                    bytes_per_pixel,
                    bytes_per_pixel * 2 + palette,
                )
            }
            // The canvas and the first frame's buffer.
            ImageKind::Gif => (8, 4, 4 * 2 + 5),
            // image-webp's planes come on top of its RGBA output.
            _ => {
                let encoder = match webp.flatten() {
                    Some(quality::Webp::Lossless) => WEBP_LOSSLESS_PER_PIXEL,
                    _ => WEBP_LOSSY_PER_PIXEL,
                };
                (8, 4, encoder)
            }
        };
        self.afford(self.base_cost() + stored * decoded + out * (transformed + encoder))?;

        let mut decoder = super::limited_reader(self.bytes, kind, self.allowance)
            .into_decoder()
            .map_err(|_| MediaError::Malformed(kind))?;
        let icc = decoder.icc_profile().ok().flatten();
        let image = DynamicImage::from_decoder(decoder).map_err(|_| MediaError::Damaged(kind))?;
        let (w, h) = self.probe.stored_dimensions();
        if (image.width(), image.height()) != (w, h) {
            return Err(MediaError::Damaged(kind));
        }
        let image = remap_image(&image, self.t, self.source);
        let (bytes, kind) = match kind {
            ImageKind::Webp => {
                let (lossless, quality) = match webp.flatten() {
                    Some(quality::Webp::Lossless) => (true, 0.0),
                    Some(quality::Webp::Lossy { quality }) => {
                        (false, quality.unwrap_or(WEBP_QUALITY).clamp(50.0, 95.0))
                    }
                    None => (false, WEBP_QUALITY),
                };
                (encode_webp(image, lossless, quality, icc.as_deref())?, kind)
            }
            _ => {
                let paletted = kind == ImageKind::Gif
                    || super::cost::png_header(self.bytes).is_some_and(|h| h.color_type == 3);
                let indexed = match &image {
                    DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) if paletted => {
                        indexed_png(&image.to_rgba8(), icc.as_deref())?
                    }
                    _ => None,
                };
                let bytes = match indexed {
                    Some(bytes) => bytes,
                    None => encode_png(&opaque_if_possible(image), icc)?,
                };
                (bytes, ImageKind::Png)
            }
        };
        Ok(self.edited(bytes, kind, false))
    }

    #[cfg(avif)]
    fn avif(&self) -> Result<Edited, MediaError> {
        let header = super::avif::header(self.bytes)?;
        let channels = if header.alpha { 4 } else { 3 };
        let out = self.pixels();
        let encoder = if header.alpha {
            out * WEBP_LOSSY_PER_PIXEL
        } else {
            out * 3 * 2
        };
        // The decode, the transformed copy and its sRGB conversion, the encoder.
        let cost = self.base_cost()
            + super::avif::decode_cost(&header, None)
            + out * channels
            + out * 4
            + encoder;
        self.afford(cost)?;
        let decoded = super::avif::decode(self.bytes, &header, None)?;
        if (decoded.width(), decoded.height()) != self.probe.stored_dimensions() {
            return Err(MediaError::Malformed(ImageKind::Avif));
        }
        let image = remap_image(&decoded, self.t, self.source);
        drop(decoded);
        let profile = match (header.icc, header.cicp) {
            (Some(icc), _) => Profile::Icc(icc),
            (None, Some(cicp)) => Profile::Cicp {
                primaries: cicp.primaries,
                transfer: cicp.transfer,
            },
            (None, None) => Profile::Srgb,
        };
        let image = colour::to_srgb(Pixels::Image(image), &profile);
        let (w, h) = (image.width(), image.height());
        if has_transparency(&image) {
            let bytes = encode_webp(image, false, WEBP_QUALITY, None)?;
            return Ok(self.edited(bytes, ImageKind::Webp, false));
        }
        let chroma = match header.subsampling {
            super::avif::Subsampling::S444 => (1, 1),
            super::avif::Subsampling::S422 if self.t.transpose => (1, 2),
            super::avif::Subsampling::S422 => (2, 1),
            _ => (2, 2),
        };
        let rgb = image.into_rgb8();
        let bytes = encode_jpeg(
            w,
            h,
            false,
            JPEG_QUALITY,
            chroma,
            None,
            whole(rgb.as_raw(), w, 3),
        )?;
        Ok(self.edited(bytes, ImageKind::Jpeg, false))
    }

    #[cfg(not(avif))]
    fn avif(&self) -> Result<Edited, MediaError> {
        Err(MediaError::UnknownFormat)
    }
}

/// The size of a chroma sample in luma pixels, (across, down), of the source's first chroma
/// component: what the re-encoded JPEG keeps, turned with the picture. 1 or 2 each way.
fn chroma_pixels(frame: &jpeg::Frame, t: Transform) -> (u8, u8) {
    if frame.components < 3 {
        return (2, 2);
    }
    let used = &frame.sampling[..usize::from(frame.components.min(4))];
    let hmax = used.iter().map(|s| s.0).max().unwrap_or(1);
    let vmax = used.iter().map(|s| s.1).max().unwrap_or(1);
    let (h, v) = frame.sampling[1];
    let across = (hmax / h.max(1)).clamp(1, 2);
    let down = (vmax / v.max(1)).clamp(1, 2);
    if t.transpose {
        (down, across)
    } else {
        (across, down)
    }
}

/// `region` of a `width`-pixel-wide image of `channels` samples a pixel, transformed by `t`.
fn remap<T: Copy>(src: &[T], width: u32, channels: usize, t: Transform, region: Rect) -> Vec<T> {
    let (ow, oh) = t.dimensions(region.width, region.height);
    let mut out = Vec::with_capacity(ow as usize * oh as usize * channels);
    remap_rows(src, width, channels, t, region, 0..oh as usize, &mut out);
    out
}

/// Output rows `rows` of `remap`, appended to `out`: an encoder fed strip by strip never holds
/// the whole transformed copy.
fn remap_rows<T: Copy>(
    src: &[T],
    width: u32,
    channels: usize,
    t: Transform,
    region: Rect,
    rows: std::ops::Range<usize>,
    out: &mut Vec<T>,
) {
    let (ow, _) = t.dimensions(region.width, region.height);
    let (ow, sw) = (ow as usize, width as usize);
    let (rx, ry) = (region.x as usize, region.y as usize);
    let (rw, rh) = (region.width as usize, region.height as usize);
    let source_x = |u: usize| if t.mirror_x { rx + rw - 1 - u } else { rx + u };
    let source_y = |v: usize| if t.mirror_y { ry + rh - 1 - v } else { ry + v };
    if !t.transpose {
        for y in rows {
            let row = &src[(source_y(y) * sw + rx) * channels..][..rw * channels];
            if t.mirror_x {
                for pixel in row.chunks_exact(channels).rev() {
                    out.extend_from_slice(pixel);
                }
            } else {
                out.extend_from_slice(row);
            }
        }
        return;
    }
    // Transposed: output rows are source columns. Tiles keep both sides' accesses in cache.
    const TILE: usize = 64;
    let start = out.len();
    let first = rows.start;
    out.resize(start + rows.len() * ow * channels, src[0]);
    for ty in rows.clone().step_by(TILE) {
        for tx in (0..ow).step_by(TILE) {
            for y in ty..(ty + TILE).min(rows.end) {
                let sx = source_x(y);
                for x in tx..(tx + TILE).min(ow) {
                    let from = (source_y(x) * sw + sx) * channels;
                    let to = start + ((y - first) * ow + x) * channels;
                    out[to..to + channels].copy_from_slice(&src[from..from + channels]);
                }
            }
        }
    }
}

fn remap_buffer<P: Pixel>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    t: Transform,
    region: Rect,
) -> ImageBuffer<P, Vec<P::Subpixel>> {
    let (w, h) = t.dimensions(region.width, region.height);
    let channels = usize::from(P::CHANNEL_COUNT);
    let samples = remap(image.as_raw(), image.width(), channels, t, region);
    ImageBuffer::from_raw(w, h, samples).expect("remap fills the output")
}

/// `region` of `image` transformed by `t`, in the same pixel type.
fn remap_image(image: &DynamicImage, t: Transform, region: Rect) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageLumaA8(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgb8(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgba8(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageLuma16(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageLumaA16(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgb16(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgba16(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgb32F(i) => remap_buffer(i, t, region).into(),
        DynamicImage::ImageRgba32F(i) => remap_buffer(i, t, region).into(),
        other => remap_buffer(&other.to_rgba8(), t, region).into(),
    }
}

fn has_transparency(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] < u8::MAX),
        DynamicImage::ImageRgba8(i) => i.pixels().any(|p| p.0[3] < u8::MAX),
        DynamicImage::ImageLumaA16(i) => i.pixels().any(|p| p.0[1] < u16::MAX),
        DynamicImage::ImageRgba16(i) => i.pixels().any(|p| p.0[3] < u16::MAX),
        _ => false,
    }
}

/// 8-bit RGBA without a transparent pixel (a GIF's decode, say) as RGB: a quarter less to
/// compress.
fn opaque_if_possible(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgba8(_) if !has_transparency(&image) => image.to_rgb8().into(),
        other => other,
    }
}

/// The APP2 segments carrying `icc`: "ICC_PROFILE", then chunk numbers counted from 1 and their
/// count (mozjpeg's own writer counts from 0, which readers that check, ours included, reject).
fn icc_markers(icc: Option<&[u8]>) -> Vec<Vec<u8>> {
    const PER_SEGMENT: usize = 65_533 - 14;
    let Some(icc) = icc.filter(|p| !p.is_empty() && p.len() <= PER_SEGMENT * 255) else {
        return Vec::new();
    };
    let count = icc.len().div_ceil(PER_SEGMENT);
    icc.chunks(PER_SEGMENT)
        .enumerate()
        .map(|(i, chunk)| {
            let mut segment = b"ICC_PROFILE\0".to_vec();
            segment.extend_from_slice(&[(i + 1) as u8, count as u8]);
            segment.extend_from_slice(chunk);
            segment
        })
        .collect()
}

/// Baseline JPEG of grey or RGB `pixels` at `quality`, chroma samples of `chroma` pixels (across,
/// down), with `icc` as its profile.
/// Rows of output an encoder is fed at once.
const STRIP_ROWS: usize = 64;

/// Feeds `fill` a whole image's rows, strip by strip, from `pixels` already in output order.
fn whole(
    pixels: &[u8],
    width: u32,
    channels: usize,
) -> impl Fn(std::ops::Range<usize>, &mut Vec<u8>) {
    let row = width as usize * channels;
    move |rows, out| out.extend_from_slice(&pixels[rows.start * row..rows.end * row])
}

/// A JPEG of `width`×`height` whose rows `fill` appends to a strip, `STRIP_ROWS` at a time.
fn encode_jpeg(
    width: u32,
    height: u32,
    grey: bool,
    quality: u8,
    chroma: (u8, u8),
    icc: Option<&[u8]>,
    fill: impl Fn(std::ops::Range<usize>, &mut Vec<u8>),
) -> Result<Vec<u8>, MediaError> {
    jpeg::libjpeg(
        || MediaError::Encode("libjpeg failed".into()),
        || {
            let encode_error = |e: std::io::Error| MediaError::Encode(e.to_string());
            let space = if grey {
                mozjpeg::ColorSpace::JCS_GRAYSCALE
            } else {
                mozjpeg::ColorSpace::JCS_RGB
            };
            let channels = if grey { 1 } else { 3 };
            let raw = width as usize * height as usize * channels;
            let mut compress = mozjpeg::Compress::new(space);
            compress.set_fastest_defaults();
            compress.set_size(width as usize, height as usize);
            compress.set_quality(f32::from(quality));
            if !grey {
                compress.set_chroma_sampling_pixel_sizes(chroma, chroma);
            }
            let mut started = compress
                .start_compress(Vec::with_capacity(raw / 8))
                .map_err(encode_error)?;
            for segment in icc_markers(icc) {
                started.write_marker(mozjpeg::Marker::APP(2), &segment);
            }
            let mut strip = Vec::with_capacity(STRIP_ROWS * width as usize * channels);
            for first in (0..height as usize).step_by(STRIP_ROWS) {
                strip.clear();
                fill(first..(first + STRIP_ROWS).min(height as usize), &mut strip);
                started.write_scanlines(&strip).map_err(encode_error)?;
            }
            started.finish().map_err(encode_error)
        },
    )
}

fn encode_png(image: &DynamicImage, icc: Option<Vec<u8>>) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        encoder
            .set_icc_profile(icc)
            .map_err(|e| MediaError::Encode(e.to_string()))?;
    }
    image
        .write_with_encoder(encoder)
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(out)
}

/// A palette PNG of `rgba`, when it has at most 256 colours (`None` otherwise).
fn indexed_png(rgba: &RgbaImage, icc: Option<&[u8]>) -> Result<Option<Vec<u8>>, MediaError> {
    let mut index: HashMap<[u8; 4], u8> = HashMap::new();
    let mut colours: Vec<[u8; 4]> = Vec::new();
    let mut indices = Vec::with_capacity(rgba.as_raw().len() / 4);
    for pixel in rgba.pixels() {
        let i = match index.get(&pixel.0) {
            Some(&i) => i,
            None if colours.len() == 256 => return Ok(None),
            None => {
                let i = colours.len() as u8;
                index.insert(pixel.0, i);
                colours.push(pixel.0);
                i
            }
        };
        indices.push(i);
    }
    let mut info = png::Info::with_size(rgba.width(), rgba.height());
    info.color_type = png::ColorType::Indexed;
    info.bit_depth = png::BitDepth::Eight;
    info.palette = Some(colours.iter().flat_map(|c| [c[0], c[1], c[2]]).collect());
    if colours.iter().any(|c| c[3] < u8::MAX) {
        info.trns = Some(colours.iter().map(|c| c[3]).collect());
    }
    info.icc_profile = icc.map(|p| p.to_vec().into());
    let failed = |e: png::EncodingError| MediaError::Encode(e.to_string());
    let mut out = Vec::new();
    let mut writer = png::Encoder::with_info(&mut out, info)
        .map_err(failed)?
        .write_header()
        .map_err(failed)?;
    writer.write_image_data(&indices).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(Some(out))
}

/// WebP of 8-bit RGB or RGBA (other pixel types are converted), with `icc` in an `ICCP` chunk.
fn encode_webp(
    image: DynamicImage,
    lossless: bool,
    quality: f32,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, MediaError> {
    let image = match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => other.to_rgba8().into(),
        other => other.to_rgb8().into(),
    };
    let (w, h) = (image.width(), image.height());
    let alpha = image.color().has_alpha();
    let encoder = match &image {
        DynamicImage::ImageRgba8(i) => webp::Encoder::from_rgba(i.as_raw(), w, h),
        DynamicImage::ImageRgb8(i) => webp::Encoder::from_rgb(i.as_raw(), w, h),
        _ => unreachable!("converted above"),
    };
    // For lossless, libwebp reads the quality as effort: 75 is cwebp's default.
    let quality = if lossless { 75.0 } else { quality };
    let encoded = encoder
        .encode_simple(lossless, quality)
        .map_err(|e| MediaError::Encode(format!("{e:?}")))?;
    Ok(match icc {
        Some(icc) if !icc.is_empty() => with_iccp(&encoded, icc, w, h, alpha),
        _ => encoded.to_vec(),
    })
}

/// `webp` (libwebp's output: a simple file, or an extended one for lossy with alpha) with an
/// `ICCP` chunk, which needs the extended header (`VP8X`) and belongs right after it.
fn with_iccp(webp: &[u8], icc: &[u8], width: u32, height: u32, alpha: bool) -> Vec<u8> {
    let chunk = |fourcc: &[u8], data: &[u8]| {
        let mut c = fourcc.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    let mut rest = &webp[12..];
    if rest.starts_with(b"VP8X") {
        rest = &rest[18..];
    }
    let mut flags = 0x20;
    if alpha {
        flags |= 0x10;
    }
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend(chunk(b"ICCP", icc));
    body.extend_from_slice(rest);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Cursor;

    use image::{GrayImage, Rgb, RgbImage, Rgba};

    use super::*;
    use crate::media::test_support::with_exif_orientation;

    const MIB: u64 = 1024 * 1024;
    const PLENTY: u64 = 512 * MIB;

    /// A photo-like picture: smooth light, edges of objects, fine texture and a little noise,
    /// which compresses as a photo does (neither flat nor noise).
    pub(crate) fn photo(w: u32, h: u32) -> RgbImage {
        let mut seed = 0x9E37_79B9u32;
        RgbImage::from_fn(w, h, |x, y| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed % 9) as f32 - 4.0;
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let sky = 90.0 + 120.0 * (1.0 - fy);
            let hill = if fy > 0.6 + 0.1 * (fx * 9.0).sin() {
                60.0
            } else {
                0.0
            };
            let texture = 18.0 * ((x as f32 * 0.31).sin() * (y as f32 * 0.23).cos());
            let disc = if (fx - 0.3).powi(2) + (fy - 0.35).powi(2) < 0.01 {
                80.0
            } else {
                0.0
            };
            let v = |base: f32| (base + texture + noise).clamp(0.0, 255.0) as u8;
            Rgb([
                v(sky * 0.6 + disc + hill * 0.4),
                v(sky * 0.8 + hill),
                v(sky + 20.0 - disc - hill * 0.5),
            ])
        })
    }

    fn encode(image: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// A JPEG of `image` through libjpeg at quality 90, with chroma samples of `chroma` pixels
    /// (grey when the image is).
    fn jpeg_of(image: &DynamicImage, chroma: (u8, u8)) -> Vec<u8> {
        let grey = matches!(image, DynamicImage::ImageLuma8(_));
        let pixels = if grey {
            image.to_luma8().into_raw()
        } else {
            image.to_rgb8().into_raw()
        };
        let channels = if grey { 1 } else { 3 };
        encode_jpeg(
            image.width(),
            image.height(),
            grey,
            90,
            chroma,
            None,
            whole(&pixels, image.width(), channels),
        )
        .unwrap()
    }

    /// An image whose four corners are told apart: red top-left, green top-right, blue
    /// bottom-left, white bottom-right, on grey.
    fn corners(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (left, top) = (x < w / 4, y < h / 4);
            let (right, bottom) = (x >= w - w / 4, y >= h - h / 4);
            match (left, top, right, bottom) {
                (true, true, _, _) => Rgb([255, 0, 0]),
                (_, true, true, _) => Rgb([0, 255, 0]),
                (true, _, _, true) => Rgb([0, 0, 255]),
                (_, _, true, true) => Rgb([255, 255, 255]),
                _ => Rgb([128, 128, 128]),
            }
        })
    }

    fn decode(edited: &Edited) -> DynamicImage {
        image::load_from_memory(&edited.bytes).unwrap()
    }

    fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
    }

    fn edit(rotate: Rotation, flip: Option<Flip>, crop: Option<Crop>) -> Edit {
        Edit { rotate, flip, crop }
    }

    const ALL: [(Rotation, Option<Flip>); 12] = [
        (Rotation::None, Some(Flip::H)),
        (Rotation::None, Some(Flip::V)),
        (Rotation::R90, None),
        (Rotation::R90, Some(Flip::H)),
        (Rotation::R90, Some(Flip::V)),
        (Rotation::R180, None),
        (Rotation::R180, Some(Flip::H)),
        (Rotation::R180, Some(Flip::V)),
        (Rotation::R270, None),
        (Rotation::R270, Some(Flip::H)),
        (Rotation::R270, Some(Flip::V)),
        (Rotation::None, None),
    ];

    /// What `image` does for the same edit, step by step: the reference for `Transform`.
    fn by_image(image: &DynamicImage, rotate: Rotation, flip: Option<Flip>) -> DynamicImage {
        let turned = match rotate {
            Rotation::None => image.clone(),
            Rotation::R90 => image.rotate90(),
            Rotation::R180 => image.rotate180(),
            Rotation::R270 => image.rotate270(),
        };
        match flip {
            None => turned,
            Some(Flip::H) => turned.fliph(),
            Some(Flip::V) => turned.flipv(),
        }
    }

    #[test]
    fn transforms_compose_as_image_applies_them() {
        let src: DynamicImage = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8, y as u8, 0])).into();
        let orientations = [
            Orientation::NoTransforms,
            Orientation::Rotate90,
            Orientation::Rotate180,
            Orientation::Rotate270,
            Orientation::FlipHorizontal,
            Orientation::FlipVertical,
            Orientation::Rotate90FlipH,
            Orientation::Rotate270FlipH,
        ];
        for orientation in orientations {
            let mut shown = src.clone();
            shown.apply_orientation(orientation);
            for (rotate, flip) in ALL {
                let expected = by_image(&shown, rotate, flip);
                let mut t =
                    Transform::of_orientation(orientation).then(Transform::of_rotation(rotate));
                if let Some(flip) = flip {
                    t = t.then(Transform::of_flip(flip));
                }
                let got = remap_image(&src, t, Rect::whole(5, 3));
                assert_eq!(got, expected, "{orientation:?} {rotate:?} {flip:?}");
            }
        }
    }

    #[test]
    fn a_quarter_turn_moves_the_red_corner_to_the_top_right() {
        let src = encode(corners(64, 48).into(), image::ImageFormat::Png);
        let edited = apply(&src, &edit(Rotation::R90, None, None), PLENTY).unwrap();
        assert_eq!(
            (edited.kind, edited.width, edited.height, edited.lossless),
            (ImageKind::Png, 48, 64, false)
        );
        let out = decode(&edited).to_rgb8();
        assert_eq!(out.get_pixel(47, 0).0, [255, 0, 0], "red top-right");
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 255], "blue top-left");
        assert_eq!(out.get_pixel(47, 63).0, [0, 255, 0], "green bottom-right");
        assert_eq!(out.get_pixel(0, 63).0, [255, 255, 255], "white bottom-left");
    }

    #[test]
    fn the_crop_is_in_the_coordinates_after_rotating_and_flipping() {
        let src = encode(corners(64, 48).into(), image::ImageFormat::Png);
        // Turned clockwise and mirrored left-right, red is top-left again; the crop keeps its
        // quadrant and a bit more.
        let crop = Crop {
            x: 0,
            y: 0,
            width: 20,
            height: 10,
        };
        let edited = apply(
            &src,
            &edit(Rotation::R90, Some(Flip::H), Some(crop)),
            PLENTY,
        )
        .unwrap();
        assert_eq!((edited.width, edited.height), (20, 10));
        let out = decode(&edited).to_rgb8();
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(19, 9).0, [128, 128, 128]);
    }

    #[test]
    fn exif_orientation_is_composed_into_the_edit_and_not_left_behind() {
        // Stored 64×48 with orientation 6 (shown turned clockwise, 48×64): the shown top-right
        // is red. A further clockwise turn shows it bottom-right, with no orientation left.
        let src = jpeg_of(&corners(64, 48).into(), (1, 1));
        let oriented = with_exif_orientation(&src, 6);
        let probe = crate::media::probe(&oriented).unwrap();
        assert_eq!((probe.width, probe.height), (48, 64));
        for lossless in [true, false] {
            let edited = apply_with(
                &oriented,
                &edit(Rotation::R90, None, None),
                PLENTY,
                lossless,
            )
            .unwrap();
            assert_eq!(
                (edited.width, edited.height, edited.lossless),
                (64, 48, lossless)
            );
            let probed = crate::media::probe(&edited.bytes).unwrap();
            assert_eq!(probed.orientation, Orientation::NoTransforms);
            assert_eq!((probed.width, probed.height), (64, 48));
            let out = decode(&edited).to_rgb8();
            assert!(
                close(out.get_pixel(63, 47).0, [255, 0, 0], 40),
                "{lossless}"
            );
            assert!(
                close(out.get_pixel(0, 0).0, [255, 255, 255], 40),
                "{lossless}"
            );
        }
    }

    /// Mean absolute difference per sample of two images of the same size.
    fn mean_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        let (a, b) = (a.to_rgb8(), b.to_rgb8());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn lossless_jpeg_edits_decode_like_the_pixel_path() {
        let colour: DynamicImage = photo(128, 96).into();
        let grey: DynamicImage = colour.to_luma8().into();
        for (name, image, chroma) in [
            ("4:2:0", &colour, (2, 2)),
            ("4:4:4", &colour, (1, 1)),
            ("4:2:2", &colour, (2, 1)),
            ("grey", &grey, (1, 1)),
        ] {
            let src = jpeg_of(image, chroma);
            let crops = [
                None,
                Some(Crop {
                    x: 16,
                    y: 32,
                    width: 64,
                    height: 40,
                }),
            ];
            for crop in crops {
                for (rotate, flip) in ALL {
                    if (rotate, flip, crop) == (Rotation::None, None, None) {
                        continue;
                    }
                    let e = edit(rotate, flip, crop);
                    let lossless = apply_with(&src, &e, PLENTY, true).unwrap();
                    let pixels = apply_with(&src, &e, PLENTY, false).unwrap();
                    let what = format!("{name} {rotate:?} {flip:?} {crop:?}");
                    assert!(lossless.lossless, "{what}");
                    assert!(!pixels.lossless, "{what}");
                    assert_eq!(
                        (lossless.width, lossless.height),
                        (pixels.width, pixels.height),
                        "{what}"
                    );
                    // The pixel path re-encodes; the lossless one only moves blocks, so it is
                    // nearer the source than the pixel path is.
                    let reference = by_image(&decode_source(&src), rotate, flip);
                    let reference = match crop {
                        Some(c) => reference.crop_imm(c.x, c.y, c.width, c.height),
                        None => reference,
                    };
                    let moved = mean_difference(&decode(&lossless), &reference);
                    assert!(moved < 1.5, "{what}: {moved}");
                    let between = mean_difference(&decode(&lossless), &decode(&pixels));
                    assert!(between < 1.5, "{what}: {between}");
                }
            }
        }
    }

    #[test]
    fn progressive_jpegs_stay_progressive_when_turned_losslessly() {
        let image = photo(96, 64);
        let src = jpeg::libjpeg(
            || MediaError::Encode("libjpeg failed".into()),
            || {
                let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
                compress.set_size(96, 64);
                compress.set_quality(85.0);
                compress.set_progressive_mode();
                let mut started = compress.start_compress(Vec::new()).unwrap();
                started.write_scanlines(image.as_raw()).unwrap();
                Ok(started.finish().unwrap())
            },
        )
        .unwrap();
        assert_eq!(jpeg::structure(&src).unwrap().frame.marker, 0xC2);
        let turned = apply(&src, &edit(Rotation::R270, None, None), PLENTY).unwrap();
        assert!(turned.lossless);
        assert_eq!(jpeg::structure(&turned.bytes).unwrap().frame.marker, 0xC2);
        let moved = mean_difference(&decode(&turned), &decode_source(&src).rotate270());
        assert!(moved < 1.5, "{moved}");
    }

    fn decode_source(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).unwrap()
    }

    #[test]
    fn jpegs_whose_edges_are_not_on_blocks_are_re_encoded() {
        // 100×75 at 4:2:0: mirroring left-right would bring the ragged right edge to the left.
        let src = jpeg_of(&photo(100, 75).into(), (2, 2));
        let flipped = apply(&src, &edit(Rotation::None, Some(Flip::H), None), PLENTY).unwrap();
        assert!(!flipped.lossless);
        assert_eq!((flipped.width, flipped.height), (100, 75));
        // Mirroring top-bottom keeps the left edge left, but brings the bottom (75) up.
        let flipped = apply(&src, &edit(Rotation::None, Some(Flip::V), None), PLENTY).unwrap();
        assert!(!flipped.lossless);
        // A crop whose kept corner is on the 16-pixel grid is exact, whatever its far edges.
        let crop = Crop {
            x: 16,
            y: 16,
            width: 51,
            height: 33,
        };
        let cropped = apply(&src, &edit(Rotation::None, None, Some(crop)), PLENTY).unwrap();
        assert!(cropped.lossless);
        assert_eq!((cropped.width, cropped.height), (51, 33));
        let off_grid = Crop { x: 8, ..crop };
        let cropped = apply(&src, &edit(Rotation::None, None, Some(off_grid)), PLENTY).unwrap();
        assert!(!cropped.lossless);
        // Turned clockwise, the bottom edge becomes the left: 75 is off the grid.
        let turned = apply(&src, &edit(Rotation::R90, None, None), PLENTY).unwrap();
        assert!(!turned.lossless);
        assert_eq!((turned.width, turned.height), (75, 100));
        let reference = decode_source(&src).rotate90();
        assert!(mean_difference(&decode(&turned), &reference) < 3.0);
    }

    #[test]
    fn re_encoded_jpegs_keep_about_their_size() {
        for quality in [70u8, 85, 92] {
            let image = photo(1001, 751);
            let src = jpeg::encode_rgb(&image, quality).unwrap();
            let turned = apply(&src, &edit(Rotation::R90, None, None), PLENTY).unwrap();
            assert!(!turned.lossless);
            let ratio = turned.bytes.len() as f64 / src.len() as f64;
            assert!((0.6..=1.6).contains(&ratio), "q{quality}: {ratio}");
        }
    }

    #[test]
    fn the_icc_profile_survives_jpeg_edits() {
        let src = std::fs::read(fixture("cm_p3.jpg")).unwrap();
        let icc = jpeg::structure(&src).unwrap().icc.unwrap();
        // 256×192 4:2:0: turned losslessly; cropped off the grid: re-encoded.
        let turned = apply(&src, &edit(Rotation::R270, None, None), PLENTY).unwrap();
        assert!(turned.lossless);
        let crop = Crop {
            x: 3,
            y: 5,
            width: 100,
            height: 100,
        };
        let cropped = apply(&src, &edit(Rotation::None, None, Some(crop)), PLENTY).unwrap();
        assert!(!cropped.lossless);
        for edited in [turned, cropped] {
            let structure = jpeg::structure(&edited.bytes).unwrap();
            assert_eq!(structure.icc.as_deref(), Some(icc.as_slice()));
            assert!(structure.exif.is_none());
        }
    }

    #[test]
    fn cmyk_jpegs_turn_losslessly_or_become_srgb() {
        let src = std::fs::read(fixture("cm_cmyk_press.jpg")).unwrap();
        let turned = apply(&src, &edit(Rotation::R180, None, None), PLENTY).unwrap();
        assert!(turned.lossless);
        let structure = jpeg::structure(&turned.bytes).unwrap();
        assert_eq!(structure.frame.components, 4);
        // Still inverted as Adobe's marker says, and with its profile.
        assert!(structure.adobe);
        assert_eq!(structure.icc, jpeg::structure(&src).unwrap().icc);
        let moved = mean_difference(&decode(&turned), &decode_source(&src).rotate180());
        assert!(moved < 1.5, "{moved}");
        let crop = Crop {
            x: 1,
            y: 1,
            width: 64,
            height: 64,
        };
        let cropped = apply(&src, &edit(Rotation::None, None, Some(crop)), PLENTY).unwrap();
        assert!(!cropped.lossless);
        let structure = jpeg::structure(&cropped.bytes).unwrap();
        assert_eq!(structure.frame.components, 3);
        assert!(structure.icc.is_none());
        // The colour matches the reference made by the colour checks, where it was kept.
        let reference = image::open(fixture("cm_cmyk_press.ref.png")).unwrap();
        let reference = reference.crop_imm(1, 1, 64, 64);
        let difference = mean_difference(&decode(&cropped), &reference);
        assert!(difference < 6.0, "{difference}");
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/media")
            .join(name)
    }

    #[test]
    fn png_keeps_alpha_depth_and_profile() {
        let rgba = ImageBuffer::<Rgba<u16>, Vec<u16>>::from_fn(30, 20, |x, y| {
            Rgba([
                x as u16 * 2000,
                y as u16 * 3000,
                7,
                if x < 10 { 0 } else { 65535 },
            ])
        });
        let icc = moxcms::ColorProfile::new_display_p3().encode().unwrap();
        let mut src = Vec::new();
        let mut encoder = image::codecs::png::PngEncoder::new(&mut src);
        encoder.set_icc_profile(icc.clone()).unwrap();
        DynamicImage::from(rgba)
            .write_with_encoder(encoder)
            .unwrap();
        let edited = apply(&src, &edit(Rotation::R180, None, None), PLENTY).unwrap();
        assert_eq!(
            (edited.kind, edited.width, edited.height),
            (ImageKind::Png, 30, 20)
        );
        let mut decoder = image::codecs::png::PngDecoder::new(Cursor::new(&edited.bytes)).unwrap();
        assert_eq!(decoder.icc_profile().unwrap(), Some(icc));
        let out = DynamicImage::from_decoder(decoder).unwrap().into_rgba16();
        // Turned half round: (29, 19) is the source's (0, 0), transparent.
        assert_eq!(out.get_pixel(29, 19).0, [0, 0, 7, 0]);
        assert_eq!(out.get_pixel(0, 0).0, [58000, 57000, 7, 65535]);
    }

    #[test]
    fn a_still_gif_becomes_a_palette_png_with_its_transparency() {
        let mut rgba = RgbaImage::from_pixel(40, 30, Rgba([10, 200, 30, 255]));
        for x in 0..10 {
            rgba.put_pixel(x, 0, Rgba([0, 0, 0, 0]));
        }
        let src = encode(rgba.into(), image::ImageFormat::Gif);
        let edited = apply(&src, &edit(Rotation::None, Some(Flip::V), None), PLENTY).unwrap();
        assert_eq!(
            (edited.kind, edited.width, edited.height),
            (ImageKind::Png, 40, 30)
        );
        // Colour type 3: indexed.
        assert_eq!(edited.bytes[25], 3);
        let out = decode(&edited).to_rgba8();
        assert_eq!(out.get_pixel(0, 29).0[3], 0);
        assert_eq!(out.get_pixel(0, 0).0, [10, 200, 30, 255]);
    }

    #[test]
    fn webp_stays_lossless_or_lossy_and_keeps_its_profile() {
        let image = photo(120, 80);
        let lossless = webp::Encoder::from_rgb(image.as_raw(), 120, 80)
            .encode_simple(true, 75.0)
            .unwrap()
            .to_vec();
        let edited = apply(&lossless, &edit(Rotation::R90, None, None), PLENTY).unwrap();
        assert_eq!(
            (edited.kind, edited.width, edited.height),
            (ImageKind::Webp, 80, 120)
        );
        assert_eq!(quality::webp(&edited.bytes), Some(quality::Webp::Lossless));
        // Lossless both ways: exactly the source's pixels, turned.
        let back = decode(&edited).to_rgb8();
        assert_eq!(back, DynamicImage::from(image.clone()).rotate90().to_rgb8());

        let p3 = std::fs::read(fixture("cm_p3.webp")).unwrap();
        let edited = apply(&p3, &edit(Rotation::None, Some(Flip::H), None), PLENTY).unwrap();
        assert!(matches!(
            quality::webp(&edited.bytes),
            Some(quality::Webp::Lossy { .. })
        ));
        let mut decoder =
            image::codecs::webp::WebPDecoder::new(Cursor::new(&edited.bytes)).unwrap();
        let mut original = image::codecs::webp::WebPDecoder::new(Cursor::new(&p3)).unwrap();
        assert!(original.icc_profile().unwrap().is_some());
        assert_eq!(
            decoder.icc_profile().unwrap(),
            original.icc_profile().unwrap()
        );
        let difference = mean_difference(
            &DynamicImage::from_decoder(decoder).unwrap(),
            &decode_source(&p3).fliph(),
        );
        assert!(difference < 4.0, "{difference}");
    }

    #[test]
    fn crops_outside_or_empty_and_edits_of_nothing_are_refused() {
        let src = encode(corners(64, 48).into(), image::ImageFormat::Png);
        let crop = |x, y, width, height| {
            Some(Crop {
                x,
                y,
                width,
                height,
            })
        };
        assert_eq!(
            apply(&src, &edit(Rotation::None, None, crop(0, 0, 0, 10)), PLENTY).unwrap_err(),
            EditError::EmptyCrop
        );
        // Turned, the image is 48 wide: 64 is outside.
        assert_eq!(
            apply(&src, &edit(Rotation::R90, None, crop(0, 0, 64, 10)), PLENTY).unwrap_err(),
            EditError::CropOutside {
                x: 0,
                y: 0,
                width: 64,
                height: 10,
                image_width: 48,
                image_height: 64,
            }
        );
        assert!(matches!(
            apply(
                &src,
                &edit(Rotation::None, None, crop(u32::MAX, 0, 2, 2)),
                PLENTY
            ),
            Err(EditError::CropOutside { .. })
        ));
        for nothing in [
            edit(Rotation::None, None, None),
            edit(Rotation::None, None, crop(0, 0, 64, 48)),
        ] {
            assert_eq!(
                apply(&src, &nothing, PLENTY).unwrap_err(),
                EditError::Nothing
            );
        }
        assert!(
            apply(
                &src,
                &edit(Rotation::None, None, crop(0, 0, 64, 47)),
                PLENTY
            )
            .is_ok()
        );
        assert_eq!(EditError::Nothing.zh(), Some("没有要做的修改"));
        assert_eq!(EditError::Media(MediaError::UnknownFormat).zh(), None);
    }

    #[test]
    fn undecodable_files_are_media_errors() {
        let turn = edit(Rotation::R90, None, None);
        assert_eq!(
            apply(b"not an image", &turn, PLENTY).unwrap_err(),
            EditError::Media(MediaError::UnknownFormat)
        );
        let src = encode(corners(64, 48).into(), image::ImageFormat::Png);
        assert!(matches!(
            apply(&src[..src.len() / 2], &turn, PLENTY),
            Err(EditError::Media(MediaError::Damaged(ImageKind::Png)))
        ));
    }

    #[test]
    fn animations_are_refused() {
        use image::codecs::gif::GifEncoder;
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut gif);
            for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
                let frame = image::Frame::new(RgbaImage::from_pixel(8, 8, Rgba(colour)));
                encoder.encode_frame(frame).unwrap();
            }
        }
        let turn = edit(Rotation::R90, None, None);
        assert_eq!(apply(&gif, &turn, PLENTY).unwrap_err(), EditError::Animated);

        let frames = [
            RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 255])),
            RgbaImage::from_pixel(8, 8, Rgba([0, 255, 0, 255])),
        ];
        let config = webp::WebPConfig::new().unwrap();
        let mut encoder = webp::AnimEncoder::new(8, 8, &config);
        for (i, frame) in frames.iter().enumerate() {
            encoder.add_frame(webp::AnimFrame::from_rgba(
                frame.as_raw(),
                8,
                8,
                i as i32 * 100,
            ));
        }
        let animated = encoder.encode().to_vec();
        assert_eq!(
            apply(&animated, &turn, PLENTY).unwrap_err(),
            EditError::Animated
        );

        let apng = apng(&frames);
        assert_eq!(
            apply(&apng, &turn, PLENTY).unwrap_err(),
            EditError::Animated
        );
    }

    /// An APNG of `frames`, the first also the default image.
    fn apng(frames: &[RgbaImage]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, 8, 8);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_animated(frames.len() as u32, 0).unwrap();
        let mut writer = encoder.write_header().unwrap();
        for frame in frames {
            writer.write_image_data(frame.as_raw()).unwrap();
        }
        writer.finish().unwrap();
        out
    }

    #[cfg(avif)]
    #[test]
    fn avif_becomes_jpeg_or_webp_with_transparency_and_sequences_are_refused() {
        let opaque = std::fs::read(fixture("avif_420.avif")).unwrap();
        let edited = apply(&opaque, &edit(Rotation::R90, None, None), PLENTY).unwrap();
        let probe = crate::media::probe(&opaque).unwrap();
        assert_eq!(
            (edited.kind, edited.width, edited.height),
            (ImageKind::Jpeg, probe.height, probe.width)
        );
        let alpha = std::fs::read(fixture("avif_alpha.avif")).unwrap();
        let edited = apply(&alpha, &edit(Rotation::R180, None, None), PLENTY).unwrap();
        assert_eq!(edited.kind, ImageKind::Webp);
        assert!(decode(&edited).color().has_alpha());
        let animated = std::fs::read(fixture("avif_animated.avif")).unwrap();
        assert_eq!(
            apply(&animated, &edit(Rotation::R90, None, None), PLENTY).unwrap_err(),
            EditError::Animated
        );
    }

    #[test]
    fn over_budget_is_refused_before_decoding() {
        // 4000×4000 RGBA: 64 MB decoded, far over 20 MiB.
        let big = encode(
            RgbaImage::from_pixel(4000, 4000, Rgba([1, 2, 3, 255])).into(),
            image::ImageFormat::Png,
        );
        let turn = edit(Rotation::R90, None, None);
        assert!(matches!(
            apply(&big, &turn, 20 * MIB),
            Err(EditError::Media(MediaError::OverBudget {
                width: 4000,
                height: 4000,
                ..
            }))
        ));
        let jpeg = jpeg::encode_rgb(&RgbImage::from_pixel(2048, 2048, Rgb([9, 9, 9])), 80).unwrap();
        // Lossless: two sets of coefficients, 4:2:0, about 2 × 12.6 MB.
        assert!(matches!(
            apply(&jpeg, &turn, 16 * MIB),
            Err(EditError::Media(MediaError::OverBudget { .. }))
        ));
        let edited = apply(&jpeg, &turn, 40 * MIB).unwrap();
        assert!(edited.lossless);
    }

    #[test]
    fn grey_jpegs_stay_grey() {
        let grey = GrayImage::from_fn(50, 30, |x, _| image::Luma([x as u8 * 5]));
        let src = jpeg_of(&grey.into(), (1, 1));
        let edited = apply(&src, &edit(Rotation::R90, None, None), PLENTY).unwrap();
        assert!(!edited.lossless);
        assert_eq!(jpeg::structure(&edited.bytes).unwrap().frame.components, 1);
    }
}
