//! Everything JPEG: the file's structure read without decoding, and the libjpeg calls that decode
//! and encode pixels.
//!
//! The structure walk is what decides whether a JPEG is whole. Decoders cannot: libjpeg, zune and
//! browsers all "decode" a file cut in half (the missing rows come out grey) and all ignore what
//! follows the end-of-image marker. So the walk follows the segments by their lengths and the
//! entropy-coded data to its first EOI: bytes after it are a trailer (motion photos append their
//! video there, Samsung its `SEFT` block, some encoders padding) and are kept as sent; a file that
//! runs out before its EOI is damaged. The same walk collects what the decoders are asked to do
//! with the pixels: the EXIF orientation, the ICC profile (split over APP2 segments), Adobe's
//! APP14 (whose CMYK is stored inverted) and the frame header.
//!
//! libjpeg (libjpeg-turbo, as built by mozjpeg, with arithmetic decoding turned on) is the only
//! JPEG decoder: the probe reads the header with it too, so whatever is accepted decodes.
//! libjpeg reports a fatal error in a damaged file by unwinding (without the panic hook), which
//! the crate leaves to its caller to catch; `libjpeg` turns that into an error.

use super::{ImageKind, MediaError, Variant};

/// Largest ICC profile read from APP2 segments; larger ones are ignored (the image is then
/// treated as sRGB, as browsers do with profiles they cannot use).
pub const MAX_ICC_BYTES: usize = 4 * 1024 * 1024;

/// What a JPEG's segments say, up to its end-of-image marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure<'a> {
    pub frame: Frame,
    /// The TIFF data of the first APP1 `Exif` segment.
    pub exif: Option<&'a [u8]>,
    /// Whether an APP1 holds XMP (which may carry the same personal data as EXIF).
    pub xmp: bool,
    /// The ICC profile, its APP2 chunks joined in order, when every chunk is present.
    pub icc: Option<Vec<u8>>,
    /// An APP14 `Adobe` segment: its CMYK samples are stored inverted.
    pub adobe: bool,
    /// Offset just past the first end-of-image marker.
    pub end: usize,
}

/// The frame header (SOFn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub marker: u8,
    pub precision: u8,
    pub width: u16,
    pub height: u16,
    pub components: u8,
    /// Per component: horizontal and vertical sampling factors.
    pub sampling: [(u8, u8); 4],
}

impl Frame {
    /// Progressive or multi-scan: libjpeg keeps every DCT coefficient of the image.
    pub fn whole_image_coefficients(&self) -> bool {
        !matches!(self.marker, 0xC0 | 0xC1)
    }

    /// Whether every browser shows it as it is: Huffman-coded (browsers do not decode arithmetic
    /// coding), grey or YCbCr (CMYK is shown differently from one to the next).
    pub fn shown_everywhere(&self) -> bool {
        matches!(self.marker, 0xC0..=0xC2) && self.components != 4
    }

    /// What libjpeg-turbo cannot decode, named for the refusal; `None` when it can.
    fn unsupported(&self) -> Option<Variant> {
        match self.marker {
            // Baseline, extended, progressive; the same with arithmetic coding.
            0xC0 | 0xC1 | 0xC2 | 0xC9 | 0xCA => {}
            0xC3 | 0xCB => return Some(Variant::LosslessJpeg),
            _ => return Some(Variant::HierarchicalJpeg),
        }
        match self.precision {
            8 => None,
            _ => Some(Variant::Jpeg12Bit),
        }
    }
}

/// Walks `bytes` from SOI to the first EOI. `Damaged` when the file ends first, `Malformed` when
/// it is not a JPEG libjpeg could read, `Unsupported` for the kinds it cannot decode.
pub fn structure(bytes: &[u8]) -> Result<Structure<'_>, MediaError> {
    walk(bytes, false)
}

/// The frame header alone: the walk stops there, before any entropy-coded data.
pub fn frame_header(bytes: &[u8]) -> Option<Frame> {
    walk(bytes, true).ok().map(|s| s.frame)
}

fn walk(bytes: &[u8], frame_only: bool) -> Result<Structure<'_>, MediaError> {
    let malformed = MediaError::Malformed(ImageKind::Jpeg);
    let damaged = MediaError::Damaged(ImageKind::Jpeg);
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(malformed);
    }
    let mut found = Structure {
        frame: Frame {
            marker: 0,
            precision: 0,
            width: 0,
            height: 0,
            components: 0,
            sampling: [(1, 1); 4],
        },
        exif: None,
        xmp: false,
        icc: None,
        adobe: false,
        end: 0,
    };
    let mut icc = IccChunks::default();
    let mut scans = 0;
    let mut pos = 2;
    loop {
        // A marker is 0xFF (any number of them: fill) and a code. libjpeg skips stray bytes
        // between segments with a warning, and so does this walk.
        let Some(at) = memchr::memchr(0xFF, &bytes[pos..]) else {
            return Err(damaged);
        };
        pos += at;
        while bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos + 1) else {
            return Err(damaged);
        };
        pos += 2;
        match marker {
            0xD9 => {
                if scans == 0 {
                    return Err(malformed);
                }
                found.end = pos;
                found.icc = icc.joined();
                return Ok(found);
            }
            // Stray restart markers, TEM and a stuffed zero outside a scan: no length follows.
            0xD0..=0xD7 | 0x01 | 0x00 => continue,
            // Once a scan has begun, what does not read as a segment that may follow one is
            // taken for damaged entropy-coded data and skipped, as decoders (and browsers) do:
            // the image still shows, and only the end marker, or its absence, decides whether
            // the file is whole.
            _ if scans > 0 && !follows_scan(marker) => continue,
            0xD8 => return Err(malformed),
            _ => {}
        }
        let segment = bytes
            .get(pos..pos + 2)
            .map(|len| usize::from(u16::from_be_bytes([len[0], len[1]])))
            .and_then(|len| Some((len, bytes.get(pos + 2..pos + len.max(2))?)));
        let (len, segment) = match segment {
            Some((len, segment)) if len >= 2 => (len, segment),
            _ if scans > 0 => continue,
            Some(_) => return Err(malformed),
            None => return Err(damaged),
        };
        pos += len;
        match marker {
            0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => {
                if found.frame.marker != 0 {
                    return Err(malformed);
                }
                found.frame = frame(marker, segment).ok_or(malformed.clone())?;
                if let Some(what) = found.frame.unsupported() {
                    return Err(MediaError::Unsupported(what));
                }
                if frame_only {
                    return Ok(found);
                }
            }
            0xDA => {
                if found.frame.marker == 0 {
                    return Err(malformed);
                }
                scans += 1;
                pos = entropy_end(bytes, pos).ok_or(damaged.clone())?;
            }
            0xE1 => {
                if let Some(exif) = segment.strip_prefix(b"Exif\0\0") {
                    found.exif.get_or_insert(exif);
                } else if segment.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
                    found.xmp = true;
                }
            }
            0xE2 => {
                if let Some(chunk) = segment.strip_prefix(b"ICC_PROFILE\0") {
                    icc.add(chunk);
                }
            }
            0xEE if segment.starts_with(b"Adobe") => found.adobe = true,
            _ => {}
        }
    }
}

fn frame(marker: u8, segment: &[u8]) -> Option<Frame> {
    let [precision, h0, h1, w0, w1, components, ..] = *segment else {
        return None;
    };
    let (width, height) = (u16::from_be_bytes([w0, w1]), u16::from_be_bytes([h0, h1]));
    // A height of 0 defers it to a DNL marker, which libjpeg-turbo does not support either.
    if width == 0 || height == 0 || !(1..=4).contains(&components) {
        return None;
    }
    let mut sampling = [(1, 1); 4];
    for (i, s) in sampling.iter_mut().enumerate().take(components.into()) {
        let f = *segment.get(6 + i * 3 + 1)?;
        *s = ((f >> 4).max(1), (f & 0xF).max(1));
    }
    Some(Frame {
        marker,
        precision,
        width,
        height,
        components,
        sampling,
    })
}

/// The offset of the marker that ends the entropy-coded data starting at `pos`: the first 0xFF
/// not followed by a stuffed zero, a restart marker or more fill.
fn entropy_end(bytes: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += memchr::memchr(0xFF, bytes.get(pos..)?)?;
        match *bytes.get(pos + 1)? {
            code if follows_scan(code) => return Some(pos),
            _ => pos += 1,
        }
    }
}

/// Whether `marker` may follow a scan: tables, restart interval, application data, comments,
/// the next scan, a DNL, or the end.
fn follows_scan(marker: u8) -> bool {
    matches!(marker, 0xC4 | 0xCC | 0xD9..=0xDD | 0xE0..=0xEF | 0xFE)
}

/// APP2 `ICC_PROFILE` chunks: a sequence number and a count, then a piece of the profile.
#[derive(Default)]
struct IccChunks<'a> {
    chunks: Vec<(u8, u8, &'a [u8])>,
    bytes: usize,
}

impl<'a> IccChunks<'a> {
    fn add(&mut self, chunk: &'a [u8]) {
        if let [seq, count, data @ ..] = chunk {
            self.bytes += data.len();
            self.chunks.push((*seq, *count, data));
        }
    }

    /// The profile, when chunks 1..=count are each present once and it is not over the limit.
    fn joined(mut self) -> Option<Vec<u8>> {
        let count = self.chunks.first()?.1;
        self.chunks.sort_by_key(|c| c.0);
        let whole = self.bytes <= MAX_ICC_BYTES
            && self.chunks.len() == usize::from(count)
            && self
                .chunks
                .iter()
                .enumerate()
                .all(|(i, c)| usize::from(c.0) == i + 1 && c.1 == count);
        whole.then(|| self.chunks.iter().flat_map(|c| c.2).copied().collect())
    }
}

/// How libjpeg is asked to give the pixels: as stored, so that the colour profile, which
/// describes the stored samples, can be applied to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples {
    Grey,
    Rgb,
    /// C, M, Y, K, already un-inverted when the file had an Adobe marker.
    Cmyk,
}

/// Pixels decoded by libjpeg at `eighths`/8 scale.
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub samples: Samples,
    pub pixels: Vec<u8>,
}

/// Reads the header with libjpeg: what the probe accepts is what libjpeg will decode.
pub fn check_header(bytes: &[u8]) -> Result<(), MediaError> {
    libjpeg(
        || MediaError::Malformed(ImageKind::Jpeg),
        || {
            mozjpeg::Decompress::new_mem(bytes)
                .map(drop)
                .map_err(|_| MediaError::Malformed(ImageKind::Jpeg))
        },
    )
}

/// Decodes by the DCT at `eighths`/8 scale (1, 2, 4 or 8): a 12-megapixel photo wanted at 512
/// px is decoded as 0.75 megapixels.
pub fn decode_scaled(bytes: &[u8], eighths: u32, adobe: bool) -> Result<Decoded, MediaError> {
    libjpeg(
        || MediaError::Damaged(ImageKind::Jpeg),
        || {
            let bad = |_| MediaError::Damaged(ImageKind::Jpeg);
            let mut decoder = mozjpeg::Decompress::new_mem(bytes).map_err(bad)?;
            decoder.scale(eighths as u8);
            let (space, samples) = match decoder.color_space() {
                mozjpeg::ColorSpace::JCS_GRAYSCALE => {
                    (mozjpeg::ColorSpace::JCS_GRAYSCALE, Samples::Grey)
                }
                mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK => {
                    (mozjpeg::ColorSpace::JCS_CMYK, Samples::Cmyk)
                }
                _ => (mozjpeg::ColorSpace::JCS_RGB, Samples::Rgb),
            };
            let mut started = decoder.to_colorspace(space).map_err(bad)?;
            let (width, height) = (started.width() as u32, started.height() as u32);
            let mut pixels = started.read_scanlines::<u8>().map_err(bad)?;
            started.finish().map_err(bad)?;
            if samples == Samples::Cmyk && adobe {
                pixels.iter_mut().for_each(|v| *v = u8::MAX - *v);
            }
            Ok(Decoded {
                width,
                height,
                samples,
                pixels,
            })
        },
    )
}

/// Baseline 4:2:0 at `quality`: what cameras write, and the smallest at equal quality. mozjpeg's
/// slow size optimisations (trellis quantisation, scan search) are turned off.
pub fn encode_rgb(rgb: &image::RgbImage, quality: u8) -> Result<Vec<u8>, MediaError> {
    libjpeg(
        || MediaError::Encode("libjpeg failed".into()),
        || {
            let encode_error = |e: std::io::Error| MediaError::Encode(e.to_string());
            let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
            compress.set_fastest_defaults();
            compress.set_size(rgb.width() as usize, rgb.height() as usize);
            compress.set_quality(f32::from(quality));
            compress.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
            let mut started = compress
                .start_compress(Vec::with_capacity(64 * 1024))
                .map_err(encode_error)?;
            started
                .write_scanlines(rgb.as_raw())
                .map_err(encode_error)?;
            started.finish().map_err(encode_error)
        },
    )
}

/// Runs mozjpeg code, turning libjpeg's unwinding on a fatal error into `failed()`.
pub(super) fn libjpeg<T>(
    failed: impl FnOnce() -> MediaError,
    run: impl FnOnce() -> Result<T, MediaError>,
) -> Result<T, MediaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(failed()))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let v = x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503);
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// `jpeg` with `segments` (marker, payload) inserted after SOI.
    fn with_segments(jpeg: &[u8], segments: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        for (marker, payload) in segments {
            out.extend_from_slice(&[0xFF, *marker]);
            out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn icc_chunk(seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut chunk = b"ICC_PROFILE\0".to_vec();
        chunk.extend_from_slice(&[seq, count]);
        chunk.extend_from_slice(data);
        chunk
    }

    #[test]
    fn the_end_is_the_first_eoi_and_what_follows_is_a_trailer() {
        let src = jpeg(64, 48);
        assert_eq!(structure(&src).unwrap().end, src.len());
        let mut motion = src.clone();
        motion.extend_from_slice(b"\0\0\0\x18ftypmp42");
        // A trailer holding a second JPEG (as MPF and motion photos do) is still a trailer.
        motion.extend_from_slice(&jpeg(8, 8));
        motion.extend_from_slice(b"SEFHxxxxSEFT");
        let found = structure(&motion).unwrap();
        assert_eq!(found.end, src.len());
        assert_eq!((found.frame.width, found.frame.height), (64, 48));
    }

    #[test]
    fn a_file_cut_anywhere_before_its_eoi_is_damaged() {
        let src = jpeg(64, 48);
        for cut in [3, 20, src.len() / 2, src.len() - 2, src.len() - 1] {
            assert_eq!(
                structure(&src[..cut]),
                Err(MediaError::Damaged(ImageKind::Jpeg)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn segments_yield_exif_xmp_adobe_and_the_joined_profile() {
        let src = jpeg(16, 16);
        let profile: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let tagged = with_segments(
            &src,
            &[
                (0xE2, &icc_chunk(2, 2, &profile[100..])),
                (0xE1, b"Exif\0\0II*\0"),
                (0xE1, b"http://ns.adobe.com/xap/1.0/\0<x/>"),
                (0xE2, &icc_chunk(1, 2, &profile[..100])),
                (0xEE, b"Adobe\0\x64\0\0\0\0\x01"),
            ],
        );
        let found = structure(&tagged).unwrap();
        assert_eq!(found.icc.as_deref(), Some(&profile[..]));
        assert_eq!(found.exif, Some(&b"II*\0"[..]));
        assert!(found.xmp && found.adobe);
        assert_eq!(found.end, tagged.len());

        // A chunk missing, or one repeated: no profile rather than a wrong one.
        let gap = with_segments(&src, &[(0xE2, &icc_chunk(2, 2, &profile))]);
        assert_eq!(structure(&gap).unwrap().icc, None);
        let twice = with_segments(
            &src,
            &[
                (0xE2, &icc_chunk(1, 2, &profile)),
                (0xE2, &icc_chunk(1, 2, &profile)),
            ],
        );
        assert_eq!(structure(&twice).unwrap().icc, None);
        let plain = structure(&src).unwrap();
        assert_eq!(
            (plain.icc, plain.exif, plain.xmp, plain.adobe),
            (None, None, false, false)
        );
    }

    #[test]
    fn restart_markers_stuffed_bytes_and_fill_do_not_end_the_scan() {
        // Entropy data: a stuffed FF00, a restart marker, fill bytes before EOI.
        let mut src = jpeg(16, 16);
        let sos = src.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let len = usize::from(u16::from_be_bytes([src[sos + 2], src[sos + 3]]));
        let data = sos + 2 + len;
        src.splice(data..data, [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56]);
        let eoi = src.len() - 2;
        src.splice(eoi..eoi, [0xFF, 0xFF]);
        assert_eq!(structure(&src).unwrap().end, src.len());
    }

    #[test]
    fn damaged_entropy_data_is_skipped_and_the_end_marker_decides() {
        let src = jpeg(16, 16);
        let sos = src.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let data = sos + 2 + usize::from(u16::from_be_bytes([src[sos + 2], src[sos + 3]]));
        // Bit errors that read as markers no scan can be followed by: a second SOI and SOF, a
        // reserved code, and a table whose length runs past the end of the file.
        for junk in [
            &[0xFF, 0xD8, 0x01][..],
            &[0xFF, 0xC0, 0x00, 0x11, 0x08],
            &[0xFF, 0x12, 0x34],
            &[0xFF, 0xDB, 0xFF, 0xF0, 0x00],
            &[0xFF, 0xC4, 0x00, 0x01],
        ] {
            let mut damaged = src.clone();
            damaged.splice(data + 4..data + 4, junk.iter().copied());
            assert_eq!(
                structure(&damaged).map(|s| s.end),
                Ok(damaged.len()),
                "{junk:x?}"
            );
            let cut = &damaged[..damaged.len() - 2];
            assert_eq!(
                structure(cut).map(|s| s.end),
                Err(MediaError::Damaged(ImageKind::Jpeg)),
                "{junk:x?} without its end"
            );
        }
    }

    #[test]
    fn lossless_and_12_bit_frames_are_named() {
        let src = jpeg(16, 16);
        let sof = src.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut lossless = src.clone();
        lossless[sof + 1] = 0xC3;
        assert_eq!(
            structure(&lossless),
            Err(MediaError::Unsupported(Variant::LosslessJpeg))
        );
        let mut twelve = src.clone();
        twelve[sof + 4] = 12;
        assert_eq!(
            structure(&twelve),
            Err(MediaError::Unsupported(Variant::Jpeg12Bit))
        );
    }

    #[test]
    fn not_jpegs_are_malformed_never_a_panic() {
        for bytes in [
            &b""[..],
            b"\xFF\xD8",
            b"\xFF\xD8\xFF\xD9",
            b"\xFF\xD8\xFF\xE1\x00\x01",
        ] {
            assert!(structure(bytes).is_err(), "{bytes:?}");
        }
        // Scan before frame.
        assert_eq!(
            structure(b"\xFF\xD8\xFF\xDA\x00\x02\xFF\xD9"),
            Err(MediaError::Malformed(ImageKind::Jpeg))
        );
    }
}
