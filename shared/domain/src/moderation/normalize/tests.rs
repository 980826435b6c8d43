use super::*;

#[test]
fn compatibility_forms_become_plain_letters_and_digits() {
    for (text, expected) in [
        ("ＦＵＬＬＷＩＤＴＨ １２３", "fullwidth 123"),
        ("𝐛𝐨𝐥𝐝 𝓼𝓬𝓻𝓲𝓹𝓽 𝔣𝔯𝔞𝔨", "bold script frak"),
        ("ⓒⓘⓡⓒⓛⓔⓓ 🄰🄱", "circled ab"),
        ("ﬁne ﬂower", "fine flower"),
        ("x²", "x2"),
    ] {
        assert_eq!(normalize(text), expected, "{text}");
    }
}

#[test]
fn case_is_folded() {
    assert_eq!(normalize("Straße STRASSE ẞ"), "strasse strasse ss");
    assert_eq!(normalize("ΣΟΦΟΣ σοφος"), "σοφοσ σοφοσ");
    assert_eq!(normalize("İstanbul"), "istanbul");
}

#[test]
fn invisible_characters_are_removed() {
    for invisible in [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{2060}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{FE0F}',
        '\u{FE00}',
        '\u{E0100}',
        '\u{202E}',
        '\u{2066}',
        '\u{034F}',
        '\u{180E}',
        '\u{E0041}',
        '\u{3164}',
        '\u{FFA0}',
    ] {
        assert_eq!(
            normalize(&format!("wo{invisible}rd")),
            "word",
            "{invisible:?}"
        );
    }
}

#[test]
fn diacritics_are_removed_but_script_marks_stay() {
    assert_eq!(normalize("Zoë Ñandú café naïve"), "zoe nandu cafe naive");
    assert_eq!(normalize("k\u{338}i\u{336}l\u{335}l\u{489}"), "kill");
    assert_eq!(normalize("Ёлка йод"), "елка иод");
    // Decomposed and precomposed read alike.
    assert_eq!(normalize("e\u{301}"), normalize("é"));
    // Japanese voicing marks and Devanagari vowel signs are part of the word.
    assert_eq!(normalize("がぎぐ"), "がぎぐ");
    assert_eq!(normalize("हिन्दी"), "हिन्दी");
}

#[test]
fn hangul_is_composed_never_decomposed() {
    assert_eq!(normalize("안녕하세요, 미라!"), "안녕하세요, 미라!");
    // Conjoining jamo (NFD) compose.
    assert_eq!(
        normalize("\u{1112}\u{1161}\u{11AB}\u{1100}\u{1173}\u{11AF}"),
        "한글"
    );
    assert_eq!(normalize(&"한글".nfd().collect::<String>()), "한글");
    // Spelled-out compatibility jamo compose, with compound vowels and finals.
    for (spelled, expected) in [
        ("ㅎㅏㄴㄱㅡㄹ", "한글"),
        ("ㄱㅗㅏㅈㅏ", "과자"),
        ("ㅇㅓㅂㅅㅇㅓ", "없어"),
        ("ㄷㅏㄹㄱㅏ", "달가"),
        ("ㅇㅡㅣㅅㅏ", "의사"),
        ("ㅂㅏㄹㄱㅇㅡㄴ", "밝은"),
        // Halfwidth jamo compose like compatibility jamo.
        ("\u{FFBE}\u{FFC2}\u{FFA4}", "한"),
        // Circled and parenthesized Hangul.
        ("㉮㉯", "가나"),
    ] {
        assert_eq!(normalize(spelled), expected, "{spelled}");
    }
    // What is not well defined stays as typed.
    for typed in ["ㅋㅋㅋ", "ㅠㅠ", "ㅇㅋ", "바ㄹ", "ㄱㄱ", "좋아ㅎㅎ", "ㆀ"] {
        assert_eq!(normalize(typed), typed);
    }
    // Leftover conjoining jamo are written as compatibility jamo.
    assert_eq!(normalize("\u{110F}\u{110F}"), "ㅋㅋ");
    assert_eq!(normalize("㉠"), "ㄱ");
}

#[test]
fn halfwidth_jamo_map_to_the_compatibility_jamo_nfkc_gives() {
    for code in 0xFFA1..=0xFFDC {
        let Some(c) = char::from_u32(code) else {
            continue;
        };
        let mapped = halfwidth_jamo(c);
        if mapped != c {
            assert!(is_compatibility_jamo(mapped), "{c:?}");
            assert_eq!(
                c.to_string().nfkd().collect::<String>(),
                mapped.to_string().nfkd().collect::<String>(),
                "{c:?}"
            );
        }
    }
}

#[test]
fn apostrophes_are_one_character() {
    assert_eq!(normalize("Don’t ‘quote’ it`s ʼn"), "don't 'quote' it's 'n");
}

#[test]
fn normalize_leaves_other_scripts_alone() {
    for text in ["привет", "καλημερα", "日本語", "مرحبا"] {
        assert_eq!(normalize(text), text);
    }
}

fn words(text: &str) -> Vec<String> {
    Readings::new(text).words().map(str::to_owned).collect()
}

#[test]
fn words_split_at_everything_but_letters_and_digits() {
    assert_eq!(words("Hello, world! 123"), ["hello", "world", "123"]);
    assert_eq!(words("Mira's friend doesn't"), ["mira", "friend", "doesnt"]);
    assert_eq!(words("'quoted'"), ["quoted"]);
}

#[test]
fn spelled_out_letters_join_and_nothing_else_does() {
    let readings = Readings::new("A.S.A.P, s k i l l, k-i-t-e and ki ll");
    for joined in ["asap", "skill", "kite", "ki ll"] {
        assert!(readings.has_words(joined), "{joined}");
    }
    assert!(!readings.has_words("kill"));
    assert!(Readings::new("ㅎ ㅏ ㄴ ㄱ ㅡ ㄹ").has_words("한글"));
    assert!(Readings::new("한 글 날").has_words("한글날"));
}

#[test]
fn the_unmasked_reading_undoes_leet_and_look_alikes() {
    for (text, word) in [
        ("h3ll0", "hello"),
        ("sp4rk1e", "sparkie"),
        ("ski11", "skill"),
        ("$mile", "smile"),
        ("gl@d", "glad"),
        ("w!nk", "wink"),
        ("Ѕmіle", "smile"),
        ("ΚΙΤΕ", "kite"),
        ("ᴋɪᴛᴇ", "kite"),
        ("\u{1F1F0}\u{1F1EE}\u{1F1F9}\u{1F1EA}", "kite"),
    ] {
        assert!(Readings::new(text).has_words(word), "{text} → {word}");
    }
    // Numbers stay numbers, punctuation stays punctuation.
    let readings = Readings::new("Room 101, 24/7, wow!! $50");
    for word in ["room", "101", "24", "7", "wow", "50"] {
        assert!(readings.has_words(word), "{word}");
    }
    assert!(!readings.has_words("wowii"));
    assert!(!readings.has_words("ioi"));
}

#[test]
fn korean_phrases_match_across_spacing_and_punctuation() {
    let readings = Readings::new("좋아 해, 정말.");
    assert!(readings.has_joined("좋아해 정말"));
    assert!(readings.has_substring("좋아 해"));
    assert!(!readings.has_substring("좋아해"));
}
