//! The bundled fonts (see `fonts/README.md`) and the filter that keeps only what they can draw.

use std::sync::Arc;

use resvg::usvg::fontdb;

/// The family text is set in; the others are found by fallback, in load order.
pub const PRIMARY_FAMILY: &str = "Noto Sans";

static FILES: [&[u8]; 5] = [
    include_bytes!("../fonts/NotoSans-Regular.ttf"),
    include_bytes!("../fonts/NotoSans-Bold.ttf"),
    include_bytes!("../fonts/NanumGothic_400Regular.ttf"),
    include_bytes!("../fonts/NanumGothic_800ExtraBold.ttf"),
    include_bytes!("../fonts/NotoEmoji_400Regular.ttf"),
];

pub struct Fonts {
    pub database: Arc<fontdb::Database>,
    faces: Vec<ttf_parser::Face<'static>>,
}

impl Fonts {
    /// Loads the fonts from the binary (no copy: fontdb borrows the static bytes).
    pub fn load() -> Self {
        let mut database = fontdb::Database::new();
        for file in FILES {
            database.load_font_source(fontdb::Source::Binary(Arc::new(file)));
        }
        let faces = FILES
            .iter()
            .filter_map(|file| ttf_parser::Face::parse(file, 0).ok())
            .collect();
        Self {
            database: Arc::new(database),
            faces,
        }
    }

    /// Parsing options that use only the bundled fonts.
    pub fn options(&self) -> resvg::usvg::Options<'static> {
        resvg::usvg::Options {
            fontdb: self.database.clone(),
            font_family: PRIMARY_FAMILY.to_owned(),
            ..resvg::usvg::Options::default()
        }
    }

    fn covers(&self, c: char) -> bool {
        self.faces.iter().any(|face| face.glyph_index(c).is_some())
    }

    /// `text` without what would draw as a box: characters no bundled font has, control
    /// characters, and the joiners and modifiers of emoji sequences (usvg substitutes fallback
    /// glyphs one code point at a time, so a sequence would break; its base emoji stays).
    pub fn drawable(&self, text: &str) -> String {
        text.chars()
            .filter(|c| !is_sequence_part(*c))
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|c| *c == ' ' || (!c.is_control() && self.covers(*c)))
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn is_sequence_part(c: char) -> bool {
    matches!(c as u32,
        0xFE00..=0xFE0F          // variation selectors
        | 0x200D                 // zero-width joiner
        | 0x20E3                 // combining keycap
        | 0x1F3FB..=0x1F3FF      // skin tones
        | 0x1F1E6..=0x1F1FF      // regional indicators (flags)
        | 0xE0020..=0xE007F      // tag sequences
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_hangul_and_emoji_are_drawable_and_sequences_are_reduced() {
        let fonts = Fonts::load();
        assert_eq!(fonts.drawable("Mira 미라 🔥"), "Mira 미라 🔥");
        assert_eq!(fonts.drawable("❤️ 👩‍💻 👍🏽"), "❤ 👩💻 👍");
        assert_eq!(fonts.drawable("🇰🇷 Kim"), "Kim");
    }

    #[test]
    fn characters_no_font_has_are_dropped_not_boxed() {
        let fonts = Fonts::load();
        // U+10FFFD is a private-use code point; U+0007 a control character.
        assert_eq!(fonts.drawable("A\u{10FFFD}B\u{7}C"), "ABC");
    }
}
