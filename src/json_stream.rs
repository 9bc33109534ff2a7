//! One JSON document read as a stream, for request bodies too large to hold: a hub receiving a
//! whole collection in one sync request (the original project's clients send gigabytes that way).
//!
//! The caller walks the document's structure (`begin_object`, `next_key`, `begin_array`,
//! `next_element`) and, value by value, skips it (`skip_value`, no memory), copies its text under a
//! limit (`capture_value`, to parse with serde) or takes a string's content in pieces
//! (`string_value`). Nothing here holds more than one key or one captured value, whatever the size
//! of the document. Every value is checked as a parser would check it, skipped ones too, so a body
//! accepted here is one `serde_json` would accept.

use std::io::{self, BufRead};

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("reading the body: {0}")]
    Io(#[from] io::Error),
    #[error("invalid JSON at byte {at}: {what}")]
    Syntax { at: u64, what: &'static str },
    /// A key or captured value over its limit.
    #[error("{0} is too large")]
    TooLarge(&'static str),
}

type Result<T> = std::result::Result<T, ScanError>;

/// Nesting of skipped and captured values at most (serde_json's own limit is 128).
const MAX_DEPTH: usize = 128;
/// Longest number (or literal) read.
const MAX_SCALAR: usize = 512;

/// Whether `token` is a JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_number(token: &[u8]) -> bool {
    let digits = |t: &[u8]| t.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut rest = token.strip_prefix(b"-").unwrap_or(token);
    match digits(rest) {
        0 => return false,
        n if n > 1 && rest[0] == b'0' => return false,
        n => rest = &rest[n..],
    }
    if let Some(fraction) = rest.strip_prefix(b".") {
        match digits(fraction) {
            0 => return false,
            n => rest = &fraction[n..],
        }
    }
    if let Some(exponent) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exponent = exponent
            .strip_prefix(b"+")
            .or_else(|| exponent.strip_prefix(b"-"))
            .unwrap_or(exponent);
        match digits(exponent) {
            0 => return false,
            n => rest = &exponent[n..],
        }
    }
    rest.is_empty()
}

/// UTF-8 checked across the pieces a string arrives in.
#[derive(Default)]
struct Utf8 {
    /// The start of a character cut by the end of the last piece.
    cut: Vec<u8>,
}

impl Utf8 {
    fn push(&mut self, piece: &[u8]) -> bool {
        let joined;
        let text = if self.cut.is_empty() {
            piece
        } else {
            joined = [std::mem::take(&mut self.cut).as_slice(), piece].concat();
            &joined
        };
        match std::str::from_utf8(text) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                self.cut = text[e.valid_up_to()..].to_vec();
                true
            }
            Err(_) => false,
        }
    }

    /// Whether no character was left cut.
    fn ended(&self) -> bool {
        self.cut.is_empty()
    }
}

/// A pull reader over `input` (see the module docs).
pub struct Scanner<R> {
    input: R,
    /// Bytes consumed so far: where errors are reported.
    at: u64,
    /// For each open object or array: whether its first member is still to come.
    first: Vec<bool>,
    /// While a value is captured: its text so far, and the most it may have.
    tap: Option<(Vec<u8>, usize, &'static str)>,
}

impl<R: BufRead> Scanner<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            at: 0,
            first: Vec::new(),
            tap: None,
        }
    }

    fn syntax(&self, what: &'static str) -> ScanError {
        ScanError::Syntax { at: self.at, what }
    }

    fn peek(&mut self) -> Result<Option<u8>> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn consume(&mut self, n: usize) -> Result<()> {
        if let Some((text, max, what)) = &mut self.tap {
            if text.len() + n > *max {
                return Err(ScanError::TooLarge(what));
            }
            text.extend_from_slice(&self.input.fill_buf()?[..n]);
        }
        self.input.consume(n);
        self.at += n as u64;
        Ok(())
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek_token(&mut self) -> Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            let Some(skip) = buf.iter().position(|b| !b.is_ascii_whitespace()) else {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = buf.len();
                self.consume(n)?;
                continue;
            };
            let token = buf[skip];
            self.consume(skip)?;
            return Ok(Some(token));
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<()> {
        match self.peek_token()? {
            Some(b) if b == byte => self.consume(1),
            _ => Err(self.syntax(what)),
        }
    }

    /// The first byte of the next value, not consumed: `{`, `[`, `"`, or a scalar's first byte.
    pub fn peek_value(&mut self) -> Result<u8> {
        self.peek_token()?
            .ok_or_else(|| self.syntax("a value was expected"))
    }

    /// Enters the object that is the next value.
    pub fn begin_object(&mut self) -> Result<()> {
        self.expect(b'{', "an object was expected")?;
        self.first.push(true);
        Ok(())
    }

    /// Enters the array that is the next value.
    pub fn begin_array(&mut self) -> Result<()> {
        self.expect(b'[', "an array was expected")?;
        self.first.push(true);
        Ok(())
    }

    /// Moves past the separator before the next member of the innermost open object or array;
    /// `false` (and the container is closed) when `close` comes instead.
    fn next_member(&mut self, close: u8) -> Result<bool> {
        let token = self.peek_token()?;
        if token == Some(close) {
            self.consume(1)?;
            self.first.pop();
            return Ok(false);
        }
        let at = self.at;
        let first = self.first.last_mut().ok_or(ScanError::Syntax {
            at,
            what: "no open object or array",
        })?;
        if *first {
            *first = false;
        } else if token == Some(b',') {
            self.consume(1)?;
        } else {
            return Err(self.syntax("`,` was expected"));
        }
        Ok(true)
    }

    /// The next key of the innermost open object (at most `max` bytes), with its `:` consumed so
    /// that its value comes next; `None` at the object's end.
    pub fn next_key(&mut self, max: usize) -> Result<Option<String>> {
        if !self.next_member(b'}')? {
            return Ok(None);
        }
        if self.peek_token()? != Some(b'"') {
            return Err(self.syntax("a key was expected"));
        }
        let mut key = Vec::new();
        self.string_value(|piece| {
            if key.len() + piece.len() > max {
                return Err(ScanError::TooLarge("a key"));
            }
            key.extend_from_slice(piece);
            Ok(())
        })?;
        self.expect(b':', "`:` was expected")?;
        String::from_utf8(key)
            .map(Some)
            .map_err(|_| self.syntax("a key is not UTF-8"))
    }

    /// Whether another element of the innermost open array follows (then it is the next value).
    pub fn next_element(&mut self) -> Result<bool> {
        self.next_member(b']')
    }

    /// Reads the string that is the next value, handing its content (escapes resolved, as UTF-8)
    /// to `sink` in pieces. An error from `sink` ends the reading.
    pub fn string_value(&mut self, mut sink: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.expect(b'"', "a string was expected")?;
        let mut utf8 = Utf8::default();
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Err(self.syntax("a string was not closed"));
            }
            let end = memchr::memchr2(b'"', b'\\', buf);
            let run = &buf[..end.unwrap_or(buf.len())];
            if run.iter().any(|&b| b < 0x20) {
                return Err(self.syntax("a control character in a string"));
            }
            if !utf8.push(run) {
                return Err(self.syntax("a string is not UTF-8"));
            }
            sink(run)?;
            let n = run.len();
            match end.map(|i| buf[i]) {
                None => self.consume(n)?,
                Some(b'"') => {
                    self.consume(n + 1)?;
                    if !utf8.ended() {
                        return Err(self.syntax("a string is not UTF-8"));
                    }
                    return Ok(());
                }
                Some(_) => {
                    self.consume(n + 1)?;
                    if !utf8.ended() {
                        return Err(self.syntax("a string is not UTF-8"));
                    }
                    let mut encoded = [0u8; 4];
                    let c = self.escape()?;
                    sink(c.encode_utf8(&mut encoded).as_bytes())?;
                }
            }
        }
    }

    fn next_byte(&mut self) -> Result<u8> {
        let b = self
            .peek()?
            .ok_or_else(|| self.syntax("the body ended inside a string"))?;
        self.consume(1)?;
        Ok(b)
    }

    /// The character of an escape whose `\` was consumed.
    fn escape(&mut self) -> Result<char> {
        Ok(match self.next_byte()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if self.next_byte()? != b'\\' || self.next_byte()? != b'u' {
                        return Err(self.syntax("a lone surrogate in a string"));
                    }
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.syntax("a lone surrogate in a string"));
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(|| self.syntax("a lone surrogate in a string"))?
            }
            _ => return Err(self.syntax("an unknown escape in a string")),
        })
    }

    fn hex4(&mut self) -> Result<u32> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = char::from(self.next_byte()?)
                .to_digit(16)
                .ok_or_else(|| self.syntax("a bad \\u escape"))?;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    /// Passes over the next value, whatever its size, holding none of it. It is checked as fully
    /// as a parser would check it.
    pub fn skip_value(&mut self) -> Result<()> {
        self.walk(0)
    }

    /// The text of the next value, at most `max` bytes of it (`TooLarge(what)` beyond).
    pub fn capture_value(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>> {
        self.peek_value()?;
        self.tap = Some((Vec::new(), max, what));
        let walked = self.walk(0);
        let (text, _, _) = self.tap.take().expect("the tap is set");
        walked.map(|()| text)
    }

    /// Consumes and checks the next value; containers nest at most `MAX_DEPTH` deep.
    fn walk(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.syntax("nested too deeply"));
        }
        match self.peek_value()? {
            b'{' => {
                self.begin_object()?;
                while self.next_member(b'}')? {
                    if self.peek_token()? != Some(b'"') {
                        return Err(self.syntax("a key was expected"));
                    }
                    self.string_value(|_| Ok(()))?;
                    self.expect(b':', "`:` was expected")?;
                    self.walk(depth + 1)?;
                }
                Ok(())
            }
            b'[' => {
                self.begin_array()?;
                while self.next_element()? {
                    self.walk(depth + 1)?;
                }
                Ok(())
            }
            b'"' => self.string_value(|_| Ok(())),
            _ => self.scalar(),
        }
    }

    /// `true`, `false`, `null` or a number, as JSON writes them.
    fn scalar(&mut self) -> Result<()> {
        let mut token = Vec::new();
        loop {
            let buf = self.input.fill_buf()?;
            let end = buf
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')));
            let n = end.unwrap_or(buf.len());
            if token.len() + n > MAX_SCALAR {
                return Err(self.syntax("a value is too long"));
            }
            token.extend_from_slice(&buf[..n]);
            self.consume(n)?;
            if end.is_some() || n == 0 {
                break;
            }
        }
        if matches!(token.as_slice(), b"true" | b"false" | b"null") || is_number(&token) {
            Ok(())
        } else {
            Err(self.syntax("a value was expected"))
        }
    }

    /// After the document's last value: nothing but whitespace may follow.
    pub fn finish(&mut self) -> Result<()> {
        match self.peek_token()? {
            None => Ok(()),
            Some(_) => Err(self.syntax("text after the end of the document")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read, the worst case for every boundary.
    struct Trickle<'a>(&'a [u8]);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// The entries of `list` and the strings of `files`.
    type Walked = (Vec<serde_json::Value>, Vec<(String, String)>);

    /// Walks a document of the sync body's shape, the way the hub does.
    fn walk(text: &[u8]) -> Result<Walked> {
        let mut s = Scanner::new(io::BufReader::with_capacity(1, Trickle(text)));
        let (mut captured, mut strings) = (Vec::new(), Vec::new());
        s.begin_object()?;
        while let Some(key) = s.next_key(64)? {
            match key.as_str() {
                "list" => {
                    s.begin_array()?;
                    while s.next_element()? {
                        let raw = s.capture_value(1000, "an entry")?;
                        captured.push(serde_json::from_slice(&raw).expect("captured JSON"));
                    }
                }
                "files" => {
                    s.begin_object()?;
                    while let Some(name) = s.next_key(64)? {
                        let mut content = Vec::new();
                        s.string_value(|p| {
                            content.extend_from_slice(p);
                            Ok(())
                        })?;
                        strings.push((name, String::from_utf8(content).unwrap()));
                    }
                }
                _ => s.skip_value()?,
            }
        }
        s.finish()?;
        Ok((captured, strings))
    }

    #[test]
    fn a_document_is_walked_the_same_however_it_arrives() {
        let doc = serde_json::json!({
            "skip": {"a": [1, 2, {"b": "}]\"\\"}], "c": null, "d": -1.5e3},
            "list": [{"id": "x", "n": 1}, [], "s", 7, true, null],
            "files": {"a.png": "data:image/png;base64,QUJD", "é\n\"q\"": "\u{1F600}\\/\u{7}"},
            "after": "z"
        });
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        let escaped = serde_json::to_string(&doc)
            .unwrap()
            .replace('é', "\\u00e9")
            .replace('\u{1F600}', "\\ud83d\\ude00");
        for text in [pretty, escaped.into_bytes()] {
            let (captured, strings) = walk(&text).unwrap();
            assert_eq!(captured, doc["list"].as_array().unwrap().clone());
            assert_eq!(
                strings,
                vec![
                    ("a.png".into(), "data:image/png;base64,QUJD".into()),
                    ("é\n\"q\"".into(), "\u{1F600}\\/\u{7}".into()),
                ]
            );
        }
    }

    #[test]
    fn malformed_and_oversized_documents_are_refused() {
        for (text, want) in [
            (&b"{\"list\": [1 2]}"[..], "`,` was expected"),
            (b"{\"list\": [1,", "a value was expected"),
            (b"{\"skip\": \"open", "a string was not closed"),
            (b"{\"skip\": {\"a\": [1 2]}}", "`,` was expected"),
            (b"{\"skip\": {\"a\" 1}}", "`:` was expected"),
            (b"{\"skip\": tru}", "a value was expected"),
            (b"{\"skip\": 01}", "a value was expected"),
            (b"{\"skip\": 1.}", "a value was expected"),
            (b"{\"skip\": \"a\tb\"}", "a control character"),
            (b"{\"skip\": \"\xff\"}", "not UTF-8"),
            (b"{\"skip\": \"\xe4\xb8\"}", "not UTF-8"),
            (b"{\"files\": {\"a\": \"\\x\"}}", "an unknown escape"),
            (b"{\"files\": {\"a\": \"\\ud800x\"}}", "a lone surrogate"),
            (b"{} extra", "text after the end"),
            (b"[1]", "an object was expected"),
            (b"{\"a\" 1}", "`:` was expected"),
            (b"{\"skip\": ]}", "a value was expected"),
            (b"{\"skip\": [1]]}", "`,` was expected"),
        ] {
            let err = walk(text).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(text)
            );
        }
        let long_key = format!("{{\"{}\": 1}}", "k".repeat(65));
        assert!(matches!(
            walk(long_key.as_bytes()),
            Err(ScanError::TooLarge("a key"))
        ));
        let deep = format!("{{\"skip\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(
            walk(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("nested too deeply")
        );
        let big_entry = format!("{{\"list\": [\"{}\"]}}", "v".repeat(1000));
        assert!(matches!(
            walk(big_entry.as_bytes()),
            Err(ScanError::TooLarge("an entry"))
        ));
    }

    #[test]
    fn a_skipped_value_is_never_held() {
        // 64 MiB inside one skipped string, read through an 8 KiB buffer.
        struct Endless(u64);
        impl io::Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = (buf.len() as u64).min(self.0) as usize;
                buf[..n].fill(b'A');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let body = io::Read::chain(
            io::Read::chain(&b"{\"skip\": \""[..], Endless(64 << 20)),
            &b"\", \"files\": {}}"[..],
        );
        let mut s = Scanner::new(io::BufReader::with_capacity(8192, body));
        s.begin_object().unwrap();
        assert_eq!(s.next_key(10).unwrap().as_deref(), Some("skip"));
        s.skip_value().unwrap();
        assert_eq!(s.next_key(10).unwrap().as_deref(), Some("files"));
        s.skip_value().unwrap();
        assert_eq!(s.next_key(10).unwrap(), None);
        s.finish().unwrap();
    }
}
