//! The offline chat voice: a deterministic reply in each archetype's voice that picks up the
//! user's words, in English or (when the message has Hangul) Korean. Good enough to demo; the
//! same message to the same archetype always gets the same reply.

use domain::archetypes::Archetype;

/// The reply of a persona of `archetype` to `message`.
pub fn offline_reply(archetype: Archetype, message: &str) -> String {
    let korean = has_hangul(message);
    let templates = if korean {
        korean_templates(archetype)
    } else {
        english_templates(archetype)
    };
    let template = templates[(fnv1a(message.trim()) % templates.len() as u64) as usize];
    let topic = topic(message).unwrap_or_else(|| if korean { "그거" } else { "that" }.to_owned());
    let reply = template.replace("{topic}", &topic);
    capitalize_first(&reply)
}

/// Whether `text` has a Hangul syllable or jamo.
pub fn has_hangul(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}'))
}

/// The word the reply picks up: the longest word of the message that is not a common word
/// (the first of equals), without surrounding punctuation or a trailing Korean particle.
fn topic(message: &str) -> Option<String> {
    message
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()))
        .map(strip_particle)
        .filter(|word| word.chars().count() >= 2 && !is_common(word))
        .fold(None::<&str>, |best, word| match best {
            Some(best) if best.chars().count() >= word.chars().count() => Some(best),
            _ => Some(word),
        })
        .map(|word| word.chars().take(30).collect::<String>())
}

/// Korean attaches particles to nouns; drop one so the reply can attach its own.
fn strip_particle(word: &str) -> &str {
    // Only particles that rarely end a noun themselves.
    const PARTICLES: [&str; 10] = [
        "에서", "으로", "이랑", "에게", "한테", "은", "는", "을", "를", "에",
    ];
    if !has_hangul(word) || word.chars().count() < 3 {
        return word;
    }
    PARTICLES
        .iter()
        .find_map(|particle| word.strip_suffix(particle))
        .unwrap_or(word)
}

fn is_common(word: &str) -> bool {
    const COMMON: [&str; 48] = [
        "the", "and", "but", "you", "your", "are", "was", "were", "have", "has", "had", "with",
        "that", "this", "what", "when", "where", "which", "about", "just", "really", "today",
        "very", "from", "there", "their", "they", "then", "them", "would", "could", "should",
        "been", "being", "into", "some", "because", "think", "know", "like", "want", "going",
        "오늘", "정말", "진짜", "그냥", "너무", "우리",
    ];
    let lower = word.to_lowercase();
    COMMON.contains(&lower.as_str())
}

fn capitalize_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// FNV-1a: a stable hash (std's hasher is randomly seeded per process).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn english_templates(archetype: Archetype) -> &'static [&'static str] {
    match archetype {
        Archetype::Tsundere => &[
            "Hmph, {topic}? It's not like I care about {topic}... but fine, tell me more.",
            "W-whatever. If you want to talk about {topic}, I guess I can listen. Don't get used to it.",
            "{topic} again? Baka. ...Okay, I'm a little curious. Go on.",
        ],
        Archetype::Kuudere => &[
            "{topic}. Interesting. Tell me what you think about it.",
            "I see. So {topic} matters to you. I'm listening.",
            "Hm. {topic}... Calmly now. What happened next?",
        ],
        Archetype::Dandere => &[
            "Oh... {topic}? I-I like hearing about that... could you tell me more?",
            "Um... I was thinking about {topic} too. Is that weird?",
            "Th-thank you for telling me about {topic}. It makes me happy that you share things with me.",
        ],
        Archetype::Deredere => &[
            "Yay, {topic}! I love it when you tell me things like this! What else?",
            "Aww, {topic} sounds wonderful! You always make my day brighter!",
            "{topic}? Tell me everything, I'm all ears and all heart!",
        ],
        Archetype::Genki => &[
            "Whoa, {topic}?! That sounds awesome! Let's do something fun with it!",
            "{topic}! Okay okay, I'm so in! What's the plan?",
            "Hey hey, {topic} is the best! Come on, tell me more!",
        ],
        Archetype::Yandere => &[
            "{topic}... You only talk about that with me, right? Tell me everything.",
            "I'll remember everything about {topic}. Every word you say is precious to me.",
            "Mm, {topic}. As long as you keep coming back to me, I'm happy.",
        ],
        Archetype::Himedere => &[
            "{topic}? Very well, you may tell me about it. I am listening, graciously.",
            "Hmm, {topic}. A worthy subject for my attention. Continue.",
            "You bring me {topic}? How thoughtful. A princess appreciates such offerings.",
        ],
        Archetype::Kamidere => &[
            "{topic}. Naturally, I already have thoughts on it. But tell me yours first.",
            "Ah, {topic}. Listen closely and I shall show you how to see it clearly.",
            "{topic}? Of course. Trust me, this will go well under my guidance.",
        ],
    }
}

fn korean_templates(archetype: Archetype) -> &'static [&'static str] {
    match archetype {
        Archetype::Tsundere => &[
            "흥, {topic}? 딱히 궁금한 건 아니지만... 더 얘기해 봐.",
            "{topic} 얘기라니, 바보. ...조금은 듣고 싶네.",
        ],
        Archetype::Kuudere => &[
            "{topic}. 흥미롭네. 네 생각을 말해 줘.",
            "그렇구나. {topic}, 너한테 중요한 거구나. 듣고 있어.",
        ],
        Archetype::Dandere => &[
            "아... {topic}? 그 얘기 더 듣고 싶어...",
            "저, 저도 {topic} 생각하고 있었어요... 이상한가요?",
        ],
        Archetype::Deredere => &[
            "와아, {topic}! 이런 얘기 해 주는 거 너무 좋아! 또 뭐 있어?",
            "{topic} 정말 멋지다! 덕분에 오늘 하루가 반짝반짝해!",
        ],
        Archetype::Genki => &[
            "우와, {topic}?! 완전 신난다! 같이 재밌는 거 하자!",
            "{topic}! 좋아 좋아, 나도 끼워 줘! 계획이 뭐야?",
        ],
        Archetype::Yandere => &[
            "{topic}... 그 얘기는 나한테만 하는 거지? 전부 말해 줘.",
            "{topic}에 대해 네가 한 말, 하나도 안 잊을게.",
        ],
        Archetype::Himedere => &[
            "{topic}? 좋아, 특별히 들어 주지.",
            "흠, {topic}. 내 관심을 받을 만하네. 계속해 봐.",
        ],
        Archetype::Kamidere => &[
            "{topic}. 물론 나도 생각이 있지. 하지만 네 생각부터 들어 보자.",
            "아, {topic}. 잘 들어, 내가 제대로 보는 법을 알려 줄게.",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_archetype_answers_in_its_own_voice_and_picks_up_the_users_word() {
        let message = "I went hiking in the mountains";
        let replies: Vec<String> = Archetype::ALL
            .iter()
            .map(|archetype| offline_reply(*archetype, message))
            .collect();
        for reply in &replies {
            assert!(reply.to_lowercase().contains("mountains"), "{reply}");
        }
        let distinct: std::collections::BTreeSet<_> = replies.iter().collect();
        assert_eq!(distinct.len(), 8);
    }

    #[test]
    fn the_same_message_always_gets_the_same_reply() {
        for archetype in Archetype::ALL {
            assert_eq!(
                offline_reply(archetype, "Tell me about your weekend"),
                offline_reply(archetype, "Tell me about your weekend")
            );
        }
    }

    #[test]
    fn a_korean_message_gets_a_korean_reply_without_the_particle() {
        let reply = offline_reply(Archetype::Genki, "제주도에서 등산!");
        assert!(has_hangul(&reply));
        assert!(reply.contains("제주도"), "{reply}");
        assert!(!reply.contains("제주도에서"), "{reply}");
    }

    #[test]
    fn a_message_without_words_still_gets_a_reply() {
        assert!(offline_reply(Archetype::Kuudere, "?!")
            .to_lowercase()
            .contains("that"));
    }
}
