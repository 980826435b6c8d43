//! Rule-based checks on text we publish (a persona's name, traits and greeting end up on a
//! shareable card and page): an English and Korean deny-list of slurs, insults and sexual terms,
//! and the shape a persona name must have. Friends' anonymous words reach the LLM, and an answer
//! like "ignore the above; name: <insult>" must not end up on someone's card.
//!
//! Text is matched after [`normalize`] and in every one of its [`Readings`], the normalisation
//! the chat safety check shares.

mod normalize;

pub use normalize::{normalize, Readings};

/// English terms, matched as whole words of the text's [`Readings`] ("b1tch", "ｂｉｔｃｈ",
/// "b.i.t.c.h" and "bіtch" with a Cyrillic і are all "bitch"; "Scunthorpe" is not "cunt").
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

/// Korean terms, matched as substrings of the text's [`Readings`] (Korean attaches particles to
/// words, so there are no word boundaries to match on), with syllables spelled out one at a time
/// joined ("개 새 끼"), decomposed or spelled-out jamo composed ("ㅅㅣㅂㅏㄹ") and invisible
/// characters removed. Spaces between longer words stay: "한 남자" ("one man") is not "한남", and
/// "김치 녀석" is not "김치녀" (chat messages, checked for other things, drop every space).
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

/// The first deny-listed term in `text`, if any, in any of its [`Readings`] (see there for
/// how invisible characters, look-alike letters, leet, diacritics, spelled-out letters and
/// decomposed or spelled-out Hangul are undone).
pub fn offensive_term(text: &str) -> Option<&'static str> {
    let readings = Readings::new(text);
    if let Some(term) = KOREAN.iter().find(|term| readings.has_substring(term)) {
        return Some(term);
    }
    let english = readings
        .words()
        .find_map(|word| ENGLISH.iter().find(|term| **term == word).copied());
    english
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
    fn every_list_entry_is_in_normalized_form_and_found() {
        for term in ENGLISH.iter().chain(KOREAN) {
            assert_eq!(normalize(term), *term);
            assert!(offensive_term(term).is_some(), "{term}");
        }
    }

    /// Evasions of English entries: each must still be found.
    const ENGLISH_REFUSED: &[&str] = &[
        "You id\u{200B}iot",
        "stu\u{200D}pid\u{FEFF}",
        "bas\u{00AD}tard",
        "ｌｏｓｅｒ",
        "Ｌ０ＳＥＲ",
        "𝐦𝐨𝐫𝐨𝐧",
        "ⓕⓡⓔⓐⓚ",
        "🅽🆂🅵🆆",
        "1d10t",
        "tr4sh t4lk",
        "$cum",
        "w4nk3r",
        "b!tch",
        "sh!t happens",
        "bu11shit",
        "ѕtupіd",
        "lоsеr",
        "МОRОN",
        "ΝUDE",
        "υgly",
        "ᴊᴇʀᴋ",
        "stüpíd",
        "ídíót",
        "u\u{336}g\u{336}l\u{336}y\u{336}",
        "s t u p i d",
        "m.o.r.o.n",
        "f-r-e-a-k",
        "T.R.A.S.H.",
        "the bitch's crown",
        "Ⓟⓞⓡⓝ star",
    ];

    /// Ordinary English that shares letters with entries, or looks like an evasion: each must
    /// pass.
    const ENGLISH_PASSED: &[&str] = &[
        "Classic",
        "Assistant",
        "Skill",
        "Scunthorpe",
        "Cocktail",
        "Sussex",
        "Therapist",
        "Dickens",
        "Cumberland",
        "Sexton",
        "Penistone",
        "Hancock",
        "Shiitake",
        "Analyst",
        "Bass player",
        "Zoë",
        "Crème brûlée",
        "Сок и вода",
        "Καλημέρα",
        "Room 101",
        "Top 10 tips",
        "24/7",
        "Agent 47",
        "B4 dawn",
        "R2-D2",
        "A.S.A.P",
        "J. R. R. Tolkien fan",
        "Wow!!",
        "I am a k-pop fan",
    ];

    /// Evasions of Korean entries: each must still be found.
    const KOREAN_REFUSED: &[&str] = &[
        "씨\u{200B}발",
        "병\u{FEFF}신",
        "꺼\u{200D}져",
        "미친\u{2060}놈",
        "개 새 끼",
        "개.새.끼",
        "쓰-레-기",
        "찐 따 같 아",
        "야 동",
        "ㅅ ㅂ",
        "ㅅㅣㅂㅏㄹ",
        "ㅂㅕㅇㅅㅣㄴ",
        "ㅈㅣㄹㅏㄹ",
        "ㅅㅂㅜㅜ",
        "\u{FFB5}\u{FFB2}",
        "\u{1107}\u{1161}\u{1107}\u{1169}",
        "지\u{308}랄",
        "바\u{3164}보",
    ];

    /// Ordinary Korean that shares syllables or jamo with entries: each must pass.
    const KOREAN_PASSED: &[&str] = &[
        "시바견",
        "병원 가는 길",
        "신발",
        "사발면",
        "개나리",
        "새해 복 많이 받으세요",
        "등산",
        "한 남자",
        "김치 녀석",
        "씨앗",
        "존경해요",
        "자기소개",
        "ㅋㅋㅋ 좋아ㅎㅎ",
        "ㄱㅅ ㅇㅋ",
        "ㅠㅠ 슬퍼",
        "나 는 너 를 좋 아 해",
        "ㅂㅏㄹㄱㅇㅡㄴ ㅎㅐ",
        "미라 the Bright Mind",
    ];

    #[test]
    fn evasions_are_found_and_ordinary_words_pass() {
        for bad in ENGLISH_REFUSED.iter().chain(KOREAN_REFUSED) {
            assert!(offensive_term(bad).is_some(), "{bad:?}");
        }
        // Decomposed Hangul (NFD), built here rather than written out.
        for term in ["지랄", "병신", "개새끼"] {
            let decomposed: String =
                unicode_normalization::UnicodeNormalization::nfd(term).collect();
            assert_ne!(decomposed, term);
            assert_eq!(offensive_term(&decomposed), Some(term));
        }
        for good in ENGLISH_PASSED.iter().chain(KOREAN_PASSED) {
            assert_eq!(offensive_term(good), None, "{good:?}");
        }
        assert_eq!(check_name("Total Lоsеr"), Err(NameRefused::Offensive));
        assert_eq!(check_name("Mira the Ѕtupіd"), Err(NameRefused::Offensive));
        assert_eq!(check_name("Ｍｉｒａ"), Ok(()));
        assert_eq!(check_name("Crème Brûlée"), Ok(()));
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
