//! Colour management: a thumbnail's pixels converted from the colour space its source declares
//! (an embedded ICC profile, or AVIF's CICP code points) to sRGB.
//!
//! Thumbnails are served without a profile, and every client (the seed's included) shows untagged
//! pixels as sRGB. A Display P3 or Adobe RGB photo shown that way loses its saturation, a CMYK one
//! is unrecognisable; the browser's full view of the original, which it colour-manages, would not
//! match the gallery. Converting costs less than embedding: it runs once, on the thumbnail's
//! quarter-megapixel after resizing (about 0.4 ms for an RGB profile, 12 ms for a CMYK LUT; see
//! `benches/thumbnail.rs`), where an embedded profile would add 0.5–18 KB to every thumbnail and
//! still leave non-managing clients wrong.
//!
//! moxcms does the work, with the relative colorimetric intent: it is what browsers and vips use by
//! default. A LUT profile that has no table for it is read through its perceptual (A2B0) table, the
//! ICC's default, as LittleCMS does. A profile that does not
//! parse, or does not describe the samples (an RGB profile on a grey image), is ignored, as
//! browsers ignore it: the image is then shown as if it were sRGB.

use image::{DynamicImage, RgbImage, RgbaImage};
use moxcms::{ColorProfile, Layout, ParsingOptions, RenderingIntent, TransformOptions};

/// Largest ICC profile parsed, and the largest colour lookup table in it.
const MAX_PROFILE_BYTES: usize = super::jpeg::MAX_ICC_BYTES;

/// What the samples of a decoded image mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// Untagged: sRGB, as every browser assumes.
    Srgb,
    Icc(Vec<u8>),
    /// H.273 code points (AVIF's `nclx`): primaries and transfer function.
    Cicp {
        primaries: u8,
        transfer: u8,
    },
}

impl Profile {
    pub fn icc(icc: Option<Vec<u8>>) -> Self {
        icc.map_or(Self::Srgb, Self::Icc)
    }

    fn parse(&self) -> Option<ColorProfile> {
        match self {
            Self::Srgb => None,
            Self::Icc(bytes) => {
                let options = ParsingOptions {
                    max_profile_size: MAX_PROFILE_BYTES,
                    max_allowed_clut_size: MAX_PROFILE_BYTES,
                    ..ParsingOptions::default()
                };
                ColorProfile::new_from_slice_with_options(bytes, options)
                    .inspect_err(|e| tracing::debug!("ICC profile ignored: {e}"))
                    .ok()
            }
            // 1/13 and 1/2 (unspecified transfer) are sRGB, the common case: nothing to do.
            Self::Cicp {
                primaries: 1 | 2,
                transfer: 1 | 2 | 6 | 13,
            } => None,
            Self::Cicp {
                primaries,
                transfer,
            } => {
                let cicp = moxcms::CicpProfile {
                    color_primaries: (*primaries).try_into().ok()?,
                    transfer_characteristics: (*transfer).try_into().ok()?,
                    matrix_coefficients: moxcms::MatrixCoefficients::Identity,
                    full_range: true,
                };
                Some(ColorProfile::new_from_cicp(cicp))
            }
        }
    }
}

/// The samples of an 8-bit image: grey, grey and alpha, RGB or RGBA as `image` holds them, or
/// CMYK carried in an RGBA buffer (the resizer treats its four channels alike).
pub enum Pixels {
    Image(DynamicImage),
    Cmyk(RgbaImage),
}

/// `pixels` as sRGB: RGB, or RGBA when they have alpha.
pub fn to_srgb(pixels: Pixels, profile: &Profile) -> DynamicImage {
    let parsed = profile.parse();
    let converted = parsed.and_then(|source| match &pixels {
        Pixels::Cmyk(cmyk) => {
            convert(&source, Layout::Rgba, cmyk.as_raw(), Layout::Rgb).and_then(|rgb| {
                RgbImage::from_raw(cmyk.width(), cmyk.height(), rgb).map(DynamicImage::from)
            })
        }
        Pixels::Image(image) => {
            let (layout, to) = match image {
                DynamicImage::ImageLuma8(_) => (Layout::Gray, Layout::Rgb),
                DynamicImage::ImageLumaA8(_) => (Layout::GrayAlpha, Layout::Rgba),
                DynamicImage::ImageRgba8(_) => (Layout::Rgba, Layout::Rgba),
                _ => (Layout::Rgb, Layout::Rgb),
            };
            let (w, h) = (image.width(), image.height());
            let out = convert(&source, layout, image.as_bytes(), to)?;
            match to {
                Layout::Rgba => RgbaImage::from_raw(w, h, out).map(DynamicImage::from),
                _ => RgbImage::from_raw(w, h, out).map(DynamicImage::from),
            }
        }
    });
    converted.unwrap_or_else(|| untagged(pixels))
}

fn convert(source: &ColorProfile, from: Layout, samples: &[u8], to: Layout) -> Option<Vec<u8>> {
    let transform = |rendering_intent| {
        let options = TransformOptions {
            rendering_intent,
            ..TransformOptions::default()
        };
        source.create_transform_8bit(from, &ColorProfile::new_srgb(), to, options)
    };
    // A LUT profile without the relative colorimetric table (many CMYK and scanner profiles have
    // only A2B0) is read through its perceptual one, as ICC.1 tells a CMS to and LittleCMS does.
    let transform = transform(RenderingIntent::RelativeColorimetric)
        .or_else(|_| transform(RenderingIntent::Perceptual))
        .inspect_err(|e| tracing::debug!("colour profile not applied: {e}"))
        .ok()?;
    let pixels = samples.len() / from.channels();
    let mut out = vec![0u8; pixels * to.channels()];
    transform.transform(samples, &mut out).ok()?;
    Some(out)
}

/// Pixels with no usable profile, read as sRGB; CMYK by the naive formula browsers use for
/// untagged CMYK.
fn untagged(pixels: Pixels) -> DynamicImage {
    match pixels {
        Pixels::Image(image @ (DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_))) => image,
        Pixels::Image(image) if image.color().has_alpha() => image.into_rgba8().into(),
        Pixels::Image(image) => image.into_rgb8().into(),
        Pixels::Cmyk(cmyk) => {
            let (w, h) = cmyk.dimensions();
            let ink = |v: u8, k: u8| ((255 - u32::from(v)) * (255 - u32::from(k)) / 255) as u8;
            let rgb = cmyk
                .pixels()
                .flat_map(|p| {
                    let [c, m, y, k] = p.0;
                    [ink(c, k), ink(m, k), ink(y, k)]
                })
                .collect();
            RgbImage::from_raw(w, h, rgb)
                .expect("three samples per pixel")
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p3() -> Profile {
        Profile::Icc(ColorProfile::new_display_p3().encode().unwrap())
    }

    #[test]
    fn display_p3_red_becomes_an_out_of_gamut_srgb_red() {
        let red = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 0]));
        let out = to_srgb(Pixels::Image(red.into()), &p3()).into_rgb8();
        // P3's red lies outside sRGB: clipped to full red, with green and blue at zero.
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
        // A mid P3 orange is less saturated in P3 terms than the same numbers in sRGB.
        let orange = RgbImage::from_pixel(1, 1, image::Rgb([200, 120, 60]));
        let out = to_srgb(Pixels::Image(orange.into()), &p3()).into_rgb8();
        let [r, g, b] = out.get_pixel(0, 0).0;
        assert!(r > 200 && g < 120 && b < 60, "{:?}", [r, g, b]);
    }

    #[test]
    fn srgb_and_broken_profiles_leave_pixels_alone_and_alpha_survives() {
        let px = RgbaImage::from_pixel(2, 2, image::Rgba([10, 200, 30, 77]));
        for profile in [
            Profile::Srgb,
            Profile::Icc(b"not a profile".to_vec()),
            Profile::Cicp {
                primaries: 1,
                transfer: 13,
            },
        ] {
            let out = to_srgb(Pixels::Image(px.clone().into()), &profile);
            assert_eq!(out.into_rgba8().get_pixel(1, 1).0, [10, 200, 30, 77]);
        }
        let out = to_srgb(Pixels::Image(px.into()), &p3()).into_rgba8();
        assert_eq!(out.get_pixel(1, 1).0[3], 77);
    }

    #[test]
    fn a_profile_for_other_samples_is_ignored() {
        let grey = image::GrayImage::from_pixel(2, 2, image::Luma([90]));
        let out = to_srgb(Pixels::Image(grey.into()), &p3()).into_rgb8();
        assert_eq!(out.get_pixel(0, 0).0, [90, 90, 90]);
    }

    #[test]
    fn untagged_cmyk_uses_the_naive_formula() {
        let cmyk = RgbaImage::from_pixel(1, 1, image::Rgba([0, 255, 255, 0]));
        let out = to_srgb(Pixels::Cmyk(cmyk), &Profile::Srgb).into_rgb8();
        assert_eq!(out.get_pixel(0, 0).0, [255, 0, 0]);
    }

    #[test]
    fn cicp_display_p3_matches_the_icc_display_p3() {
        let orange = RgbImage::from_pixel(1, 1, image::Rgb([200, 120, 60]));
        let by_icc = to_srgb(Pixels::Image(orange.clone().into()), &p3()).into_rgb8();
        let cicp = Profile::Cicp {
            primaries: 12,
            transfer: 13,
        };
        let by_cicp = to_srgb(Pixels::Image(orange.into()), &cicp).into_rgb8();
        for (a, b) in by_icc
            .get_pixel(0, 0)
            .0
            .iter()
            .zip(by_cicp.get_pixel(0, 0).0)
        {
            assert!(a.abs_diff(b) <= 1, "{by_icc:?} {by_cicp:?}");
        }
    }
}
