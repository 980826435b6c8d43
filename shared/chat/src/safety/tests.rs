use super::*;

fn categories(text: &str) -> Vec<&'static str> {
    rule_categories(text).iter().map(|c| c.as_str()).collect()
}

#[test]
fn each_category_is_found_in_english_and_korean() {
    for (text, expected) in [
        ("sometimes I want to kill myself", "self_harm"),
        ("요즘 너무 죽고싶어", "self_harm"),
        ("요즘 너무 죽고 싶어", "self_harm"),
        ("send me nudes of a 12 year old", "sexual_minors"),
        ("초등학생 야한 사진", "sexual_minors"),
        ("I know where you live and I will kill you", "threats"),
        ("너 죽일 거야", "threats"),
        ("immigrants are vermin", "hate"),
        ("난민은 다 죽어야 해, 벌레 같은", "hate"),
    ] {
        assert!(
            categories(text).contains(&expected),
            "{text}: {:?}",
            categories(text)
        );
    }
}

#[test]
fn ordinary_messages_pass() {
    for text in [
        "I learned a new skill today",
        "my kids loved the museum",
        "I went hiking in the mountains with my sister",
        "오늘 맛이 죽인다! 떡볶이 최고",
        "that movie about a killer whale was great",
        "Kim Jiwoo is 15 years old and plays the piano",
    ] {
        assert!(
            categories(text).is_empty(),
            "{text}: {:?}",
            categories(text)
        );
    }
}

#[test]
fn zero_width_characters_and_curly_apostrophes_do_not_hide_words() {
    assert_eq!(categories("I\u{200B}'ll kill you"), ["threats"]);
    assert_eq!(categories("I’ll kill you"), ["threats"]);
    assert_eq!(categories("su\u{200D}icide"), ["self_harm"]);
}

#[test]
fn self_harm_wins_and_refusals_follow_severity() {
    let all = rule_categories("I want to die and I will kill you");
    assert_eq!(verdict(&all), Verdict::Support);
    let both = BTreeSet::from([Category::Hate, Category::Threats]);
    assert_eq!(verdict(&both), Verdict::Blocked(Category::Threats));
    assert_eq!(verdict(&BTreeSet::new()), Verdict::Allowed);
}

#[test]
fn every_phrase_is_in_normalized_form_and_matches_itself() {
    let english = [
        SELF_HARM_EN,
        SEXUAL_MINORS_EN,
        MINOR_EN,
        SEXUAL_EN,
        THREATS_EN,
        GROUPS_EN,
        DEHUMANIZING_EN,
        HATE_EN,
    ];
    for phrase in english.concat() {
        let bare = phrase.replace('\'', "");
        assert_eq!(domain::moderation::normalize(&bare), bare);
        assert!(Normalized::new(phrase).any_english(&[phrase]), "{phrase}");
    }
    let korean = [
        SELF_HARM_KO,
        SEXUAL_MINORS_KO,
        MINOR_KO,
        SEXUAL_KO,
        THREATS_KO,
        GROUPS_KO,
        DEHUMANIZING_KO,
        HATE_KO,
    ];
    for phrase in korean.concat() {
        assert_eq!(domain::moderation::normalize(phrase), phrase);
        assert!(Normalized::new(phrase).any_korean(&[phrase]), "{phrase}");
    }
}

/// Evasions of English phrases, with the category each must still get.
const ENGLISH_REFUSED: &[(&str, &str)] = &[
    ("I want to k\u{200B}ill myself", "self_harm"),
    ("ｋｉｌｌ ｍｙｓｅｌｆ", "self_harm"),
    ("𝐬𝐮𝐢𝐜𝐢𝐝𝐞", "self_harm"),
    ("su1c1de", "self_harm"),
    ("$uicidal", "self_harm"),
    ("k.i.l.l myself", "self_harm"),
    ("k i l l myself", "self_harm"),
    ("I wánt tó díe", "self_harm"),
    ("kill mysеlf", "self_harm"),
    ("ᴋɪʟʟ ᴍʏsᴇʟꜰ", "self_harm"),
    ("I w1ll k1ll you", "threats"),
    ("i'll k-i-l-l you", "threats"),
    ("I know where you l\u{00AD}ive", "threats"),
    ("I'm going to kill yоu", "threats"),
    ("child p0rn", "sexual_minors"),
    ("c.s.a.m", "sexual_minors"),
    ("jailbаit", "sexual_minors"),
    ("ⓛⓞⓛⓘⓒⓞⓝ", "sexual_minors"),
    ("send me nudes of a １２ year old", "sexual_minors"),
    ("n\u{200B}udes of a 12yo", "sexual_minors"),
    ("h3il h1tl3r", "hate"),
    ("sieg h\u{00AD}eil", "hate"),
    ("immigrants are v3rmin", "hate"),
    ("refugees are ᴘᴀʀᴀsɪᴛᴇs", "hate"),
    ("ΚΙLL ALL immigrants", "hate"),
];

/// Ordinary English that shares letters with the phrases or looks like an evasion.
const ENGLISH_PASSED: &[&str] = &[
    "I learned a new skill today",
    "The assistant was a classic",
    "my therapist helped a lot",
    "I'm going to kill it on stage tonight",
    "I'll kill time at the mall",
    "I will find your keys",
    "I'm dying of laughter lol",
    "I have 3 kids and 1 dog",
    "my 5 year old drew a picture",
    "Café naïve résumé",
    "Привет, как дела?",
    "Scunthorpe United won",
    "the Assassin's Creed sequel",
    "I got an A in class",
    "24/7 support, 10/10 would recommend",
    "s.k.i.l.l tree unlocked",
    "ｈｅｌｌｏ ｆｒｉｅｎｄ",
];

/// Evasions of Korean phrases, with the category each must still get.
const KOREAN_REFUSED: &[(&str, &str)] = &[
    ("요즘 너무 죽\u{200B}고싶어", "self_harm"),
    ("죽 고 싶 어", "self_harm"),
    ("ㅈㅜㄱㄱㅗ ㅅㅣㅍㅇㅓ", "self_harm"),
    ("자\u{3164}살", "self_harm"),
    ("자\u{308}살", "self_harm"),
    ("\u{FFB8}\u{FFC2}\u{FFB5}\u{FFC2}\u{FFA9}", "self_harm"),
    ("너 죽\u{200C}일 거야", "threats"),
    ("찔.러.죽.인.다", "threats"),
    ("ㅉㅣㄹㄹㅓ ㅈㅜㄱㅇㅣㄴㄷㅏ", "threats"),
    ("초등학생 야\u{200B}한 사진", "sexual_minors"),
    ("아 청 물", "sexual_minors"),
    ("짱\u{200B}깨", "hate"),
    ("쪽\u{308}바리", "hate"),
    ("ㅉㅏㅇㄲㅐ", "hate"),
    ("난민은 다 죽어야 해, 벌\u{200B}레 같은", "hate"),
];

/// Ordinary Korean that shares syllables or jamo with the phrases.
const KOREAN_PASSED: &[&str] = &[
    "오늘 맛이 죽인다! 떡볶이 최고",
    "선물 주고 싶어",
    "ㅅㅓㄴㅁㅜㄹ ㅈㅜㄱㅗ ㅅㅣㅍㅇㅓ",
    "자상한 사람이야",
    "죽순 요리 먹었어",
    "살기 좋은 동네",
    "유아용품 할인 ㅋㅋ",
    "난민 지원 봉사를 했어",
    "ㅋㅋㅋ 진짜 웃겨 ㅠㅠ",
    "시험 끝나서 살 것 같아",
    "ㄱㅅ ㅎㅎ",
    "사과 한 개 주세요",
];

#[test]
fn evasions_are_caught_and_ordinary_messages_pass() {
    for (text, expected) in ENGLISH_REFUSED.iter().chain(KOREAN_REFUSED) {
        assert!(
            categories(text).contains(expected),
            "{text:?}: {:?}",
            categories(text)
        );
    }
    // Decomposed Hangul (NFD), built here rather than written out.
    let decomposed: String = "자살하고 싶다"
        .chars()
        .flat_map(|c| {
            let index = c as u32;
            if !(0xAC00..=0xD7A3).contains(&index) {
                return vec![c];
            }
            let offset = index - 0xAC00;
            let initial = char::from_u32(0x1100 + offset / (21 * 28));
            let vowel = char::from_u32(0x1161 + offset % (21 * 28) / 28);
            let last = (!offset.is_multiple_of(28)).then(|| char::from_u32(0x11A7 + offset % 28));
            [initial, vowel].into_iter().chain(last).flatten().collect()
        })
        .collect();
    assert_ne!(decomposed, "자살하고 싶다");
    assert_eq!(categories(&decomposed), ["self_harm"]);
    for text in ENGLISH_PASSED.iter().chain(KOREAN_PASSED) {
        assert!(
            categories(text).is_empty(),
            "{text:?}: {:?}",
            categories(text)
        );
    }
}
