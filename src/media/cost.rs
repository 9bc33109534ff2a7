//! What making a thumbnail will allocate, read from the header before any pixel is decoded.
//!
//! A compression-ratio test cannot tell a bomb from a photo: padding a bomb with a junk chunk
//! lowers its ratio to that of a picture. What costs memory is the decode itself, and that
//! follows from the declared dimensions, the pixel format and the path `thumbnail::make` takes
//! for the format: JPEGs decoded by their DCT at reduced scale, large non-interlaced PNGs read
//! row by row and box-filtered as they arrive, opaque AVIFs box-filtered as they are converted
//! from YUV (the coded frame held whole), everything else (GIF's first frame, WebP, interlaced or
//! small PNGs, AVIFs with alpha) decoded whole. The figure is an upper bound of the peak
//! of that path (decoder buffers, format conversions, the resizer's scratch, the encoded output,
//! the source bytes the job holds), so that the sum over concurrent jobs bounds what they hold.
//!
//! The upload routes refuse an image whose cost is over the decode budget; the thumbnail jobs take
//! their cost from one shared budget before decoding.

use super::{ImageKind, MediaError, Probe, fit};

/// Allocations every job makes whatever the image: codec state, encoder buffers, small vectors.
pub(super) const FIXED: u64 = 2 * 1024 * 1024;
/// An ICC profile (at most 4 MiB, twice: as read and parsed) and its transform's tables.
pub(super) const COLOUR: u64 = 10 * 1024 * 1024;

/// How a thumbnail will be decoded, and what that costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub path: Path,
    /// Peak bytes allocated while making the thumbnail, the source bytes included.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The whole image is decoded into one buffer, then resized.
    Full,
    /// libjpeg decodes by its DCT at `eighths`/8 scale (1, 2, 4 or 8).
    JpegScaled { eighths: u32 },
    /// PNG rows are box-filtered into an image of at most `2 × max_side` as they are inflated.
    PngRows,
    /// The AV1 decoder (it has no reduced decode), its RGB box-filtered into an image of at most
    /// `2 × max_side` as it is converted, unless it has alpha.
    Avif,
}

/// The plan for the thumbnail of the probed image `bytes` with a longest side of `max_side`.
pub fn plan(bytes: &[u8], probe: &Probe, max_side: u32) -> Plan {
    let (pw, ph) = probe.stored_dimensions();
    let (w, h) = (u64::from(pw), u64::from(ph));
    let (tw, th) = fit(pw, ph, max_side);
    let (tw, th) = (u64::from(tw), u64::from(th));
    // The resized thumbnail and one copy of it at a time (turned, colour-managed, converted to
    // RGB), its encoded form and the libjpeg/libwebp encoder's planes.
    let output = tw * th * 12;
    // Parsing an ICC profile and building its transform (a CMYK lookup table is the largest).
    let colour = if probe.metadata { COLOUR } else { 0 };
    let base = bytes.len() as u64 + FIXED + output + colour;
    let (path, decode) = match probe.kind {
        ImageKind::Jpeg => jpeg(bytes, probe, max_side),
        ImageKind::Png => png(bytes, probe, max_side),
        ImageKind::Gif => (Path::Full, full(w, h, 4, tw, th) + gif_frame(bytes, probe)),
        // image-webp has no reduced decode; its own planes (YUV and alpha for lossy, ARGB words
        // for lossless) come on top of the RGBA output.
        ImageKind::Webp => (Path::Full, full(w, h, 4, tw, th) + w * h * 4),
        ImageKind::Avif => (Path::Avif, avif(bytes, max_side, tw, th)),
    };
    Plan {
        path,
        bytes: base + decode,
    }
}

/// The plan, or `OverBudget` when its cost is over `budget` bytes.
pub fn check(bytes: &[u8], probe: &Probe, max_side: u32, budget: u64) -> Result<Plan, MediaError> {
    let plan = plan(bytes, probe, max_side);
    if plan.bytes > budget {
        return Err(MediaError::OverBudget {
            width: probe.width,
            height: probe.height,
            cost: plan.bytes,
            budget,
        });
    }
    Ok(plan)
}

/// A whole-image decode into `channels` bytes per pixel: the buffer, one full-size copy (the
/// conversion to 8-bit RGB(A), an EXIF rotation or the resizer's premultiplied alpha; each frees
/// what it replaced), and the resizer's intermediate pass.
fn full(w: u64, h: u64, channels: u64, tw: u64, th: u64) -> u64 {
    w * h * channels + w * h * 4 + resize_scratch(w, h, tw, th)
}

fn resize_scratch(w: u64, h: u64, tw: u64, th: u64) -> u64 {
    (tw * h).max(w * th) * 4
}

/// The first frame's buffer when it does not span the canvas' width (the canvas itself is the
/// decode buffer of `full`).
fn gif_frame(bytes: &[u8], probe: &Probe) -> u64 {
    match gif_first_frame(bytes) {
        Some((0, _, fw, _)) if u32::from(fw) == probe.stored_dimensions().0 => 0,
        Some((_, _, fw, fh)) => u64::from(fw) * u64::from(fh) * 4,
        None => {
            let (w, h) = probe.stored_dimensions();
            u64::from(w) * u64::from(h) * 4
        }
    }
}

/// Left, top, width and height of a GIF's first image descriptor.
fn gif_first_frame(bytes: &[u8]) -> Option<(u16, u16, u16, u16)> {
    let flags = *bytes.get(10)?;
    let mut pos = 13;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
    loop {
        match *bytes.get(pos)? {
            0x2C => {
                return Some((
                    u16_at(pos + 1)?,
                    u16_at(pos + 3)?,
                    u16_at(pos + 5)?,
                    u16_at(pos + 7)?,
                ));
            }
            0x21 => {
                pos += 2;
                loop {
                    let len = usize::from(*bytes.get(pos)?);
                    pos += 1 + len;
                    if len == 0 {
                        break;
                    }
                }
            }
            _ => return None,
        }
    }
}

fn jpeg(bytes: &[u8], probe: &Probe, max_side: u32) -> (Path, u64) {
    let (pw, ph) = probe.stored_dimensions();
    let (w, h) = (u64::from(pw), u64::from(ph));
    let (tw, th) = fit(pw, ph, max_side);
    let eighths = jpeg_eighths(pw, ph, max_side);
    // A probed JPEG has a frame header; without one, the most a frame of this size could hold.
    let frame = super::jpeg::frame_header(bytes);
    let components = frame.map_or(4, |f| u64::from(f.components));
    let sampling = frame.map_or([(1, 1); 4], |f| f.sampling);
    let used = &sampling[..components as usize];
    let hmax = u64::from(used.iter().map(|s| s.0).max().unwrap_or(1));
    let vmax = u64::from(used.iter().map(|s| s.1).max().unwrap_or(1));
    // Two bytes per coefficient, 64 per 8×8 block, blocks of each component at its sampling.
    let coefficients: u64 = used
        .iter()
        .map(|&(hs, vs)| {
            let cw = (w * u64::from(hs)).div_ceil(hmax);
            let ch = (h * u64::from(vs)).div_ceil(vmax);
            cw.div_ceil(8) * ch.div_ceil(8) * 128
        })
        .sum();
    let held = if frame.is_none_or(|f| f.whole_image_coefficients()) {
        coefficients
    } else {
        // One MCU row of each component, upsampled.
        w * vmax * 8 * components * 4
    };
    let sw = (w * u64::from(eighths)).div_ceil(8);
    let sh = (h * u64::from(eighths)).div_ceil(8);
    // The scaled image in its stored samples (up to four: CMYK), a rotated copy of it, and the
    // resizer's pass.
    let samples = components.max(3);
    let decoded = sw * sh * samples * 2 + resize_scratch(sw, sh, u64::from(tw), u64::from(th));
    (Path::JpegScaled { eighths }, held + decoded)
}

#[cfg(avif)]
fn avif(bytes: &[u8], max_side: u32, tw: u64, th: u64) -> u64 {
    match super::avif::header(bytes) {
        Ok(header) => {
            let reduced = super::avif::reduced_size(&header, max_side);
            let (w, h) = reduced.unwrap_or((header.width, header.height));
            let (w, h) = (u64::from(w), u64::from(h));
            super::avif::decode_cost(&header, reduced) + w * h * 4 + resize_scratch(w, h, tw, th)
        }
        Err(_) => u64::MAX / 2,
    }
}

#[cfg(not(avif))]
fn avif(_: &[u8], _: u32, _: u64, _: u64) -> u64 {
    u64::MAX / 2
}

/// What a PNG's IHDR says, and whether it has a `tRNS` chunk (which adds an alpha channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PngHeader {
    pub bit_depth: u8,
    pub color_type: u8,
    pub interlaced: bool,
    pub transparency: bool,
}

impl PngHeader {
    /// Samples per pixel as stored.
    fn raw_channels(self) -> u64 {
        match self.color_type {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        }
    }

    /// Samples per pixel once palettes are expanded and `tRNS` becomes alpha.
    pub fn channels(self) -> u64 {
        let colour = match self.color_type {
            0 | 4 => 1,
            _ => 3,
        };
        let alpha = self.color_type == 4 || self.color_type == 6 || self.transparency;
        colour + u64::from(alpha)
    }
}

pub(crate) fn png_header(bytes: &[u8]) -> Option<PngHeader> {
    let ihdr = bytes.get(8..33)?;
    if &ihdr[4..8] != b"IHDR" {
        return None;
    }
    let mut transparency = false;
    let mut pos = 8;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        match &header[4..8] {
            b"tRNS" => transparency = true,
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        pos = pos.saturating_add(12).saturating_add(len);
    }
    Some(PngHeader {
        bit_depth: ihdr[16],
        color_type: ihdr[17],
        interlaced: ihdr[20] != 0,
        transparency,
    })
}

/// Whether `thumbnail::make` reads this PNG row by row: non-interlaced (Adam7 rows arrive out of
/// order) and at least four times the thumbnail, where a box filter loses nothing visible.
pub(crate) fn png_streams(header: &PngHeader, width: u32, height: u32, max_side: u32) -> bool {
    !header.interlaced && width.max(height) >= max_side.saturating_mul(4)
}

fn png(bytes: &[u8], probe: &Probe, max_side: u32) -> (Path, u64) {
    let (pw, ph) = probe.stored_dimensions();
    let (w, h) = (u64::from(pw), u64::from(ph));
    let (tw, th) = fit(pw, ph, max_side);
    let (tw, th) = (u64::from(tw), u64::from(th));
    let Some(header) = png_header(bytes) else {
        return (Path::Full, full(w, h, 8, tw, th));
    };
    let sample_bytes = if header.bit_depth == 16 { 2 } else { 1 };
    if png_streams(&header, pw, ph, max_side) {
        // The decoder's raw rows (current, previous, and the inflated data not yet unfiltered,
        // a few rows) and its output row; then the box filter's target, one accumulator row,
        // and the final resize from the target.
        let raw_row = (w * header.raw_channels() * u64::from(header.bit_depth)).div_ceil(8) + 1;
        let decoder = raw_row * 6 + w * header.channels() * sample_bytes + 256 * 1024;
        let (iw, ih) = fit(pw, ph, max_side.saturating_mul(2));
        let (iw, ih) = (u64::from(iw), u64::from(ih));
        let target = iw * ih * 4 + iw * 4 * 4;
        return (
            Path::PngRows,
            decoder + target + iw * ih * 4 + resize_scratch(iw, ih, tw, th),
        );
    }
    let channels = header.channels() * sample_bytes;
    (Path::Full, full(w, h, channels, tw, th))
}

/// The scale, in eighths, at which libjpeg decodes a `w`×`h` JPEG for a `max_side` thumbnail: the
/// smallest that still covers the thumbnail.
pub fn jpeg_eighths(w: u32, h: u32, max_side: u32) -> u32 {
    let (tw, th) = fit(w, h, max_side);
    // libjpeg scales by eighths and rounds up.
    let scaled = |side: u32, eighths: u32| side.div_ceil(8 / eighths);
    [1, 2, 4]
        .into_iter()
        .find(|&n| scaled(w, n) >= tw && scaled(h, n) >= th)
        .unwrap_or(8)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn fit_keeps_the_aspect_and_never_upscales() {
        assert_eq!(fit(2000, 1500, 512), (512, 384));
        assert_eq!(fit(1500, 2000, 512), (384, 512));
        assert_eq!(fit(300, 200, 512), (300, 200));
        assert_eq!(fit(10_000, 1, 512), (512, 1));
    }

    const MIB: u64 = 1024 * 1024;

    fn probe_of(bytes: &[u8]) -> Probe {
        super::super::probe(bytes).unwrap()
    }

    fn png_of(img: image::DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A PNG header claiming `w`×`h` of `color_type` at `depth` bits, with one empty IDAT.
    fn png_header_only(w: u32, h: u32, depth: u8, color_type: u8, interlace: u8) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            png.extend_from_slice(&[0; 4]);
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color_type, 0, 0, interlace]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &[]);
        chunk(b"IEND", &[]);
        png
    }

    fn cost_of(bytes: &[u8], w: u32, h: u32, kind: ImageKind) -> Plan {
        plan(bytes, &Probe::plain(kind, w, h), 512)
    }

    #[test]
    fn large_non_interlaced_pngs_are_streamed_at_a_few_mib() {
        let rgba = png_header_only(8000, 8000, 8, 6, 0);
        let plan = cost_of(&rgba, 8000, 8000, ImageKind::Png);
        assert_eq!(plan.path, Path::PngRows);
        assert!(plan.bytes < 17 * MIB, "{}", plan.bytes);
        let deep = png_header_only(4000, 4000, 16, 6, 0);
        let deep = cost_of(&deep, 4000, 4000, ImageKind::Png);
        assert_eq!(deep.path, Path::PngRows);
        assert!(deep.bytes < 17 * MIB, "{}", deep.bytes);
    }

    #[test]
    fn interlaced_and_small_pngs_cost_their_whole_decode() {
        let rgba = png_header_only(8000, 8000, 8, 6, 1);
        let plan = cost_of(&rgba, 8000, 8000, ImageKind::Png);
        assert_eq!(plan.path, Path::Full);
        // 256 MB of RGBA, as much again for the copy.
        assert!(plan.bytes > 500_000_000, "{}", plan.bytes);
        let rgb16 = png_header_only(1500, 1000, 16, 2, 0);
        let rgb16 = cost_of(&rgb16, 1500, 1000, ImageKind::Png);
        assert_eq!(rgb16.path, Path::Full);
        assert!(rgb16.bytes >= 1500 * 1000 * (6 + 4), "{}", rgb16.bytes);
        let grey = cost_of(
            &png_header_only(1500, 1000, 8, 0, 0),
            1500,
            1000,
            ImageKind::Png,
        );
        assert!(grey.bytes < rgb16.bytes);
    }

    #[test]
    fn png_transparency_chunks_add_an_alpha_channel() {
        let mut img = image::RgbImage::new(4, 4);
        img.put_pixel(0, 0, image::Rgb([1, 2, 3]));
        let opaque = png_of(img.into());
        let header = png_header(&opaque).unwrap();
        assert_eq!((header.channels(), header.transparency), (3, false));
        // Insert a tRNS chunk before the first IDAT.
        let idat = opaque.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
        let mut with_trns = opaque[..idat].to_vec();
        with_trns.extend_from_slice(&[0, 0, 0, 6, b't', b'R', b'N', b'S', 0, 0, 0, 0, 0, 0]);
        with_trns.extend_from_slice(&[0; 4]);
        with_trns.extend_from_slice(&opaque[idat..]);
        assert_eq!(png_header(&with_trns).unwrap().channels(), 4);
    }

    #[test]
    fn jpegs_cost_their_scaled_decode_and_progressive_ones_their_coefficients() {
        let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let frame = super::super::jpeg::frame_header(&jpeg).unwrap();
        assert_eq!(frame.components, 3);
        assert!(!frame.whole_image_coefficients());
        // The same header read as a 6000×4000 phone photo: decoded at 1/8 (750×500).
        let plan = cost_of(&jpeg, 6000, 4000, ImageKind::Jpeg);
        assert_eq!(plan.path, Path::JpegScaled { eighths: 1 });
        assert!(plan.bytes < 9 * MIB, "{}", plan.bytes);
        // Progressive: libjpeg holds every coefficient, 2 bytes × 3 components × 24 MP at 4:4:4.
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut progressive = jpeg.clone();
        progressive[sof + 1] = 0xC2;
        let plan = cost_of(&progressive, 6000, 4000, ImageKind::Jpeg);
        assert!(plan.bytes > 6000 * 4000 * 6, "{}", plan.bytes);
        // CMYK is decoded scaled too, four samples a pixel.
        let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut cmyk = jpeg[..sof + 2].to_vec();
        let mut frame = jpeg[sof + 4..sof + 10].to_vec();
        frame[5] = 4;
        for id in 1..=4 {
            frame.extend_from_slice(&[id, 0x11, 0]);
        }
        cmyk.extend_from_slice(&(frame.len() as u16 + 2).to_be_bytes());
        cmyk.extend_from_slice(&frame);
        cmyk.extend_from_slice(&jpeg[sos..]);
        let rgb = cost_of(&jpeg, 6000, 4000, ImageKind::Jpeg);
        let plan = cost_of(&cmyk, 6000, 4000, ImageKind::Jpeg);
        assert_eq!(plan.path, Path::JpegScaled { eighths: 1 });
        assert!(plan.bytes > rgb.bytes, "{} {}", plan.bytes, rgb.bytes);
    }

    #[test]
    fn gifs_and_webps_cost_the_whole_canvas() {
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::from(image::RgbaImage::new(20, 10))
            .write_to(&mut out, image::ImageFormat::Gif)
            .unwrap();
        let gif = out.into_inner();
        assert_eq!(gif_first_frame(&gif), Some((0, 0, 20, 10)));
        let plan = cost_of(&gif, 16000, 4000, ImageKind::Gif);
        assert_eq!(plan.path, Path::Full);
        assert!(plan.bytes >= 16000 * 4000 * 4 * 2, "{}", plan.bytes);
        let webp = cost_of(b"RIFF\0\0\0\0WEBP", 8000, 8000, ImageKind::Webp);
        assert!(webp.bytes >= 8000 * 8000 * 4 * 3, "{}", webp.bytes);
    }

    #[test]
    fn the_budget_refuses_what_costs_more() {
        let bytes = png_header_only(8000, 8000, 8, 6, 1);
        let probe = Probe::plain(ImageKind::Png, 8000, 8000);
        assert!(matches!(
            check(&bytes, &probe, 512, 60 * MIB),
            Err(MediaError::OverBudget {
                width: 8000,
                height: 8000,
                ..
            })
        ));
        let small = png_of(image::RgbImage::new(300, 200).into());
        let probe = probe_of(&small);
        assert!(check(&small, &probe, 512, 60 * MIB).is_ok());
    }
}
