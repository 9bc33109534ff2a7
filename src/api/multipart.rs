//! A streaming `multipart/form-data` reader with bounds on everything a client controls: the size
//! of each part's head (8 KiB), the number of parts (32), and each part's body (the caller's
//! limit). The general-purpose reader warp ships buffers a part's head without limit and rescans
//! it on every chunk, so one 250 MiB head cost half a GiB and seconds of CPU.
//!
//! Only what form uploads use is understood: `Content-Disposition: form-data` with `name` and
//! `filename`; other headers are skipped, `filename*` (RFC 5987) falls back to `filename`.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use memchr::memmem;

use super::ApiError;

/// Longest part head (its header lines), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most parts in one form; a file upload has two or three.
pub const MAX_PARTS: usize = 32;
/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// The head of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    pub name: String,
    pub filename: Option<String>,
}

/// Reads the parts of one form body, one at a time, in order.
pub struct Multipart<S> {
    stream: S,
    buf: BytesMut,
    /// `\r\n--boundary`: what ends every part.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    /// The stream has ended.
    eof: bool,
    parts: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Inside a part's body; `next_part` skips what is left of it.
    Body,
    /// Right after a delimiter: a part's head or the closing `--` comes next.
    Between,
    /// The closing delimiter has been read.
    Done,
}

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("无效的表单数据: {why}"))
}

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, ApiError> {
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(ApiError::NoFile);
    }
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || value.len() > MAX_BOUNDARY {
                return Err(bad("boundary 无效"));
            }
            return Ok(value.to_string());
        }
    }
    Err(bad("缺少 boundary"))
}

impl<S, B, E> Multipart<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    pub fn new(stream: S, boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let finder = memmem::Finder::new(&delimiter).into_owned();
        // The first delimiter may open the body without the CRLF before it; a CRLF in front makes
        // every delimiter look alike.
        let mut buf = BytesMut::with_capacity(16 * 1024);
        buf.extend_from_slice(b"\r\n");
        Self {
            stream,
            buf,
            delimiter,
            finder,
            eof: false,
            parts: 0,
            state: State::Preamble,
        }
    }

    /// Reads more of the body into the buffer; `false` at its end.
    async fn fill(&mut self) -> Result<bool, ApiError> {
        if self.eof {
            return Ok(false);
        }
        match self.stream.next().await {
            Some(Ok(mut chunk)) => {
                while chunk.has_remaining() {
                    let piece = chunk.chunk();
                    self.buf.extend_from_slice(piece);
                    let n = piece.len();
                    chunk.advance(n);
                }
                Ok(true)
            }
            Some(Err(e)) => Err(bad(format!("读取请求体失败: {e}"))),
            None => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    /// The head of the next part, or `None` after the last one. What is left of the current part
    /// is skipped.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, ApiError> {
        match self.state {
            State::Done => return Ok(None),
            State::Preamble | State::Body => {
                // Skips the rest of the current part (or the preamble) without keeping it.
                while self.body_piece(usize::MAX).await?.is_some() {}
            }
            State::Between => {}
        }
        // The buffer now starts right after a delimiter.
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(bad("表单意外结束"));
            }
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            return Ok(None);
        }
        self.parts += 1;
        if self.parts > MAX_PARTS {
            return Err(bad(format!("分段超过 {MAX_PARTS} 个")));
        }
        let head = self.read_head().await?;
        self.state = State::Body;
        Ok(Some(head))
    }

    /// Reads up to the blank line that ends a part's head, never holding more than `MAX_HEAD`.
    async fn read_head(&mut self) -> Result<PartHead, ApiError> {
        // After the delimiter: optional transport padding, then CRLF, then the header lines.
        let mut scanned = 0;
        let end = loop {
            let window = &self.buf[scanned..];
            if let Some(at) = memmem::find(window, b"\r\n\r\n") {
                break scanned + at;
            }
            if self.buf.len() > MAX_HEAD + 2 {
                return Err(bad(format!("分段头超过 {} KiB", MAX_HEAD / 1024)));
            }
            scanned = self.buf.len().saturating_sub(3);
            if !self.fill().await? {
                return Err(bad("表单意外结束"));
            }
        };
        if end > MAX_HEAD + 2 {
            return Err(bad(format!("分段头超过 {} KiB", MAX_HEAD / 1024)));
        }
        let head = self.buf.split_to(end + 4);
        let text = std::str::from_utf8(&head).map_err(|_| bad("分段头不是 UTF-8"))?;
        let mut lines = text.split("\r\n");
        // The rest of the delimiter line: only padding may follow the boundary.
        if !lines.next().unwrap_or("").trim().is_empty() {
            return Err(bad("boundary 之后有多余内容"));
        }
        let mut head = None;
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or_else(|| bad("分段头无效"))?;
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                head = Some(disposition(value)?);
            }
        }
        head.ok_or_else(|| bad("分段缺少 Content-Disposition"))
    }

    /// The next piece of the current part's body, at most `max` bytes; `None` at its end.
    async fn body_piece(&mut self, max: usize) -> Result<Option<BytesMut>, ApiError> {
        if matches!(self.state, State::Done | State::Between) {
            return Ok(None);
        }
        loop {
            if let Some(at) = self.finder.find(&self.buf) {
                if at == 0 {
                    self.buf.advance(self.delimiter.len());
                    self.state = State::Between;
                    return Ok(None);
                }
                let n = at.min(max);
                return Ok(Some(self.buf.split_to(n)));
            }
            // Everything but a possible start of the delimiter is body.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe.min(max))));
            }
            if !self.fill().await? {
                return Err(bad("表单意外结束"));
            }
        }
    }

    /// The current part's body, failing with `too_large` once it passes `limit` bytes. `grow` is
    /// told the length so far before it is buffered and may refuse it.
    pub async fn read_body(
        &mut self,
        limit: usize,
        too_large: ApiError,
        mut grow: impl FnMut(usize) -> Result<(), ApiError>,
    ) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        while let Some(piece) = self.body_piece(limit + 1).await? {
            if out.len() + piece.len() > limit {
                return Err(too_large);
            }
            grow(out.len() + piece.len())?;
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

/// `name` and `filename` of a `Content-Disposition: form-data` header value.
fn disposition(value: &str) -> Result<PartHead, ApiError> {
    let mut rest = value.trim();
    let kind_end = rest.find(';').unwrap_or(rest.len());
    if !rest[..kind_end].trim().eq_ignore_ascii_case("form-data") {
        return Err(bad("Content-Disposition 不是 form-data"));
    }
    rest = &rest[kind_end..];
    let (mut name, mut filename) = (None, None);
    while let Some(after) = rest.strip_prefix(';') {
        let after = after.trim_start();
        let eq = after
            .find('=')
            .ok_or_else(|| bad("Content-Disposition 参数无效"))?;
        let key = after[..eq].trim().to_ascii_lowercase();
        let (value, remaining) = param_value(&after[eq + 1..])?;
        match key.as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
        rest = remaining.trim_start();
    }
    Ok(PartHead {
        name: name.ok_or_else(|| bad("分段缺少 name"))?,
        filename,
    })
}

/// A parameter value (quoted, with backslash escapes, or a bare token) and what follows it.
fn param_value(input: &str) -> Result<(String, &str), ApiError> {
    let input = input.trim_start();
    let Some(quoted) = input.strip_prefix('"') else {
        let end = input.find(';').unwrap_or(input.len());
        return Ok((input[..end].trim().to_string(), &input[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &quoted[i + 1..])),
            // Browsers escape only `"` (as %22 or \"); a backslash before anything else is kept,
            // so Windows paths in old clients' file names survive.
            '\\' if quoted[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(bad("Content-Disposition 引号未闭合"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stream_of(
        body: &[u8],
        chunk: usize,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Unpin {
        let chunks: Vec<_> = body
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures_util::stream::iter(chunks)
    }

    async fn read_all(body: &[u8], chunk: usize) -> Result<Vec<(PartHead, Vec<u8>)>, ApiError> {
        let mut form = Multipart::new(stream_of(body, chunk), "XyZ");
        let mut parts = Vec::new();
        while let Some(head) = form.next_part().await? {
            let data = form
                .read_body(1 << 20, ApiError::FileTooLarge, |_| Ok(()))
                .await?;
            parts.push((head, data));
        }
        Ok(parts)
    }

    const FORM: &[u8] = b"preamble\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"category\"\r\n\r\n\
        clothes\r\n--XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\n\
        Content-Type: image/png\r\n\r\n\
        \x89PNG\r\n--X not yet\r\n--XyZ--\r\nepilogue";

    #[tokio::test]
    async fn parts_read_alike_whatever_the_chunking() {
        for chunk in [1, 2, 3, 7, 64, FORM.len()] {
            let parts = read_all(FORM, chunk).await.unwrap();
            assert_eq!(parts.len(), 2, "chunk {chunk}");
            assert_eq!(parts[0].0.name, "category");
            assert_eq!(parts[0].1, b"clothes");
            assert_eq!(parts[1].0.filename.as_deref(), Some("a \"b\".png"));
            assert_eq!(parts[1].1, b"\x89PNG\r\n--X not yet");
        }
    }

    #[tokio::test]
    async fn a_huge_part_head_is_refused_without_being_held() {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ".to_vec();
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body.extend_from_slice(b"\r\n\r\ndata\r\n--XyZ--");
        let err = read_all(&body, 4096).await.unwrap_err();
        assert!(err.to_string().contains("分段头"), "{err}");
    }

    #[tokio::test]
    async fn too_many_parts_truncation_and_oversize_bodies_are_errors() {
        let mut body = Vec::new();
        for _ in 0..=MAX_PARTS {
            body.extend_from_slice(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n",
            );
        }
        body.extend_from_slice(b"--XyZ--");
        assert!(read_all(&body, 100).await.is_err());
        assert!(read_all(&FORM[..60], 10).await.is_err(), "cut short");
        let mut form = Multipart::new(stream_of(FORM, 5), "XyZ");
        form.next_part().await.unwrap();
        let err = form
            .read_body(3, ApiError::FileTooLarge, |_| Ok(()))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::FileTooLarge));
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").unwrap(),
            "a b"
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=xyz").unwrap(),
            "xyz"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(matches!(
            boundary("application/json"),
            Err(ApiError::NoFile)
        ));
    }
}
