//! Thumbnails: decode (JPEGs at reduced scale, large PNGs row by row), orient, shrink with a SIMD
//! resizer, encode lossy.
//!
//! JPEG goes through libjpeg-turbo (mozjpeg's build of it, compiled into the binary with the C
//! compiler alone; its x86 SIMD needs `nasm` at build time), the fastest decoder we measured: it
//! decodes a 12-megapixel photo by its DCT at 1/4 scale about 25% faster than the pure-Rust
//! decoders, and encodes a 512 px thumbnail more than ten times faster than `image`'s encoder
//! (`benches/thumbnail.rs`). Entropy decoding of the whole file is the floor no decoder avoids.
//!
//! Opaque images become JPEG (4:2:0, fast to encode, shown everywhere). Images with any
//! transparent pixel (cut-out clothes are often transparent PNGs) become lossy WebP with alpha
//! through libwebp: the `image` crate's WebP encoder is lossless only, which can make a thumbnail
//! larger than its source.
//! Large non-interlaced PNGs are never held whole: their rows are box-filtered, as the decoder
//! inflates them, into an image of twice the thumbnail's size, which the resizer then finishes.
//! Which path an image takes, and what it costs, is decided from its header by `media::cost`; a
//! path costing more than the caller's allowance is not taken. Images are never upscaled.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, GrayAlphaImage, GrayImage, ImageDecoder, RgbImage, RgbaImage};

use super::colour::{self, Pixels, Profile};
use super::cost::{self, Path};
use super::{ImageKind, MediaError, fit, jpeg};

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
    /// The perceptual hash of the image as shown (`phash::hash`), from the same decode.
    pub phash: u64,
}

/// Makes the thumbnail of an image whose format was sniffed as `kind`, whatever it costs.
pub fn make(bytes: &[u8], kind: ImageKind, max_side: u32) -> Result<Thumbnail, MediaError> {
    make_within(bytes, kind, max_side, u64::MAX)
}

/// Makes the thumbnail of an image whose format was sniffed as `kind`, allocating at most about
/// `allowance` bytes (`media::cost`'s figure): `OverBudget` when the image costs more.
pub fn make_within(
    bytes: &[u8],
    kind: ImageKind,
    max_side: u32,
    allowance: u64,
) -> Result<Thumbnail, MediaError> {
    let image = shown(bytes, kind, max_side, allowance)?;
    let phash = super::phash::hash(&image);
    let (width, height) = (image.width(), image.height());
    if has_transparency(&image) {
        let rgba = image.into_rgba8();
        let encoded = webp::Encoder::from_rgba(rgba.as_raw(), width, height)
            .encode_simple(false, WEBP_QUALITY)
            .map_err(|e| MediaError::Encode(format!("{e:?}")))?;
        Ok(Thumbnail {
            bytes: encoded.to_vec(),
            kind: ImageKind::Webp,
            width,
            height,
            phash,
        })
    } else {
        Ok(Thumbnail {
            bytes: jpeg::encode_rgb(&image.into_rgb8(), JPEG_QUALITY)?,
            kind: ImageKind::Jpeg,
            width,
            height,
            phash,
        })
    }
}

/// The image as the thumbnail shows it, before encoding: decoded along the cheapest path within
/// `allowance`, fitted into `max_side`, turned upright and converted to sRGB.
pub fn shown(
    bytes: &[u8],
    kind: ImageKind,
    max_side: u32,
    allowance: u64,
) -> Result<DynamicImage, MediaError> {
    let probe = super::probe(bytes)?;
    if probe.kind != kind {
        return Err(MediaError::Malformed(kind));
    }
    let plan = cost::check(bytes, &probe, max_side, allowance)?;
    let (pixels, profile) = match plan.path {
        Path::JpegScaled { eighths } => decode_jpeg(bytes, eighths)?,
        Path::PngRows => decode_png_rows(bytes, max_side)?,
        Path::Full => decode_whole(bytes, kind, allowance)?,
        Path::Avif => decode_avif(bytes, max_side)?,
    };
    let (sw, sh) = probe.stored_dimensions();
    let (width, height) = fit(sw, sh, max_side);
    let pixels = match pixels {
        Pixels::Image(image) => Pixels::Image(oriented(
            resize(image, width, height, true)?,
            probe.orientation,
        )),
        Pixels::Cmyk(cmyk) => {
            let resized = resize(cmyk.into(), width, height, false)?;
            match oriented(resized, probe.orientation) {
                DynamicImage::ImageRgba8(cmyk) => Pixels::Cmyk(cmyk),
                _ => unreachable!("resizing and turning keep the buffer's type"),
            }
        }
    };
    Ok(colour::to_srgb(pixels, &profile))
}

fn oriented(mut image: DynamicImage, orientation: Orientation) -> DynamicImage {
    image.apply_orientation(orientation);
    image
}

/// A JPEG decoded by libjpeg at reduced scale, in its stored samples (grey, RGB or CMYK) so that
/// its profile can be applied to them.
fn decode_jpeg(bytes: &[u8], eighths: u32) -> Result<(Pixels, Profile), MediaError> {
    let structure = jpeg::structure(bytes)?;
    let decoded = jpeg::decode_scaled(bytes, eighths, structure.adobe)?;
    let (w, h) = (decoded.width, decoded.height);
    let damaged = || MediaError::Damaged(ImageKind::Jpeg);
    let pixels = match decoded.samples {
        jpeg::Samples::Grey => Pixels::Image(
            GrayImage::from_raw(w, h, decoded.pixels)
                .ok_or_else(damaged)?
                .into(),
        ),
        jpeg::Samples::Rgb => Pixels::Image(
            RgbImage::from_raw(w, h, decoded.pixels)
                .ok_or_else(damaged)?
                .into(),
        ),
        jpeg::Samples::Cmyk => {
            Pixels::Cmyk(RgbaImage::from_raw(w, h, decoded.pixels).ok_or_else(damaged)?)
        }
    };
    Ok((pixels, Profile::icc(structure.icc)))
}

/// Any other decoder, whole image, first frame of animations, under the decode limits; samples
/// cut to 8 bits in their own colour model.
fn decode_whole(
    bytes: &[u8],
    kind: ImageKind,
    allowance: u64,
) -> Result<(Pixels, Profile), MediaError> {
    let mut decoder = super::limited_reader(bytes, kind, allowance)
        .into_decoder()
        .map_err(|_| MediaError::Malformed(kind))?;
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|_| MediaError::Damaged(kind))?;
    let image = match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => image.into_luma8().into(),
        DynamicImage::ImageLumaA16(_) => image.into_luma_alpha8().into(),
        _ if image.color().has_alpha() => image.into_rgba8().into(),
        _ => image.into_rgb8().into(),
    };
    Ok((Pixels::Image(image), Profile::icc(icc)))
}

#[cfg(avif)]
fn decode_avif(bytes: &[u8], max_side: u32) -> Result<(Pixels, Profile), MediaError> {
    let header = super::avif::header(bytes)?;
    let reduced = super::avif::reduced_size(&header, max_side);
    let image = super::avif::decode(bytes, &header, reduced)?;
    let profile = match (header.icc, header.cicp) {
        (Some(icc), _) => Profile::Icc(icc),
        (None, Some(cicp)) => Profile::Cicp {
            primaries: cicp.primaries,
            transfer: cicp.transfer,
        },
        (None, None) => Profile::Srgb,
    };
    Ok((Pixels::Image(image), profile))
}

#[cfg(not(avif))]
fn decode_avif(_: &[u8], _: u32) -> Result<(Pixels, Profile), MediaError> {
    Err(MediaError::UnknownFormat)
}

/// A PNG read row by row, each row averaged into its cell of an image fitting `2 × max_side` as
/// soon as it is inflated (a box filter); only that image and one row of sums are held. 16-bit
/// samples are cut to 8 and palettes expanded by the decoder.
fn decode_png_rows(bytes: &[u8], max_side: u32) -> Result<(Pixels, Profile), MediaError> {
    let bad = |_| MediaError::Damaged(ImageKind::Png);
    let limits = png::Limits {
        bytes: super::MAX_HEADER_ALLOC as usize,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(bad)?;
    let (w, h) = (reader.info().width, reader.info().height);
    let icc = reader.info().icc_profile.as_ref().map(|p| p.to_vec());
    let (color, _) = reader.output_color_type();
    let ch = color.samples();
    let (iw, ih) = fit(w, h, max_side.saturating_mul(2));
    let (iw, ih) = (iw as usize, ih as usize);
    let column: Vec<u32> = (0..u64::from(w))
        .map(|x| (x * iw as u64 / u64::from(w)) as u32)
        .collect();
    let mut per_column = vec![0u32; iw];
    for &c in &column {
        per_column[c as usize] += 1;
    }
    let mut out = vec![0u8; iw * ih * ch];
    let mut sums = vec![0u32; iw * ch];
    let (mut y, mut target_row, mut rows) = (0u64, 0usize, 0u32);
    while let Some(row) = reader.next_row().map_err(bad)? {
        let data = row.data();
        for (pixel, &c) in data.chunks_exact(ch).zip(&column) {
            let sum = &mut sums[c as usize * ch..][..ch];
            for (s, &v) in sum.iter_mut().zip(pixel) {
                *s += u32::from(v);
            }
        }
        rows += 1;
        y += 1;
        let next_target = (y * ih as u64 / u64::from(h)) as usize;
        if next_target != target_row || y == u64::from(h) {
            let line = &mut out[target_row * iw * ch..][..iw * ch];
            for (i, (o, s)) in line.iter_mut().zip(&mut sums).enumerate() {
                let n = per_column[i / ch] * rows;
                *o = ((*s + n / 2) / n.max(1)) as u8;
                *s = 0;
            }
            rows = 0;
            target_row = next_target;
            if target_row >= ih {
                break;
            }
        }
    }
    let (iw, ih) = (iw as u32, ih as u32);
    let image = match color {
        png::ColorType::Grayscale => GrayImage::from_raw(iw, ih, out).map(DynamicImage::from),
        png::ColorType::GrayscaleAlpha => {
            GrayAlphaImage::from_raw(iw, ih, out).map(DynamicImage::from)
        }
        png::ColorType::Rgb => RgbImage::from_raw(iw, ih, out).map(DynamicImage::from),
        png::ColorType::Rgba => RgbaImage::from_raw(iw, ih, out).map(DynamicImage::from),
        png::ColorType::Indexed => None,
    };
    let image = image.ok_or(MediaError::Malformed(ImageKind::Png))?;
    Ok((Pixels::Image(image), Profile::icc(icc)))
}

fn has_transparency(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] < u8::MAX),
        DynamicImage::ImageRgba8(i) => i.pixels().any(|p| p.0[3] < u8::MAX),
        _ => false,
    }
}

/// Lanczos3 resize with the SIMD resizer, into a buffer of the source's own pixel type. With
/// `alpha`, a fourth channel is alpha and premultiplied around the filter so transparent edges do
/// not bleed colour; without, the four channels (CMYK) are filtered alike.
fn resize(
    src: DynamicImage,
    width: u32,
    height: u32,
    alpha: bool,
) -> Result<DynamicImage, MediaError> {
    if (src.width(), src.height()) == (width, height) {
        return Ok(src);
    }
    let mut dst = match &src {
        DynamicImage::ImageLuma8(_) => DynamicImage::from(GrayImage::new(width, height)),
        DynamicImage::ImageLumaA8(_) => DynamicImage::from(GrayAlphaImage::new(width, height)),
        DynamicImage::ImageRgba8(_) => DynamicImage::from(RgbaImage::new(width, height)),
        _ => DynamicImage::from(RgbImage::new(width, height)),
    };
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
                .use_alpha(alpha),
        )
        .map_err(|e| MediaError::Encode(e.to_string()))?;
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::media::test_support::with_exif_orientation;

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

    /// A smooth picture with structure, so its perceptual hash means something.
    fn shapes(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let disc = ((fx - 0.3).powi(2) + (fy - 0.4).powi(2)).sqrt() < 0.2;
            let band = fx > 0.6 && fy < 0.7;
            let v = if disc {
                230.0
            } else if band {
                40.0
            } else {
                90.0 + 100.0 * fy
            };
            image::Rgb([v as u8, (v * 0.8) as u8, 255 - v as u8])
        })
    }

    #[test]
    fn the_hash_is_of_the_image_as_shown_turned_upright() {
        let stored = shapes(400, 200);
        let rotated =
            with_exif_orientation(&encode(stored.clone().into(), image::ImageFormat::Jpeg), 6);
        let upright = encode(
            image::imageops::rotate90(&stored).into(),
            image::ImageFormat::Jpeg,
        );
        let shown = make(&rotated, ImageKind::Jpeg, 512).unwrap().phash;
        let plain = make(&upright, ImageKind::Jpeg, 512).unwrap().phash;
        let unturned = make(
            &encode(stored.into(), image::ImageFormat::Jpeg),
            ImageKind::Jpeg,
            512,
        )
        .unwrap()
        .phash;
        assert!(super::super::phash::distance(shown, plain) <= 2);
        assert!(super::super::phash::distance(shown, unturned) > 10);
    }

    #[test]
    fn an_animation_is_hashed_by_its_first_frame() {
        use image::codecs::gif::GifEncoder;
        let first = DynamicImage::from(shapes(120, 90)).into_rgba8();
        let second = DynamicImage::from(image::imageops::rotate180(&shapes(120, 90))).into_rgba8();
        let mut gif = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut gif);
            encoder
                .encode_frames([first.clone(), second].map(image::Frame::new))
                .unwrap();
        }
        let still = encode(first.into(), image::ImageFormat::Gif);
        let animated = make(&gif, ImageKind::Gif, 512).unwrap().phash;
        assert_eq!(animated, make(&still, ImageKind::Gif, 512).unwrap().phash);
    }

    #[test]
    fn grey_jpegs_are_decoded_reduced_and_oriented() {
        let grey = image::GrayImage::from_fn(1600, 1200, |x, y| image::Luma([(x ^ y) as u8]));
        let src = encode(grey.into(), image::ImageFormat::Jpeg);
        let thumb = make(&src, ImageKind::Jpeg, 512).unwrap();
        assert_eq!((thumb.width, thumb.height), (512, 384));
        let rotated = with_exif_orientation(&src, 8);
        let thumb = make(&rotated, ImageKind::Jpeg, 512).unwrap();
        assert_eq!((thumb.width, thumb.height), (384, 512));
    }

    #[test]
    fn damaged_jpegs_are_an_error_or_a_thumbnail_never_a_crash() {
        let src = encode(noise(1600, 1200).into(), image::ImageFormat::Jpeg);
        let truncated = &src[..src.len() / 2];
        let mut scrambled = src.clone();
        for (i, b) in scrambled.iter_mut().enumerate().skip(src.len() / 3) {
            *b = b.wrapping_mul(31).wrapping_add(i as u8);
        }
        let header_only = &src[..src.iter().position(|&b| b == 0xDA).unwrap_or(20) + 1];
        for (name, bytes) in [
            ("truncated", truncated),
            ("scrambled", scrambled.as_slice()),
            ("header only", header_only),
        ] {
            if let Ok(thumb) = make(bytes, ImageKind::Jpeg, 512) {
                assert_eq!((thumb.width, thumb.height), (512, 384), "{name}");
            }
        }
    }
}
