//! Just enough of the ZIP format to hand out the browser extension as `/extension.zip`: deflated
//! entries, UTF-8 names, fixed timestamps (the same assets always give the same bytes).

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const VERSION: u16 = 20;
const FLAG_UTF8: u16 = 1 << 11;
const DEFLATE: u16 = 8;
/// 1980-01-01 00:00, the format's epoch: timestamps would only make identical builds differ.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;

/// Builds a ZIP archive of `(name, bytes)` entries. Archives here hold a few small files, far from
/// the classic format's 4 GiB and 65535-entry limits, which are checked rather than assumed.
pub fn build<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count: u16 = 0;
    for (name, bytes) in entries {
        let mut deflater = DeflateEncoder::new(Vec::new(), Compression::best());
        deflater.write_all(bytes).expect("writing to memory");
        let packed = deflater.finish().expect("writing to memory");
        let crc = crc32fast::hash(bytes);
        let offset = u32::try_from(out.len()).expect("archive under 4 GiB");
        let (packed_len, len) = (
            u32::try_from(packed.len()).expect("entry under 4 GiB"),
            u32::try_from(bytes.len()).expect("entry under 4 GiB"),
        );
        let name_len = u16::try_from(name.len()).expect("name under 64 KiB");

        put32(&mut out, LOCAL_HEADER);
        for v in [VERSION, FLAG_UTF8, DEFLATE, DOS_TIME, DOS_DATE] {
            put16(&mut out, v);
        }
        for v in [crc, packed_len, len] {
            put32(&mut out, v);
        }
        put16(&mut out, name_len);
        put16(&mut out, 0);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);

        put32(&mut central, CENTRAL_HEADER);
        for v in [VERSION, VERSION, FLAG_UTF8, DEFLATE, DOS_TIME, DOS_DATE] {
            put16(&mut central, v);
        }
        for v in [crc, packed_len, len] {
            put32(&mut central, v);
        }
        // Name length, then no extra field, no comment, disk 0, no internal attributes.
        for v in [name_len, 0, 0, 0, 0] {
            put16(&mut central, v);
        }
        put32(&mut central, 0);
        put32(&mut central, offset);
        central.extend_from_slice(name.as_bytes());
        count = count.checked_add(1).expect("fewer than 65536 entries");
    }
    let central_offset = u32::try_from(out.len()).expect("archive under 4 GiB");
    let central_len = u32::try_from(central.len()).expect("archive under 4 GiB");
    out.extend_from_slice(&central);
    put32(&mut out, END_OF_CENTRAL_DIRECTORY);
    for v in [0, 0, count, count] {
        put16(&mut out, v);
    }
    put32(&mut out, central_len);
    put32(&mut out, central_offset);
    put16(&mut out, 0);
    out
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::DeflateDecoder;
    use std::io::Read;

    /// Reads the archive back through its central directory, as unzip does.
    fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
        let u16_at = |i: usize| u16::from_le_bytes([zip[i], zip[i + 1]]) as usize;
        let u32_at = |i: usize| u32::from_le_bytes(zip[i..i + 4].try_into().unwrap()) as usize;
        let end = zip.len() - 22;
        assert_eq!(u32_at(end), END_OF_CENTRAL_DIRECTORY as usize);
        let (count, mut at) = (u16_at(end + 10), u32_at(end + 16));
        let mut found = Vec::new();
        for _ in 0..count {
            assert_eq!(u32_at(at), CENTRAL_HEADER as usize);
            let (crc, packed_len, len) = (u32_at(at + 16), u32_at(at + 20), u32_at(at + 24));
            let name_len = u16_at(at + 28);
            let local = u32_at(at + 42);
            let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).unwrap();
            assert_eq!(u32_at(local), LOCAL_HEADER as usize);
            let data = local + 30 + u16_at(local + 26) + u16_at(local + 28);
            let mut bytes = Vec::new();
            DeflateDecoder::new(&zip[data..data + packed_len])
                .read_to_end(&mut bytes)
                .unwrap();
            assert_eq!(bytes.len(), len);
            assert_eq!(crc32fast::hash(&bytes) as usize, crc);
            found.push((name, bytes));
            at += 46 + name_len;
        }
        found
    }

    #[test]
    fn entries_read_back_intact_and_builds_are_reproducible() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let input: Vec<(&str, &[u8])> = vec![
            ("manifest.json", b"{\"manifest_version\": 3}"),
            ("_locales/zh_CN/messages.json", "{\"名\": 1}".as_bytes()),
            ("empty.txt", b""),
            ("icons/big.bin", &big),
        ];
        let zip = build(input.iter().copied());
        let back = entries(&zip);
        assert_eq!(back.len(), input.len());
        for ((name, bytes), (got_name, got)) in input.iter().zip(&back) {
            assert_eq!(name, got_name);
            assert_eq!(*bytes, got.as_slice());
        }
        assert_eq!(zip, build(input.iter().copied()));
    }
}
