//! The text a deny-list sees. Every moderation check (persona names, traits and greetings here;
//! chat messages in `chat::safety`) reads text through [`Readings`], so a word hidden with
//! invisible characters, look-alike letters or spacing is found the same way everywhere.
//!
//! [`normalize`] gives the canonical form of a text:
//! 1. Invisible characters are removed: zero-width space, non-joiner and joiner, word joiner and
//!    the invisible operators, bidi marks, overrides and isolates ([`crate::text`]), byte order
//!    mark, soft hyphen, combining grapheme joiner, variation selectors, Mongolian separators,
//!    tag characters and the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), which render blank;
//!    and, already here, the diacritics of step 5, so a stacked mark cannot split a jamo run.
//! 2. Spelled-out Hangul is composed: a run of compatibility jamo (U+3131–U+3163, what a Korean
//!    keyboard types one letter at a time, and the halfwidth forms U+FFA1–U+FFDC) is composed
//!    into syllables the way the standard two-set keyboard does ("ㅅㅣㅂㅏㄹ" → "시발"): an
//!    initial consonant and a vowel start a syllable, the vowels ㅗ ㅜ ㅡ combine with a following
//!    vowel (ㅘ ㅙ ㅚ ㅝ ㅞ ㅟ ㅢ), and one or two consonants after the vowel are its final unless
//!    a vowel follows the last of them (ㄳ ㄵ ㄶ ㄺ ㄻ ㄼ ㄽ ㄾ ㄿ ㅀ ㅄ for two). Not mapped, since
//!    they are ambiguous: jamo with no vowel ("ㅅㅂ", "ㅋㅋ" stay as typed, which is also how the
//!    deny-list writes initialisms), a lone vowel ("ㅠㅠ"), a jamo typed after a finished
//!    syllable ("바ㄹ" is not "발"), doubled consonants typed as two ("ㄱㄱ" is not "ㄲ"), and
//!    the archaic jamo (U+3165–U+318E).
//! 3. NFKD (compatibility decomposition: fullwidth, circled, mathematical and small-form letters
//!    and digits become plain ones, ligatures split, Hangul syllables become conjoining jamo).
//!    Compatibility jamo left over from step 2 skip it: NFKD would make them conjoining jamo that
//!    NFC recomposes without the rules of step 2 ("ㅅㅂㅜ" would become "ㅅ부").
//! 4. Case folding: lower case (`char::to_lowercase`, std), plus the two places where full case
//!    folding differs and matters for matching: ß and ẞ → "ss", final ς → σ. The remaining
//!    differences (Cherokee, a few ligature-like letters NFKD already splits) do not touch the
//!    deny-lists, so no case-folding crate is used.
//! 5. Diacritics are removed: every mark in the script-neutral combining blocks (U+0300–U+036F,
//!    U+0483–U+0489, U+1AB0–U+1AFF, U+1DC0–U+1DFF, U+20D0–U+20FF, U+FE20–U+FE2F), which is where
//!    the accents of decomposed Latin, Greek and Cyrillic letters land ("ñ" → "n", "й" → "и")
//!    and what "Zalgo" and strike-through text stack on any letter, Hangul included. Marks that
//!    belong to a script's spelling (Devanagari vowel signs, Japanese voicing marks, Hebrew
//!    points) are kept: removing them changes the word, and no deny-list is in those scripts.
//! 6. NFC: conjoining jamo compose back into syllables (decomposed Hangul, U+1100–U+11FF, is
//!    read as the syllables it spells), and whatever did not compose is written as compatibility
//!    jamo (U+1100 "ᄉ" → U+3145 "ㅅ"), the form people type and the deny-lists use.
//! 7. Apostrophe look-alikes (’ ‘ ` ʼ ′) become `'`.
//!
//! On top of that, [`Readings`] matches words, and reads a copy of the text with the usual
//! disguises undone (see its documentation): look-alike letters, digits and symbols in place
//! of letters, and letters spelled out one at a time.

mod hangul;
mod homoglyphs;

use unicode_normalization::UnicodeNormalization;

use hangul::{compatibility_jamo, compose_jamo, halfwidth_jamo, is_compatibility_jamo};
use homoglyphs::homoglyph;

/// The canonical form of `text` for matching (steps 1–7 above). The deny-lists are written in
/// this form (a test checks it).
pub fn normalize(text: &str) -> String {
    fold(text, Options::PLAIN)
}

/// A text read every way a deny-list should see it. Each reading is a list of words: runs of
/// letters and digits (any script), split at everything else (spaces, punctuation, symbols,
/// emoji). An apostrophe inside a word joins it ("don't" → "dont", "i'll" → "ill", as the
/// deny-lists spell contractions), and a trailing "'s" is dropped ("bitch's" → "bitch").
///
/// The readings:
/// - the text as [`normalize`]d;
/// - if that composed spelled-out jamo, the text with jamo as typed (so "ㅅㅂㅜㅜ" still
///   contains "ㅅㅂ");
/// - a copy with disguises undone: look-alike letters from other scripts and Latin
///   look-alikes outside NFKC (Cyrillic, Greek, small capitals, dotless ı, regional-indicator and
///   negative circled or squared letters) become Latin letters; `@ $ €` next to a letter become
///   `a s e`; `! |` between two letters or digits become `i`; and digits inside a word
///   that has a letter become letters (0 o, 1 i, 3 e, 4 a, 5 s, 7 t, 8 b, 9 g). Numbers on their
///   own stay numbers ("Room 101", "24/7"), and a `!` ending a word stays punctuation;
/// - when the text has `1 ! |`, the same copy reading them as `l` ("ki11").
///
/// In every reading, letters spelled out one at a time are joined: a run of two or more
/// consecutive one-character words becomes one word ("k.i.l.l", "k i l l", "k-i-l-l" → "kill";
/// "개 새 끼" → "개새끼"; spaced compatibility jamo are composed once joined), provided the same
/// separator stands between all of them ("A.S.A.P, s k i l l" reads "asap" and "skill"). Only
/// single characters join, never longer pieces ("ki ll" stays two words), so ordinary neighbouring
/// words never merge into a deny-listed one ("as sassin" is not "assassin" and nothing reads
/// "skill" as "kill"): English matches whole words, and a word can only grow by letters the
/// writer deliberately separated. The cost is that a real one-letter word next to a spelled-out
/// run joins it ("i k i l l" reads "ikill"), which only loses a match.
///
/// Not undone: masking with `*` ("f*ck"), repeated letters ("fuuuck"), letters split into longer
/// pieces ("fu ck"), look-alikes across scripts for Hangul (人 for ㅅ), and number slang ("18",
/// "씨8"): each would read ordinary text as offensive more often than it catches evasion.
#[derive(Debug, Clone)]
pub struct Readings {
    readings: Vec<Reading>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    /// The words, each followed and preceded by one space: `" a b c "`.
    words: String,
    /// The words with nothing between them (Korean, where spacing varies).
    joined: String,
}

impl Readings {
    pub fn new(text: &str) -> Self {
        let plain = fold(text, Options::PLAIN);
        let mut readings = vec![Reading::new(&plain, None, true)];
        let typed = fold(text, Options::JAMO_AS_TYPED);
        if typed != plain {
            readings.push(Reading::new(&typed, None, false));
        }
        let unmasked = fold(text, Options::UNMASKED);
        let ambiguous_one = unmasked.contains(['1', '!', '|']);
        for one in ['i', 'l'] {
            if one == 'l' && !ambiguous_one {
                break;
            }
            let reading = Reading::new(&unmasked, Some(one), true);
            if !readings.contains(&reading) {
                readings.push(reading);
            }
        }
        Self { readings }
    }

    /// Whether some reading has `phrase` (one or more words in [`normalize`]d form, single
    /// spaces, no apostrophes) as consecutive whole words.
    pub fn has_words(&self, phrase: &str) -> bool {
        let padded = format!(" {phrase} ");
        self.readings
            .iter()
            .any(|reading| reading.words.contains(&padded))
    }

    /// Whether some reading's words, joined by single spaces, contain `needle` anywhere (for
    /// Korean, which attaches particles to words so whole words do not apply).
    pub fn has_substring(&self, needle: &str) -> bool {
        self.readings
            .iter()
            .any(|reading| reading.words.contains(needle))
    }

    /// Whether some reading, with every space and punctuation removed, contains `needle` (for
    /// Korean phrases, whose spacing varies: "죽고 싶어" and "죽고싶어").
    pub fn has_joined(&self, needle: &str) -> bool {
        let needle: String = needle.chars().filter(|c| !c.is_whitespace()).collect();
        self.readings
            .iter()
            .any(|reading| reading.joined.contains(&needle))
    }

    /// Every word of every reading, the plain reading first, each in text order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.readings
            .iter()
            .flat_map(|reading| reading.words.split_whitespace())
    }
}

impl Reading {
    /// `folded` split into words; `leet` (the letter `1 ! |` read as) undoes symbol and digit
    /// substitutions; `compose` composes jamo in joined spelled-out runs.
    fn new(folded: &str, leet: Option<char>, compose: bool) -> Self {
        let chars: Vec<char> = match leet {
            Some(one) => unmask_symbols(folded, one),
            None => folded.chars().collect(),
        };
        let mut words = join_spelled(split_words(&chars), compose);
        if let Some(one) = leet {
            for word in &mut words {
                if word.chars().any(char::is_alphabetic) {
                    *word = word.chars().map(|c| unmask_digit(c, one)).collect();
                }
            }
        }
        let mut padded = String::with_capacity(folded.len() + 2);
        padded.push(' ');
        for word in &words {
            padded.push_str(word);
            padded.push(' ');
        }
        Self {
            words: padded,
            joined: words.concat(),
        }
    }
}

/// A word and what separates it from the previous one.
struct Piece {
    /// The separator with each run of whitespace as one space ("" before the first word).
    gap: String,
    word: String,
}

/// Runs of two or more one-character words with the same separator between them joined into
/// one word (letters spelled out), composed if they are jamo and `compose`.
fn join_spelled(pieces: Vec<Piece>, compose: bool) -> Vec<String> {
    let mut words = Vec::with_capacity(pieces.len());
    let mut run = String::new();
    let mut run_length = 0;
    let mut run_gap: Option<String> = None;
    let flush = |run: &mut String, run_length: &mut usize, words: &mut Vec<String>| {
        let spelled = std::mem::take(run);
        match *run_length {
            0 => {}
            1 => words.push(spelled),
            _ if compose => words.push(compose_jamo(&spelled)),
            _ => words.push(spelled),
        }
        *run_length = 0;
    };
    for Piece { gap, word } in pieces {
        let single = word.chars().count() == 1;
        if single && run_length > 0 && run_gap.as_ref().is_none_or(|run_gap| *run_gap == gap) {
            run_gap = Some(gap);
            run.push_str(&word);
            run_length += 1;
            continue;
        }
        flush(&mut run, &mut run_length, &mut words);
        run_gap = None;
        if single {
            run.push_str(&word);
            run_length = 1;
        } else {
            words.push(word);
        }
    }
    flush(&mut run, &mut run_length, &mut words);
    words
}

/// Runs of letters and digits; an apostrophe between two of them continues the word, a final
/// "'s" is dropped.
fn split_words(chars: &[char]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut gap = String::new();
    let mut word = String::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let next_is_word = chars.get(index + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() {
            word.push(c);
        } else if c == '\'' && !word.is_empty() && next_is_word {
            let possessive = chars.get(index + 1) == Some(&'s')
                && !chars.get(index + 2).is_some_and(|n| n.is_alphanumeric());
            if possessive {
                index += 1;
            }
        } else {
            if !word.is_empty() {
                pieces.push(Piece {
                    gap: std::mem::take(&mut gap),
                    word: std::mem::take(&mut word),
                });
            }
            if !c.is_whitespace() {
                gap.push(c);
            } else if !gap.ends_with(' ') {
                gap.push(' ');
            }
        }
        index += 1;
    }
    if !word.is_empty() {
        pieces.push(Piece { gap, word });
    }
    pieces
}

/// `@ $ €` next to a letter, and runs of `! |` (with any of those) between two letters or
/// digits, read as the letters they stand for.
fn unmask_symbols(folded: &str, one: char) -> Vec<char> {
    let mut chars: Vec<char> = folded.chars().collect();
    let symbol = |c: char| match c {
        '@' => Some('a'),
        '$' => Some('s'),
        '€' => Some('e'),
        '!' | '|' => Some(one),
        _ => None,
    };
    let mut start = 0;
    while start < chars.len() {
        if symbol(chars[start]).is_none() {
            start += 1;
            continue;
        }
        let end = (start..chars.len())
            .find(|&index| symbol(chars[index]).is_none())
            .unwrap_or(chars.len());
        let before = start.checked_sub(1).map(|index| chars[index]);
        let after = chars.get(end).copied();
        let between =
            before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric);
        let beside_letter =
            before.is_some_and(char::is_alphabetic) || after.is_some_and(char::is_alphabetic);
        let bang = chars[start..end].iter().any(|c| matches!(c, '!' | '|'));
        if between || (!bang && beside_letter) {
            for c in &mut chars[start..end] {
                *c = symbol(*c).unwrap_or(*c);
            }
        }
        start = end;
    }
    chars
}

fn unmask_digit(c: char, one: char) -> char {
    match c {
        '0' => 'o',
        '1' => one,
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '8' => 'b',
        '9' => 'g',
        other => other,
    }
}

#[derive(Clone, Copy)]
struct Options {
    /// Compose runs of compatibility jamo into syllables (step 2).
    compose_jamo: bool,
    /// Map look-alike letters to Latin (for the unmasked reading).
    homoglyphs: bool,
}

impl Options {
    const PLAIN: Self = Self {
        compose_jamo: true,
        homoglyphs: false,
    };
    const JAMO_AS_TYPED: Self = Self {
        compose_jamo: false,
        homoglyphs: false,
    };
    const UNMASKED: Self = Self {
        compose_jamo: true,
        homoglyphs: true,
    };
}

fn fold(text: &str, options: Options) -> String {
    let visible: String = text
        .chars()
        .filter(|c| !is_invisible(*c) && !is_diacritic(*c))
        .map(halfwidth_jamo)
        .collect();
    let composed = if options.compose_jamo {
        compose_jamo(&visible)
    } else {
        visible
    };
    // Compatibility jamo skip NFKD, which would turn them into conjoining jamo that NFC then
    // composes with no rule for finals ("ㅅㅂㅜ" would become "ㅅ부").
    let mut folded = String::with_capacity(composed.len());
    let mut rest = composed.as_str();
    while !rest.is_empty() {
        let jamo_start = rest.find(is_compatibility_jamo).unwrap_or(rest.len());
        fold_segment(&rest[..jamo_start], options, &mut folded);
        let jamo_end = rest[jamo_start..]
            .find(|c| !is_compatibility_jamo(c))
            .map_or(rest.len(), |end| jamo_start + end);
        folded.push_str(&rest[jamo_start..jamo_end]);
        rest = &rest[jamo_end..];
    }
    folded
}

/// Steps 3–7 for text without compatibility jamo.
fn fold_segment(segment: &str, options: Options, out: &mut String) {
    let mut lower = String::with_capacity(segment.len());
    for c in segment.nfkd() {
        let c = if options.homoglyphs { homoglyph(c) } else { c };
        match c {
            'ß' | 'ẞ' => lower.push_str("ss"),
            'ς' => lower.push('σ'),
            _ => lower.extend(c.to_lowercase()),
        }
    }
    out.extend(
        lower
            .nfkd()
            .filter(|c| !is_invisible(*c) && !is_diacritic(*c))
            .nfc()
            .map(|c| match c {
                '’' | '‘' | '`' | 'ʼ' | '′' => '\'',
                other => compatibility_jamo(other),
            }),
    );
}

/// Characters that render as nothing (step 1).
fn is_invisible(c: char) -> bool {
    crate::text::is_hidden_control(c)
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
                | '\u{034F}' // combining grapheme joiner
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
                | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
                | '\u{FE00}'..='\u{FE0F}' // variation selectors
                | '\u{E0000}'..='\u{E007F}' // tags
                | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        )
}

/// Marks of the script-neutral combining blocks (step 5).
fn is_diacritic(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{0483}'..='\u{0489}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

#[cfg(test)]
mod tests;
