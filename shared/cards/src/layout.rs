//! Card layout: where everything goes on each size, as SVG — the template every persona of a
//! theme and size shares, and what one card draws over it.

use std::fmt::Write;

use qrcode::EcLevel;
use resvg::usvg;

use crate::{
    fonts::Fonts,
    theme::{Palette, Theme},
    CardData, RenderError, Size,
};

/// Where things go on one size, in pixels.
struct Frame {
    width: f32,
    height: f32,
    pad: f32,
    name_top: f32,
    name_max: f32,
    name_min: f32,
    name_width: f32,
    archetype_size: f32,
    stats_top: f32,
    stats_width: f32,
    bar_gap: f32,
    stat_size: f32,
    qr_x: f32,
    qr_y: f32,
    qr_size: f32,
}

fn frame(size: Size) -> Frame {
    match size {
        Size::Square => Frame {
            width: 1080.0,
            height: 1080.0,
            pad: 80.0,
            name_top: 170.0,
            name_max: 92.0,
            name_min: 52.0,
            name_width: 920.0,
            archetype_size: 40.0,
            stats_top: 470.0,
            stats_width: 560.0,
            bar_gap: 96.0,
            stat_size: 30.0,
            qr_x: 740.0,
            qr_y: 740.0,
            qr_size: 260.0,
        },
        Size::Story => Frame {
            width: 1080.0,
            height: 1920.0,
            pad: 90.0,
            name_top: 360.0,
            name_max: 104.0,
            name_min: 56.0,
            name_width: 900.0,
            archetype_size: 46.0,
            stats_top: 760.0,
            stats_width: 900.0,
            bar_gap: 130.0,
            stat_size: 36.0,
            qr_x: 370.0,
            qr_y: 1390.0,
            qr_size: 340.0,
        },
        Size::Link => Frame {
            width: 1200.0,
            height: 630.0,
            pad: 56.0,
            name_top: 120.0,
            name_max: 72.0,
            name_min: 40.0,
            name_width: 800.0,
            archetype_size: 32.0,
            stats_top: 300.0,
            stats_width: 760.0,
            bar_gap: 70.0,
            stat_size: 24.0,
            qr_x: 920.0,
            qr_y: 175.0,
            qr_size: 240.0,
        },
    }
}

/// How the name is set.
#[derive(Debug, Clone, PartialEq)]
pub struct NameLayout {
    pub lines: Vec<String>,
    pub font_size: f32,
    /// Widest line as shaped, in pixels.
    pub width: f32,
    /// The width available.
    pub max_width: f32,
}

/// Shrinks, then wraps into two lines, then ellipsizes, until the shaped name fits.
pub fn fit_name(fonts: &Fonts, name: &str, size: Size) -> NameLayout {
    let f = frame(size);
    let name = fonts.drawable(name.trim());
    let name = if name.trim().is_empty() {
        "Mirai".to_owned()
    } else {
        name
    };
    let per_px = |text: &str| measure(fonts, text) / 100.0;
    let fits = |lines: &[String], font_size: f32| {
        lines
            .iter()
            .map(|l| per_px(l) * font_size)
            .fold(0.0, f32::max)
    };
    let one = vec![name.clone()];
    let unit = fits(&one, 1.0);
    if unit * f.name_min <= f.name_width {
        let font_size = (f.name_width / unit.max(0.001)).min(f.name_max);
        return NameLayout {
            width: unit * font_size,
            lines: one,
            font_size,
            max_width: f.name_width,
        };
    }
    // Two lines, split at the space nearest the middle (or mid-string for unspaced scripts).
    let chars: Vec<char> = name.chars().collect();
    let middle = chars.len() / 2;
    let split = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_whitespace())
        .min_by_key(|(i, _)| i.abs_diff(middle))
        .map(|(i, _)| i)
        .unwrap_or(middle);
    let mut lines: Vec<String> = vec![
        chars[..split].iter().collect::<String>().trim().to_owned(),
        chars[split..].iter().collect::<String>().trim().to_owned(),
    ];
    lines.retain(|l| !l.is_empty());
    let font_size =
        (f.name_width / fits(&lines, 1.0).max(0.001)).clamp(f.name_min, f.name_max * 0.8);
    for line in &mut lines {
        while per_px(line) * font_size > f.name_width && line.chars().count() > 1 {
            let mut shorter: Vec<char> = line.trim_end_matches('…').chars().collect();
            shorter.pop();
            *line = format!("{}…", shorter.into_iter().collect::<String>().trim_end());
        }
    }
    NameLayout {
        width: fits(&lines, font_size),
        lines,
        font_size,
        max_width: f.name_width,
    }
}

/// Shaped width of `text` at 100 px, measured by laying it out with the bundled fonts.
fn measure(fonts: &Fonts, text: &str) -> f32 {
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10000" height="200"><text id="t" x="0" y="150" font-size="100" font-weight="700">{}</text></svg>"#,
        escape(text)
    );
    usvg::Tree::from_str(&svg, &fonts.options())
        .ok()
        .and_then(|tree| tree.root().abs_bounding_box().width().into())
        .unwrap_or(text.chars().count() as f32 * 100.0)
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The part of a card every persona of one theme and size shares (the template): the brand, and
/// the stat labels and tracks where a one-line name puts them. The labels and tracks are one
/// group, `stats`, so a card that moves them knows what to paint over.
pub fn template_svg(theme: Theme, size: Size) -> String {
    let f = frame(size);
    let p = theme.palette();
    let mut svg = String::with_capacity(4 * 1024);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<text x="{pad}" y="{brand_y}" font-size="{brand}" font-weight="700" fill="{muted}" letter-spacing="4">RE:MIRAI</text>
<g id="{STATS_GROUP}">
"#,
        w = f.width,
        h = f.height,
        pad = f.pad,
        brand_y = f.pad + 24.0,
        brand = f.stat_size * 0.8,
        muted = p.muted,
    );
    stat_frame(&mut svg, &f, &p, f.stats_top);
    svg.push_str("</g></svg>");
    svg
}

/// The id of the template's stat labels and tracks.
pub const STATS_GROUP: &str = "stats";

/// What one card draws over its template.
pub struct CardLayout {
    /// The name, archetype, stat values and bars, and the QR code's white square.
    pub svg: String,
    /// The stats sit lower than in the template (a two-line name): the template's labels and
    /// tracks are painted over, and drawn again in `svg`.
    pub stats_moved: bool,
    pub qr: Qr,
}

pub fn card(fonts: &Fonts, data: &CardData, size: Size) -> Result<CardLayout, RenderError> {
    let f = frame(size);
    let p = data.theme.palette();
    let name = fit_name(fonts, &data.name, size);
    let mut svg = String::with_capacity(8 * 1024);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = f.width,
        h = f.height,
    );
    let line_height = name.font_size * 1.15;
    for (i, line) in name.lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{y}" font-size="{size}" font-weight="700" fill="{fill}">{text}</text>"#,
            x = f.pad,
            y = f.name_top + name.font_size + i as f32 * line_height,
            size = name.font_size,
            fill = p.text,
            text = escape(line),
        );
    }
    let archetype_y = f.name_top
        + name.font_size
        + (name.lines.len() as f32 - 1.0) * line_height
        + f.archetype_size * 1.9;
    let _ = writeln!(
        svg,
        r#"<text x="{x}" y="{y}" font-size="{size}" font-weight="700" fill="{accent}">{name}</text>
<text x="{x}" y="{y2}" font-size="{small}" fill="{muted}">{description}</text>"#,
        x = f.pad,
        y = archetype_y,
        size = f.archetype_size,
        accent = p.accent,
        name = data.archetype.name(),
        y2 = archetype_y + f.archetype_size * 1.2,
        small = f.stat_size * 0.9,
        muted = p.muted,
        description = escape(data.archetype.description()),
    );
    let stats_top = f.stats_top.max(archetype_y + f.archetype_size * 2.6);
    let stats_moved = stats_top != f.stats_top;
    if stats_moved {
        stat_frame(&mut svg, &f, &p, stats_top);
    }
    let stats = data.stats.as_array();
    for (i, value) in stats.into_iter().enumerate() {
        let y = stats_top + i as f32 * f.bar_gap;
        let bar_h = f.stat_size * 0.7;
        let _ = writeln!(
            svg,
            r#"<text x="{right}" y="{y}" font-size="{size}" font-weight="700" fill="{text}" text-anchor="end">{value}</text>
<rect x="{x}" y="{bar_y}" width="{filled}" height="{bar_h}" rx="{r}" fill="{accent}"/>"#,
            x = f.pad,
            right = f.pad + f.stats_width,
            size = f.stat_size,
            text = p.text,
            bar_y = y + f.stat_size * 0.5,
            filled = (f.stats_width * f32::from(value) / 100.0).max(bar_h),
            r = bar_h / 2.0,
            accent = p.accent,
        );
    }
    let qr = Qr::new(&data.share_url, f.qr_x, f.qr_y, f.qr_size)?;
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="{r}" fill="#ffffff"/>"##,
        x = qr.x,
        y = qr.y,
        size = qr.size(),
        r = qr.unit * 2,
    );
    svg.push_str("</svg>");
    Ok(CardLayout {
        svg,
        stats_moved,
        qr,
    })
}

/// The stat labels and the empty tracks under the bars, with the first stat at `stats_top`.
fn stat_frame(svg: &mut String, f: &Frame, p: &Palette, stats_top: f32) {
    for (i, label) in ["Charisma", "Intellect", "Kindness", "Energy"]
        .iter()
        .enumerate()
    {
        let y = stats_top + i as f32 * f.bar_gap;
        let bar_h = f.stat_size * 0.7;
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{y}" font-size="{size}" fill="{text}">{label}</text>
<rect x="{x}" y="{bar_y}" width="{w}" height="{bar_h}" rx="{r}" fill="{track}"/>"#,
            x = f.pad,
            size = f.stat_size,
            text = p.text,
            bar_y = y + f.stat_size * 0.5,
            w = f.stats_width,
            r = bar_h / 2.0,
            track = p.track,
        );
    }
}

/// A QR code with a 4-module quiet zone on a white square, so any reader decodes it on any
/// theme. Modules are whole pixels on whole-pixel origins (no anti-aliased seams), drawn
/// straight into the pixels rather than as a path of hundreds of squares.
pub struct Qr {
    /// Top-left corner of the white square, in pixels.
    pub x: u32,
    pub y: u32,
    /// Pixels per module.
    pub unit: u32,
    /// Modules per side, without the quiet zone.
    modules: usize,
    dark: Vec<bool>,
}

impl Qr {
    fn new(url: &str, x: f32, y: f32, size: f32) -> Result<Self, RenderError> {
        let (modules, dark) =
            crate::qr::modules(url.as_bytes(), EcLevel::M).ok_or(RenderError::Qr)?;
        let total = modules + 8;
        let unit = (size / total as f32).floor().max(1.0);
        let drawn = unit * total as f32;
        Ok(Self {
            x: (x + (size - drawn) / 2.0).round() as u32,
            y: (y + (size - drawn) / 2.0).round() as u32,
            unit: unit as u32,
            modules,
            dark,
        })
    }

    /// Side of the white square, in pixels.
    pub fn size(&self) -> u32 {
        self.unit * (self.modules as u32 + 8)
    }

    /// Paints the dark modules black into opaque RGBA pixels `width` wide.
    pub fn draw(&self, pixels: &mut [u8], width: u32) {
        let (width, unit) = (width as usize, self.unit as usize);
        let (left, top) = (self.x as usize + 4 * unit, self.y as usize + 4 * unit);
        for (row, modules) in self.dark.chunks_exact(self.modules).enumerate() {
            for y in top + row * unit..top + (row + 1) * unit {
                let line = &mut pixels[y * width * 4..(y + 1) * width * 4];
                for (column, _) in modules.iter().enumerate().filter(|(_, dark)| **dark) {
                    let x = left + column * unit;
                    for pixel in line[x * 4..(x + unit) * 4].chunks_exact_mut(4) {
                        pixel.copy_from_slice(&[0, 0, 0, 255]);
                    }
                }
            }
        }
    }
}
