//! What quality a lossy file was encoded at, read from its headers: the re-encoded edit uses the
//! same, so that it keeps about the original's size and look rather than a fixed setting that
//! would bloat a small file or degrade a fine one.

/// IJG's luminance quantisation table at quality 50 (ITU-T T.81, Annex K), in any order: only
/// its sum is used.
const IJG_LUMA: [u32; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// The IJG quality (1–100) a JPEG's first quantisation table corresponds to. libjpeg scales the
/// Annex K table by `S` = 5000/Q below quality 50 and 200 − 2Q above; the table's sum over the
/// standard one's gives `S`, and so Q. Cameras and editors with tables of their own land on the
/// IJG quality of similar coarseness. `None` without a table 0 before the first scan.
pub(super) fn jpeg(bytes: &[u8]) -> Option<u8> {
    let table = jpeg_luma_table(bytes)?;
    let sum: u32 = table.iter().map(|&q| u32::from(q)).sum();
    let standard: u32 = IJG_LUMA.iter().sum();
    let scale = 100.0 * f64::from(sum) / f64::from(standard);
    let quality = if scale <= 100.0 {
        (200.0 - scale) / 2.0
    } else {
        5000.0 / scale
    };
    Some(quality.round().clamp(1.0, 100.0) as u8)
}

/// Table 0 of the DQT segments before the first scan.
fn jpeg_luma_table(bytes: &[u8]) -> Option<Vec<u16>> {
    let mut pos = 2;
    loop {
        // Fill bytes before a marker are allowed.
        while *bytes.get(pos)? == 0xFF && *bytes.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        if matches!(marker, 0xDA | 0xD9) {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([
            *bytes.get(pos + 2)?,
            *bytes.get(pos + 3)?,
        ]));
        let segment = bytes.get(pos + 4..pos + 2 + len.max(2))?;
        if marker == 0xDB {
            let mut at = 0;
            while let Some(&spec) = segment.get(at) {
                let wide = spec >> 4 != 0;
                let size = if wide { 128 } else { 64 };
                let values = segment.get(at + 1..at + 1 + size)?;
                if spec & 0x0F == 0 {
                    return Some(if wide {
                        values
                            .chunks_exact(2)
                            .map(|v| u16::from_be_bytes([v[0], v[1]]))
                            .collect()
                    } else {
                        values.iter().map(|&v| u16::from(v)).collect()
                    });
                }
                at += 1 + size;
            }
        }
        pos += 2 + len;
    }
}

/// What an encoded WebP is: lossless (VP8L) or lossy (VP8, its quality estimated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Webp {
    Lossless,
    Lossy { quality: Option<f32> },
}

/// Reads the first image chunk of a WebP (past `VP8X`, `ICCP`, `ALPH` and others).
pub(super) fn webp(bytes: &[u8]) -> Option<Webp> {
    let mut pos = 12;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = bytes.get(pos + 8..(pos + 8).saturating_add(len))?;
        match &header[..4] {
            b"VP8L" => return Some(Webp::Lossless),
            b"VP8 " => {
                return Some(Webp::Lossy {
                    quality: vp8_quality(body),
                });
            }
            _ => {}
        }
        pos = pos
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len & 1);
    }
    None
}

/// libwebp's quality from a VP8 key frame's quantiser indices. libwebp turns quality `Q` into a
/// compression `c` = (2Q/3)^(1/3) below 0.75, (2Q − 1)^(1/3) above, and gives each of its
/// segments the index 127·(1 − c^e), `e` spreading around 1 with the segment's complexity; the
/// geometric mean of the segments' (1 − index/127) recovers `c`, and so `Q`.
fn vp8_quality(vp8: &[u8]) -> Option<f32> {
    let tag =
        u32::from(*vp8.first()?) | u32::from(*vp8.get(1)?) << 8 | u32::from(*vp8.get(2)?) << 16;
    let key_frame = tag & 1 == 0;
    let first_partition = (tag >> 5) as usize;
    if !key_frame || vp8.get(3..6)? != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let mut d = BoolDecoder::new(vp8.get(10..10 + first_partition)?)?;
    d.literal(2); // colour space, clamping
    let mut segments: Option<(bool, [i32; 4])> = None;
    if d.flag() {
        let update_map = d.flag();
        if d.flag() {
            let absolute = d.flag();
            let mut quantisers = [0; 4];
            for q in &mut quantisers {
                *q = d.optional_signed(7);
            }
            for _ in 0..4 {
                d.optional_signed(6); // loop filter levels
            }
            segments = Some((absolute, quantisers));
        }
        if update_map {
            for _ in 0..3 {
                if d.flag() {
                    d.literal(8);
                }
            }
        }
    }
    d.literal(1 + 6 + 3); // filter type, level, sharpness
    if d.flag() && d.flag() {
        for _ in 0..8 {
            d.optional_signed(6); // reference frame and mode deltas
        }
    }
    d.literal(2); // partitions
    let base = d.literal(7) as i32;
    if d.overrun {
        return None;
    }
    let indices: Vec<i32> = match segments {
        Some((true, q)) => q.to_vec(),
        Some((false, q)) => q.iter().map(|d| base + d).collect(),
        None => vec![base],
    };
    let log_c = indices
        .iter()
        .map(|&q| (1.0 - f64::from(q.clamp(0, 127)) / 127.0).max(1e-3).ln())
        .sum::<f64>()
        / indices.len() as f64;
    let linear = (3.0 * log_c).exp();
    let quality = if linear < 0.5 {
        linear * 1.5
    } else {
        (linear + 1.0) / 2.0
    };
    Some((quality * 100.0).clamp(0.0, 100.0) as f32)
}

/// VP8's boolean entropy decoder (RFC 6386, section 7), enough for the frame header.
struct BoolDecoder<'a> {
    data: &'a [u8],
    pos: usize,
    value: u32,
    range: u32,
    bits: u32,
    /// Read past the partition: what follows is not a header.
    overrun: bool,
}

impl<'a> BoolDecoder<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        let value = u32::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
        Some(Self {
            data,
            pos: 2,
            value,
            range: 255,
            bits: 0,
            overrun: false,
        })
    }

    fn read(&mut self, probability: u32) -> bool {
        let split = 1 + (((self.range - 1) * probability) >> 8);
        let big_split = split << 8;
        let bit = if self.value >= big_split {
            self.range -= split;
            self.value -= big_split;
            true
        } else {
            self.range = split;
            false
        };
        while self.range < 128 {
            self.value <<= 1;
            self.range <<= 1;
            self.bits += 1;
            if self.bits == 8 {
                self.bits = 0;
                match self.data.get(self.pos) {
                    Some(&byte) => self.value |= u32::from(byte),
                    None => self.overrun = true,
                }
                self.pos += 1;
            }
        }
        bit
    }

    fn flag(&mut self) -> bool {
        self.read(128)
    }

    fn literal(&mut self, bits: u32) -> u32 {
        (0..bits).fold(0, |v, _| (v << 1) | u32::from(self.flag()))
    }

    /// A flag, then if set a magnitude of `bits` and a sign.
    fn optional_signed(&mut self, bits: u32) -> i32 {
        if !self.flag() {
            return 0;
        }
        let magnitude = self.literal(bits) as i32;
        if self.flag() { -magnitude } else { magnitude }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: u32, h: u32) -> image::RgbImage {
        super::super::tests::photo(w, h)
    }

    #[test]
    fn jpeg_quality_is_read_back_from_libjpeg_tables() {
        let img = photo(64, 48);
        for q in [60u8, 75, 85, 92] {
            let bytes = crate::media::jpeg::encode_rgb(&img, q).unwrap();
            let estimated = jpeg(&bytes).unwrap();
            assert!(estimated.abs_diff(q) <= 1, "{q}: {estimated}");
        }
        assert_eq!(jpeg(b"\xFF\xD8\xFF\xDA\0\x02"), None);
    }

    #[test]
    fn webp_lossy_quality_is_estimated_and_lossless_is_seen() {
        let img = photo(256, 192);
        for q in [50.0f32, 75.0, 90.0] {
            let encoded = webp::Encoder::from_rgb(img.as_raw(), 256, 192)
                .encode_simple(false, q)
                .unwrap();
            let Some(Webp::Lossy {
                quality: Some(estimated),
            }) = webp(&encoded)
            else {
                panic!("not read as lossy");
            };
            assert!((estimated - q).abs() <= 8.0, "{q}: {estimated}");
        }
        let lossless = webp::Encoder::from_rgb(img.as_raw(), 256, 192)
            .encode_simple(true, 75.0)
            .unwrap();
        assert_eq!(webp(&lossless), Some(Webp::Lossless));
    }
}
