//! AVIF: the container walked without decoding, and the AV1 decode to 8-bit RGB(A).
//!
//! An AVIF file is an ISO-BMFF (HEIF) container: an `ftyp`, a `meta` box describing items (the
//! primary image, its alpha plane, grid tiles, Exif) and their properties, and the items' data,
//! usually in an `mdat`. Nothing in it is trusted: every count is bounded, every box size is
//! checked against its parent, every item's data against the file, and nothing is allocated in
//! proportion to a size the file declares. `header` reads what the probe, the cost model and the
//! decoder need; it also reads each AV1 item's sequence header (with the decoder's own parser), so
//! the bit depth and chroma layout the cost model uses are the ones the decoder will meet, and it
//! counts the frames in each item so that a stream of hidden frames cannot fill the decoder's
//! reference slots with pictures the cost model did not count.
//!
//! Decisions:
//! - An animated AVIF (`avis`, an image sequence in a `moov` track) that also carries a primary
//!   still item (libavif writes its first frame as one) is taken like an animated GIF: the
//!   original is stored as sent and the thumbnail made from the still. One without a still item is
//!   refused as `AnimatedAvif`.
//! - Width and height are the primary item's `ispe`, before `irot`/`imir`, which become the
//!   equivalent EXIF orientation for the thumbnailer. A `clap` crop is not applied: the whole
//!   coded image is shown (libavif also leaves the crop to its caller); encoders write it for odd
//!   sizes, where it trims at most a row or column.
//! - For a thumbnail, an opaque image is box-filtered to twice the thumbnail's size as each strip
//!   leaves the YUV conversion (`reduced_size`), as PNG rows are, so the whole image is never held
//!   as RGB; only the coded frame is. An image with alpha is converted whole: its alpha plane,
//!   decoded after the colour, would have to weight the colour's average.
//! - Film grain is not synthesised: it would double the picture in memory, and a thumbnail
//!   averages grain away.
//! - Colour: `colr` `nclx` gives the YUV matrix and range, and the primaries and transfer the
//!   thumbnail is colour-managed from; without it, the AV1 sequence header's colour description
//!   does. Unspecified matrices are BT.601, as libavif reads them.
//!
//! The decoder is rav1d (dav1d ported to Rust, built without its assembly so nothing but rustc is
//! needed for any target), run on the calling thread with one worker, no frame delay and a frame
//! size limit of the item's declared size; a panic inside it is caught and reported as a
//! malformed file. YUV becomes RGB through yuvutils-rs, a strip of rows at a time; 10- and 12-bit
//! samples are rounded to 8 bits first.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use re_rav1d::dav1d;
use re_rav1d::include::dav1d::headers::{
    DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I420, DAV1D_PIXEL_LAYOUT_I422, Dav1dSequenceHeader,
};
use yuvutils_rs::{YuvGrayImage, YuvPlanarImage, YuvRange, YuvStandardMatrix};

use super::{ImageKind, MAX_PIXELS, MAX_SIDE, MediaError, Variant};

/// Items in a file (a grid of `MAX_TILES` with an alpha grid is about 2050).
const MAX_ITEMS: usize = 4096;
/// Properties in `ipco`.
const MAX_PROPERTIES: usize = 4096;
/// Item-property associations, item references and item data extents, each over the whole file.
const MAX_ASSOCIATIONS: usize = 65_536;
const MAX_REFERENCES: usize = 65_536;
const MAX_EXTENTS: usize = 65_536;
/// Tiles in a grid image: a 64-megapixel image in 256×256 tiles.
pub const MAX_TILES: usize = 1024;
/// Frames in one AV1 image item: one, or one per spatial layer of a layered image (AV1 has at
/// most four).
const MAX_FRAMES: u64 = 4;
/// Largest sequence header OBU read (real ones are 10–40 bytes).
const MAX_SEQUENCE_HEADER: usize = 4096;
/// Rows converted from YUV to RGB at a time (even, for 4:2:0).
const STRIP_ROWS: usize = 32;
/// What the AV1 decoder allocates whatever the picture: its context, entropy tables, scratch.
const DECODER_FIXED: u64 = 2 * 1024 * 1024;
/// What the AV1 decoder allocates per pixel of a frame beside the picture (loop filter levels and
/// masks, segmentation maps, motion vectors, CDEF and restoration lines), with room to spare.
const DECODER_PER_PIXEL_NUM: u64 = 1;
/// What the AV1 decoder holds per AV1 tile of a frame (entropy contexts and tile state; 12.2 KB
/// measured).
const TILE_STATE: u64 = 16 * 1024;
/// AV1's own limits on tiles.
const MAX_AV1_TILE_COLS: u64 = 64;
const MAX_AV1_TILE_ROWS: u64 = 64;
/// How much of a frame header OBU is read for its tile layout.
const MAX_FRAME_HEADER: usize = 1024;
/// How much a coded item's data may add up to over all the tiles decoded, as a multiple of the
/// file (a grid may use one tile many times, but not a megabyte tile a thousand times).
const MAX_DATA_MULTIPLE: u64 = 4;

fn malformed() -> MediaError {
    MediaError::Malformed(ImageKind::Avif)
}

fn damaged() -> MediaError {
    MediaError::Damaged(ImageKind::Avif)
}

fn unsupported(variant: Variant) -> MediaError {
    MediaError::Unsupported(variant)
}

/// H.273 colour code points, from `colr` `nclx` or the AV1 sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cicp {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
}

/// Chroma subsampling of the AV1 planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsampling {
    /// Monochrome (4:0:0).
    Grey,
    S420,
    S422,
    S444,
}

impl Subsampling {
    /// Chroma plane size for a luma plane of `w`×`h`.
    fn chroma(self, w: usize, h: usize) -> (usize, usize) {
        match self {
            Self::Grey => (0, 0),
            Self::S420 => (w.div_ceil(2), h.div_ceil(2)),
            Self::S422 => (w.div_ceil(2), h),
            Self::S444 => (w, h),
        }
    }
}

/// What `header` learned: enough to probe, cost and decode the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The primary item's `ispe`: the image as stored, before `irot`/`imir`.
    pub width: u32,
    pub height: u32,
    /// `irot` and `imir` as the EXIF orientation that undoes them.
    pub orientation: Orientation,
    /// The ICC profile of `colr` `prof`/`rICC`, when at most `jpeg::MAX_ICC_BYTES`.
    pub icc: Option<Vec<u8>>,
    /// `colr` `nclx`, or the AV1 sequence header's colour description.
    pub cicp: Option<Cicp>,
    /// Offset just past the last byte of the file's boxes and of the items decoded.
    pub end: usize,
    /// An ICC profile, Exif or XMP.
    pub metadata: bool,
    /// Coded bit depth of the colour planes: 8, 10 or 12.
    pub depth: u8,
    pub subsampling: Subsampling,
    pub alpha: bool,
    /// The colour samples are premultiplied by alpha (`prem`).
    pub premultiplied: bool,
    /// Colour tiles: 1, or the cells of a grid.
    pub tiles: usize,
    /// An image sequence (`avis` brand or a `moov` track) whose still item is what `decode` gives:
    /// its other frames would be lost by anything that rewrites the file from the still.
    pub sequence: bool,
    colour: Coded,
    alpha_image: Option<Coded>,
    /// YUV to RGB: the matrix coefficients and whether the samples use the full range.
    matrix: u8,
    full_range: bool,
    operating_point: u8,
}

/// One image as the decoder sees it: a single AV1 item (one tile) or a grid of them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Coded {
    width: u32,
    height: u32,
    columns: u32,
    tile_width: u32,
    tile_height: u32,
    /// Each tile's data: byte ranges of the file, in order.
    tiles: Vec<Vec<Range<usize>>>,
    depth: u8,
    subsampling: Subsampling,
    full_range: bool,
    /// The colour description of the (first) tile's sequence header.
    cicp: Option<Cicp>,
    /// Most frames in one tile, and whether any frame may use super-resolution (dav1d then holds
    /// the frame at its coded and its upscaled width).
    frames: u64,
    superres: bool,
    /// Most AV1 tiles in a frame of one tile.
    av1_tiles: u64,
}

/// Whether `bytes` start with an ISO-BMFF `ftyp` naming AVIF (`avif`, a still image; `avis`, an
/// image sequence) as its major or a compatible brand.
pub fn sniff(bytes: &[u8]) -> bool {
    let Some(head) = bytes.get(..16) else {
        return false;
    };
    if &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if size < 16 {
        return false;
    }
    let brands = &bytes[..size.min(bytes.len()).min(16 + 4 * 64)];
    brands_of(brands).any(|b| b == *b"avif" || b == *b"avis")
}

/// Major brand then compatible brands of an `ftyp` box (header included).
fn brands_of(ftyp: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    let major = ftyp.get(8..12).into_iter();
    let compatible = ftyp.get(16..).unwrap_or_default().chunks_exact(4);
    major.chain(compatible).map(|b| [b[0], b[1], b[2], b[3]])
}

// ---------------------------------------------------------------------------------------------
// Reading boxes

/// A box: its type, its body (after the header) and where it lies in the file.
#[derive(Debug, Clone, Copy)]
struct Bx<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    /// File offset of the body.
    at: usize,
    /// File offset just past the box.
    end: usize,
}

/// A box header at `pos` of `data` (which starts at file offset `base`): type, header length and
/// total size (`None` for "to the end"). `None` when `data` ends within the header.
fn box_header(data: &[u8], pos: usize) -> Option<([u8; 4], usize, Option<u64>)> {
    let head = data.get(pos..pos.checked_add(8)?)?;
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (mut header, size) = match size {
        0 => (8, None),
        1 => {
            let large = data.get(pos + 8..pos + 16)?;
            (16, Some(u64::from_be_bytes(large.try_into().ok()?)))
        }
        n => (8, Some(u64::from(n))),
    };
    if kind == *b"uuid" {
        header += 16;
    }
    Some((kind, header, size))
}

/// The child boxes of a container body (at file offset `at`); a child running past its parent,
/// or smaller than its own header, is malformed.
fn children(body: &[u8], at: usize) -> impl Iterator<Item = Result<Bx<'_>, MediaError>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= body.len() {
            return None;
        }
        let Some((kind, header, size)) = box_header(body, pos) else {
            pos = body.len();
            return Some(Err(malformed()));
        };
        let size = size.map_or(body.len() - pos, |s| {
            usize::try_from(s).unwrap_or(usize::MAX)
        });
        if size < header || size > body.len() - pos {
            pos = body.len();
            return Some(Err(malformed()));
        }
        let found = Bx {
            kind,
            body: &body[pos + header..pos + size],
            at: at + pos + header,
            end: at + pos + size,
        };
        pos += size;
        Some(Ok(found))
    })
}

/// A cursor over a box body; running out is malformed (the boxes read with it are whole).
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        let end = self.pos.checked_add(n).ok_or_else(malformed)?;
        let out = self.data.get(self.pos..end).ok_or_else(malformed)?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MediaError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MediaError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned integer of `size` bytes (0, 4 or 8, as `iloc` allows; 0 reads as 0).
    fn uint(&mut self, size: u8) -> Result<u64, MediaError> {
        match size {
            0 => Ok(0),
            4 => self.u32().map(u64::from),
            8 => {
                let b = self.bytes(8)?;
                Ok(u64::from_be_bytes(b.try_into().map_err(|_| malformed())?))
            }
            _ => Err(malformed()),
        }
    }

    /// An item ID: 16 bits in the boxes' version 0, 32 bits after.
    fn id(&mut self, wide: bool) -> Result<u32, MediaError> {
        if wide {
            self.u32()
        } else {
            self.u16().map(u32::from)
        }
    }

    /// A full box's version and flags.
    fn full(&mut self) -> Result<(u8, u32), MediaError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    /// A NUL-terminated string (the rest, when unterminated).
    fn string(&mut self) -> &'a [u8] {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let len = memchr::memchr(0, rest).unwrap_or(rest.len());
        self.pos += (len + 1).min(rest.len());
        &rest[..len]
    }

    fn rest(&self) -> &'a [u8] {
        &self.data[self.pos.min(self.data.len())..]
    }
}

// ---------------------------------------------------------------------------------------------
// The meta box

#[derive(Debug, Clone)]
struct ItemInfo {
    id: u32,
    kind: [u8; 4],
    protected: bool,
    /// `mime` items: their content type.
    content_type: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Location {
    id: u32,
    construction: u8,
    external: bool,
    base: u64,
    extents: Range<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Association {
    item: u32,
    /// 1-based index into `ipco`; 0 is "none".
    property: u16,
    essential: bool,
}

/// The `meta` box, its tables read but not yet resolved.
#[derive(Default)]
struct Meta<'a> {
    primary: Option<u32>,
    items: Vec<ItemInfo>,
    locations: Vec<Location>,
    /// Every extent of every location, as (offset, length).
    extents: Vec<(u64, u64)>,
    /// (type, from, to), in file order.
    references: Vec<([u8; 4], u32, u32)>,
    properties: Vec<Bx<'a>>,
    associations: Vec<Association>,
    idat: Option<Bx<'a>>,
}

fn parse_meta<'a>(meta: Bx<'a>) -> Result<Meta<'a>, MediaError> {
    let mut r = Reader::new(meta.body);
    r.full()?;
    let mut found = Meta::default();
    let mut seen: Vec<[u8; 4]> = Vec::new();
    for child in children(r.rest(), meta.at + 4) {
        let child = child?;
        if matches!(
            &child.kind,
            b"hdlr" | b"pitm" | b"iloc" | b"iinf" | b"iref" | b"iprp" | b"idat"
        ) {
            if seen.contains(&child.kind) {
                return Err(malformed());
            }
            seen.push(child.kind);
        }
        match &child.kind {
            b"hdlr" => {
                let mut r = Reader::new(child.body);
                r.full()?;
                r.u32()?;
                if r.bytes(4)? != b"pict" {
                    return Err(malformed());
                }
            }
            b"pitm" => {
                let mut r = Reader::new(child.body);
                let (version, _) = r.full()?;
                found.primary = Some(r.id(version > 0)?);
            }
            b"iinf" => parse_iinf(child, &mut found)?,
            b"iloc" => parse_iloc(child, &mut found)?,
            b"iref" => parse_iref(child, &mut found)?,
            b"iprp" => parse_iprp(child, &mut found)?,
            b"idat" => found.idat = Some(child),
            _ => {}
        }
    }
    if !seen.contains(b"hdlr") {
        return Err(malformed());
    }
    Ok(found)
}

fn parse_iinf(iinf: Bx<'_>, meta: &mut Meta<'_>) -> Result<(), MediaError> {
    let mut r = Reader::new(iinf.body);
    let (version, _) = r.full()?;
    r.id(version > 0)?;
    for infe in children(r.rest(), 0) {
        let infe = infe?;
        if &infe.kind != b"infe" {
            continue;
        }
        if meta.items.len() == MAX_ITEMS {
            return Err(malformed());
        }
        let mut r = Reader::new(infe.body);
        let (version, _) = r.full()?;
        if version < 2 {
            // Versions 0 and 1 describe files, not image items: nothing this decoder uses.
            continue;
        }
        let id = r.id(version > 2)?;
        let protected = r.u16()? != 0;
        let kind: [u8; 4] = r.bytes(4)?.try_into().map_err(|_| malformed())?;
        r.string();
        let content_type = if &kind == b"mime" {
            r.string().iter().take(64).copied().collect()
        } else {
            Vec::new()
        };
        if meta.items.iter().any(|i| i.id == id) {
            return Err(malformed());
        }
        meta.items.push(ItemInfo {
            id,
            kind,
            protected,
            content_type,
        });
    }
    Ok(())
}

fn parse_iloc(iloc: Bx<'_>, meta: &mut Meta<'_>) -> Result<(), MediaError> {
    let mut r = Reader::new(iloc.body);
    let (version, _) = r.full()?;
    if version > 2 {
        return Err(malformed());
    }
    let sizes = r.u16()?;
    let offset_size = (sizes >> 12) as u8;
    let length_size = ((sizes >> 8) & 15) as u8;
    let base_size = ((sizes >> 4) & 15) as u8;
    let index_size = if version > 0 { (sizes & 15) as u8 } else { 0 };
    let count = if version < 2 {
        u32::from(r.u16()?)
    } else {
        r.u32()?
    };
    if count as usize > MAX_ITEMS {
        return Err(malformed());
    }
    for _ in 0..count {
        let id = r.id(version == 2)?;
        let construction = if version > 0 {
            (r.u16()? & 15) as u8
        } else {
            0
        };
        let external = r.u16()? != 0;
        let base = r.uint(base_size)?;
        let extents = r.u16()? as usize;
        let first = meta.extents.len();
        if first + extents > MAX_EXTENTS {
            return Err(malformed());
        }
        for _ in 0..extents {
            r.uint(index_size)?;
            let offset = r.uint(offset_size)?;
            let length = r.uint(length_size)?;
            meta.extents.push((offset, length));
        }
        if meta.locations.iter().any(|l| l.id == id) {
            return Err(malformed());
        }
        meta.locations.push(Location {
            id,
            construction,
            external,
            base,
            extents: first..meta.extents.len(),
        });
    }
    Ok(())
}

fn parse_iref(iref: Bx<'_>, meta: &mut Meta<'_>) -> Result<(), MediaError> {
    let mut r = Reader::new(iref.body);
    let (version, _) = r.full()?;
    for reference in children(r.rest(), 0) {
        let reference = reference?;
        let mut r = Reader::new(reference.body);
        let from = r.id(version > 0)?;
        let count = r.u16()?;
        for _ in 0..count {
            if meta.references.len() == MAX_REFERENCES {
                return Err(malformed());
            }
            let to = r.id(version > 0)?;
            meta.references.push((reference.kind, from, to));
        }
    }
    Ok(())
}

fn parse_iprp<'a>(iprp: Bx<'a>, meta: &mut Meta<'a>) -> Result<(), MediaError> {
    let mut ipco_seen = false;
    for child in children(iprp.body, iprp.at) {
        let child = child?;
        match &child.kind {
            b"ipco" => {
                if ipco_seen {
                    return Err(malformed());
                }
                ipco_seen = true;
                for property in children(child.body, child.at) {
                    if meta.properties.len() == MAX_PROPERTIES {
                        return Err(malformed());
                    }
                    meta.properties.push(property?);
                }
            }
            b"ipma" => {
                let mut r = Reader::new(child.body);
                let (version, flags) = r.full()?;
                let entries = r.u32()?;
                for _ in 0..entries {
                    let item = r.id(version > 0)?;
                    let count = r.u8()?;
                    if meta.associations.iter().any(|a| a.item == item) {
                        return Err(malformed());
                    }
                    for _ in 0..count {
                        if meta.associations.len() == MAX_ASSOCIATIONS {
                            return Err(malformed());
                        }
                        let (property, essential) = if flags & 1 != 0 {
                            let v = r.u16()?;
                            (v & 0x7FFF, v & 0x8000 != 0)
                        } else {
                            let v = r.u8()?;
                            (u16::from(v & 0x7F), v & 0x80 != 0)
                        };
                        meta.associations.push(Association {
                            item,
                            property,
                            essential,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Item properties

/// What an image item's properties say.
#[derive(Debug, Default, Clone)]
struct Properties {
    ispe: Option<(u32, u32)>,
    av1c: bool,
    nclx: Option<Cicp>,
    icc: Option<Range<usize>>,
    irot: u8,
    imir: Option<u8>,
    alpha: bool,
    operating_point: u8,
}

impl Meta<'_> {
    fn item(&self, id: u32) -> Option<&ItemInfo> {
        self.items.iter().find(|i| i.id == id)
    }

    /// The properties associated with `id`. An essential property this decoder does not know,
    /// or one asking for what it does not do, makes the item unsupported.
    fn properties(&self, id: u32) -> Result<Properties, MediaError> {
        let mut found = Properties::default();
        for a in self.associations.iter().filter(|a| a.item == id) {
            if a.property == 0 {
                continue;
            }
            let property = self
                .properties
                .get(usize::from(a.property) - 1)
                .ok_or_else(malformed)?;
            let mut r = Reader::new(property.body);
            match &property.kind {
                b"ispe" => {
                    r.full()?;
                    found.ispe = Some((r.u32()?, r.u32()?));
                }
                b"av1C" => {
                    // Marker bit and version 1.
                    if r.u8()? != 0x81 {
                        return Err(malformed());
                    }
                    found.av1c = true;
                }
                b"colr" => match r.bytes(4)? {
                    b"nclx" => {
                        let code = |v: u16| u8::try_from(v).unwrap_or(2);
                        found.nclx = Some(Cicp {
                            primaries: code(r.u16()?),
                            transfer: code(r.u16()?),
                            matrix: code(r.u16()?),
                            full_range: r.u8()? & 0x80 != 0,
                        });
                    }
                    b"prof" | b"rICC" => {
                        found.icc = Some(property.at + 4..property.end);
                    }
                    _ => {}
                },
                b"irot" => found.irot = r.u8()? & 3,
                b"imir" => found.imir = Some(r.u8()? & 1),
                b"auxC" => {
                    r.full()?;
                    let urn = r.string();
                    found.alpha = urn == b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"
                        || urn == b"urn:mpeg:hevc:2015:auxid:1";
                }
                b"a1op" => found.operating_point = r.u8()?,
                b"lsel" if r.u16()? != 0xFFFF => {
                    return Err(unsupported(Variant::AvifFeature));
                }
                b"lsel" => {}
                // Transformations and metadata that change nothing decoded here.
                b"clap" | b"pasp" | b"pixi" | b"a1lx" | b"clli" | b"mdcv" | b"cclv" | b"amve"
                | b"rloc" => {}
                _ if a.essential => return Err(unsupported(Variant::AvifFeature)),
                _ => {}
            }
        }
        Ok(found)
    }

    /// The file ranges holding item `id`'s data, checked against the file: `Damaged` when they
    /// run past its end.
    fn data(&self, id: u32, file: &[u8]) -> Result<Vec<Range<usize>>, MediaError> {
        let location = self
            .locations
            .iter()
            .find(|l| l.id == id)
            .ok_or_else(malformed)?;
        if location.external {
            return Err(unsupported(Variant::AvifFeature));
        }
        let (origin, limit) = match location.construction {
            0 => (0u64, None),
            1 => {
                let idat = self.idat.ok_or_else(malformed)?;
                (idat.at as u64, Some(idat.end))
            }
            _ => return Err(unsupported(Variant::AvifFeature)),
        };
        let mut ranges = Vec::with_capacity(location.extents.len());
        let mut total = 0u64;
        for &(offset, length) in &self.extents[location.extents.clone()] {
            let start = origin
                .checked_add(location.base)
                .and_then(|s| s.checked_add(offset))
                .ok_or_else(malformed)?;
            let end = match (length, limit) {
                (0, Some(limit)) => limit as u64,
                (0, None) => file.len() as u64,
                _ => start.checked_add(length).ok_or_else(malformed)?,
            };
            if start > end {
                return Err(if limit.is_none() {
                    damaged()
                } else {
                    malformed()
                });
            }
            match limit {
                Some(limit) if end > limit as u64 => return Err(malformed()),
                None if end > file.len() as u64 => return Err(damaged()),
                _ => {}
            }
            total += end - start;
            if total > file.len() as u64 {
                return Err(malformed());
            }
            ranges.push(start as usize..end as usize);
        }
        if total == 0 {
            return Err(malformed());
        }
        Ok(ranges)
    }

    /// The items `from` references with `kind`, in order.
    fn references(&self, kind: &[u8; 4], from: u32) -> impl Iterator<Item = u32> + '_ {
        let kind = *kind;
        self.references
            .iter()
            .filter(move |(k, f, _)| *k == kind && *f == from)
            .map(|&(_, _, to)| to)
    }
}

// ---------------------------------------------------------------------------------------------
// AV1 items

/// What the OBUs of one AV1 item say.
struct Av1Item {
    depth: u8,
    subsampling: Subsampling,
    full_range: bool,
    cicp: Option<Cicp>,
    frames: u64,
    superres: bool,
    /// The sequence's largest frame size, and whether it uses the reduced still picture header
    /// (whose one frame has that size).
    max_size: (u32, u32),
    still: bool,
    /// AV1 tiles in the item's largest frame, read from its header, or the most the frame size
    /// and the data allow when the header is not a still picture's.
    av1_tiles: u64,
}

/// The bytes of `ranges` of `file`, as one sequence.
fn joined<'a>(file: &'a [u8], ranges: &'a [Range<usize>]) -> impl Iterator<Item = &'a [u8]> {
    ranges.iter().map(move |r| &file[r.clone()])
}

/// A reader over item data split into extents.
struct Spans<'a> {
    spans: Vec<&'a [u8]>,
    span: usize,
    pos: usize,
}

impl<'a> Spans<'a> {
    fn byte(&mut self) -> Option<u8> {
        loop {
            let span = self.spans.get(self.span)?;
            if let Some(&b) = span.get(self.pos) {
                self.pos += 1;
                return Some(b);
            }
            self.span += 1;
            self.pos = 0;
        }
    }

    fn remaining(&self) -> u64 {
        let here = self
            .spans
            .get(self.span)
            .map_or(0, |s| s.len().saturating_sub(self.pos));
        let after: usize = self.spans.iter().skip(self.span + 1).map(|s| s.len()).sum();
        (here + after) as u64
    }

    fn skip(&mut self, mut n: u64) {
        while n > 0 {
            let Some(span) = self.spans.get(self.span) else {
                return;
            };
            let here = (span.len() - self.pos.min(span.len())) as u64;
            if n < here {
                self.pos += n as usize;
                return;
            }
            n -= here;
            self.span += 1;
            self.pos = 0;
        }
    }
}

/// Walks the OBUs of an AV1 image item: exactly one sequence header, parsed by the decoder's own
/// parser, and one to `MAX_FRAMES` frames.
fn av1_item(file: &[u8], ranges: &[Range<usize>]) -> Result<Av1Item, MediaError> {
    let mut data = Spans {
        spans: joined(file, ranges).collect(),
        span: 0,
        pos: 0,
    };
    let total = data.remaining();
    let mut sequence: Option<Vec<u8>> = None;
    let mut frame_headers: Vec<FrameHeader> = Vec::new();
    let mut frames = 0u64;
    while let Some(header) = data.byte() {
        if header & 0x80 != 0 {
            return Err(malformed());
        }
        let kind = (header >> 3) & 15;
        let extension = if header & 4 != 0 {
            Some(data.byte().ok_or_else(malformed)?)
        } else {
            None
        };
        let size = if header & 2 != 0 {
            let mut size = 0u64;
            for i in 0..8 {
                let b = data.byte().ok_or_else(malformed)?;
                size |= u64::from(b & 0x7F) << (7 * i);
                if b & 0x80 == 0 {
                    break;
                }
                if i == 7 {
                    return Err(malformed());
                }
            }
            size
        } else {
            data.remaining()
        };
        if size > data.remaining() {
            return Err(malformed());
        }
        match kind {
            1 => {
                if sequence.is_some() || size > MAX_SEQUENCE_HEADER as u64 {
                    return Err(malformed());
                }
                // The OBU as the parser wants it: with its size field.
                let mut obu = vec![header | 2];
                obu.extend(extension);
                let mut v = size;
                loop {
                    let b = (v & 0x7F) as u8;
                    v >>= 7;
                    obu.push(if v > 0 { b | 0x80 } else { b });
                    if v == 0 {
                        break;
                    }
                }
                for _ in 0..size {
                    obu.push(data.byte().ok_or_else(malformed)?);
                }
                sequence = Some(obu);
                continue;
            }
            3 | 6 => {
                frames += 1;
                if frames > MAX_FRAMES {
                    return Err(malformed());
                }
                let keep = size.min(MAX_FRAME_HEADER as u64);
                let mut payload = Vec::with_capacity(keep as usize);
                for _ in 0..keep {
                    payload.push(data.byte().ok_or_else(malformed)?);
                }
                let ext = extension.unwrap_or(0);
                frame_headers.push(FrameHeader {
                    payload,
                    temporal_id: ext >> 5,
                    spatial_id: (ext >> 3) & 3,
                });
                data.skip(size - keep);
                continue;
            }
            _ => {}
        }
        data.skip(size);
    }
    let sequence = sequence.ok_or_else(malformed)?;
    if frames == 0 {
        return Err(malformed());
    }
    let header = parse_sequence_header(&sequence).ok_or_else(malformed)?;
    let depth = match header.hbd {
        0 => 8,
        1 => 10,
        2 => 12,
        _ => return Err(malformed()),
    };
    let subsampling = match header.layout {
        DAV1D_PIXEL_LAYOUT_I400 => Subsampling::Grey,
        DAV1D_PIXEL_LAYOUT_I420 => Subsampling::S420,
        DAV1D_PIXEL_LAYOUT_I422 => Subsampling::S422,
        _ => Subsampling::S444,
    };
    let code = |v: u32| u8::try_from(v).unwrap_or(2);
    let cicp = Cicp {
        primaries: code(header.pri),
        transfer: code(header.trc),
        matrix: code(header.mtrx),
        full_range: header.color_range != 0,
    };
    let described = (cicp.primaries, cicp.transfer, cicp.matrix) != (2, 2, 2);
    let av1_tiles = frame_headers
        .iter()
        .map(|h| av1_tiles(&header, h, total))
        .max()
        .unwrap_or(1);
    Ok(Av1Item {
        depth,
        subsampling,
        full_range: header.color_range != 0,
        cicp: described.then_some(cicp),
        frames,
        superres: header.super_res != 0,
        max_size: (
            u32::try_from(header.max_width).unwrap_or(0),
            u32::try_from(header.max_height).unwrap_or(0),
        ),
        still: header.reduced_still_picture_header != 0,
        av1_tiles,
    })
}

/// The number of AV1 tiles of an intra frame, from its header; for other frames, and when the
/// header does not read, the most there can be: every 64×64 superblock a tile up to AV1's 64×64
/// tiles, and no more than the data can hold (each tile but the last takes a size field and a
/// byte, and the decoder sets up a frame's tiles only once all their data has arrived).
fn av1_tiles(sequence: &Dav1dSequenceHeader, frame: &FrameHeader, data_len: u64) -> u64 {
    let width = u64::try_from(sequence.max_width).unwrap_or(0);
    let height = u64::try_from(sequence.max_height).unwrap_or(0);
    let most =
        width.div_ceil(64).min(MAX_AV1_TILE_COLS) * height.div_ceil(64).min(MAX_AV1_TILE_ROWS);
    let most = most.min(data_len / 2 + 1).max(1);
    intra_frame_tiles(sequence, frame)
        .filter(|&t| t <= most)
        .unwrap_or(most)
}

/// The start of a frame header OBU's payload, and the layer its extension names.
struct FrameHeader {
    payload: Vec<u8>,
    temporal_id: u8,
    spatial_id: u8,
}

/// Reads MSB-first bits, as AV1 headers are written.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn f(&mut self, n: u32) -> Option<u64> {
        let mut v = 0;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    fn flag(&mut self) -> Option<bool> {
        self.f(1).map(|v| v == 1)
    }

    /// `ns(n)`: a value below `n` in as few bits as the spec's non-symmetric code uses.
    fn ns(&mut self, n: u64) -> Option<u64> {
        let w = 64 - n.leading_zeros();
        let m = (1u64 << w) - n;
        let v = self.f(w - 1)?;
        if v < m {
            return Some(v);
        }
        Some((v << 1) - m + self.f(1)?)
    }
}

/// `tile_log2` of the AV1 specification: the least `k` with `block << k` reaching `target`.
fn tile_log2(block: u64, target: u64) -> u32 {
    let mut k = 0;
    while (block << k) < target {
        k += 1;
    }
    k
}

/// Tiles of a key or intra-only frame: its uncompressed header read up to `tile_info()` (AV1
/// specification 5.9.2, 5.9.5–5.9.8 and 5.9.15). `None` for other frames.
fn intra_frame_tiles(sequence: &Dav1dSequenceHeader, frame: &FrameHeader) -> Option<u64> {
    use re_rav1d::include::dav1d::headers::{DAV1D_ADAPTIVE, DAV1D_ON};
    let s = sequence;
    let reduced = s.reduced_still_picture_header != 0;
    let mut b = Bits {
        data: &frame.payload,
        pos: 0,
    };
    let timing = s.decoder_model_info_present != 0 && s.equal_picture_interval == 0;
    let (key, show, error_resilient) = if reduced {
        (true, true, true)
    } else {
        if b.flag()? {
            // show_existing_frame: nothing is decoded.
            return Some(1);
        }
        let frame_type = b.f(2)?;
        if frame_type != 0 && frame_type != 2 {
            return None;
        }
        let show = b.flag()?;
        if show && timing {
            b.f(u32::from(s.frame_presentation_delay_length))?;
        }
        if !show {
            b.f(1)?;
        }
        let key = frame_type == 0;
        let error_resilient = key && show || b.flag()?;
        (key, show, error_resilient)
    };
    let disable_cdf_update = b.flag()?;
    let screen_content = match s.screen_content_tools {
        DAV1D_ADAPTIVE => b.flag()?,
        v => v == DAV1D_ON,
    };
    if screen_content && s.force_integer_mv == DAV1D_ADAPTIVE {
        b.f(1)?;
    }
    if s.frame_id_numbers_present != 0 {
        b.f(u32::from(s.frame_id_n_bits))?;
    }
    let size_override = !reduced && b.flag()?;
    if s.order_hint != 0 {
        b.f(u32::from(s.order_hint_n_bits))?;
    }
    if s.decoder_model_info_present != 0 && b.flag()? {
        for op in &s.operating_points[..usize::from(s.num_operating_points).min(32)] {
            if op.decoder_model_param_present != 0 {
                let temporal = (op.idc >> frame.temporal_id) & 1;
                let spatial = (op.idc >> (frame.spatial_id + 8)) & 1;
                if op.idc == 0 || (temporal != 0 && spatial != 0) {
                    b.f(u32::from(s.buffer_removal_delay_length))?;
                }
            }
        }
    }
    let refresh_all = key && show;
    if !refresh_all && b.f(8)? != 0xFF && error_resilient && s.order_hint != 0 {
        b.f(8 * u32::from(s.order_hint_n_bits))?;
    }
    let (upscaled, height) = if size_override {
        (
            b.f(u32::from(s.width_n_bits))? + 1,
            b.f(u32::from(s.height_n_bits))? + 1,
        )
    } else {
        (
            u64::try_from(s.max_width).ok()?,
            u64::try_from(s.max_height).ok()?,
        )
    };
    let mut width = upscaled;
    let superres = s.super_res != 0 && b.flag()?;
    if superres {
        let denominator = b.f(3)? + 9;
        width = ((upscaled * 8 + denominator / 2) / denominator).max(upscaled.min(16));
    }
    if b.flag()? {
        b.f(32)?;
    }
    if screen_content && !superres {
        b.f(1)?;
    }
    if !reduced && !disable_cdf_update {
        b.f(1)?;
    }
    let mi_cols = 2 * width.div_ceil(8);
    let mi_rows = 2 * height.div_ceil(8);
    let (sb_cols, sb_rows, sb_size) = if sequence.sb128 != 0 {
        (mi_cols.div_ceil(32), mi_rows.div_ceil(32), 7)
    } else {
        (mi_cols.div_ceil(16), mi_rows.div_ceil(16), 6)
    };
    let max_tile_width_sb = 4096 >> sb_size;
    let max_tile_area_sb = (4096 * 2304) >> (2 * sb_size);
    let min_log2_cols = tile_log2(max_tile_width_sb, sb_cols);
    let max_log2_cols = tile_log2(1, sb_cols.min(MAX_AV1_TILE_COLS));
    let max_log2_rows = tile_log2(1, sb_rows.min(MAX_AV1_TILE_ROWS));
    let min_log2_tiles = min_log2_cols.max(tile_log2(max_tile_area_sb, sb_rows * sb_cols));
    let (cols, rows) = if b.flag()? {
        let mut cols_log2 = min_log2_cols;
        while cols_log2 < max_log2_cols && b.flag()? {
            cols_log2 += 1;
        }
        let width_sb = (sb_cols + (1 << cols_log2) - 1) >> cols_log2;
        let mut rows_log2 = min_log2_tiles.saturating_sub(cols_log2);
        while rows_log2 < max_log2_rows && b.flag()? {
            rows_log2 += 1;
        }
        let height_sb = (sb_rows + (1 << rows_log2) - 1) >> rows_log2;
        (sb_cols.div_ceil(width_sb), sb_rows.div_ceil(height_sb))
    } else {
        let (mut cols, mut start, mut widest) = (0, 0, 0);
        while start < sb_cols && cols < MAX_AV1_TILE_COLS {
            let size = b.ns((sb_cols - start).min(max_tile_width_sb))? + 1;
            widest = widest.max(size);
            start += size;
            cols += 1;
        }
        let area = if min_log2_tiles > 0 {
            (sb_rows * sb_cols) >> (min_log2_tiles + 1)
        } else {
            sb_rows * sb_cols
        };
        let max_height_sb = (area / widest).max(1);
        let (mut rows, mut start) = (0, 0);
        while start < sb_rows && rows < MAX_AV1_TILE_ROWS {
            start += b.ns((sb_rows - start).min(max_height_sb))? + 1;
            rows += 1;
        }
        (cols, rows)
    };
    Some(cols * rows)
}

/// The decoder's sequence header parser, on one sequence header OBU.
fn parse_sequence_header(obu: &[u8]) -> Option<Dav1dSequenceHeader> {
    let mut out = MaybeUninit::<Dav1dSequenceHeader>::uninit();
    let parse = || {
        // SAFETY: `out` is valid for a write of a `Dav1dSequenceHeader`, and the data pointer
        // and length are those of the live slice `obu`, which the parser only reads.
        unsafe {
            re_rav1d::src::lib::dav1d_parse_sequence_header(
                NonNull::new(out.as_mut_ptr()),
                NonNull::new(obu.as_ptr().cast_mut()),
                obu.len(),
            )
        }
    };
    let result = catch_unwind(AssertUnwindSafe(parse)).ok()?;
    // SAFETY: the parser wrote `out` in full when it returned success.
    (result.0 == 0).then(|| unsafe { out.assume_init() })
}

// ---------------------------------------------------------------------------------------------
// The header

/// Walks the file's boxes and the primary item's description without decoding pixels.
pub fn header(bytes: &[u8]) -> Result<Header, MediaError> {
    catch_unwind(AssertUnwindSafe(|| read_header(bytes))).unwrap_or_else(|_| Err(malformed()))
}

/// Top-level boxes an AVIF file may hold; anything else ends the walk (a trailer).
const TOP_LEVEL: &[&[u8; 4]] = &[
    b"ftyp", b"meta", b"mdat", b"moov", b"free", b"skip", b"uuid", b"wide", b"pdin", b"moof",
    b"mfra", b"sidx", b"styp", b"meco", b"udta", b"mvex", b"ssix", b"prft", b"emsg",
];

fn read_header(bytes: &[u8]) -> Result<Header, MediaError> {
    if !sniff(bytes) {
        return Err(malformed());
    }
    let mut pos = 0;
    let mut meta = None;
    let mut moov = false;
    let mut cut = false;
    let mut ftyp = None;
    while pos < bytes.len() {
        let Some((kind, header, size)) = box_header(bytes, pos) else {
            cut = true;
            break;
        };
        if !TOP_LEVEL.contains(&&kind) {
            break;
        }
        let size = size.map_or((bytes.len() - pos) as u64, |s| s);
        if size < header as u64 {
            break;
        }
        if size > (bytes.len() - pos) as u64 {
            cut = true;
            break;
        }
        let size = size as usize;
        let found = Bx {
            kind,
            body: &bytes[pos + header..pos + size],
            at: pos + header,
            end: pos + size,
        };
        match &kind {
            b"ftyp" if pos == 0 => ftyp = Some(found),
            b"meta" if meta.is_some() => return Err(malformed()),
            b"meta" => meta = Some(found),
            b"moov" => moov = true,
            _ => {}
        }
        pos += size;
    }
    let walked = pos;
    let ftyp = ftyp.ok_or_else(damaged)?;
    let sequence_brand = brands_of(&bytes[..ftyp.end]).any(|b| b == *b"avis");
    let Some(meta) = meta else {
        // A file that ends, box after whole box, before any description is cut short too.
        return Err(if cut || (walked == bytes.len() && !moov) {
            damaged()
        } else if moov || sequence_brand {
            unsupported(Variant::AnimatedAvif)
        } else {
            malformed()
        });
    };
    let meta_box = parse_meta(meta)?;
    let Some(primary) = meta_box.primary else {
        return Err(if moov || sequence_brand {
            unsupported(Variant::AnimatedAvif)
        } else {
            malformed()
        });
    };
    let item = meta_box.item(primary).ok_or_else(malformed)?;
    if item.protected {
        return Err(unsupported(Variant::AvifFeature));
    }
    let props = meta_box.properties(primary)?;
    let mut budget = MAX_DATA_MULTIPLE * bytes.len() as u64;
    let colour = coded(bytes, &meta_box, primary, &props, &mut budget)?;

    let alpha_item = meta_box
        .references
        .iter()
        .filter(|(kind, _, to)| kind == b"auxl" && *to == primary)
        .map(|&(_, from, _)| from)
        .find(|&id| {
            meta_box
                .properties(id)
                .is_ok_and(|p| p.alpha && meta_box.item(id).is_some_and(|i| !i.protected))
        });
    let alpha_image = match alpha_item {
        Some(id) => {
            let props = meta_box.properties(id)?;
            let alpha = coded(bytes, &meta_box, id, &props, &mut budget)?;
            if (alpha.width, alpha.height) != (colour.width, colour.height) {
                return Err(malformed());
            }
            Some(alpha)
        }
        None => None,
    };
    let premultiplied =
        alpha_item.is_some_and(|a| meta_box.references(b"prem", primary).any(|to| to == a));

    // A grid's colour may be left to its tiles.
    let first_tile = meta_box.references(b"dimg", primary).next();
    let tile_props = match first_tile {
        Some(tile) if props.nclx.is_none() && props.icc.is_none() => {
            Some(meta_box.properties(tile)?)
        }
        _ => None,
    };
    let colour_props = tile_props.as_ref().unwrap_or(&props);
    let icc = colour_props
        .icc
        .clone()
        .filter(|r| r.len() <= super::jpeg::MAX_ICC_BYTES)
        .map(|r| bytes[r].to_vec());
    let cicp = colour_props.nclx.or(colour.cicp);
    let (matrix, full_range) = match colour_props.nclx {
        Some(nclx) => (nclx.matrix, nclx.full_range),
        None => (colour.cicp.map_or(2, |c| c.matrix), colour.full_range),
    };
    match matrix {
        0 if colour.subsampling != Subsampling::S444 => return Err(malformed()),
        11 | 14.. => return Err(unsupported(Variant::AvifFeature)),
        _ => {}
    }

    let metadata = icc.is_some()
        || meta_box.items.iter().any(|i| {
            &i.kind == b"Exif"
                || (&i.kind == b"mime" && i.content_type.starts_with(b"application/rdf+xml"))
        });
    let mut end = walked.max(meta.end);
    for image in std::iter::once(&colour).chain(alpha_image.as_ref()) {
        for range in image.tiles.iter().flatten() {
            end = end.max(range.end);
        }
    }
    Ok(Header {
        width: colour.width,
        height: colour.height,
        orientation: orientation(props.irot, props.imir),
        icc,
        cicp,
        end,
        metadata,
        depth: colour.depth,
        subsampling: colour.subsampling,
        alpha: alpha_image.is_some(),
        premultiplied,
        tiles: colour.tiles.len(),
        sequence: moov || sequence_brand,
        colour,
        alpha_image,
        matrix,
        full_range,
        operating_point: props.operating_point,
    })
}

/// An AV1 image item: its data, checked against the file, and what its OBUs say.
fn av1_tile(
    bytes: &[u8],
    meta: &Meta<'_>,
    id: u32,
    props: &Properties,
) -> Result<(Vec<Range<usize>>, Av1Item), MediaError> {
    let item = meta.item(id).ok_or_else(malformed)?;
    if &item.kind != b"av01" || item.protected || !props.av1c {
        return Err(malformed());
    }
    let data = meta.data(id, bytes)?;
    let av1 = av1_item(bytes, &data)?;
    Ok((data, av1))
}

/// The image of item `id` (an AV1 item or a grid of them) as the decoder will meet it. `budget`
/// is what the data of the tiles decoded may still add up to.
fn coded(
    bytes: &[u8],
    meta: &Meta<'_>,
    id: u32,
    props: &Properties,
    budget: &mut u64,
) -> Result<Coded, MediaError> {
    let item = meta.item(id).ok_or_else(malformed)?;
    let (width, height) = props.ispe.ok_or_else(malformed)?;
    if width == 0 || height == 0 {
        return Err(malformed());
    }
    if &item.kind == b"grid" {
        return grid(bytes, meta, id, (width, height), budget);
    }
    let (data, av1) = av1_tile(bytes, meta, id, props)?;
    check_size(&av1, (width, height))?;
    take(budget, &data)?;
    Ok(Coded {
        width,
        height,
        columns: 1,
        tile_width: width,
        tile_height: height,
        tiles: vec![data],
        depth: av1.depth,
        subsampling: av1.subsampling,
        full_range: av1.full_range,
        cicp: av1.cicp,
        frames: av1.frames,
        superres: av1.superres,
        av1_tiles: av1.av1_tiles,
    })
}

/// An item's `ispe` must be its frames' size: the sequence's size for a still picture header,
/// within it otherwise. (Checked here so that a tiny stream under a huge `ispe` is refused at the
/// probe, not found out after the output has been allocated.)
fn check_size(av1: &Av1Item, (width, height): (u32, u32)) -> Result<(), MediaError> {
    let (max_w, max_h) = av1.max_size;
    let fits = if av1.still {
        (width, height) == (max_w, max_h)
    } else {
        width <= max_w && height <= max_h
    };
    if fits { Ok(()) } else { Err(malformed()) }
}

fn take(budget: &mut u64, data: &[Range<usize>]) -> Result<(), MediaError> {
    let len: u64 = data.iter().map(|r| r.len() as u64).sum();
    *budget = budget.checked_sub(len).ok_or_else(malformed)?;
    Ok(())
}

/// A grid item: `rows`×`columns` AV1 tiles of one size and format, row by row, covering its
/// output size (which must be its `ispe`) with no row or column of tiles wholly outside it. A
/// tile used in several cells is read once.
fn grid(
    bytes: &[u8],
    meta: &Meta<'_>,
    id: u32,
    ispe: (u32, u32),
    budget: &mut u64,
) -> Result<Coded, MediaError> {
    let ranges = meta.data(id, bytes)?;
    let data: Vec<u8> = joined(bytes, &ranges).flatten().take(12).copied().collect();
    let mut r = Reader::new(&data);
    if r.u8()? != 0 {
        return Err(malformed());
    }
    let flags = r.u8()?;
    let rows = u32::from(r.u8()?) + 1;
    let columns = u32::from(r.u8()?) + 1;
    let (width, height) = if flags & 1 != 0 {
        (r.u32()?, r.u32()?)
    } else {
        (u32::from(r.u16()?), u32::from(r.u16()?))
    };
    if (width, height) != ispe {
        return Err(malformed());
    }
    let cells = (rows * columns) as usize;
    if cells > MAX_TILES {
        return Err(unsupported(Variant::AvifGridTiles));
    }
    let ids: Vec<u32> = meta.references(b"dimg", id).take(MAX_TILES + 1).collect();
    if ids.len() != cells {
        return Err(malformed());
    }
    // (item, its data, its ispe), one per distinct tile item.
    type Tile = (u32, Vec<Range<usize>>, (u32, u32));
    let mut seen: Vec<Tile> = Vec::new();
    let mut first: Option<Av1Item> = None;
    let mut frames = 0;
    let mut superres = false;
    let mut av1_tiles = 0;
    let mut tiles = Vec::with_capacity(cells);
    for &tile in &ids {
        if let Some((_, data, _)) = seen.iter().find(|(t, _, _)| *t == tile) {
            take(budget, data)?;
            tiles.push(data.clone());
            continue;
        }
        let props = meta.properties(tile)?;
        let size = props.ispe.ok_or_else(malformed)?;
        let (data, av1) = av1_tile(bytes, meta, tile, &props)?;
        check_size(&av1, size)?;
        if let Some(f) = &first {
            if (f.depth, f.subsampling) != (av1.depth, av1.subsampling)
                || seen.first().is_some_and(|s| s.2 != size)
            {
                return Err(malformed());
            }
        }
        frames = frames.max(av1.frames);
        superres |= av1.superres;
        av1_tiles = av1_tiles.max(av1.av1_tiles);
        take(budget, &data)?;
        tiles.push(data.clone());
        seen.push((tile, data, size));
        first.get_or_insert(av1);
    }
    let first = first.ok_or_else(malformed)?;
    let (tw, th) = seen.first().map(|s| s.2).ok_or_else(malformed)?;
    let covers = |tile: u32, count: u32, out: u32| {
        tile > 0
            && u64::from(tile) * u64::from(count) >= u64::from(out)
            && u64::from(tile) * u64::from(count - 1) < u64::from(out)
    };
    if !covers(tw, columns, width) || !covers(th, rows, height) {
        return Err(malformed());
    }
    Ok(Coded {
        width,
        height,
        columns,
        tile_width: tw,
        tile_height: th,
        tiles,
        depth: first.depth,
        subsampling: first.subsampling,
        full_range: first.full_range,
        cicp: first.cicp,
        frames,
        superres,
        av1_tiles,
    })
}

/// `irot` (anticlockwise quarter turns) then `imir` (0: top and bottom exchanged; 1: left and
/// right, as ISO/IEC 23008-12:2022 and libavif read it) as the EXIF orientation that displays the
/// image the same way.
fn orientation(irot: u8, imir: Option<u8>) -> Orientation {
    use Orientation::*;
    match (irot, imir) {
        (0, None) => NoTransforms,
        (1, None) => Rotate270,
        (2, None) => Rotate180,
        (3, None) => Rotate90,
        (0, Some(1)) | (2, Some(0)) => FlipHorizontal,
        (0, Some(_)) | (2, Some(_)) => FlipVertical,
        (1, Some(1)) | (3, Some(0)) => Rotate270FlipH,
        _ => Rotate90FlipH,
    }
}

// ---------------------------------------------------------------------------------------------
// Cost

/// The size `decode` reduces the image to for a thumbnail of `max_side`: at most twice the
/// thumbnail, as PNGs read by rows are. `None` (decoded whole) when that is no smaller or the
/// image has alpha, whose colour must be weighted by an alpha plane that is decoded after it.
pub fn reduced_size(header: &Header, max_side: u32) -> Option<(u32, u32)> {
    let (w, h) = (header.width, header.height);
    let reduced = super::fit(w, h, max_side.saturating_mul(2));
    (!header.alpha && reduced != (w, h)).then_some(reduced)
}

/// An upper bound of the bytes `decode` allocates at its peak: the RGB(A) output (or, reduced to
/// `reduce_to`, its sums, the output and the column and row maps), and while one tile is decoded
/// its data, the decoder's pictures and per-frame state.
pub fn decode_cost(header: &Header, reduce_to: Option<(u32, u32)>) -> u64 {
    let channels = if header.alpha { 4 } else { 3 };
    let (w, h) = (u64::from(header.width), u64::from(header.height));
    let output = match reduce_to {
        None => w * h * channels,
        Some((rw, rh)) => u64::from(rw) * u64::from(rh) * channels * 5 + (w + h) * 4,
    };
    let colour = coded_cost(&header.colour);
    let alpha = header.alpha_image.as_ref().map_or(0, coded_cost);
    output + colour.max(alpha) + DECODER_FIXED + strip_cost(header.colour.tile_width)
}

/// What decoding one tile of `image` holds: its data, the pictures and the decoder's state.
fn coded_cost(image: &Coded) -> u64 {
    let data = image
        .tiles
        .iter()
        .map(|t| t.iter().map(|r| r.len() as u64).sum::<u64>())
        .max()
        .unwrap_or(0);
    let (w, h) = (u64::from(image.tile_width), u64::from(image.tile_height));
    let picture = picture_bytes(w, h, image.depth, image.subsampling);
    // With super-resolution the frame is also held at its coded width, at least half the
    // upscaled one.
    let pictures = image.frames * picture
        + if image.superres {
            picture / 2 + picture
        } else {
            0
        };
    data + pictures + w * h * DECODER_PER_PIXEL_NUM + image.av1_tiles * TILE_STATE
}

/// dav1d's picture buffer: each side rounded up to 128, strides nudged off multiples of 1024.
fn picture_bytes(w: u64, h: u64, depth: u8, subsampling: Subsampling) -> u64 {
    let aligned_w = (w + 127) & !127;
    let aligned_h = (h + 127) & !127;
    let y_stride = (aligned_w << u64::from(depth > 8)) + 64;
    let (uv_stride, uv_rows) = match subsampling {
        Subsampling::Grey => (0, 0),
        Subsampling::S420 => (y_stride / 2 + 64, aligned_h / 2),
        Subsampling::S422 => (y_stride / 2 + 64, aligned_h),
        Subsampling::S444 => (y_stride, aligned_h),
    };
    y_stride * aligned_h + 2 * uv_stride * uv_rows + 64
}

/// The strip buffers of the conversion to RGB.
fn strip_cost(tile_width: u32) -> u64 {
    u64::from(tile_width) * STRIP_ROWS as u64 * (3 + 4)
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes the image to 8-bit RGB, or RGBA when it has alpha, as stored (the caller applies the
/// orientation); box-filtered to `reduce_to` (from `reduced_size`; ignored with alpha) as the
/// rows arrive, so the whole image is never held as RGB.
pub fn decode(
    bytes: &[u8],
    header: &Header,
    reduce_to: Option<(u32, u32)>,
) -> Result<DynamicImage, MediaError> {
    let (w, h) = (header.width, header.height);
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(MediaError::TooLarge {
            width: w,
            height: h,
        });
    }
    let reduce_to = reduce_to.filter(|_| !header.alpha);
    catch_unwind(AssertUnwindSafe(|| decode_image(bytes, header, reduce_to)))
        .unwrap_or_else(|_| Err(malformed()))
}

fn decode_image(
    bytes: &[u8],
    header: &Header,
    reduce_to: Option<(u32, u32)>,
) -> Result<DynamicImage, MediaError> {
    let (w, h) = (header.width as usize, header.height as usize);
    let channels = if header.alpha { 4 } else { 3 };
    let too_large = || MediaError::TooLarge {
        width: header.width,
        height: header.height,
    };
    // Allocated once the first tile has decoded as declared, not on the header's word alone.
    let mut canvas = None;
    let mut decoder = Decoder::new(header)?;
    let matrix = Matrix::of(header.matrix, header.cicp.map_or(2, |c| c.primaries));
    let range = if header.full_range {
        YuvRange::Full
    } else {
        YuvRange::Limited
    };
    let mut strip = Strip::default();
    decoder.each_tile(bytes, &header.colour, |picture, x0, y0, cw, ch| {
        let canvas = match &mut canvas {
            Some(canvas) => canvas,
            None => canvas.insert(match reduce_to {
                None => Canvas::Whole(zeroed(w * h * channels).ok_or_else(too_large)?),
                Some(size) => {
                    Canvas::Reduced(Reduction::new((w, h), size, channels).ok_or_else(too_large)?)
                }
            }),
        };
        let target = Target {
            canvas,
            width: w,
            channels,
            x0,
            y0,
        };
        strip.colour(picture, header, cw, ch, matrix, range, target)
    })?;
    let mut out = match canvas {
        Some(Canvas::Whole(out)) => out,
        Some(Canvas::Reduced(reduction)) => {
            let (rw, rh, out) = reduction.finish();
            return RgbImage::from_raw(rw, rh, out)
                .map(DynamicImage::from)
                .ok_or_else(malformed);
        }
        None => return Err(malformed()),
    };
    if let Some(alpha) = &header.alpha_image {
        decoder.each_tile(bytes, alpha, |picture, x0, y0, cw, ch| {
            write_alpha(picture, alpha, cw, ch, (&mut out, w * 4), (x0, y0))
        })?;
        if header.premultiplied {
            unpremultiply(&mut out);
        }
    }
    let image = if header.alpha {
        RgbaImage::from_raw(header.width, header.height, out).map(DynamicImage::from)
    } else {
        RgbImage::from_raw(header.width, header.height, out).map(DynamicImage::from)
    };
    image.ok_or_else(malformed)
}

/// A zeroed buffer of `len` bytes, or `None` when it cannot be had.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(len).ok()?;
    out.resize(len, 0);
    Some(out)
}

/// Where the decoded colour goes.
enum Canvas {
    /// The image, `channels` bytes a pixel.
    Whole(Vec<u8>),
    /// The image box-filtered to a smaller size as its rows arrive.
    Reduced(Reduction),
}

/// An image reduced as its rows arrive, in any order (a grid's tiles): each output pixel is the
/// mean of the source pixels that map to it (`x * reduced_width / width`, likewise for rows), as
/// PNGs read by rows are reduced. The sums are held at the reduced size.
struct Reduction {
    size: (usize, usize),
    channels: usize,
    /// The output column of each source column, and of each source row.
    columns: Vec<u32>,
    rows: Vec<u32>,
    sums: Vec<u32>,
}

impl Reduction {
    fn new((w, h): (usize, usize), (rw, rh): (u32, u32), channels: usize) -> Option<Self> {
        let (rw, rh) = (rw as usize, rh as usize);
        let map = |from: usize, to: usize| -> Vec<u32> {
            (0..from as u64)
                .map(|i| (i * to as u64 / from as u64) as u32)
                .collect()
        };
        let mut sums = Vec::new();
        sums.try_reserve_exact(rw * rh * channels).ok()?;
        sums.resize(rw * rh * channels, 0);
        Some(Self {
            size: (rw, rh),
            channels,
            columns: map(w, rw),
            rows: map(h, rh),
            sums,
        })
    }

    /// Adds source row `y`'s pixels from column `x0` on.
    fn add(&mut self, x0: usize, y: usize, line: &[u8]) {
        let ch = self.channels;
        let row = self.rows[y] as usize * self.size.0 * ch;
        let columns = &self.columns[x0..];
        for (pixel, &column) in line.chunks_exact(ch).zip(columns) {
            let sum = &mut self.sums[row + column as usize * ch..][..ch];
            for (s, &v) in sum.iter_mut().zip(pixel) {
                *s += u32::from(v);
            }
        }
    }

    /// The reduced image: width, height and samples.
    fn finish(self) -> (u32, u32, Vec<u8>) {
        let (rw, rh) = self.size;
        let count = |map: &[u32], n: usize| {
            let mut counts = vec![0u32; n];
            for &i in map {
                counts[i as usize] += 1;
            }
            counts
        };
        let (per_column, per_row) = (count(&self.columns, rw), count(&self.rows, rh));
        let ch = self.channels;
        let out = self
            .sums
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let n = per_column[i / ch % rw] * per_row[i / ch / rw];
                ((s + n / 2) / n.max(1)) as u8
            })
            .collect();
        (rw as u32, rh as u32, out)
    }
}

/// Where a tile's pixels go.
struct Target<'a> {
    canvas: &'a mut Canvas,
    /// The image's width in pixels.
    width: usize,
    channels: usize,
    x0: usize,
    y0: usize,
}

impl Target<'_> {
    /// Puts row `y` of the tile (`line`, from the tile's left edge).
    fn put(&mut self, y: usize, line: &[u8]) {
        let (x0, y) = (self.x0, self.y0 + y);
        match self.canvas {
            Canvas::Whole(out) => {
                let at = (y * self.width + x0) * self.channels;
                out[at..at + line.len()].copy_from_slice(line);
            }
            Canvas::Reduced(reduction) => reduction.add(x0, y, line),
        }
    }
}

struct Decoder {
    inner: dav1d::Decoder,
}

impl Decoder {
    fn new(header: &Header) -> Result<Self, MediaError> {
        let largest = std::iter::once(&header.colour)
            .chain(header.alpha_image.as_ref())
            .map(|c| u64::from(c.tile_width) * u64::from(c.tile_height))
            .max()
            .unwrap_or(0);
        let mut settings = dav1d::Settings::new();
        settings.set_n_threads(1);
        settings.set_max_frame_delay(1);
        settings.set_apply_grain(false);
        settings.set_all_layers(false);
        settings.set_operating_point(u32::from(header.operating_point));
        settings.set_frame_size_limit(u32::try_from(largest).map_err(|_| malformed())?);
        let inner = dav1d::Decoder::with_settings(&settings).map_err(|_| malformed())?;
        Ok(Self { inner })
    }

    /// Decodes each tile of `image` in turn and hands its picture to `each` with the tile's place
    /// and the part of it inside the image.
    fn each_tile(
        &mut self,
        bytes: &[u8],
        image: &Coded,
        mut each: impl FnMut(&dav1d::Picture, usize, usize, usize, usize) -> Result<(), MediaError>,
    ) -> Result<(), MediaError> {
        for (i, ranges) in image.tiles.iter().enumerate() {
            let (row, column) = (i as u32 / image.columns, i as u32 % image.columns);
            let x0 = column * image.tile_width;
            let y0 = row * image.tile_height;
            let cw = image.tile_width.min(image.width - x0);
            let ch = image.tile_height.min(image.height - y0);
            let data: Vec<u8> = joined(bytes, ranges).flatten().copied().collect();
            let picture = self.picture(data, image)?;
            each(&picture, x0 as usize, y0 as usize, cw as usize, ch as usize)?;
            drop(picture);
            self.inner.flush();
        }
        Ok(())
    }

    /// The first picture of one item's data, which must be of the size and format its
    /// properties and sequence header said.
    fn picture(&mut self, data: Vec<u8>, image: &Coded) -> Result<dav1d::Picture, MediaError> {
        let sent = |result: Result<(), dav1d::Error>| match result {
            Ok(()) => Ok(false),
            Err(dav1d::Error::Again) => Ok(true),
            Err(_) => Err(malformed()),
        };
        // The wrapper keeps what the decoder did not take yet, to be sent once a picture is out.
        let mut pending = sent(self.inner.send_data(data, None, None, None))?;
        let mut tries = 0;
        let picture = loop {
            tries += 1;
            if tries > 64 {
                return Err(malformed());
            }
            match self.inner.get_picture() {
                Ok(picture) => break picture,
                Err(dav1d::Error::Again) if pending => {
                    pending = sent(self.inner.send_pending_data())?;
                }
                // All sent and no picture: the data held no whole frame.
                Err(_) => return Err(malformed()),
            }
        };
        let layout = match picture.pixel_layout() {
            dav1d::PixelLayout::I400 => Subsampling::Grey,
            dav1d::PixelLayout::I420 => Subsampling::S420,
            dav1d::PixelLayout::I422 => Subsampling::S422,
            dav1d::PixelLayout::I444 => Subsampling::S444,
        };
        if (picture.width(), picture.height()) != (image.tile_width, image.tile_height)
            || layout != image.subsampling
            || picture.bit_depth() != usize::from(image.depth)
        {
            return Err(malformed());
        }
        Ok(picture)
    }
}

/// The YUV to RGB conversion.
#[derive(Debug, Clone, Copy)]
enum Matrix {
    /// GBR samples (lossless AVIF).
    Identity,
    YCgCo,
    Yuv(YuvStandardMatrix),
}

impl Matrix {
    fn of(matrix: u8, primaries: u8) -> Self {
        match matrix {
            0 => Self::Identity,
            1 => Self::Yuv(YuvStandardMatrix::Bt709),
            4 => Self::Yuv(YuvStandardMatrix::Custom(0.30, 0.11)),
            7 => Self::Yuv(YuvStandardMatrix::Smpte240),
            8 => Self::YCgCo,
            9 | 10 => Self::Yuv(YuvStandardMatrix::Bt2020),
            12 | 13 => match luma_coefficients(primaries) {
                Some((kr, kb)) => Self::Yuv(YuvStandardMatrix::Custom(kr, kb)),
                None => Self::Yuv(YuvStandardMatrix::Bt601),
            },
            _ => Self::Yuv(YuvStandardMatrix::Bt601),
        }
    }
}

/// KR and KB derived from the colour primaries (H.273, equations for matrix coefficients 12),
/// for the primaries with known chromaticities.
fn luma_coefficients(primaries: u8) -> Option<(f32, f32)> {
    let [xr, yr, xg, yg, xb, yb, xw, yw]: [f64; 8] = match primaries {
        1 => [0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290],
        4 => [0.67, 0.33, 0.21, 0.71, 0.14, 0.08, 0.310, 0.316],
        5 => [0.64, 0.33, 0.29, 0.60, 0.15, 0.06, 0.3127, 0.3290],
        6 | 7 => [0.630, 0.340, 0.310, 0.595, 0.155, 0.070, 0.3127, 0.3290],
        9 => [0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290],
        11 => [0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.314, 0.351],
        12 => [0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290],
        22 => [0.630, 0.340, 0.295, 0.605, 0.155, 0.077, 0.3127, 0.3290],
        _ => return None,
    };
    let (zr, zg, zb, zw) = (1.0 - xr - yr, 1.0 - xg - yg, 1.0 - xb - yb, 1.0 - xw - yw);
    let denominator =
        yw * (xr * (yg * zb - yb * zg) + xg * (yb * zr - yr * zb) + xb * (yr * zg - yg * zr));
    let kr = yr * (xw * (yg * zb - yb * zg) + yw * (xb * zg - xg * zb) + zw * (xg * yb - xb * yg))
        / denominator;
    let kb = yb * (xw * (yr * zg - yg * zr) + yw * (xg * zr - xr * zg) + zw * (xr * yg - xg * yr))
        / denominator;
    Some((kr as f32, kb as f32))
}

/// Buffers for one strip of rows: the planes at 8 bits and their RGB(A).
#[derive(Default)]
struct Strip {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    rgb: Vec<u8>,
}

/// Row `row` of a plane of `picture`, samples `0..width`, at 8 bits.
fn plane_row(
    picture: &dav1d::Picture,
    plane: &[u8],
    component: dav1d::PlanarImageComponent,
    row: usize,
    width: usize,
    depth: u8,
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    let stride = picture.stride(component) as usize;
    let start = row * stride;
    if depth == 8 {
        let samples = plane.get(start..start + width).ok_or_else(malformed)?;
        out.extend_from_slice(samples);
    } else {
        let samples = plane.get(start..start + width * 2).ok_or_else(malformed)?;
        let shift = u32::from(depth - 8);
        let half = 1u16 << (shift - 1);
        out.extend(samples.chunks_exact(2).map(|s| {
            let v = u16::from_ne_bytes([s[0], s[1]]);
            (v.saturating_add(half) >> shift).min(255) as u8
        }));
    }
    Ok(())
}

impl Strip {
    /// Converts the top-left `cw`×`ch` of a colour tile's picture into the output.
    #[allow(clippy::too_many_arguments)]
    fn colour(
        &mut self,
        picture: &dav1d::Picture,
        header: &Header,
        cw: usize,
        ch: usize,
        matrix: Matrix,
        range: YuvRange,
        mut target: Target<'_>,
    ) -> Result<(), MediaError> {
        use dav1d::PlanarImageComponent::{U, V, Y};
        let subsampling = header.colour.subsampling;
        let depth = header.colour.depth;
        let luma = picture.plane(Y);
        let chroma =
            (subsampling != Subsampling::Grey).then(|| (picture.plane(U), picture.plane(V)));
        let (cwc, _) = subsampling.chroma(cw, ch);
        let channels = target.channels;
        let mut top = 0;
        while top < ch {
            let rows = STRIP_ROWS.min(ch - top);
            self.y.clear();
            self.u.clear();
            self.v.clear();
            for row in top..top + rows {
                plane_row(picture, &luma, Y, row, cw, depth, &mut self.y)?;
            }
            let (_, chroma_rows) = subsampling.chroma(cw, rows);
            let chroma_top = if subsampling == Subsampling::S420 {
                top / 2
            } else {
                top
            };
            if let Some((u, v)) = &chroma {
                for row in chroma_top..chroma_top + chroma_rows {
                    plane_row(picture, u, U, row, cwc, depth, &mut self.u)?;
                    plane_row(picture, v, V, row, cwc, depth, &mut self.v)?;
                }
            }
            self.rgb.clear();
            self.rgb.resize(cw * rows * channels, 0);
            convert(
                &self.y,
                &self.u,
                &self.v,
                (cw, rows, cwc),
                subsampling,
                matrix,
                range,
                channels,
                &mut self.rgb,
            )?;
            for (i, line) in self.rgb.chunks_exact(cw * channels).enumerate() {
                target.put(top + i, line);
            }
            top += rows;
        }
        Ok(())
    }
}

/// One strip of 8-bit planes to RGB (3 channels) or RGBA (4, opaque).
#[allow(clippy::too_many_arguments)]
fn convert(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    (width, rows, chroma_width): (usize, usize, usize),
    subsampling: Subsampling,
    matrix: Matrix,
    range: YuvRange,
    channels: usize,
    dst: &mut [u8],
) -> Result<(), MediaError> {
    let stride = (width * channels) as u32;
    let (width, rows) = (width as u32, rows as u32);
    let rgba = channels == 4;
    let result = if subsampling == Subsampling::Grey {
        let grey = YuvGrayImage {
            y_plane: y,
            y_stride: width,
            width,
            height: rows,
        };
        // Grey has no chroma: any matrix gives the same greys.
        let matrix = YuvStandardMatrix::Bt601;
        if rgba {
            yuvutils_rs::yuv400_to_rgba(&grey, dst, stride, range, matrix)
        } else {
            yuvutils_rs::yuv400_to_rgb(&grey, dst, stride, range, matrix)
        }
    } else {
        let planar = YuvPlanarImage {
            y_plane: y,
            y_stride: width,
            u_plane: u,
            u_stride: chroma_width as u32,
            v_plane: v,
            v_stride: chroma_width as u32,
            width,
            height: rows,
        };
        use Subsampling::*;
        use yuvutils_rs as yuv;
        match (matrix, subsampling, rgba) {
            (Matrix::Identity, _, false) => yuv::gbr_to_rgb(&planar, dst, stride, range),
            (Matrix::Identity, _, true) => yuv::gbr_to_rgba(&planar, dst, stride, range),
            (Matrix::YCgCo, S420, false) => yuv::ycgco420_to_rgb(&planar, dst, stride, range),
            (Matrix::YCgCo, S420, true) => yuv::ycgco420_to_rgba(&planar, dst, stride, range),
            (Matrix::YCgCo, S422, false) => yuv::ycgco422_to_rgb(&planar, dst, stride, range),
            (Matrix::YCgCo, S422, true) => yuv::ycgco422_to_rgba(&planar, dst, stride, range),
            (Matrix::YCgCo, _, false) => yuv::ycgco444_to_rgb(&planar, dst, stride, range),
            (Matrix::YCgCo, _, true) => yuv::ycgco444_to_rgba(&planar, dst, stride, range),
            (Matrix::Yuv(m), S420, false) => yuv::yuv420_to_rgb(&planar, dst, stride, range, m),
            (Matrix::Yuv(m), S420, true) => yuv::yuv420_to_rgba(&planar, dst, stride, range, m),
            (Matrix::Yuv(m), S422, false) => yuv::yuv422_to_rgb(&planar, dst, stride, range, m),
            (Matrix::Yuv(m), S422, true) => yuv::yuv422_to_rgba(&planar, dst, stride, range, m),
            (Matrix::Yuv(m), _, false) => yuv::yuv444_to_rgb(&planar, dst, stride, range, m),
            (Matrix::Yuv(m), _, true) => yuv::yuv444_to_rgba(&planar, dst, stride, range, m),
        }
    };
    result.map_err(|e| {
        tracing::debug!("AVIF YUV conversion failed: {e}");
        malformed()
    })
}

/// Writes the luma of an alpha tile's picture into the output's fourth channel, expanding a
/// limited range.
fn write_alpha(
    picture: &dav1d::Picture,
    alpha: &Coded,
    cw: usize,
    ch: usize,
    (out, stride): (&mut [u8], usize),
    (x0, y0): (usize, usize),
) -> Result<(), MediaError> {
    let plane = picture.plane(dav1d::PlanarImageComponent::Y);
    let mut row_buf = Vec::with_capacity(cw);
    for row in 0..ch {
        row_buf.clear();
        plane_row(
            picture,
            &plane,
            dav1d::PlanarImageComponent::Y,
            row,
            cw,
            alpha.depth,
            &mut row_buf,
        )?;
        let at = (y0 + row) * stride + x0 * 4;
        let line = &mut out[at..at + cw * 4];
        for (pixel, &a) in line.chunks_exact_mut(4).zip(&row_buf) {
            pixel[3] = if alpha.full_range {
                a
            } else {
                ((i32::from(a) - 16).clamp(0, 219) * 255 / 219) as u8
            };
        }
    }
    Ok(())
}

/// Colour samples divided by their alpha.
fn unpremultiply(rgba: &mut [u8]) {
    for pixel in rgba.chunks_exact_mut(4) {
        let a = u32::from(pixel[3]);
        if a == 0 || a == 255 {
            continue;
        }
        for c in &mut pixel[..3] {
            *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use image::{GenericImageView, Rgba};

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/media/avif_{name}.avif",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The quadrants of `make_avif_fixtures.sh`.
    const TL: [u8; 3] = [220, 40, 30];
    const TR: [u8; 3] = [30, 160, 60];
    const BL: [u8; 3] = [40, 70, 200];
    const BR: [u8; 3] = [250, 220, 20];

    fn decoded(name: &str) -> (Header, DynamicImage) {
        let bytes = fixture(name);
        let header = header(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let image = decode(&bytes, &header, None).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(
            (image.width(), image.height()),
            (header.width, header.height)
        );
        (header, image)
    }

    /// The pixel at the centre of each quadrant: top left, top right, bottom left, bottom right.
    fn quadrants(image: &DynamicImage) -> [Rgba<u8>; 4] {
        let (w, h) = image.dimensions();
        let (x0, x1, y0, y1) = (w / 4, w * 3 / 4, h / 4, h * 3 / 4);
        [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(x, y)| image.get_pixel(x, y))
    }

    fn close(found: &[u8], expected: &[u8], tolerance: u8, what: &str) {
        for (f, e) in found.iter().zip(expected) {
            assert!(
                f.abs_diff(*e) <= tolerance,
                "{what}: {found:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn sniffs_avif_brands_only() {
        assert!(sniff(&fixture("420")));
        assert!(sniff(&fixture("animated_no_still")));
        let mut heic = fixture("420");
        heic[8..12].copy_from_slice(b"heic");
        heic[16..32].copy_from_slice(b"mif1heicmiafMiHB");
        assert!(!sniff(&heic));
        assert!(!sniff(b"\x89PNG\r\n\x1a\n"));
        assert!(!sniff(&fixture("420")[..15]));
        assert!(super::super::sniff(&fixture("420")) == Some(ImageKind::Avif));
    }

    #[test]
    fn headers_describe_each_variant() {
        use Orientation::*;
        use Subsampling::*;
        // name, stored size, depth, subsampling, alpha, premultiplied, tiles, orientation
        let table = [
            ("420", 64, 48, 8, S420, false, false, 1, NoTransforms),
            ("444", 64, 48, 8, S444, false, false, 1, NoTransforms),
            ("10bit", 64, 48, 10, S420, false, false, 1, NoTransforms),
            ("12bit_422", 64, 48, 12, S422, false, false, 1, NoTransforms),
            ("odd_420", 33, 17, 8, S420, false, false, 1, NoTransforms),
            ("alpha", 64, 48, 8, S420, true, false, 1, NoTransforms),
            (
                "premultiplied",
                64,
                48,
                8,
                S444,
                true,
                true,
                1,
                NoTransforms,
            ),
            ("grey", 64, 48, 8, Grey, false, false, 1, NoTransforms),
            (
                "irot90_imir0",
                64,
                48,
                8,
                S420,
                false,
                false,
                1,
                Rotate90FlipH,
            ),
            ("grid", 160, 128, 8, S420, false, false, 4, NoTransforms),
            (
                "grid_alpha",
                160,
                128,
                8,
                S444,
                true,
                false,
                4,
                NoTransforms,
            ),
            ("animated", 64, 48, 8, S420, true, false, 1, NoTransforms),
            (
                "large_grid_422_12bit",
                2048,
                1536,
                12,
                S422,
                false,
                false,
                12,
                NoTransforms,
            ),
        ];
        for (name, w, h, depth, subsampling, alpha, premultiplied, tiles, orientation) in table {
            let bytes = fixture(name);
            let found = header(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(
                (found.width, found.height, found.depth, found.subsampling),
                (w, h, depth, subsampling),
                "{name}"
            );
            assert_eq!(
                (
                    found.alpha,
                    found.premultiplied,
                    found.tiles,
                    found.orientation
                ),
                (alpha, premultiplied, tiles, orientation),
                "{name}"
            );
            assert_eq!(found.end, bytes.len(), "{name}");
        }
    }

    #[test]
    fn colour_descriptions_are_read() {
        let cicp = |name| header(&fixture(name)).unwrap().cicp.unwrap();
        let limited = cicp("bt709_limited");
        assert_eq!((limited.matrix, limited.full_range), (1, false));
        let full = cicp("bt601_full");
        assert_eq!((full.primaries, full.matrix, full.full_range), (1, 6, true));
        assert_eq!(
            (cicp("p3_nclx").primaries, cicp("p3_nclx").transfer),
            (12, 13)
        );
        let tagged = header(&fixture("icc_p3")).unwrap();
        let icc = tagged.icc.as_deref().unwrap();
        assert_eq!(&icc[36..40], b"acsp");
        assert_eq!(
            u32::from_be_bytes(icc[..4].try_into().unwrap()) as usize,
            icc.len()
        );
        assert!(tagged.metadata);
        assert!(!header(&fixture("420")).unwrap().metadata);
    }

    /// `image` (RGB) reduced to `rw`×`rh` by the mean of the pixels mapping to each output
    /// pixel, computed pixel by pixel from the whole decode.
    fn reduced_reference(image: &RgbImage, rw: u32, rh: u32) -> Vec<u8> {
        let (w, h) = image.dimensions();
        let mut sums = vec![[0u64; 4]; (rw * rh) as usize];
        for (x, y, pixel) in image.enumerate_pixels() {
            let cell = &mut sums[((y * rh / h) * rw + x * rw / w) as usize];
            for c in 0..3 {
                cell[c] += u64::from(pixel[c]);
            }
            cell[3] += 1;
        }
        sums.iter()
            .flat_map(|s| (0..3).map(move |c| ((s[c] + s[3] / 2) / s[3]) as u8))
            .collect()
    }

    #[test]
    fn a_reduced_decode_is_the_whole_decode_box_filtered_tiles_and_all() {
        for (name, max_side) in [
            ("large_420", 512),
            ("large_420", 300),
            ("large_grid_422_12bit", 512),
            ("large_grid_422_12bit", 337),
            ("large_grey", 400),
            ("large_av1_tiles", 512),
        ] {
            let bytes = fixture(name);
            let header = header(&bytes).unwrap();
            let reduced = reduced_size(&header, max_side).unwrap();
            assert_eq!(
                reduced,
                crate::media::fit(header.width, header.height, 2 * max_side)
            );
            let whole = decode(&bytes, &header, None).unwrap().into_rgb8();
            let image = decode(&bytes, &header, Some(reduced)).unwrap();
            assert_eq!((image.width(), image.height()), reduced, "{name}");
            assert_eq!(
                image.into_rgb8().into_raw(),
                reduced_reference(&whole, reduced.0, reduced.1),
                "{name} to {reduced:?}"
            );
        }
        // Alpha is decoded whole: its colour is weighted by an alpha plane decoded after it.
        let alpha = header(&fixture("large_alpha")).unwrap();
        assert_eq!(reduced_size(&alpha, 512), None);
        // As is what already fits.
        let small = header(&fixture("420")).unwrap();
        assert_eq!(reduced_size(&small, 512), None);
    }

    #[test]
    fn colour_variants_decode_to_the_quadrants() {
        for name in [
            "420",
            "444",
            "10bit",
            "12bit_422",
            "odd_420",
            "bt709_limited",
            "bt601_full",
            "p3_nclx",
            "icc_p3",
            "grid",
            "irot90_imir0",
            "animated",
            "trailer",
        ] {
            let (header, image) = decoded(name);
            assert_eq!(image.color().has_alpha(), header.alpha, "{name}");
            for (found, expected) in quadrants(&image).iter().zip([TL, TR, BL, BR]) {
                close(&found.0[..3], &expected, 6, name);
            }
        }
    }

    #[test]
    fn a_grid_is_assembled_tile_by_tile() {
        // 160×128 in 2×2 tiles of 80×64: the quadrant boundaries are the tile boundaries, so
        // each tile is flat; a misplaced tile shows at its corner pixels.
        let (_, image) = decoded("grid");
        for (x, y, expected) in [
            (0, 0, TL),
            (79, 63, TL),
            (80, 0, TR),
            (79, 64, BL),
            (159, 127, BR),
        ] {
            close(&image.get_pixel(x, y).0[..3], &expected, 6, "grid");
        }
    }

    #[test]
    fn grey_decodes_to_equal_channels() {
        let (_, image) = decoded("grey");
        let luma = |[r, g, b]: [u8; 3]| {
            (0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)).round() as u8
        };
        for (found, expected) in quadrants(&image).iter().zip([TL, TR, BL, BR]) {
            let [r, g, b, _] = found.0;
            assert!(r == g && g == b, "{found:?}");
            close(&[r], &[luma(expected)], 4, "grey");
        }
    }

    #[test]
    fn alpha_is_applied_and_premultiplied_colour_restored() {
        for name in ["alpha", "premultiplied", "grid_alpha"] {
            let (_, image) = decoded(name);
            let image = image.as_rgba8().expect("RGBA");
            let [tl, tr, bl, br] = quadrants(&DynamicImage::from(image.clone()));
            assert_eq!((tl.0[3], tr.0[3], br.0[3]), (255, 0, 255), "{name}");
            assert!(bl.0[3].abs_diff(128) <= 2, "{name}: {bl:?}");
            // Half transparent: premultiplied samples are divided back.
            close(&bl.0[..3], &BL, 8, name);
            close(&tl.0[..3], &TL, 6, name);
        }
    }

    #[test]
    fn truncation_at_any_point_is_damage() {
        let bytes = fixture("420");
        let ftyp = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        for len in ftyp..bytes.len() {
            assert_eq!(header(&bytes[..len]), Err(damaged()), "cut at {len}");
        }
        assert_eq!(header(&fixture("truncated")), Err(damaged()));
        assert!(matches!(
            super::super::probe(&fixture("truncated")),
            Err(MediaError::Damaged(ImageKind::Avif))
        ));
    }

    #[test]
    fn a_trailer_is_accepted_and_ends_where_the_image_does() {
        let trailer = fixture("trailer");
        let plain = fixture("420");
        assert_eq!(header(&trailer).unwrap().end, plain.len());
        assert_eq!(super::super::probe(&trailer).unwrap().end, plain.len());
        // A trailer that reads as a box type AVIF files never hold ends the walk the same way.
        let mut boxed = plain.clone();
        boxed.extend_from_slice(&[0, 0, 0, 16]);
        boxed.extend_from_slice(b"JUNKjunkjunkjunk");
        assert_eq!(header(&boxed).unwrap().end, plain.len());
    }

    #[test]
    fn an_animation_is_taken_by_its_still_or_refused_without_one() {
        let (header, _) = decoded("animated");
        assert_eq!((header.width, header.height), (64, 48));
        assert_eq!(
            super::header(&fixture("animated_no_still")),
            Err(MediaError::Unsupported(Variant::AnimatedAvif))
        );
    }

    /// `irot` then `imir` applied step by step to an image, as HEIF defines them.
    fn transformed(image: &DynamicImage, irot: u8, imir: Option<u8>) -> DynamicImage {
        let turned = match irot {
            1 => image.rotate270(),
            2 => image.rotate180(),
            3 => image.rotate90(),
            _ => image.clone(),
        };
        match imir {
            Some(0) => turned.flipv(),
            Some(_) => turned.fliph(),
            None => turned,
        }
    }

    #[test]
    fn irot_and_imir_map_to_the_exif_orientation_that_shows_the_same() {
        let source = DynamicImage::from(RgbImage::from_fn(3, 2, |x, y| {
            image::Rgb([x as u8 * 10, y as u8 * 10, 0])
        }));
        for irot in 0..4 {
            for imir in [None, Some(0), Some(1)] {
                let mut oriented = source.clone();
                oriented.apply_orientation(orientation(irot, imir));
                assert_eq!(
                    oriented.to_rgb8(),
                    transformed(&source, irot, imir).to_rgb8(),
                    "irot {irot} imir {imir:?}"
                );
            }
        }
    }

    /// `bytes` with the start of the first `from` overwritten by `to`.
    fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .expect("pattern");
        let mut out = bytes.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn an_ispe_its_stream_does_not_fill_is_refused_at_the_header() {
        // The 64×48 stream under an `ispe` of 8000×8000, then 16384×16384.
        let bytes = fixture("420");
        let at = bytes.windows(4).position(|w| w == b"ispe").unwrap() + 8;
        let mut giant = bytes.clone();
        giant[at..at + 8].copy_from_slice(&[0, 0, 0x1F, 0x40, 0, 0, 0x1F, 0x40]);
        assert_eq!(header(&giant), Err(malformed()));
        giant[at..at + 8].copy_from_slice(&[0, 0, 0x40, 0, 0, 0, 0x40, 0]);
        assert_eq!(header(&giant), Err(malformed()));
    }

    #[test]
    fn an_unknown_essential_property_is_unsupported() {
        // av1C is associated as essential; renamed, it is a property no decoder knows.
        let bytes = patched(&fixture("420"), b"av1C", b"zzzz");
        assert_eq!(header(&bytes), Err(unsupported(Variant::AvifFeature)));
    }

    #[test]
    fn grid_layouts_are_checked() {
        // The grid descriptor: version, flags, rows - 1, columns - 1, 160, 128.
        let descriptor = [0, 0, 1, 1, 0, 160, 0, 128];
        let bytes = fixture("grid");
        let many = patched(&bytes, &descriptor, &[0, 0, 63, 63]);
        assert_eq!(header(&many), Err(unsupported(Variant::AvifGridTiles)));
        let nine = patched(&bytes, &descriptor, &[0, 0, 2, 2]);
        assert_eq!(header(&nine), Err(malformed()));
        let uncovered = patched(&bytes, &descriptor, &[0, 0, 1, 1, 0, 161]);
        assert_eq!(header(&uncovered), Err(malformed()));
    }

    #[test]
    fn the_cost_grows_with_depth_alpha_and_size() {
        let cost = |name| decode_cost(&header(&fixture(name)).unwrap(), None);
        assert!(cost("10bit") > cost("420"));
        assert!(cost("444") > cost("420"));
        assert!(cost("alpha") > cost("420"));
        assert!(cost("large_420") > cost("420") + 2048 * 1536 * 4);
        assert!(cost("large_av1_tiles") >= cost("large_420") + 191 * TILE_STATE);
    }

    #[test]
    fn av1_tile_layouts_are_read_from_the_frame_header() {
        // Four columns and four rows of tiles asked for; at 128-pixel superblocks a
        // 2048×1536 frame has 16×12.
        let found = header(&fixture("large_av1_tiles")).unwrap();
        assert_eq!(found.colour.av1_tiles, 192);
        assert_eq!(header(&fixture("large_420")).unwrap().colour.av1_tiles, 1);
    }

    #[test]
    fn every_byte_flip_is_answered_without_a_panic_escaping() {
        let (mut decoded, mut refused) = (0, 0);
        for name in ["420", "grid_alpha", "10bit"] {
            let bytes = fixture(name);
            for at in 0..bytes.len() {
                for value in [0u8, 0xFF, bytes[at] ^ 0x10] {
                    let mut mutated = bytes.clone();
                    mutated[at] = value;
                    let outcome = std::panic::catch_unwind(|| {
                        header(&mutated).and_then(|h| decode(&mutated, &h, None))
                    });
                    match outcome {
                        Ok(Ok(_)) => decoded += 1,
                        Ok(Err(_)) => refused += 1,
                        Err(_) => panic!("{name}: byte {at} = {value} panicked"),
                    }
                }
            }
        }
        // Flips in the pixel data still decode; flips in the structure are refused.
        assert!(decoded > 100 && refused > 100, "{decoded} {refused}");
    }
}
