//! Persona cards: PNG images in three sizes and four themes, rendered from an SVG built as a
//! string and rasterized by resvg with the fonts bundled into the binary (no system fonts are
//! read). Characters no bundled font can draw are dropped before layout, so nothing renders as
//! a box; names are measured after shaping and shrink, then wrap, then ellipsize to fit.

mod fonts;
mod layout;
pub mod theme;

use std::sync::Arc;

use domain::{archetypes::Archetype, synthesis::Stats};
use resvg::{tiny_skia, usvg};
pub use theme::Theme;

/// The three card sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// 1080x1080, the feed card.
    Square,
    /// 1080x1920, stories.
    Story,
    /// 1200x630, link previews (OpenGraph).
    Link,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Square, Size::Story, Size::Link];

    pub fn dimensions(self) -> (u32, u32) {
        match self {
            Size::Square => (1080, 1080),
            Size::Story => (1080, 1920),
            Size::Link => (1200, 630),
        }
    }
}

/// What a card shows.
#[derive(Debug, Clone)]
pub struct CardData {
    pub name: String,
    pub archetype: Archetype,
    pub stats: Stats,
    /// Encoded in the QR code: `{FRONTEND_URL}/p/{persona_id}`.
    pub share_url: String,
    pub theme: Theme,
}

/// A rendered card.
#[derive(Debug, Clone)]
pub struct Card {
    pub size: Size,
    pub width: u32,
    pub height: u32,
    pub png: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the card SVG did not parse: {0}")]
    Svg(String),
    #[error("the share URL does not fit in a QR code")]
    Qr,
    #[error("PNG encoding failed: {0}")]
    Png(String),
}

/// Holds the font database; build once per process (cold start) and share.
#[derive(Clone)]
pub struct Renderer {
    fonts: Arc<fonts::Fonts>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl Renderer {
    pub fn new() -> Self {
        Self {
            fonts: Arc::new(fonts::Fonts::load()),
        }
    }

    /// Renders one size.
    pub fn render(&self, data: &CardData, size: Size) -> Result<Card, RenderError> {
        let (width, height) = size.dimensions();
        let svg = layout::svg(&self.fonts, data, size)?;
        let options = usvg::Options {
            fontdb: self.fonts.database.clone(),
            font_family: fonts::PRIMARY_FAMILY.to_owned(),
            ..usvg::Options::default()
        };
        let tree =
            usvg::Tree::from_str(&svg, &options).map_err(|e| RenderError::Svg(e.to_string()))?;
        let mut pixmap = tiny_skia::Pixmap::new(width, height)
            .ok_or_else(|| RenderError::Svg("empty pixmap".into()))?;
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        let png = encode_rgb(&pixmap)?;
        Ok(Card {
            size,
            width,
            height,
            png,
        })
    }

    /// Renders every size.
    pub fn render_all(&self, data: &CardData) -> Result<Vec<Card>, RenderError> {
        Size::ALL
            .iter()
            .map(|size| self.render(data, *size))
            .collect()
    }

    /// The name as the card will show it: unsupported characters removed, lines and font size
    /// chosen to fit (exposed for tests).
    pub fn name_layout(&self, name: &str, size: Size) -> layout::NameLayout {
        layout::fit_name(&self.fonts, name, size)
    }
}

/// Cards are opaque: drop alpha (smaller files) and favour speed over the last few percent of
/// size (fast deflate).
fn encode_rgb(pixmap: &tiny_skia::Pixmap) -> Result<Vec<u8>, RenderError> {
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|px| [px[0], px[1], px[2]])
        .collect();
    let mut out = Vec::with_capacity(rgb.len() / 4);
    {
        let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RenderError::Png(e.to_string()))?;
        writer
            .write_image_data(&rgb)
            .map_err(|e| RenderError::Png(e.to_string()))?;
    }
    Ok(out)
}
