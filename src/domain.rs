//! Values that carry their own validity: a `Username`, `Email`, `Password` or `Category` exists only
//! after its constructor accepted the input, so code past the HTTP edge never re-checks them. The
//! ids (`UserId`, `ImageId`, `TaskId`) carry no rule beyond being text; their types exist so that
//! one kind of id can never be passed where another is expected.
//!
//! This module knows nothing of HTTP or storage; callers map `Invalid` to whatever their layer needs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// A username: 3 to 20 characters, letters, digits, `_`, `-` and `.` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(3..=20).contains(&len) {
            return Err(Invalid("用户名长度需为3-20位"));
        }
        if !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(Invalid("用户名只能包含字母、数字、下划线、连字符和点"));
        }
        Ok(Self(name.to_string()))
    }

    /// A name another server already accepted (a hub account made for a local server's user, whose
    /// rules were looser than the seed's): 1 to 64 characters, none of them control characters.
    pub fn relayed(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if !(1..=64).contains(&name.chars().count()) || name.chars().any(char::is_control) {
            return Err(Invalid("用户名长度需为1-64位，且不能包含控制字符"));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on: `Admin` and `admin` are the same account name.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// An email address that is plausible: one `@`, a non-empty local part, a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        const BAD: Invalid = Invalid("邮箱格式不正确");
        let email = raw.trim();
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(BAD);
        }
        let (local, domain) = email.split_once('@').ok_or(BAD)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || !domain_ok {
            return Err(BAD);
        }
        Ok(Self(email.to_string()))
    }

    /// An address another server already accepted as it is (see `Username::relayed`): at most
    /// 254 bytes, no whitespace or control characters.
    pub fn relayed(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        if email.is_empty()
            || email.len() > 254
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Invalid("邮箱格式不正确"));
        }
        Ok(Self(email.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A new password: 6 to 1024 characters (the upper bound keeps hashing cost bounded).
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.chars().count() {
            0..=5 => Err(Invalid("密码长度至少6位")),
            6..=1024 => Ok(Self(raw.to_string())),
            _ => Err(Invalid("密码过长")),
        }
    }

    /// A password another server already accepted (see `Username::relayed`): any length up to
    /// 1024 characters, since the original project sets no minimum.
    pub fn relayed(raw: &str) -> Result<Self, Invalid> {
        match raw.chars().count() {
            0 => Err(Invalid("密码不能为空")),
            1..=1024 => Ok(Self(raw.to_string())),
            _ => Err(Invalid("密码过长")),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The two collections of the seed. Stored as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Category {
    Clothes,
    Char,
}

impl Category {
    pub const ALL: [Category; 2] = [Category::Clothes, Category::Char];

    /// Strict parsing, for routes where an unknown category is an error.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "clothes" => Some(Self::Clothes),
            "char" => Some(Self::Char),
            _ => None,
        }
    }

    /// Upload rule of the seed: missing or unknown categories fall back to `clothes`.
    pub fn for_upload(raw: Option<&str>) -> Self {
        raw.and_then(|r| Self::parse(r.trim()))
            .unwrap_or(Self::Clothes)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clothes => "clothes",
            Self::Char => "char",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        // Stored and sent as a plain string (`serde(transparent)`): the type adds no byte to the
        // disk format or the JSON. `Default` is the empty id, which names nothing: for wire
        // fields a client may leave out. (Not doc comments: those are the OpenAPI document's
        // description of the id, for the API's users.)
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Default,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id: a UUID v4 after the kind's prefix, as the seed's ids are.
            pub fn random() -> Self {
                Self(format!(concat!($prefix, "{}"), uuid::Uuid::new_v4()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Any text names an id; one that names nothing is simply not found.
        impl From<String> for $name {
            fn from(raw: String) -> Self {
                Self(raw)
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                Self(raw.to_string())
            }
        }

        /// For path parameters: any segment names an id.
        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Ok(Self(raw.to_string()))
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Who owns an account, its images, tasks and sessions.
    UserId,
    ""
);
id_type!(
    /// One saved image record (not its bytes: several records may share one blob).
    ImageId,
    "i-"
);
id_type!(
    /// One background task: an upload's thumbnail or a cloud sync.
    TaskId,
    "t-"
);

id_type!(
    /// One API key: how its owner lists and revokes it (never the key itself).
    KeyId,
    "k-"
);

/// What an API key may do. A logged-in session may do everything; a key at most what its scope
/// allows, and never manage keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScope {
    /// Upload, look up what is saved, follow its own uploads' tasks: what a capture tool needs.
    Capture,
    /// `Capture`, and every read of its owner's data.
    Read,
    /// Whatever a logged-in session may do, except managing keys.
    Full,
}

impl KeyScope {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim() {
            "capture" => Ok(Self::Capture),
            "read" => Ok(Self::Read),
            "full" => Ok(Self::Full),
            _ => Err(Invalid("无效的权限范围，应为 capture、read 或 full")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Read => "read",
            Self::Full => "full",
        }
    }
}

/// A key's name as its owner gave it: trimmed, 1 to 64 characters, no control characters.
pub fn key_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err(Invalid("密钥名称不能为空"));
    }
    if len > 64 {
        return Err(Invalid("密钥名称不能超过64个字符"));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid("密钥名称不能包含控制字符"));
    }
    Ok(name.to_string())
}

/// Whether an id or file name that came from another server can be used here as it is, in URLs
/// and file names: 1 to `max` bytes of ASCII letters, digits, `-`, `_` and `.`, not starting with
/// a dot.
pub fn portable(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The blake3 hash of a blob's bytes: its identity in the store and its `ETag`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses 64 hex digits; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Self(*h.as_bytes()))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.to_hex())
    }
}

/// The SHA-256 of a blob's bytes, kept beside its blake3 key: the hash a browser can compute
/// (WebCrypto) to ask whether the vault holds an image without sending it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Lower-case hex.
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses exactly 64 hex digits, of either case; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// The most tags one image may carry.
pub const MAX_TAGS: usize = 64;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;

/// A tag as its owner wrote it (trimmed), and its folded form (`text::fold`), which is what
/// matching and uniqueness go by: `Denim` and `ＤＥＮＩＭ` are one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    shown: String,
    folded: String,
}

impl Tag {
    /// 1 to 64 characters once trimmed, none of them control characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let shown = raw.trim();
        if shown.is_empty() {
            return Err(Invalid("标签不能为空"));
        }
        if shown.chars().count() > MAX_TAG_CHARS {
            return Err(Invalid("标签不能超过64个字符"));
        }
        if shown.chars().any(char::is_control) {
            return Err(Invalid("标签不能包含控制字符"));
        }
        Ok(Self {
            shown: shown.to_string(),
            folded: crate::text::fold(shown),
        })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.shown
    }

    /// As matched.
    pub fn folded(&self) -> &str {
        &self.folded
    }
}

/// An image's tags in the order given, tags equal once folded merged into the first spelling; at
/// most `MAX_TAGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Every one of `raw` must be a valid tag; the list may be empty.
    pub fn parse<S: AsRef<str>>(raw: impl IntoIterator<Item = S>) -> Result<Self, Invalid> {
        let mut tags = Self::default();
        for one in raw {
            tags.push(Tag::parse(one.as_ref())?)?;
        }
        Ok(tags)
    }

    /// One form field's list: tags separated by commas (`,`, `，` or `、`); blanks between
    /// separators are skipped.
    pub fn parse_list(raw: &str) -> Result<Self, Invalid> {
        Self::parse(
            raw.split([',', '，', '、'])
                .filter(|one| !one.trim().is_empty()),
        )
    }

    /// Appends `tag` unless a tag equal to it once folded is already there.
    pub fn push(&mut self, tag: Tag) -> Result<(), Invalid> {
        if self.contains(&tag) {
            return Ok(());
        }
        if self.0.len() >= MAX_TAGS {
            return Err(Invalid("每张图片最多64个标签"));
        }
        self.0.push(tag);
        Ok(())
    }

    /// Appends those of `more` not there yet, in their order.
    pub fn extend(&mut self, more: &Tags) -> Result<(), Invalid> {
        for tag in &more.0 {
            self.push(tag.clone())?;
        }
        Ok(())
    }

    /// Drops every tag equal, once folded, to one of `which`.
    pub fn remove(&mut self, which: &Tags) {
        self.0.retain(|tag| !which.contains(tag));
    }

    pub fn contains(&self, tag: &Tag) -> bool {
        self.0.iter().any(|t| t.folded == tag.folded)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tag> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_bounded_and_case_folded_for_uniqueness() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(21)).is_err());
        assert!(Username::parse("bad name").is_err());
        assert!(Username::parse("../x").is_err());
        let name = Username::parse("  Alice_01 ").unwrap();
        assert_eq!(name.as_str(), "Alice_01");
        assert_eq!(name.key(), "alice_01");
        assert!(Username::parse("用户名").is_ok());
    }

    #[test]
    fn names_relayed_by_another_server_are_taken_within_bounds() {
        assert_eq!(
            Username::relayed(" testuser_12345678901234 ")
                .unwrap()
                .as_str(),
            "testuser_12345678901234"
        );
        assert!(Username::relayed("a b").is_ok());
        assert!(Username::relayed("").is_err());
        assert!(Username::relayed(&"x".repeat(65)).is_err());
        assert!(Username::relayed("bad\u{7}").is_err());
        assert!(Email::relayed("not-an-address").is_ok());
        assert!(Email::relayed("a b@c.d").is_err());
        assert!(Email::relayed(&"e".repeat(255)).is_err());
        assert!(Password::relayed("1").is_ok());
        assert!(Password::relayed("").is_err());
    }

    #[test]
    fn portable_names_are_plain_ascii() {
        for ok in ["f47ac10b-58cc-4372-a567-0e02b2c3d479", "clothes_1.png", "a"] {
            assert!(portable(ok, 100), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "图", "x\u{0}"] {
            assert!(!portable(bad, 100), "{bad:?}");
        }
        assert!(!portable(&"a".repeat(101), 100));
    }

    #[test]
    fn emails_must_look_like_addresses() {
        for bad in [
            "", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@b..c", "a@.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            Email::parse("A@Example.com").unwrap().key(),
            "a@example.com"
        );
    }

    #[test]
    fn passwords_need_six_characters() {
        assert!(Password::parse("12345").is_err());
        assert!(Password::parse("123456").is_ok());
        assert!(Password::parse("密码密码密码").is_ok());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn unknown_upload_categories_fall_back_to_clothes() {
        assert_eq!(Category::for_upload(None), Category::Clothes);
        assert_eq!(Category::for_upload(Some("char")), Category::Char);
        assert_eq!(Category::for_upload(Some("shoes")), Category::Clothes);
        assert_eq!(Category::parse("shoes"), None);
    }

    #[test]
    fn tags_are_trimmed_merged_once_folded_and_bounded() {
        let tags = Tags::parse([" Denim ", "ＤＥＮＩＭ", "夏季", "Café", "cafe"]).unwrap();
        let shown: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(shown, ["Denim", "夏季", "Café"]);
        assert_eq!(Tag::parse("ＤＥＮＩＭ").unwrap().folded(), "denim");
        assert_eq!(Tag::parse("  ").unwrap_err().0, "标签不能为空");
        assert_eq!(Tag::parse("a\u{7}b").unwrap_err().0, "标签不能包含控制字符");
        assert!(Tag::parse(&"字".repeat(MAX_TAG_CHARS)).is_ok());
        assert_eq!(
            Tag::parse(&"字".repeat(MAX_TAG_CHARS + 1)).unwrap_err().0,
            "标签不能超过64个字符"
        );
        let many: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
        let mut full = Tags::parse(&many).unwrap();
        // A tag already there is no new tag, even on a full list.
        full.push(Tag::parse("T0").unwrap()).unwrap();
        assert_eq!(
            full.push(Tag::parse("one more").unwrap()).unwrap_err().0,
            "每张图片最多64个标签"
        );
        assert!(
            Tags::parse(["ok", ""]).is_err(),
            "a blank tag refuses the list"
        );
    }

    #[test]
    fn a_form_field_lists_tags_by_comma_and_adding_or_removing_goes_by_the_fold() {
        let mut tags = Tags::parse_list("red, 连衣裙，summer、 ,Red").unwrap();
        let shown: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(shown, ["red", "连衣裙", "summer"]);
        tags.extend(&Tags::parse(["SUMMER", "cotton"]).unwrap())
            .unwrap();
        tags.remove(&Tags::parse(["RED"]).unwrap());
        let shown: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        assert_eq!(shown, ["连衣裙", "summer", "cotton"]);
    }
}
