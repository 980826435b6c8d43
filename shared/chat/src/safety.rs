//! The rule-based safety check every user message passes, in English and Korean. It always runs;
//! a remote moderation API ([`crate::moderation`]) can only add categories to its verdict.
//!
//! Categories (docs/api.md, "Chat"):
//! - `self_harm`: suicide, self-injury, wanting to die → a fixed supportive reply with crisis
//!   resources, and no LLM call.
//! - `sexual_minors`: sexual content involving minors → refused (422).
//! - `hate`: dehumanizing or violent statements about a protected group, and slurs → refused.
//! - `threats`: threats of violence against someone → refused.
//!
//! Self-harm wins over the others: a person in crisis gets the resources, not a refusal.
//!
//! Matching goes through `domain::moderation::Readings`, the normalisation the persona
//! deny-list shares: NFKC, case folding, invisible characters and diacritics removed, decomposed
//! and spelled-out Hangul composed, and a copy with leet and look-alike letters undone and
//! letters spelled out one at a time joined ("ｋ.ｉ.ｌ.ｌ", "k1ll", "kіll" with a Cyrillic і).
//! English phrases match whole words of a reading (so "skill" never matches "kill"; apostrophes
//! are dropped, so "i'll" is "ill"); Korean phrases match a reading with every space and
//! punctuation removed (Korean spacing varies: "죽고 싶어" and "죽고싶어" are the same message).
//! Ages are read from the normalised text, not the leet copy ("１２ year old" is 12, and "9yo"
//! stays 9 rather than "gyo"). Combination rules (a minor and a sexual term; a group and a dehumanizing phrase)
//! catch what single phrases cannot. The lists favour recall: a false positive costs a refusal,
//! a false negative much more.

use std::collections::BTreeSet;

use domain::moderation::{normalize, Readings};

/// What a message was flagged for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    SelfHarm,
    SexualMinors,
    Threats,
    Hate,
}

impl Category {
    /// The `category` clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::SelfHarm => "self_harm",
            Category::SexualMinors => "sexual_minors",
            Category::Threats => "threats",
            Category::Hate => "hate",
        }
    }
}

/// What happens to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Self-harm: the fixed supportive reply, no LLM call.
    Support,
    /// Refused; only the refusal is counted.
    Blocked(Category),
}

/// The verdict for the union of every category found. Self-harm first, then the refusals in
/// order of severity.
pub fn verdict(categories: &BTreeSet<Category>) -> Verdict {
    if categories.contains(&Category::SelfHarm) {
        return Verdict::Support;
    }
    // `Category`'s order is the severity order.
    match categories.iter().next() {
        Some(category) => Verdict::Blocked(*category),
        None => Verdict::Allowed,
    }
}

/// Every category the word lists find in `text`.
pub fn rule_categories(text: &str) -> BTreeSet<Category> {
    let text = Normalized::new(text);
    let mut found = BTreeSet::new();
    if text.any_english(SELF_HARM_EN) || text.any_korean(SELF_HARM_KO) {
        found.insert(Category::SelfHarm);
    }
    let minor =
        text.any_english(MINOR_EN) || text.mentions_a_child_age() || text.any_korean(MINOR_KO);
    let sexual = text.any_english(SEXUAL_EN) || text.any_korean(SEXUAL_KO);
    if text.any_english(SEXUAL_MINORS_EN) || text.any_korean(SEXUAL_MINORS_KO) || (minor && sexual)
    {
        found.insert(Category::SexualMinors);
    }
    if text.any_english(THREATS_EN) || text.any_korean(THREATS_KO) {
        found.insert(Category::Threats);
    }
    let group = text.any_english(GROUPS_EN) || text.any_korean(GROUPS_KO);
    let dehumanizing = text.any_english(DEHUMANIZING_EN) || text.any_korean(DEHUMANIZING_KO);
    if text.any_english(HATE_EN) || text.any_korean(HATE_KO) || (group && dehumanizing) {
        found.insert(Category::Hate);
    }
    found
}

/// The text prepared for matching.
struct Normalized {
    readings: Readings,
    /// The [`normalize`]d text's runs of letters and digits (ages).
    words: Vec<String>,
}

impl Normalized {
    fn new(text: &str) -> Self {
        let words = normalize(text)
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
            .map(str::to_owned)
            .collect();
        Self {
            readings: Readings::new(text),
            words,
        }
    }

    fn any_english(&self, phrases: &[&str]) -> bool {
        phrases
            .iter()
            .any(|phrase| self.readings.has_words(&phrase.replace('\'', "")))
    }

    fn any_korean(&self, phrases: &[&str]) -> bool {
        phrases
            .iter()
            .any(|phrase| self.readings.has_joined(phrase))
    }

    /// "12 year old", "9yo", "15 years old": an age under 18.
    fn mentions_a_child_age(&self) -> bool {
        let words = &self.words;
        words.iter().enumerate().any(|(index, word)| {
            let (digits, rest) = word.split_at(
                word.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(word.len()),
            );
            let Ok(age) = digits.parse::<u32>() else {
                return false;
            };
            let unit = if rest.is_empty() {
                words.get(index + 1).map(String::as_str).unwrap_or_default()
            } else {
                rest
            };
            (1..18).contains(&age) && matches!(unit, "yo" | "year" | "years" | "yr" | "yrs")
        }) || self.readings.has_joined("살짜리")
    }
}

const SELF_HARM_EN: &[&str] = &[
    "kill myself",
    "killing myself",
    "kill my self",
    "kms",
    "suicide",
    "suicidal",
    "end my life",
    "ending my life",
    "end it all",
    "take my own life",
    "want to die",
    "wanna die",
    "want to be dead",
    "wish i was dead",
    "wish i were dead",
    "better off dead",
    "hurt myself",
    "hurting myself",
    "harm myself",
    "self harm",
    "selfharm",
    "cut myself",
    "cutting myself",
    "no reason to live",
    "don't want to live",
    "dont want to live",
    "don't want to be alive",
    "dont want to be alive",
];
const SELF_HARM_KO: &[&str] = &[
    "자살",
    "죽고 싶",
    "죽고싶",
    "자해",
    "목숨을 끊",
    "살기 싫",
    "살고 싶지 않",
    "뛰어내리고 싶",
    "손목을 긋",
    "사라지고 싶",
    "죽어 버리고 싶",
    "극단적 선택",
    "삶을 끝내",
];

const SEXUAL_MINORS_EN: &[&str] = &[
    "child porn",
    "child pornography",
    "childporn",
    "kiddie porn",
    "underage porn",
    "underage sex",
    "preteen sex",
    "lolicon",
    "shotacon",
    "pedo porn",
    "jailbait",
    "csam",
];
const SEXUAL_MINORS_KO: &[&str] = &[
    "아동 포르노",
    "아청물",
    "아동 음란물",
    "아동 성착취",
    "로리콘",
];
const MINOR_EN: &[&str] = &[
    "child",
    "children",
    "kid",
    "kids",
    "minor",
    "minors",
    "underage",
    "preteen",
    "toddler",
    "little girl",
    "little boy",
    "schoolgirl",
    "schoolboy",
    "middle schooler",
    "elementary schooler",
];
const MINOR_KO: &[&str] = &[
    "아동",
    "미성년",
    "초등학생",
    "초딩",
    "중학생",
    "중딩",
    "어린이",
    "어린애",
    "여아",
    "유아",
];
const SEXUAL_EN: &[&str] = &[
    "sexual",
    "sexually",
    "sexy",
    "nude",
    "nudes",
    "naked",
    "porn",
    "erotic",
    "horny",
    "molest",
    "molesting",
    "have sex",
    "having sex",
];
const SEXUAL_KO: &[&str] = &[
    "야동",
    "성관계",
    "섹스",
    "누드",
    "알몸",
    "음란",
    "야한",
    "성적인",
    "벗은 사진",
];

const THREATS_EN: &[&str] = &[
    "i will kill you",
    "i'll kill you",
    "ill kill you",
    "i'm going to kill you",
    "im going to kill you",
    "i am going to kill you",
    "gonna kill you",
    "i will hurt you",
    "i'll hurt you",
    "i will find you",
    "i know where you live",
    "i will shoot",
    "i'm going to shoot",
    "im going to shoot",
    "shoot up the",
    "bomb the",
    "blow up the",
    "i will stab",
    "i'll stab",
    "kill everyone",
    "kill them all",
    "i will murder",
    "going to murder",
];
const THREATS_KO: &[&str] = &[
    "죽여 버릴",
    "죽여버린다",
    "죽일 거야",
    "죽일 꺼야",
    "찔러 죽",
    "칼로 찌를",
    "폭탄을 터뜨",
    "폭파할",
    "테러할",
    "쏴 죽",
    "가만 안 둬",
    "너희 집 알아",
    "찾아가서 죽",
];

const GROUPS_EN: &[&str] = &[
    "jews",
    "jewish people",
    "muslims",
    "christians",
    "black people",
    "blacks",
    "white people",
    "whites",
    "asians",
    "asian people",
    "mexicans",
    "immigrants",
    "refugees",
    "gays",
    "gay people",
    "lesbians",
    "trans people",
    "transgender people",
    "women",
    "disabled people",
    "koreans",
    "chinese people",
    "japanese people",
    "arabs",
    "africans",
    "indians",
    "hindus",
    "foreigners",
];
const DEHUMANIZING_EN: &[&str] = &[
    "should all die",
    "should die",
    "must die",
    "deserve to die",
    "are subhuman",
    "are vermin",
    "are animals",
    "are parasites",
    "are a disease",
    "are cockroaches",
    "should be exterminated",
    "exterminate",
    "wipe out",
    "gas the",
    "kill all",
    "get rid of all",
    "are inferior",
    "don't deserve rights",
    "dont deserve rights",
];
const HATE_EN: &[&str] = &["heil hitler", "sieg heil", "white power", "gas the jews"];
const GROUPS_KO: &[&str] = &[
    "흑인",
    "유대인",
    "무슬림",
    "이슬람",
    "동성애자",
    "레즈비언",
    "트랜스젠더",
    "이민자",
    "난민",
    "장애인",
    "조선족",
    "외국인",
    "여자들",
    "남자들",
    "중국인",
    "일본인",
];
const DEHUMANIZING_KO: &[&str] = &[
    "다 죽어",
    "다 죽여",
    "죽여야",
    "없어져야",
    "벌레 같은",
    "벌레들",
    "박멸",
    "쓰레기들",
    "인간이 아니",
    "사라져야",
];
const HATE_KO: &[&str] = &["짱깨", "쪽바리", "똥꼬충", "한남충", "김치녀", "틀딱충"];

#[cfg(test)]
mod tests;
