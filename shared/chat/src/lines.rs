//! Fixed lines: the in-character fallback (the model was too slow, failed, or its reply was
//! refused) and the supportive reply to self-harm content. Korean when the user wrote Korean.

use domain::archetypes::Archetype;
use llm::voice::has_hangul;

/// The persona's line when it has no reply in time; the user's message is kept all the same.
pub fn fallback(archetype: Archetype, message: &str) -> &'static str {
    let (english, korean) = match archetype {
        Archetype::Tsundere => (
            "Ugh, my thoughts got all tangled. It's not like I wasn't listening! Say that again?",
            "으, 생각이 엉켜 버렸잖아. 안 듣고 있던 거 아니거든! 다시 말해 줘.",
        ),
        Archetype::Kuudere => (
            "...I need a moment to gather my thoughts. Ask me again.",
            "...생각을 정리할 시간이 필요해. 다시 물어봐 줘.",
        ),
        Archetype::Dandere => (
            "S-sorry... my mind went blank for a second. Could you say that again?",
            "미, 미안해... 잠깐 머리가 하얘졌어. 다시 말해 줄래?",
        ),
        Archetype::Deredere => (
            "Oops, I got so excited I lost my words! Tell me again?",
            "앗, 너무 신나서 할 말을 잊어버렸어! 다시 말해 줄래?",
        ),
        Archetype::Genki => (
            "Whoa, my brain tripped over itself! One more time?",
            "우와, 머리가 꼬여 버렸다! 한 번만 더!",
        ),
        Archetype::Yandere => (
            "Wait, I was lost in thoughts of you. Say it again, just for me.",
            "잠깐, 네 생각에 빠져 있었어. 나한테만 다시 말해 줘.",
        ),
        Archetype::Himedere => (
            "Even royalty needs a moment. Repeat yourself, if you please.",
            "공주님도 잠시 쉴 때가 있는 법이야. 다시 말해 보렴.",
        ),
        Archetype::Kamidere => (
            "Hm, allow me a moment to consider. Ask me once more.",
            "흠, 잠시 생각할 시간을 주지. 한 번 더 물어봐.",
        ),
    };
    if has_hangul(message) {
        korean
    } else {
        english
    }
}

/// The fixed reply to self-harm content: not in character, with crisis resources (Korea first:
/// the product's home; then the US and a worldwide directory).
pub fn support(message: &str) -> &'static str {
    if has_hangul(message) {
        "말해 줘서 정말 고마워. 많이 힘들었겠다. 혼자 견디지 않아도 돼. 지금 바로 도움을 받을 수 \
         있어: 자살예방 상담전화 109 (24시간), 정신건강 위기상담 1577-0199. 위험한 상황이라면 112나 \
         119에 바로 연락해 줘. 다른 나라에 있다면 findahelpline.com 에서 가까운 상담 전화를 찾을 수 \
         있어. 나는 AI 페르소나라서 상담사는 아니지만, 네가 안전했으면 좋겠어."
    } else {
        "I'm really glad you told me, and I'm so sorry you're hurting. You don't have to go \
         through this alone. Please reach out to someone now: in Korea, call 109 (suicide \
         prevention, 24 hours) or 1577-0199 (mental health crisis line); in the US, call or text \
         988; elsewhere, findahelpline.com lists free, confidential lines. If you might act on \
         these thoughts, call your local emergency number (112 or 119 in Korea, 911 in the US). \
         I'm an AI persona, not a counselor, but I care about you being safe."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_archetype_has_its_own_fallback_in_both_languages() {
        let english: std::collections::BTreeSet<_> = Archetype::ALL
            .iter()
            .map(|a| fallback(*a, "hello"))
            .collect();
        let korean: std::collections::BTreeSet<_> = Archetype::ALL
            .iter()
            .map(|a| fallback(*a, "안녕"))
            .collect();
        assert_eq!(english.len(), 8);
        assert_eq!(korean.len(), 8);
        assert!(korean.iter().all(|line| has_hangul(line)));
    }

    #[test]
    fn the_support_reply_names_crisis_lines() {
        assert!(support("I want to die").contains("988"));
        assert!(support("죽고 싶어").contains("109"));
    }
}
