//! Thumbnails: decode (JPEGs at reduced scale), orient, shrink with a SIMD resizer, encode lossy.
//!
//! Opaque images become JPEG (fast to encode, shown everywhere). Images with any transparent pixel
//! (cut-out clothes are often transparent PNGs) become lossy WebP with alpha through libwebp: the
//! `image` crate's WebP encoder is lossless only, which can make a thumbnail larger than its source.
//! Images are never upscaled. Every decode runs under the limits of `media::decode`.

use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, RgbImage, RgbaImage};

use super::{ImageKind, MAX_PIXELS, MAX_SIDE, MediaError};

/// Default longest side of a thumbnail, in pixels.
pub const DEFAULT_MAX_SIDE: u32 = 512;
const JPEG_QUALITY: u8 = 82;
const WEBP_QUALITY: f32 = 80.0;

/// An encoded thumbnail.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

/// Makes the thumbnail of an image whose format was sniffed as `kind`.
pub fn make(bytes: &[u8], kind: ImageKind, max_side: u32) -> Result<Thumbnail, MediaError> {
    let image = match kind {
        ImageKind::Jpeg => {
            decode_jpeg_reduced(bytes, max_side).or_else(|_| decode_oriented(bytes, kind))?
        }
        _ => decode_oriented(bytes, kind)?,
    };
    let (width, height) = fit(image.width(), image.height(), max_side);
    if has_transparency(&image) {
        let rgba = resize(image.into_rgba8().into(), width, height)?.into_rgba8();
        let encoded = webp::Encoder::from_rgba(rgba.as_raw(), width, height)
            .encode_simple(false, WEBP_QUALITY)
            .map_err(|e| MediaError::Encode(format!("{e:?}")))?;
        Ok(Thumbnail {
            bytes: encoded.to_vec(),
            kind: ImageKind::Webp,
            width,
            height,
        })
    } else {
        let rgb = resize(image.into_rgb8().into(), width, height)?.into_rgb8();
        let mut out = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode_image(&rgb)
            .map_err(|e| MediaError::Encode(e.to_string()))?;
        Ok(Thumbnail {
            bytes: out.into_inner(),
            kind: ImageKind::Jpeg,
            width,
            height,
        })
    }
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

/// Any decoder: first frame of animations, EXIF orientation applied, under the decode limits.
fn decode_oriented(bytes: &[u8], kind: ImageKind) -> Result<DynamicImage, MediaError> {
    let mut decoder = super::limited_reader(bytes, kind)
        .into_decoder()
        .map_err(|_| MediaError::Malformed(kind))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| MediaError::Malformed(kind))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// JPEG decoded by its DCT at 1/2, 1/4 or 1/8 scale when that still covers `max_side`: a
/// 12-megapixel photo is decoded as 0.75 megapixels. Colour models other than grey and RGB fall
/// back to the full decoder.
fn decode_jpeg_reduced(bytes: &[u8], max_side: u32) -> Result<DynamicImage, MediaError> {
    let bad = |_| MediaError::Malformed(ImageKind::Jpeg);
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(bad)?;
    let info = decoder
        .info()
        .ok_or(MediaError::Malformed(ImageKind::Jpeg))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(MediaError::TooLarge {
            width: w,
            height: h,
        });
    }
    let (tw, th) = fit(w, h, max_side);
    let (sw, sh) = decoder.scale(tw as u16, th as u16).map_err(bad)?;
    let pixels = decoder.decode().map_err(bad)?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let mut image = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            RgbImage::from_raw(sw, sh, pixels).map(DynamicImage::from)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(sw, sh, pixels).map(DynamicImage::from)
        }
        _ => None,
    }
    .ok_or(MediaError::Malformed(ImageKind::Jpeg))?;
    if let Some(orientation) = decoder.exif_data().and_then(Orientation::from_exif_chunk) {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

fn has_transparency(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] < u8::MAX),
        DynamicImage::ImageRgba8(i) => i.pixels().any(|p| p.0[3] < u8::MAX),
        DynamicImage::ImageLumaA16(i) => i.pixels().any(|p| p.0[1] < u16::MAX),
        DynamicImage::ImageRgba16(i) => i.pixels().any(|p| p.0[3] < u16::MAX),
        DynamicImage::ImageRgba32F(i) => i.pixels().any(|p| p.0[3] < 1.0),
        _ => false,
    }
}

/// Lanczos3 resize with the SIMD resizer; alpha is premultiplied around the filter so transparent
/// edges do not bleed colour.
fn resize(src: DynamicImage, width: u32, height: u32) -> Result<DynamicImage, MediaError> {
    if (src.width(), src.height()) == (width, height) {
        return Ok(src);
    }
    let mut dst = match &src {
        DynamicImage::ImageRgba8(_) => DynamicImage::from(RgbaImage::new(width, height)),
        _ => DynamicImage::from(RgbImage::new(width, height)),
    };
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(image: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn noise(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503);
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        })
    }

    fn decode(thumb: &Thumbnail) -> DynamicImage {
        image::load_from_memory(&thumb.bytes).unwrap()
    }

    #[test]
    fn fit_keeps_the_aspect_and_never_upscales() {
        assert_eq!(fit(2000, 1500, 512), (512, 384));
        assert_eq!(fit(1500, 2000, 512), (384, 512));
        assert_eq!(fit(300, 200, 512), (300, 200));
        assert_eq!(fit(10_000, 1, 512), (512, 1));
    }

    #[test]
    fn a_large_jpeg_becomes_a_smaller_512_px_jpeg() {
        let src = encode(noise(2000, 1500).into(), image::ImageFormat::Jpeg);
        let thumb = make(&src, ImageKind::Jpeg, 512).unwrap();
        assert_eq!(
            (thumb.kind, thumb.width, thumb.height),
            (ImageKind::Jpeg, 512, 384)
        );
        assert!(thumb.bytes.len() < src.len());
        let back = decode(&thumb);
        assert_eq!((back.width(), back.height()), (512, 384));
    }

    #[test]
    fn transparency_survives_as_lossy_webp() {
        let mut img = RgbaImage::from_pixel(800, 600, image::Rgba([200, 30, 30, 255]));
        for (x, _, p) in img.enumerate_pixels_mut() {
            if x < 400 {
                p.0[3] = 0;
            }
        }
        let src = encode(img.into(), image::ImageFormat::Png);
        let thumb = make(&src, ImageKind::Png, 512).unwrap();
        assert_eq!(thumb.kind, ImageKind::Webp);
        assert_eq!(&thumb.bytes[8..12], b"WEBP");
        assert_eq!(
            &thumb.bytes[12..16],
            b"VP8X",
            "lossy with alpha uses the extended format"
        );
        let back = decode(&thumb).into_rgba8();
        assert_eq!(back.dimensions(), (512, 384));
        assert_eq!(back.get_pixel(10, 100).0[3], 0);
        assert_eq!(back.get_pixel(500, 100).0[3], 255);
    }

    #[test]
    fn small_images_keep_their_size_and_gif_uses_its_first_frame() {
        let src = encode(
            DynamicImage::from(noise(100, 60)).into_rgba8().into(),
            image::ImageFormat::Gif,
        );
        let thumb = make(&src, ImageKind::Gif, 512).unwrap();
        assert_eq!((thumb.width, thumb.height), (100, 60));
    }

    #[test]
    fn exif_orientation_is_applied_to_jpegs() {
        let src = encode(noise(400, 200).into(), image::ImageFormat::Jpeg);
        let rotated = with_exif_orientation(&src, 6);
        let thumb = make(&rotated, ImageKind::Jpeg, 512).unwrap();
        assert_eq!((thumb.width, thumb.height), (200, 400));
    }

    /// Inserts an APP1 Exif segment holding only an orientation tag after the SOI marker.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
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
