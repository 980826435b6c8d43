//! Persona cards: PNG images in three sizes and four themes, rendered from an SVG built as a
//! string and rasterized by resvg with the fonts bundled into the binary (no system fonts are
//! read). Characters no bundled font can draw are dropped before layout, so nothing renders as
//! a box; names are measured after shaping and shrink, then wrap, then ellipsize to fit.

mod encoding;
mod fonts;
mod layout;
mod qr;
pub mod theme;

use std::sync::{Arc, Mutex, OnceLock};

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

    /// Position in `ALL`.
    fn index(self) -> usize {
        self as usize
    }

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
}

/// The card design. Bump it with any change to how cards look; then re-render every persona's
/// cards (docs/operations.md: the sweeper's `rerender_cards` action).
pub const DESIGN_VERSION: i32 = 1;

/// Holds the fonts and the templates; build once per process (cold start) and share (clones
/// share both). A template — the gradient, brand, stat labels and tracks of one theme and size,
/// drawn and compressed — is made the first time a card of that theme and size is rendered;
/// after that a card only draws and compresses what is its own.
#[derive(Clone)]
pub struct Renderer {
    fonts: Arc<fonts::Fonts>,
    templates: Arc<[OnceLock<Template>; Theme::ALL.len() * Size::ALL.len()]>,
}

/// What every card of one theme and size shares.
struct Template {
    /// The template's pixels. A render draws its card right on them, then puts back what it
    /// covered: cheaper than copying the whole image, and no second image in memory. Renders
    /// of one theme and size take turns (one takes about a millisecond or two).
    canvas: Mutex<Canvas>,
    encoded: encoding::Encoded,
    /// The pixels under the stat labels and tracks, painted over when a card moves them.
    stats: tiny_skia::IntRect,
}

struct Canvas {
    pixmap: tiny_skia::Pixmap,
    /// The template's pixels under the card being drawn.
    covered: Vec<u8>,
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
            templates: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Renders one size.
    pub fn render(&self, data: &CardData, size: Size) -> Result<Card, RenderError> {
        self.render_timed(data, size, |_| {}, |_| {})
    }

    /// Milliseconds spent in each phase of one render: layout (SVG string, name fit, QR
    /// modules), parse and text layout, drawing over the template, PNG encoding (for the phases
    /// example).
    #[doc(hidden)]
    pub fn profile(&self, data: &CardData, size: Size) -> Result<[f64; 4], RenderError> {
        let mut phases = [0.0; 4];
        let mut last = std::time::Instant::now();
        self.render_timed(
            data,
            size,
            |phase| {
                phases[phase] = last.elapsed().as_secs_f64() * 1000.0;
                last = std::time::Instant::now();
            },
            |_| {},
        )?;
        Ok(phases)
    }

    /// The template of a theme and size, made on first use.
    fn template(&self, theme: Theme, size: Size) -> Result<&Template, RenderError> {
        let slot = &self.templates[theme.index() * Size::ALL.len() + size.index()];
        if let Some(template) = slot.get() {
            return Ok(template);
        }
        let (pixmap, stats) = self.draw_template(theme, size)?;
        let encoded = encoding::Encoded::new(&pixmap);
        // Two threads may race to make it; both make the same one.
        Ok(slot.get_or_init(|| Template {
            canvas: Mutex::new(Canvas {
                pixmap,
                covered: Vec::new(),
            }),
            encoded,
            stats,
        }))
    }

    /// The template's pixels, and where its stat labels and tracks are.
    fn draw_template(
        &self,
        theme: Theme,
        size: Size,
    ) -> Result<(tiny_skia::Pixmap, tiny_skia::IntRect), RenderError> {
        let (width, height) = size.dimensions();
        let tree = usvg::Tree::from_str(&layout::template_svg(theme, size), &self.fonts.options())
            .map_err(|e| RenderError::Svg(e.to_string()))?;
        let mut pixmap = tiny_skia::Pixmap::new(width, height)
            .ok_or_else(|| RenderError::Svg("empty pixmap".into()))?;
        let all = tiny_skia::IntRect::from_xywh(0, 0, width, height)
            .ok_or_else(|| RenderError::Svg("empty card".into()))?;
        paint_background(&mut pixmap, theme, all);
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        let stats = tree
            .node_by_id(layout::STATS_GROUP)
            .and_then(|node| pixel_bounds(node, width, height))
            .ok_or_else(|| RenderError::Svg("the template has no stats".into()))?;
        Ok((pixmap, stats))
    }

    /// The render, calling `phase_done` after each of its four phases and `drawn` with the
    /// pixels before they are encoded (tests compare them with the decoded PNG).
    fn render_timed(
        &self,
        data: &CardData,
        size: Size,
        mut phase_done: impl FnMut(usize),
        drawn: impl FnOnce(&tiny_skia::Pixmap),
    ) -> Result<Card, RenderError> {
        let (width, height) = size.dimensions();
        let template = self.template(data.theme, size)?;
        let card = layout::card(&self.fonts, data, size)?;
        phase_done(0);
        let tree = usvg::Tree::from_str(&card.svg, &self.fonts.options())
            .map_err(|e| RenderError::Svg(e.to_string()))?;
        phase_done(1);

        // Everything this card draws on, known before drawing.
        let mut dirty = encoding::Dirty::new(width, height);
        if card.stats_moved {
            dirty.mark(template.stats);
        }
        for node in tree.root().children() {
            if let Some(bounds) = pixel_bounds(node, width, height) {
                dirty.mark(bounds);
            }
        }
        let side = card.qr.size();
        if let Some(bounds) =
            tiny_skia::IntRect::from_xywh(card.qr.x as i32, card.qr.y as i32, side, side)
        {
            dirty.mark(bounds);
        }

        let mut canvas = match template.canvas.lock() {
            Ok(canvas) => canvas,
            Err(poisoned) => {
                // A render panicked halfway, maybe leaving its card on the template: draw the
                // template again.
                let mut canvas = poisoned.into_inner();
                canvas.pixmap = self.draw_template(data.theme, size)?.0;
                template.canvas.clear_poison();
                canvas
            }
        };
        let Canvas { pixmap, covered } = &mut *canvas;
        dirty.save(pixmap, covered);
        if card.stats_moved {
            paint_background(pixmap, data.theme, template.stats);
        }
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        card.qr.draw(pixmap.data_mut(), width);
        phase_done(2);
        drawn(pixmap);
        let png = template.encoded.png(pixmap, &dirty);
        dirty.restore(covered, pixmap);
        drop(canvas);
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

/// The pixels a node may touch: its layout box and its outlines (a glyph can reach past the
/// font's ascent), rounded out, one pixel more for anti-aliasing, clipped to the card.
fn pixel_bounds(node: &usvg::Node, width: u32, height: u32) -> Option<tiny_skia::IntRect> {
    let (a, b) = (node.abs_bounding_box(), node.abs_stroke_bounding_box());
    let x0 = (a.left().min(b.left()).floor() as i32 - 1).max(0);
    let y0 = (a.top().min(b.top()).floor() as i32 - 1).max(0);
    let x1 = (a.right().max(b.right()).ceil() as i32 + 1).min(width as i32);
    let y1 = (a.bottom().max(b.bottom()).ceil() as i32 + 1).min(height as i32);
    tiny_skia::IntRect::from_ltrb(x0, y0, x1, y1)
}

/// The theme's diagonal gradient (top-left → bottom-right, like an SVG `linearGradient` with
/// `x1=0 y1=0 x2=1 y2=1` over the card), painted directly into `area`: a 1,024-entry colour
/// table and one store per pixel, about five times faster than rasterizing it as a shape.
fn paint_background(pixmap: &mut tiny_skia::Pixmap, theme: Theme, area: tiny_skia::IntRect) {
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
    let (w, h) = (pixmap.width() as usize, pixmap.height() as usize);
    // t = (x / w + y / h) / 2, in table steps.
    let scale_x = (STEPS - 1) as f32 / (2.0 * (w.max(2) - 1) as f32);
    let scale_y = (STEPS - 1) as f32 / (2.0 * (h.max(2) - 1) as f32);
    let (x0, x1) = (area.left() as usize, (area.right() as usize).min(w));
    let (y0, y1) = (area.top() as usize, (area.bottom() as usize).min(h));
    for (y, row) in pixmap
        .data_mut()
        .chunks_exact_mut(w * 4)
        .enumerate()
        .take(y1)
        .skip(y0)
    {
        let row_offset = y as f32 * scale_y;
        for (x, pixel) in row[x0 * 4..x1 * 4].chunks_exact_mut(4).enumerate() {
            let index = ((x0 + x) as f32 * scale_x + row_offset) as usize;
            pixel.copy_from_slice(&table[index.min(STEPS - 1)]);
        }
    }
}

fn rgb(hex: &str) -> [u8; 3] {
    let channel = |i: usize| {
        u8::from_str_radix(hex.get(1 + 2 * i..3 + 2 * i).unwrap_or("00"), 16).unwrap_or(0)
    };
    [channel(0), channel(1), channel(2)]
}

#[cfg(test)]
mod tests {
    use domain::{archetypes::Archetype, synthesis::Stats};

    use super::*;
    use crate::encoding::tests::decode;

    /// Every pixel a card draws on is encoded again, and a kept canvas comes back clean: one
    /// after another, the PNGs show exactly the pixels drawn, whatever the last card drew.
    #[test]
    fn each_png_shows_exactly_the_pixels_drawn_one_card_after_another() {
        let renderer = Renderer::new();
        let names = [
            "Mira",
            "Mira Kim the Radiant Sunshine of Every Single Friendly Room!",
            "김미라 🔥✨",
            "W",
            "Averyveryveryveryveryveryveryveryveryveryveryverylongsingleword",
        ];
        let mut two_line_cards = 0;
        for (i, archetype) in Archetype::ALL.into_iter().enumerate() {
            for theme in Theme::ALL {
                for size in Size::ALL {
                    let data = CardData {
                        name: names[(i + theme.index()) % names.len()].to_owned(),
                        archetype,
                        stats: Stats {
                            charisma: (i * 13 % 101) as u8,
                            intellect: 100,
                            kindness: 0,
                            energy: (i * 29 % 101) as u8,
                        },
                        share_url: format!("https://remirai.app/p/{i}-{}", "x".repeat(i * 5)),
                        theme,
                    };
                    if renderer.name_layout(&data.name, size).lines.len() > 1 {
                        two_line_cards += 1;
                    }
                    let mut pixels = Vec::new();
                    let card = renderer
                        .render_timed(
                            &data,
                            size,
                            |_| {},
                            |pixmap| {
                                pixels = pixmap
                                    .data()
                                    .chunks_exact(4)
                                    .flat_map(|p| [p[0], p[1], p[2]])
                                    .collect();
                            },
                        )
                        .unwrap();
                    assert!(
                        decode(&card.png) == pixels,
                        "{archetype:?} {theme:?} {size:?}"
                    );
                }
            }
        }
        assert!(two_line_cards > 0, "cards that move the stats were drawn");
    }
}
