//! Text folded for matching: tags and search compare what people type with what was stored after
//! the same fold, so that full-width and half-width forms, letter case and Latin accents do not
//! decide whether something is found (`ＤＥＮＩＭ`, `ﾐｸ` and `CAFÉ` find `denim`, `ミク` and
//! `cafe`).
//!
//! The fold is Unicode NFKC (compatibility forms: full-width Latin, half-width katakana,
//! ligatures), then lower case, then the diacritics of the Latin, Greek and Cyrillic scripts
//! removed. Only the general combining diacritical marks are removed: the kana voicing marks
//! (U+3099, U+309A) are letters' own, and `ガ` stays apart from `カ`. Lower case stands in for
//! full case folding; the two differ only for a few letters (`ß` folds to `ss`, and is matched
//! that way here by a rule of its own).
//!
//! Indexes of tags and text are keyed by folded forms, so this function is part of the stored
//! format: changing what it returns for any text (a rule here, or a new Unicode version's case
//! mappings in a new Rust) needs a schema step that rebuilds those indexes. The tests pin it.

use unicode_normalization::UnicodeNormalization;

/// `text` folded for matching.
pub fn fold(text: &str) -> String {
    // ASCII is its own NFKC, NFD and NFC and has no diacritics: only the case changes. URLs are
    // ASCII and folded with every upload, where the general way costs ten times as much.
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let lowered: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let mut folded = String::with_capacity(lowered.len());
    for c in lowered.nfd().filter(|&c| !is_diacritic(c)).nfc() {
        match c {
            'ß' => folded.push_str("ss"),
            c => folded.push(c),
        }
    }
    folded
}

/// The words of a search: `text` folded, then cut at white space. A word never holds white
/// space, so it cannot match across the line breaks that keep indexed fields apart. Repeats are
/// dropped; the order is kept.
pub fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in fold(text).split_whitespace() {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_string());
        }
    }
    words
}

/// The combining marks that are accents on Latin, Greek and Cyrillic letters.
fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_case_and_accents_fold_away() {
        assert_eq!(fold("ＤＥＮＩＭ"), "denim");
        assert_eq!(fold("ﾐｸ"), "ミク");
        assert_eq!(fold("CAFÉ"), "cafe");
        assert_eq!(fold("Crème Brûlée"), "creme brulee");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ﬁt"), "fit");
        assert_eq!(fold("Ελληνικά"), "ελληνικα");
    }

    #[test]
    fn what_is_not_an_accent_stays() {
        // Voicing marks are part of kana; Hangul and Han are left as written.
        assert_eq!(fold("ガ"), "ガ");
        assert_ne!(fold("ガ"), fold("カ"));
        assert_eq!(fold("ｶﾞ"), "ガ");
        assert_eq!(fold("夏季碎花连衣裙"), "夏季碎花连衣裙");
        assert_eq!(fold("한국어"), "한국어");
        assert_eq!(fold("  two  words "), "  two  words ");
    }

    #[test]
    fn ascii_folds_as_the_general_way_folds_it() {
        let ascii: String = (0u8..128).map(char::from).collect();
        let general: String = ascii
            .nfkc()
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .nfd()
            .filter(|&c| !is_diacritic(c))
            .nfc()
            .collect();
        assert_eq!(fold(&ascii), general);
    }

    #[test]
    fn search_words_are_folded_pieces_between_white_space() {
        assert_eq!(words("  ＤＥＮＩＭ\tcafé  denim "), ["denim", "cafe"]);
        // The ideographic space is white space once folded (NFKC makes it U+0020).
        assert_eq!(words("夏季\u{3000}连衣裙"), ["夏季", "连衣裙"]);
        assert!(words(" \u{3000} ").is_empty());
    }

    #[test]
    fn folding_is_idempotent() {
        for text in [
            "ＤＥＮＩＭ",
            "ﾐｸ",
            "CAFÉ",
            "Straße",
            "ｶﾞ",
            "Ǆ",
            "İstanbul",
            "ﬃ",
        ] {
            let once = fold(text);
            assert_eq!(fold(&once), once, "{text}");
        }
    }
}
