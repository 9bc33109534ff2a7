//! Quarter turns, mirrors and crops of a JPEG done on its DCT coefficients, as jpegtran does them:
//! no pixel is decoded, nothing is quantised again, the output decodes to the same pixels moved.
//!
//! libjpeg-turbo's own transform code (transupp.c) is not built into the library here: mozjpeg-sys
//! compiles it only under its `jpegtran` feature, whose Rust declaration of
//! `jpeg_transform_info` lacks the C struct's `drop_*` fields, so calling it would have the C code
//! write past the Rust value. The transforms are small enough to do here on the coefficient arrays
//! that `jpeg_read_coefficients` gives and `jpeg_write_coefficients` takes.
//!
//! In the DCT domain, mirroring a block left-right negates its coefficients of odd horizontal
//! frequency, top-bottom those of odd vertical frequency; transposing a block transposes its
//! coefficients (and the quantisation tables and sampling factors go with them). Whole blocks then
//! move to their mirrored or transposed place. That is exact only where block edges land on block
//! edges: along each source axis, the edge of the kept region that becomes the output's top or left
//! (its far edge when the axis is mirrored) must fall on an iMCU boundary. `possible` says when;
//! otherwise the caller decodes and re-encodes (jpegtran's `-perfect` refuses the same cases).

use std::ffi::{c_int, c_uint};
use std::mem;

use mozjpeg_sys as ffi;

use super::{Rect, Transform};
use crate::media::jpeg::Frame;
use crate::media::{ImageKind, MediaError};

/// Bytes the libjpeg output buffer starts with before growing into a `Vec`.
const CHUNK: usize = 64 * 1024;

/// Largest sampling factors of `frame`: the iMCU is 8 times these, in pixels.
fn max_sampling(frame: &Frame) -> (u32, u32) {
    let used = &frame.sampling[..usize::from(frame.components.clamp(1, 4))];
    let h = used.iter().map(|s| s.0).max().unwrap_or(1);
    let v = used.iter().map(|s| s.1).max().unwrap_or(1);
    (u32::from(h), u32::from(v))
}

/// Whether `region` of the stored image, turned by `t`, can be cut from `frame`'s blocks exactly.
pub(super) fn possible(frame: &Frame, t: Transform, region: Rect) -> bool {
    let (hmax, vmax) = max_sampling(frame);
    anchor(t, region, 8 * hmax, 8 * vmax).is_some()
}

/// The corner of `region` that becomes the output's top-left, in iMCUs, when it lies on iMCU
/// boundaries of `iw`×`ih` pixels.
fn anchor(t: Transform, region: Rect, iw: u32, ih: u32) -> Option<(u32, u32)> {
    let x = if t.mirror_x {
        region.x + region.width
    } else {
        region.x
    };
    let y = if t.mirror_y {
        region.y + region.height
    } else {
        region.y
    };
    (x % iw == 0 && y % ih == 0).then_some((x / iw, y / ih))
}

/// Blocks of one component in arrays padded to whole iMCUs, as libjpeg allocates them.
fn padded_blocks(side: u64, imcu: u64, factor: u64) -> u64 {
    side.div_ceil(imcu) * factor
}

/// What `transform` holds at its peak: the source's coefficients, the output's, and the output
/// file as it grows (a `Vec` doubling from about the source's size).
pub(super) fn cost(
    frame: &Frame,
    t: Transform,
    region: Rect,
    stored: (u32, u32),
    source: usize,
) -> u64 {
    let (hmax, vmax) = max_sampling(frame);
    let (w, h) = (u64::from(stored.0), u64::from(stored.1));
    let (ow, oh) = t.dimensions(region.width, region.height);
    let (ow, oh) = (u64::from(ow), u64::from(oh));
    let (iw, ih) = (u64::from(8 * hmax), u64::from(8 * vmax));
    // The output's iMCU is the source's, transposed with the picture.
    let (ow_imcu, oh_imcu) = if t.transpose { (ih, iw) } else { (iw, ih) };
    let blocks: u64 = frame.sampling[..usize::from(frame.components.clamp(1, 4))]
        .iter()
        .map(|&(hs, vs)| {
            let (hs, vs) = (u64::from(hs), u64::from(vs));
            let (ohs, ovs) = if t.transpose { (vs, hs) } else { (hs, vs) };
            padded_blocks(w, iw, hs) * padded_blocks(h, ih, vs)
                + padded_blocks(ow, ow_imcu, ohs) * padded_blocks(oh, oh_imcu, ovs)
        })
        .sum();
    // 64 two-byte coefficients a block, and a row pointer for every block row (a bound).
    blocks * (128 + 8) + 3 * source as u64 + CHUNK as u64
}

/// `region` of the stored JPEG `bytes`, turned by `t`, re-written from its coefficients, with `icc`
/// as its profile. `None` when libjpeg's reading of the header does not allow it exactly (the
/// caller's `possible` reads the same header, so only a file that libjpeg reads differently).
pub(super) fn transform(
    bytes: &[u8],
    t: Transform,
    region: Rect,
    icc: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, MediaError> {
    crate::media::jpeg::libjpeg(
        || MediaError::Damaged(ImageKind::Jpeg),
        // SAFETY: every libjpeg call is on objects created here and destroyed by the guards' drops,
        // in the order the library requires; block pointers come from `access_virt_barray` for rows
        // it has just returned, and are indexed within the widths the arrays were allocated with.
        || unsafe { run(bytes, t, region, icc) },
    )
}

/// libjpeg's error exit: unwinds to `jpeg::libjpeg`'s `catch_unwind`, the guards destroying the
/// objects on the way.
extern "C-unwind" fn error_exit(_: &mut ffi::jpeg_common_struct) {
    std::panic::resume_unwind(Box::new("libjpeg error"));
}

/// Warnings (corrupt data, premature end) are not errors: the decoders here show such files too.
extern "C-unwind" fn emit_message(_: &mut ffi::jpeg_common_struct, _: c_int) {}

fn error_manager() -> Box<ffi::jpeg_error_mgr> {
    // SAFETY: jpeg_error_mgr is plain data that jpeg_std_error fills in.
    let mut err: Box<ffi::jpeg_error_mgr> = Box::new(unsafe { mem::zeroed() });
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

struct Decompress {
    cinfo: Box<ffi::jpeg_decompress_struct>,
    _err: Box<ffi::jpeg_error_mgr>,
}

impl Decompress {
    fn new() -> Self {
        let mut err = error_manager();
        // SAFETY: a zeroed struct is what jpeg_CreateDecompress expects, `err` outlives it.
        let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(unsafe { mem::zeroed() });
        cinfo.common.err = &mut *err;
        unsafe { ffi::jpeg_create_decompress(&mut *cinfo) };
        Self { cinfo, _err: err }
    }
}

impl Drop for Decompress {
    fn drop(&mut self) {
        // SAFETY: created in `new`; destroying frees every pool, whatever state an error left.
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) };
    }
}

/// The output file: libjpeg fills `buffer`, which is appended to `out` whenever it is full.
#[repr(C)]
struct VecDest {
    /// First, so that libjpeg's `cinfo->dest` is also a pointer to the whole.
    public: ffi::jpeg_destination_mgr,
    buffer: Vec<u8>,
    out: Vec<u8>,
}

extern "C-unwind" fn init_destination(cinfo: &mut ffi::jpeg_compress_struct) {
    // SAFETY: `dest` is the `VecDest` that `Compress::new` installed.
    let dest = unsafe { &mut *cinfo.dest.cast::<VecDest>() };
    dest.public.next_output_byte = dest.buffer.as_mut_ptr();
    dest.public.free_in_buffer = dest.buffer.len();
}

extern "C-unwind" fn empty_output_buffer(cinfo: &mut ffi::jpeg_compress_struct) -> ffi::boolean {
    // SAFETY: as in `init_destination`; libjpeg calls this with the whole buffer full.
    let dest = unsafe { &mut *cinfo.dest.cast::<VecDest>() };
    dest.out.extend_from_slice(&dest.buffer);
    init_destination(cinfo);
    1
}

extern "C-unwind" fn term_destination(cinfo: &mut ffi::jpeg_compress_struct) {
    // SAFETY: as in `init_destination`.
    let dest = unsafe { &mut *cinfo.dest.cast::<VecDest>() };
    let used = dest.buffer.len() - dest.public.free_in_buffer;
    dest.out.extend_from_slice(&dest.buffer[..used]);
}

struct Compress {
    cinfo: Box<ffi::jpeg_compress_struct>,
    dest: Box<VecDest>,
    _err: Box<ffi::jpeg_error_mgr>,
}

impl Compress {
    fn new(capacity: usize) -> Self {
        let mut err = error_manager();
        // SAFETY: as in `Decompress::new`.
        let mut cinfo: Box<ffi::jpeg_compress_struct> = Box::new(unsafe { mem::zeroed() });
        cinfo.common.err = &mut *err;
        unsafe { ffi::jpeg_create_compress(&mut *cinfo) };
        let mut dest = Box::new(VecDest {
            public: ffi::jpeg_destination_mgr {
                next_output_byte: std::ptr::null_mut(),
                free_in_buffer: 0,
                init_destination: Some(init_destination),
                empty_output_buffer: Some(empty_output_buffer),
                term_destination: Some(term_destination),
            },
            buffer: vec![0; CHUNK],
            out: Vec::with_capacity(capacity),
        });
        cinfo.dest = &mut dest.public;
        Self {
            cinfo,
            dest,
            _err: err,
        }
    }
}

impl Drop for Compress {
    fn drop(&mut self) {
        // SAFETY: created in `new`.
        unsafe { ffi::jpeg_destroy_compress(&mut self.cinfo) };
    }
}

/// Where each coefficient of a source block goes in the output block, and whether it changes
/// sign: (vertical, horizontal) frequency (v, u) is negated for odd u when mirrored left-right,
/// for odd v when mirrored top-bottom, and becomes (u, v) when transposed.
fn coefficient_map(t: Transform) -> [(usize, bool); 64] {
    let mut map = [(0, false); 64];
    for (k, entry) in map.iter_mut().enumerate() {
        let (v, u) = (k / 8, k % 8);
        let negate = (t.mirror_x && u % 2 == 1) != (t.mirror_y && v % 2 == 1);
        let to = if t.transpose { u * 8 + v } else { k };
        *entry = (to, negate);
    }
    map
}

unsafe fn run(
    bytes: &[u8],
    t: Transform,
    region: Rect,
    icc: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, MediaError> {
    let mut src = Decompress::new();
    let s = &mut *src.cinfo;
    unsafe {
        ffi::jpeg_mem_src(s, bytes.as_ptr(), bytes.len() as _);
        ffi::jpeg_read_header(s, 1);
    }
    let components = usize::try_from(s.num_components).unwrap_or(0);
    if !(1..=4).contains(&components) {
        return Err(MediaError::Malformed(ImageKind::Jpeg));
    }
    // SAFETY: jpeg_read_header filled `comp_info` with `num_components` entries.
    let comp: Vec<(u32, u32, u32, u32)> = unsafe {
        std::slice::from_raw_parts(s.comp_info, components)
            .iter()
            .map(|c| {
                (
                    c.h_samp_factor as u32,
                    c.v_samp_factor as u32,
                    c.width_in_blocks,
                    c.height_in_blocks,
                )
            })
            .collect()
    };
    let hmax = comp.iter().map(|c| c.0).max().unwrap_or(1);
    let vmax = comp.iter().map(|c| c.1).max().unwrap_or(1);
    let Some((ax, ay)) = anchor(t, region, 8 * hmax, 8 * vmax) else {
        return Ok(None);
    };
    let (ow, oh) = t.dimensions(region.width, region.height);
    // The output's sampling factors and iMCU are the source's, transposed with the picture.
    let (ohmax, ovmax) = if t.transpose {
        (vmax, hmax)
    } else {
        (hmax, vmax)
    };
    struct Plane {
        /// Source: padded block columns and rows, and the anchor's block.
        width: u32,
        height: u32,
        anchor: (u32, u32),
        /// Output: padded block columns and rows, and the rows accessed at once.
        out_width: u32,
        out_height: u32,
        out_rows: u32,
    }
    let planes: Vec<Plane> = comp
        .iter()
        .map(|&(hs, vs, wb, hb)| {
            let (ohs, ovs) = if t.transpose { (vs, hs) } else { (hs, vs) };
            Plane {
                // jdcoefct.c rounds each component's blocks up to its sampling factor.
                width: wb.div_ceil(hs) * hs,
                height: hb.div_ceil(vs) * vs,
                anchor: (ax * hs, ay * vs),
                out_width: ow.div_ceil(8 * ohmax) * ohs,
                out_height: oh.div_ceil(8 * ovmax) * ovs,
                out_rows: ovs,
            }
        })
        .collect();

    // The output's arrays come from the source's memory manager before `jpeg_read_coefficients`
    // realises every requested array, as transupp.c does.
    let mem = unsafe { &*s.common.mem };
    let request = mem.request_virt_barray.expect("libjpeg's memory manager");
    let access = mem.access_virt_barray.expect("libjpeg's memory manager");
    let mut out_arrays: Vec<*mut ffi::jvirt_barray_control> = planes
        .iter()
        .map(|p| unsafe {
            request(
                &mut s.common,
                ffi::JPOOL_IMAGE,
                1,
                p.out_width,
                p.out_height,
                p.out_rows,
            )
        })
        .collect();
    let in_arrays = unsafe { ffi::jpeg_read_coefficients(s) };
    if in_arrays.is_null() {
        return Err(MediaError::Damaged(ImageKind::Jpeg));
    }

    let map = coefficient_map(t);
    for (ci, p) in planes.iter().enumerate() {
        let source = unsafe { *in_arrays.add(ci) };
        let mut dy = 0;
        while dy < p.out_height {
            let rows = unsafe { access(&mut s.common, out_arrays[ci], dy, p.out_rows, 1) };
            for r in 0..p.out_rows {
                let row = unsafe { *rows.add(r as usize) };
                for dx in 0..p.out_width {
                    // SAFETY: `row` holds `out_width` blocks.
                    let out = unsafe { &mut *row.add(dx as usize) };
                    let (mx, my) = if t.transpose {
                        (dy + r, dx)
                    } else {
                        (dx, dy + r)
                    };
                    let sx = if t.mirror_x {
                        p.anchor.0.checked_sub(mx + 1)
                    } else {
                        Some(p.anchor.0 + mx)
                    };
                    let sy = if t.mirror_y {
                        p.anchor.1.checked_sub(my + 1)
                    } else {
                        Some(p.anchor.1 + my)
                    };
                    match (sx, sy) {
                        (Some(sx), Some(sy)) if sx < p.width && sy < p.height => {
                            let block = unsafe {
                                let rows = access(&mut s.common, source, sy, 1, 0);
                                &*(*rows).add(sx as usize)
                            };
                            for (k, &(to, negate)) in map.iter().enumerate() {
                                out[to] = if negate {
                                    block[k].wrapping_neg()
                                } else {
                                    block[k]
                                };
                            }
                        }
                        // Padding past the source's own: never shown.
                        _ => *out = [0; 64],
                    }
                }
            }
            dy += p.out_rows;
        }
    }

    let mut dst = Compress::new(bytes.len() + bytes.len() / 4);
    let d = &mut *dst.cinfo;
    unsafe {
        // libjpeg-turbo's defaults, not mozjpeg's: jpeg_copy_critical_parameters calls
        // jpeg_set_defaults, which would otherwise choose mozjpeg's scan search.
        ffi::jpeg_c_set_int_param(
            d,
            ffi::J_INT_PARAM::JINT_COMPRESS_PROFILE,
            ffi::JCP_FASTEST as c_int,
        );
        ffi::jpeg_copy_critical_parameters(s, d);
    }
    d.image_width = ow;
    d.image_height = oh;
    // Huffman tables fitted to the data: the coefficients are all in memory already.
    d.optimize_coding = 1;
    if t.transpose {
        // SAFETY: jpeg_copy_critical_parameters allocated the output's components and tables.
        let out_comp = unsafe { std::slice::from_raw_parts_mut(d.comp_info, components) };
        for c in out_comp {
            mem::swap(&mut c.h_samp_factor, &mut c.v_samp_factor);
        }
        for table in d.quant_tbl_ptrs.iter().filter(|t| !t.is_null()) {
            let q = unsafe { &mut (**table).quantval };
            for i in 0..8 {
                for j in 0..i {
                    q.swap(i * 8 + j, j * 8 + i);
                }
            }
        }
    }
    unsafe {
        if ffi::jpeg_has_multiple_scans(s) != 0 {
            // A progressive source stays progressive: its size is what the edit should keep.
            ffi::jpeg_simple_progression(d);
        }
        ffi::jpeg_write_coefficients(d, out_arrays.as_mut_ptr());
        for marker in super::icc_markers(icc) {
            ffi::jpeg_write_marker(
                d,
                ffi::jpeg_marker::APP0 as c_int + 2,
                marker.as_ptr(),
                marker.len() as c_uint,
            );
        }
        ffi::jpeg_finish_compress(d);
    }
    // The output arrays live in the source's pools: the source is destroyed after the output.
    let out = mem::take(&mut dst.dest.out);
    drop(dst);
    drop(src);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coefficient_map_of_a_quarter_turn_transposes_and_negates_odd_columns() {
        // Clockwise: transpose after mirroring top-bottom, so odd vertical frequencies negate
        // and then become odd horizontal ones.
        let map = coefficient_map(Transform::ROTATE_90);
        assert_eq!(map[1], (8, false));
        assert_eq!(map[8], (1, true));
        assert_eq!(map[9], (9, true));
        assert_eq!(map[0], (0, false));
        let mirror = coefficient_map(Transform::FLIP_H);
        assert_eq!(mirror[1], (1, true));
        assert_eq!(mirror[8], (8, false));
    }

    #[test]
    fn libjpeg_errors_unwind_into_an_error() {
        let image = image::RgbImage::from_pixel(32, 32, image::Rgb([9, 99, 199]));
        let mut bytes = crate::media::jpeg::encode_rgb(&image, 80).unwrap();
        let whole = Rect {
            x: 0,
            y: 0,
            width: 32,
            height: 32,
        };
        assert!(matches!(
            transform(&bytes, Transform::ROTATE_90, whole, None),
            Ok(Some(_))
        ));
        // A 12-bit frame, which this 8-bit libjpeg refuses with a fatal error.
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 4] = 12;
        assert_eq!(
            transform(&bytes, Transform::ROTATE_90, whole, None),
            Err(MediaError::Damaged(ImageKind::Jpeg))
        );
    }

    #[test]
    fn anchors_must_fall_on_imcu_boundaries() {
        let whole = Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 40,
        };
        assert_eq!(anchor(Transform::IDENTITY, whole, 16, 16), Some((0, 0)));
        // Mirrored left-right, the right edge (64) becomes the left: aligned.
        assert_eq!(anchor(Transform::FLIP_H, whole, 16, 16), Some((4, 0)));
        // Mirrored top-bottom, the bottom edge (40) is not on a 16-pixel boundary.
        assert_eq!(anchor(Transform::FLIP_V, whole, 16, 16), None);
        assert_eq!(anchor(Transform::FLIP_V, whole, 8, 8), Some((0, 5)));
    }
}
