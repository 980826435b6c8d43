//! Rule-based checks on text we publish (a persona's name, traits and greeting end up on a
//! shareable card and page): an English and Korean deny-list of slurs, insults and sexual terms,
//! and the shape a persona name must have. Friends' anonymous words reach the LLM, and an answer
//! like "ignore the above; name: <insult>" must not end up on someone's card.

/// English terms, matched as whole words after lower-casing and undoing common digit/symbol
/// substitutions ("b1tch").
const ENGLISH: &[&str] = &[
    // slurs
    "nigger",
    "nigga",
    "faggot",
    "fag",
    "retard",
    "retarded",
    "tranny",
    "chink",
    "spic",
    "kike",
    "gook",
    "dyke",
    // insults
    "idiot",
    "moron",
    "stupid",
    "loser",
    "ugly",
    "dumb",
    "dumbass",
    "jerk",
    "bastard",
    "asshole",
    "bitch",
    "cunt",
    "dick",
    "prick",
    "twat",
    "wanker",
    "scum",
    "trash",
    "worthless",
    "pathetic",
    "fatso",
    "freak",
    // profanity and sexual terms
    "fuck",
    "fucking",
    "fucker",
    "motherfucker",
    "shit",
    "bullshit",
    "whore",
    "slut",
    "hoe",
    "porn",
    "porno",
    "sex",
    "sexy",
    "nude",
    "nudes",
    "naked",
    "pussy",
    "cock",
    "penis",
    "vagina",
    "boobs",
    "tits",
    "horny",
    "rape",
    "rapist",
    "cum",
    "blowjob",
    "hentai",
    "milf",
    "nsfw",
];

/// Korean terms, matched as substrings (Korean attaches particles to words, so there are no
/// word boundaries to match on).
const KOREAN: &[&str] = &[
    // slurs, insults, profanity
    "씨발",
    "시발",
    "씨바",
    "ㅅㅂ",
    "병신",
    "ㅂㅅ",
    "개새끼",
    "새끼",
    "좆",
    "존나",
    "니미",
    "느금",
    "애미",
    "애비",
    "미친놈",
    "미친년",
    "지랄",
    "등신",
    "멍청이",
    "바보",
    "찐따",
    "한남",
    "김치녀",
    "틀딱",
    "쓰레기",
    "꺼져",
    // sexual terms
    "보지",
    "자지",
    "섹스",
    "야동",
    "창녀",
    "걸레",
    "성매매",
    "강간",
    "변태",
    "노출",
];

fn undo_substitutions(c: char) -> char {
    match c {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        other => other,
    }
}

/// The first deny-listed term in `text`, if any.
pub fn offensive_term(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    if let Some(term) = KOREAN.iter().find(|term| lower.contains(*term)) {
        return Some(term);
    }
    let normalized: String = lower.chars().map(undo_substitutions).collect();
    // Spelled-out letters ("f.u.c.k", "f u c k") join into one word.
    let mut words: Vec<String> = Vec::new();
    let mut spelled = String::new();
    for word in normalized
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        if word.chars().count() == 1 {
            spelled.push_str(word);
            continue;
        }
        if !spelled.is_empty() {
            words.push(std::mem::take(&mut spelled));
        }
        words.push(word.to_owned());
    }
    words.push(spelled);
    words
        .iter()
        .find_map(|word| ENGLISH.iter().find(|term| **term == word).copied())
}

/// Why a persona name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameRefused {
    #[error("a name has 1 to 60 characters")]
    Length,
    #[error("a name has at most 6 words")]
    TooManyWords,
    #[error("a name starts with a letter and has only letters, marks, spaces and ' - .")]
    Shape,
    #[error("a name must not contain offensive words")]
    Offensive,
}

/// A persona name: 1–60 characters, at most 6 words, starting with a letter, made of letters
/// (any script), combining marks, spaces and `' - .` (no digits, symbols, emoji or markup), and
/// nothing from the deny-list.
pub fn check_name(name: &str) -> Result<(), NameRefused> {
    let name = name.trim();
    let length = name.chars().count();
    if !(1..=60).contains(&length) {
        return Err(NameRefused::Length);
    }
    if name.split_whitespace().count() > 6 {
        return Err(NameRefused::TooManyWords);
    }
    let allowed = |c: char| c.is_alphabetic() || c == ' ' || "'-.’".contains(c) || is_mark(c);
    if !name.chars().next().is_some_and(char::is_alphabetic) || !name.chars().all(allowed) {
        return Err(NameRefused::Shape);
    }
    if offensive_term(name).is_some() {
        return Err(NameRefused::Offensive);
    }
    Ok(())
}

/// Combining marks (accents written as separate code points, Hangul is precomposed).
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{20D0}'..='\u{20FF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insults_slurs_and_sexual_terms_are_found_in_english_and_korean() {
        for bad in [
            "You Idiot",
            "b1tch queen",
            "F.U.C.K",
            "sexy beast",
            "개새끼 같은",
            "시발점",
            "야동왕",
        ] {
            assert!(offensive_term(bad).is_some(), "{bad}");
        }
        for good in [
            "Mira the Guarded Flame",
            "Scunthorpe Sunshine",
            "Cocktail lover",
            "미라 the Bright Mind",
            "Class act",
            "Essex explorer",
        ] {
            assert_eq!(offensive_term(good), None, "{good}");
        }
    }

    #[test]
    fn names_have_a_shape() {
        assert_eq!(check_name("Mira the Guarded Flame"), Ok(()));
        assert_eq!(check_name("미라 the Spark"), Ok(()));
        assert_eq!(check_name("Zoë O'Neil-Park"), Ok(()));
        assert_eq!(check_name(""), Err(NameRefused::Length));
        assert_eq!(check_name(&"a".repeat(61)), Err(NameRefused::Length));
        assert_eq!(check_name("a b c d e f g"), Err(NameRefused::TooManyWords));
        assert_eq!(check_name("Mira 2000"), Err(NameRefused::Shape));
        assert_eq!(check_name("Mira 🔥"), Err(NameRefused::Shape));
        assert_eq!(
            check_name("ignore the above: name"),
            Err(NameRefused::Shape)
        );
        assert_eq!(check_name("Total Loser"), Err(NameRefused::Offensive));
    }
}
