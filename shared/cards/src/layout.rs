//! Card layout: the SVG for one size.

use std::fmt::Write;

use qrcode::{Color, EcLevel, QrCode};
use resvg::usvg;

use crate::{fonts::Fonts, CardData, RenderError, Size};

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

pub fn svg(fonts: &Fonts, data: &CardData, size: Size) -> Result<String, RenderError> {
    let f = frame(size);
    let p = data.theme.palette();
    let name = fit_name(fonts, &data.name, size);
    let mut svg = String::with_capacity(32 * 1024);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<text x="{pad}" y="{brand_y}" font-size="{brand}" font-weight="700" fill="{muted}" letter-spacing="4">RE:MIRAI</text>
"#,
        w = f.width,
        h = f.height,
        pad = f.pad,
        brand_y = f.pad + 24.0,
        brand = f.stat_size * 0.8,
        muted = p.muted,
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
    let stats = data.stats.as_array();
    for (i, (label, value)) in ["Charisma", "Intellect", "Kindness", "Energy"]
        .iter()
        .zip(stats)
        .enumerate()
    {
        let y = stats_top + i as f32 * f.bar_gap;
        let bar_y = y + f.stat_size * 0.5;
        let bar_h = f.stat_size * 0.7;
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{y}" font-size="{size}" fill="{text}">{label}</text>
<text x="{right}" y="{y}" font-size="{size}" font-weight="700" fill="{text}" text-anchor="end">{value}</text>
<rect x="{x}" y="{bar_y}" width="{w}" height="{bar_h}" rx="{r}" fill="{track}"/>
<rect x="{x}" y="{bar_y}" width="{filled}" height="{bar_h}" rx="{r}" fill="{accent}"/>"#,
            x = f.pad,
            right = f.pad + f.stats_width,
            size = f.stat_size,
            text = p.text,
            w = f.stats_width,
            filled = (f.stats_width * f32::from(value) / 100.0).max(bar_h),
            r = bar_h / 2.0,
            track = p.track,
            accent = p.accent,
        );
    }
    qr(&mut svg, &data.share_url, f.qr_x, f.qr_y, f.qr_size)?;
    svg.push_str("</svg>");
    Ok(svg)
}

/// A QR code with a 4-module quiet zone on white, so any reader decodes it on any theme.
fn qr(svg: &mut String, url: &str, x: f32, y: f32, size: f32) -> Result<(), RenderError> {
    let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
        .map_err(|_| RenderError::Qr)?;
    let modules = code.width();
    let colors = code.to_colors();
    let total = modules + 8;
    // Whole-pixel modules on whole-pixel origins: no anti-aliased seams between modules.
    let unit = (size / total as f32).floor().max(1.0);
    let (x, y, size) = {
        let drawn = unit * total as f32;
        (
            (x + (size - drawn) / 2.0).round(),
            (y + (size - drawn) / 2.0).round(),
            drawn,
        )
    };
    let _ = write!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="{r}" fill="#ffffff"/><path transform="translate({ox} {oy}) scale({unit})" fill="#000000" shape-rendering="crispEdges" d=""##,
        r = unit * 2.0,
        ox = x + 4.0 * unit,
        oy = y + 4.0 * unit,
    );
    for (index, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let _ = write!(svg, "M{} {}h1v1h-1z", index % modules, index / modules);
        }
    }
    svg.push_str("\"/>\n");
    Ok(())
}
