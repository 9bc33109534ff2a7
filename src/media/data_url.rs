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
}
