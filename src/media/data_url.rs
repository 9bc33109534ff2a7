//! Images sent as text: `data:image/...;base64,` URLs and bare base64, the way the extension, the
//! clipboard route and cloud sync carry them.

use base64::Engine;

use super::MAX_IMAGE_BYTES;

/// Why a text is not an image's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("not a base64 data URL")]
    NotBase64,
    /// More than `MAX_IMAGE_BYTES` once decoded.
    #[error("larger than the upload limit")]
    TooLarge,
}

/// Standard base64 that takes padded and unpadded input alike.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Accepts `data:image/...;base64,` URLs and bare base64 (whitespace and missing padding allowed).
pub fn decode(data: &str) -> Result<Vec<u8>, DataUrlError> {
    let data = data.trim();
    let payload = match data.strip_prefix("data:") {
        Some(rest) => {
            let (header, payload) = rest.split_once(',').ok_or(DataUrlError::NotBase64)?;
            if !header.ends_with(";base64") {
                return Err(DataUrlError::NotBase64);
            }
            payload
        }
        None => data,
    };
    // Data URLs from browsers carry no whitespace, so the payload is decoded as it is; only when
    // that fails and there is whitespace (wrapped base64) is a compacted copy decoded. Scanning
    // for whitespace first cost as much CPU as the decoding itself.
    match decode_base64(payload.as_bytes()) {
        Err(_) if payload.bytes().any(|b| b.is_ascii_whitespace()) => {
            let compact: Vec<u8> = payload
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            decode_base64(&compact)
        }
        decoded => decoded,
    }
}

/// Base64 without whitespace, refused before decoding when it would exceed the size limit.
fn decode_base64(base64: &[u8]) -> Result<Vec<u8>, DataUrlError> {
    if base64.len() as u64 / 4 * 3 > MAX_IMAGE_BYTES + 2 {
        return Err(DataUrlError::TooLarge);
    }
    let bytes = BASE64.decode(base64).map_err(|_| DataUrlError::NotBase64)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(DataUrlError::TooLarge);
    }
    Ok(bytes)
}

/// Longest `data:` header accepted before its comma (`data:image/png;base64`).
const MAX_HEADER: usize = 256;
/// Base64 characters decoded at a time by `Decoder` (a multiple of 4).
const DECODE_RUN: usize = 64 * 1024;

/// `decode` for text that arrives in pieces (a sync body read as a stream): holds at most one
/// run of base64 characters and the decoded bytes, never the text.
pub struct Decoder {
    stage: Stage,
    /// The start of the text until it is known to be a data URL, then its header.
    head: Vec<u8>,
    pending: Vec<u8>,
    out: Vec<u8>,
    failed: Option<DataUrlError>,
}

enum Stage {
    /// Not yet known whether this is a data URL or bare base64.
    Start,
    /// In a data URL's header, before its comma.
    Header,
    Payload,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            stage: Stage::Start,
            head: Vec::new(),
            pending: Vec::new(),
            out: Vec::new(),
            failed: None,
        }
    }

    /// The next piece of the text. After an error the rest is ignored.
    pub fn push(&mut self, piece: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        match self.stage {
            Stage::Payload => self.payload(piece),
            Stage::Header => self.header(piece),
            Stage::Start => {
                self.head.extend_from_slice(piece);
                let text = self.head.trim_ascii_start();
                if text.len() < b"data:".len() && b"data:".starts_with(text) {
                    return;
                }
                let is_url = text.starts_with(b"data:");
                let started = std::mem::take(&mut self.head);
                if is_url {
                    self.stage = Stage::Header;
                    self.header(&started);
                } else {
                    self.stage = Stage::Payload;
                    self.payload(&started);
                }
            }
        }
    }

    fn header(&mut self, bytes: &[u8]) {
        let Some(comma) = memchr::memchr(b',', bytes) else {
            self.head.extend_from_slice(bytes);
            if self.head.len() > MAX_HEADER {
                self.fail(DataUrlError::NotBase64);
            }
            return;
        };
        self.head.extend_from_slice(&bytes[..comma]);
        if !self.head.trim_ascii_start().ends_with(b";base64") {
            return self.fail(DataUrlError::NotBase64);
        }
        self.head = Vec::new();
        self.stage = Stage::Payload;
        self.payload(&bytes[comma + 1..]);
    }

    fn fail(&mut self, why: DataUrlError) {
        self.failed = Some(why);
        self.out = Vec::new();
        self.pending = Vec::new();
    }

    fn payload(&mut self, piece: &[u8]) {
        self.pending
            .extend(piece.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        if self.pending.len() >= DECODE_RUN {
            let whole = self.pending.len() / 4 * 4;
            let run: Vec<u8> = self.pending.drain(..whole).collect();
            self.decode_run(&run);
        }
    }

    fn decode_run(&mut self, run: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if (self.out.len() + run.len() / 4 * 3) as u64 > MAX_IMAGE_BYTES + 2 {
            return self.fail(DataUrlError::TooLarge);
        }
        if BASE64.decode_vec(run, &mut self.out).is_err() {
            self.fail(DataUrlError::NotBase64);
        }
    }

    /// The decoded bytes, once the whole text was pushed.
    pub fn finish(mut self) -> Result<Vec<u8>, DataUrlError> {
        match self.stage {
            // A short text that could still have become `data:`: bare base64.
            Stage::Start => {
                let started = std::mem::take(&mut self.head);
                self.payload(&started);
            }
            // No comma came.
            Stage::Header => self.fail(DataUrlError::NotBase64),
            Stage::Payload => {}
        }
        let rest = std::mem::take(&mut self.pending);
        self.decode_run(&rest);
        match self.failed {
            Some(e) => Err(e),
            None if self.out.len() as u64 > MAX_IMAGE_BYTES => Err(DataUrlError::TooLarge),
            None => Ok(self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_data_accepts_data_urls_and_bare_base64() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        assert_eq!(
            decode(&format!("data:image/png;base64,{b64}")).unwrap(),
            png
        );
        assert_eq!(decode(&b64).unwrap(), png);
        let wrapped = format!("{}\n{}", &b64[..8], b64[8..].trim_end_matches('='));
        assert_eq!(decode(&wrapped).unwrap(), png);
        let crlf = format!("{}\r\n {}\t", &b64[..4], &b64[4..]);
        assert_eq!(
            decode(&format!("data:image/png;base64,{crlf}")).unwrap(),
            png
        );
        assert!(matches!(
            decode("data:image/png,abc"),
            Err(DataUrlError::NotBase64)
        ));
        assert!(matches!(
            decode("!!!not base64!!!"),
            Err(DataUrlError::NotBase64)
        ));
    }

    #[test]
    fn wrapped_base64_is_measured_after_its_whitespace_is_removed() {
        // 9 MiB of image: as wrapped base64 (a newline every 4 characters) it is 15 MiB of text,
        // over the limit only until the whitespace is gone.
        let image = vec![0x5Au8; 9 * 1024 * 1024];
        let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
        let wrapped: String = b64
            .as_bytes()
            .chunks(4)
            .flat_map(|c| c.iter().copied().chain([b'\n']))
            .map(char::from)
            .collect();
        assert!(wrapped.len() as u64 / 4 * 3 > MAX_IMAGE_BYTES);
        assert_eq!(decode(&wrapped).unwrap(), image);
        let over = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 11 * 1024 * 1024]);
        assert!(matches!(
            decode(&format!("{}\n{}", &over[..4], &over[4..])),
            Err(DataUrlError::TooLarge)
        ));
        assert!(matches!(
            decode("!!! not\nbase64"),
            Err(DataUrlError::NotBase64)
        ));
    }

    #[test]
    fn the_decoder_gives_what_decode_gives_however_the_text_is_cut() {
        let image: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&image);
        let texts = [
            format!("data:image/png;base64,{b64}"),
            b64.clone(),
            format!("  data:image/jpeg;base64,{}\n{}", &b64[..10], &b64[10..]),
            "da".to_string(),
            "data:image/png,abc".to_string(),
            "data:image/png;base64".to_string(),
            "!!!not base64!!!".to_string(),
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(vec![1u8; 11 * 1024 * 1024])
            ),
        ];
        for text in &texts {
            let whole = decode(text);
            let cuts: &[usize] = if text.len() > 1_000_000 {
                &[70_000, usize::MAX]
            } else {
                &[1, 3, 7, 4096, 70_000, usize::MAX]
            };
            for &cut in cuts {
                let mut decoder = Decoder::new();
                for piece in text.as_bytes().chunks(cut.min(text.len().max(1))) {
                    decoder.push(piece);
                }
                assert_eq!(
                    decoder.finish(),
                    whole,
                    "{} cut every {cut}",
                    &text[..text.len().min(30)]
                );
            }
        }
        assert_eq!(decode(&texts[0]).unwrap(), image);
    }
}
