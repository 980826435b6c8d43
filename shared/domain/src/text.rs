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

/// The rules above as JSON Schema `pattern`s (ECMA-262 regular expressions, `\uXXXX` escapes
/// that Python's and Rust's engines read alike), so the OpenAPI document states exactly the text
/// the API accepts. A test checks every character against [`is_clean`] and `str::trim`.
pub mod patterns {
    /// `char::is_control` (Unicode `Cc`) without the newline.
    const CONTROLS_BUT_NEWLINE: &str = r"\u0000-\u0009\u000B-\u001F\u007F-\u009F";
    /// [`super::is_hidden_control`].
    const HIDDEN: &str = r"\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF";
    /// `char::is_whitespace` (Unicode `White_Space`): what `str::trim` removes.
    const WHITESPACE: &str =
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

    /// Text [`super::is_clean`] accepts (newlines only where `multiline`); where `required`, also
    /// not blank once trimmed.
    pub fn clean(multiline: bool, required: bool) -> String {
        let newline = if multiline { "" } else { r"\u000A" };
        let refused = format!("{newline}{CONTROLS_BUT_NEWLINE}{HIDDEN}");
        if required {
            format!("^[^{refused}]*[^{refused}{WHITESPACE}][^{refused}]*$")
        } else {
            format!("^[^{refused}]*$")
        }
    }

    /// Text that is not blank once trimmed (it holds a character `str::trim` keeps).
    pub fn not_blank() -> String {
        format!("[^{WHITESPACE}]")
    }
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

    #[test]
    fn the_patterns_agree_with_the_rules_on_every_character() {
        let compile = |pattern: String| regex::Regex::new(&pattern).unwrap();
        let line = compile(patterns::clean(false, false));
        let multiline = compile(patterns::clean(true, false));
        let required = compile(patterns::clean(true, true));
        let not_blank = compile(patterns::not_blank());
        // Every rule's character lies in the Basic Multilingual Plane; a few others stand for
        // the rest.
        let others = ['\u{1F600}', '\u{E0001}', '\u{10FFFF}'];
        for c in (0..=0xFFFF).filter_map(char::from_u32).chain(others) {
            let text = c.to_string();
            assert_eq!(line.is_match(&text), is_clean(&text, false), "{c:?}");
            assert_eq!(multiline.is_match(&text), is_clean(&text, true), "{c:?}");
            assert_eq!(not_blank.is_match(&text), !text.trim().is_empty(), "{c:?}");
            let padded = format!(" {c}\n");
            let accepted = is_clean(padded.trim(), true) && !padded.trim().is_empty();
            assert_eq!(required.is_match(&padded), accepted, "{c:?}");
        }
    }
}
