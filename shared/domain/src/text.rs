//! Rules for user-written text that is shown to other people (titles, names, answers): no
//! control characters, and none of the invisible characters that reorder or hide text (bidi
//! overrides and isolates, zero-width characters), which make a name or title display as
//! something other than what it is ("Trojan Source", CVE-2021-42574).

/// Bidi controls (embeddings, overrides, isolates, marks) and zero-width characters.
pub fn is_hidden_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'                  // Arabic letter mark
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
            | '\u{FEFF}' // zero-width no-break space
    )
}

/// Whether `text` is fit to show: no control characters (newlines allowed where `multiline`)
/// and no hidden controls.
pub fn is_clean(text: &str, multiline: bool) -> bool {
    !text
        .chars()
        .any(|c| (c.is_control() && !(multiline && c == '\n')) || is_hidden_control(c))
}

/// `text` without control and hidden characters (for text we cannot refuse, such as the name
/// an identity provider gives us).
pub fn cleaned(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !is_hidden_control(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_overrides_and_zero_width_characters_are_refused() {
        for bad in [
            "a\u{202E}b",
            "\u{200B}",
            "x\u{2066}y\u{2069}",
            "\u{FEFF}hi",
            "a\u{7}b",
        ] {
            assert!(!is_clean(bad, true), "{bad:?}");
        }
        assert!(is_clean("Mira 미라 ✨", false));
        assert!(is_clean("two\nlines", true));
        assert!(!is_clean("two\nlines", false));
        assert_eq!(cleaned("Mi\u{202E}ra\u{200B}"), "Mira");
    }
}
