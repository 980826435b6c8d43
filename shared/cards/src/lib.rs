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

    /// The size's name in stored card rows and the API.
    pub fn name(self) -> &'static str {
        match self {
            Size::Square => "square",
            Size::Story => "story",
            Size::Link => "link",
        }
    }

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

/// The card design. Bump it with any change to how cards look; then re-render every persona's
/// cards (README "Runbooks": the sweeper's `rerender_cards` action).
pub const DESIGN_VERSION: i32 = 1;

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
        self.render_timed(data, size, |_| {})
    }

    /// Milliseconds spent in each phase of one render: SVG string, parse and text layout,
    /// rasterizing, PNG encoding (for the phases example).
    #[doc(hidden)]
    pub fn profile(&self, data: &CardData, size: Size) -> Result<[f64; 4], RenderError> {
        let mut phases = [0.0; 4];
        let mut phase = 0;
        let mut last = std::time::Instant::now();
        self.render_timed(data, size, |_| {
            phases[phase] = last.elapsed().as_secs_f64() * 1000.0;
            phase += 1;
            last = std::time::Instant::now();
        })?;
        Ok(phases)
    }

    /// The render, calling `phase_done` after each of its four phases.
    fn render_timed(
        &self,
        data: &CardData,
        size: Size,
        mut phase_done: impl FnMut(usize),
    ) -> Result<Card, RenderError> {
        let (width, height) = size.dimensions();
        let svg = layout::svg(&self.fonts, data, size)?;
        phase_done(0);
        let tree = usvg::Tree::from_str(&svg, &self.fonts.options())
            .map_err(|e| RenderError::Svg(e.to_string()))?;
        phase_done(1);
        let mut pixmap = background(data.theme, width, height)?;
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        phase_done(2);
        let png = encode_rgb(&pixmap)?;
        phase_done(3);
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

/// The theme's diagonal gradient (top-left → bottom-right, like an SVG `linearGradient` with
/// `x1=0 y1=0 x2=1 y2=1` over the card), painted directly: a 1,024-entry colour table and one
/// store per pixel, about five times faster than rasterizing the gradient as a shape.
fn background(theme: Theme, width: u32, height: u32) -> Result<tiny_skia::Pixmap, RenderError> {
    const STEPS: usize = 1024;
    let palette = theme.palette();
    let (from, to) = (rgb(palette.background_from), rgb(palette.background_to));
    let table: Vec<[u8; 4]> = (0..STEPS)
        .map(|i| {
            let t = i as f32 / (STEPS - 1) as f32;
            let mix =
                |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
            [
                mix(from[0], to[0]),
                mix(from[1], to[1]),
                mix(from[2], to[2]),
                255,
            ]
        })
        .collect();
    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| RenderError::Svg("empty pixmap".into()))?;
    let (w, h) = (width as usize, height as usize);
    // t = (x / w + y / h) / 2, in table steps.
    let scale_x = (STEPS - 1) as f32 / (2.0 * (w.max(2) - 1) as f32);
    let scale_y = (STEPS - 1) as f32 / (2.0 * (h.max(2) - 1) as f32);
    for (y, row) in pixmap.data_mut().chunks_exact_mut(w * 4).enumerate() {
        let row_offset = y as f32 * scale_y;
        for (x, pixel) in row.chunks_exact_mut(4).enumerate() {
            let index = (x as f32 * scale_x + row_offset) as usize;
            pixel.copy_from_slice(&table[index.min(STEPS - 1)]);
        }
    }
    Ok(pixmap)
}

fn rgb(hex: &str) -> [u8; 3] {
    let channel = |i: usize| {
        u8::from_str_radix(hex.get(1 + 2 * i..3 + 2 * i).unwrap_or("00"), 16).unwrap_or(0)
    };
    [channel(0), channel(1), channel(2)]
}

/// Deflate effort: see the benchmark in the README for the size/time trade-off.
const COMPRESSION: png::Compression = png::Compression::Fastest;

/// Cards are opaque: drop alpha (smaller files) and favour speed over the last few percent of
/// size (fast deflate).
fn encode_rgb(pixmap: &tiny_skia::Pixmap) -> Result<Vec<u8>, RenderError> {
    let png_error = |e: png::EncodingError| RenderError::Png(e.to_string());
    let width = pixmap.width() as usize;
    let mut out = Vec::with_capacity(width * pixmap.height() as usize);
    {
        let mut encoder = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(COMPRESSION);
        let mut writer = encoder.write_header().map_err(png_error)?;
        let mut stream = writer.stream_writer().map_err(png_error)?;
        // Row by row: no second full-size buffer.
        let mut row = vec![0u8; width * 3];
        for source in pixmap.data().chunks_exact(width * 4) {
            for (rgb, rgba) in row.chunks_exact_mut(3).zip(source.chunks_exact(4)) {
                rgb.copy_from_slice(&rgba[..3]);
            }
            std::io::Write::write_all(&mut stream, &row)
                .map_err(|e| RenderError::Png(e.to_string()))?;
        }
        stream.finish().map_err(png_error)?;
    }
    Ok(out)
}
