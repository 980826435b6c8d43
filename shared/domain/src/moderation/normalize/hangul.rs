//! Hangul jamo: spelled-out compatibility jamo composed into syllables (step 2 of
//! [`super`]), halfwidth jamo read as compatibility jamo, and leftover conjoining jamo written as
//! compatibility jamo (step 6).

pub(super) fn is_compatibility_jamo(c: char) -> bool {
    ('\u{3131}'..='\u{318E}').contains(&c)
}

/// Initial consonants in conjoining order (U+1100…), as compatibility jamo.
const INITIALS: [char; 19] = [
    'ㄱ', 'ㄲ', 'ㄴ', 'ㄷ', 'ㄸ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅃ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅉ', 'ㅊ', 'ㅋ',
    'ㅌ', 'ㅍ', 'ㅎ',
];
/// Final consonants in conjoining order (U+11A8…), as compatibility jamo.
const FINALS: [char; 27] = [
    'ㄱ', 'ㄲ', 'ㄳ', 'ㄴ', 'ㄵ', 'ㄶ', 'ㄷ', 'ㄹ', 'ㄺ', 'ㄻ', 'ㄼ', 'ㄽ', 'ㄾ', 'ㄿ', 'ㅀ', 'ㅁ',
    'ㅂ', 'ㅄ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅊ', 'ㅋ', 'ㅌ', 'ㅍ', 'ㅎ',
];
const FIRST_VOWEL: char = 'ㅏ';
const LAST_VOWEL: char = 'ㅣ';

fn vowel_index(c: char) -> Option<u32> {
    (FIRST_VOWEL..=LAST_VOWEL)
        .contains(&c)
        .then(|| c as u32 - FIRST_VOWEL as u32)
}

fn initial_index(c: char) -> Option<u32> {
    INITIALS.iter().position(|&i| i == c).map(|i| i as u32)
}

/// 1-based: 0 is "no final".
fn final_index(c: char) -> Option<u32> {
    FINALS.iter().position(|&f| f == c).map(|f| f as u32 + 1)
}

fn compound_vowel(first: char, second: char) -> Option<char> {
    Some(match (first, second) {
        ('ㅗ', 'ㅏ') => 'ㅘ',
        ('ㅗ', 'ㅐ') => 'ㅙ',
        ('ㅗ', 'ㅣ') => 'ㅚ',
        ('ㅜ', 'ㅓ') => 'ㅝ',
        ('ㅜ', 'ㅔ') => 'ㅞ',
        ('ㅜ', 'ㅣ') => 'ㅟ',
        ('ㅡ', 'ㅣ') => 'ㅢ',
        _ => return None,
    })
}

fn compound_final(first: char, second: char) -> Option<char> {
    Some(match (first, second) {
        ('ㄱ', 'ㅅ') => 'ㄳ',
        ('ㄴ', 'ㅈ') => 'ㄵ',
        ('ㄴ', 'ㅎ') => 'ㄶ',
        ('ㄹ', 'ㄱ') => 'ㄺ',
        ('ㄹ', 'ㅁ') => 'ㄻ',
        ('ㄹ', 'ㅂ') => 'ㄼ',
        ('ㄹ', 'ㅅ') => 'ㄽ',
        ('ㄹ', 'ㅌ') => 'ㄾ',
        ('ㄹ', 'ㅍ') => 'ㄿ',
        ('ㄹ', 'ㅎ') => 'ㅀ',
        ('ㅂ', 'ㅅ') => 'ㅄ',
        _ => return None,
    })
}

/// Runs of compatibility jamo composed into syllables (step 2).
pub(super) fn compose_jamo(text: &str) -> String {
    if !text.chars().any(|c| ('ㄱ'..=LAST_VOWEL).contains(&c)) {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let is_vowel = |index: usize| chars.get(index).copied().and_then(vowel_index).is_some();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < chars.len() {
        let (Some(initial), true) = (initial_index(chars[index]), is_vowel(index + 1)) else {
            out.push(chars[index]);
            index += 1;
            continue;
        };
        let mut vowel = chars[index + 1];
        let mut next = index + 2;
        if let Some(compound) = chars.get(next).and_then(|&c| compound_vowel(vowel, c)) {
            vowel = compound;
            next += 1;
        }
        let mut last = 0;
        if let Some(single) = chars.get(next).and_then(|&c| final_index(c)) {
            if !is_vowel(next + 1) {
                let double = chars
                    .get(next + 1)
                    .and_then(|&c| compound_final(chars[next], c))
                    .filter(|_| !is_vowel(next + 2));
                match double.and_then(final_index) {
                    Some(double) => {
                        last = double;
                        next += 2;
                    }
                    None => {
                        last = single;
                        next += 1;
                    }
                }
            }
        }
        let vowel = vowel_index(vowel).unwrap_or(0);
        let syllable = 0xAC00 + (initial * 21 + vowel) * 28 + last;
        out.push(char::from_u32(syllable).unwrap_or(chars[index]));
        index = next;
    }
    out
}

/// Halfwidth Hangul jamo (U+FFA1–U+FFDC) as compatibility jamo, so they compose like them.
pub(super) fn halfwidth_jamo(c: char) -> char {
    let target = match c as u32 {
        code @ 0xFFA1..=0xFFBE => code - 0xFFA1 + 0x3131,
        code @ 0xFFC2..=0xFFC7 => code - 0xFFC2 + 0x314F,
        code @ 0xFFCA..=0xFFCF => code - 0xFFCA + 0x3155,
        code @ 0xFFD2..=0xFFD7 => code - 0xFFD2 + 0x315B,
        code @ 0xFFDA..=0xFFDC => code - 0xFFDA + 0x3161,
        _ => return c,
    };
    char::from_u32(target).unwrap_or(c)
}

/// A modern conjoining jamo left over after NFC, as the compatibility jamo it looks like.
pub(super) fn compatibility_jamo(c: char) -> char {
    match c as u32 {
        code @ 0x1100..=0x1112 => INITIALS[(code - 0x1100) as usize],
        code @ 0x1161..=0x1175 => char::from_u32(code - 0x1161 + FIRST_VOWEL as u32).unwrap_or(c),
        code @ 0x11A8..=0x11C2 => FINALS[(code - 0x11A8) as usize],
        _ => c,
    }
}
