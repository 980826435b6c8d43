//! What a person sees on a card: the right size, a QR code a reader decodes to the persona's
//! link, names that fit, and snapshots that catch any visual change.

use cards::{CardData, Renderer, Size, Theme};
use domain::{archetypes::Archetype, synthesis::Stats};

const URL: &str = "https://remirai.app/p/0190f0c2-7d1e-7a4c-9a51-2b6c1f3e9d10";

fn data(name: &str, theme: Theme) -> CardData {
    CardData {
        name: name.to_owned(),
        archetype: Archetype::Kamidere,
        stats: Stats {
            charisma: 82,
            intellect: 97,
            kindness: 41,
            energy: 63,
        },
        share_url: URL.to_owned(),
        theme,
    }
}

/// Decodes a PNG into (width, height, RGB bytes).
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "cards are opaque RGB");
    buffer.truncate(info.buffer_size());
    (info.width, info.height, buffer)
}

fn read_qr(png_bytes: &[u8]) -> String {
    let (width, height, rgb) = decode(png_bytes);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width as usize, height as usize, |x, y| {
            let i = (y * width as usize + x) * 3;
            ((u32::from(rgb[i]) * 299 + u32::from(rgb[i + 1]) * 587 + u32::from(rgb[i + 2]) * 114)
                / 1000) as u8
        });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code");
    grids[0].decode().unwrap().1
}

#[test]
fn every_size_and_theme_is_a_png_of_the_right_dimensions_whose_qr_code_decodes_to_the_persona_link()
{
    let renderer = Renderer::new();
    for theme in Theme::ALL {
        for size in Size::ALL {
            let card = renderer
                .render(&data("Mira the Bright Mind", theme), size)
                .unwrap();
            let (width, height, _) = decode(&card.png);
            assert_eq!((width, height), size.dimensions(), "{theme:?} {size:?}");
            assert_eq!((card.width, card.height), size.dimensions());
            assert!(
                card.png.len() < 600 * 1024,
                "{theme:?} {size:?}: {} bytes",
                card.png.len()
            );
            assert_eq!(read_qr(&card.png), URL, "{theme:?} {size:?}");
        }
    }
}

#[test]
fn long_hangul_and_emoji_names_fit_within_the_card() {
    let renderer = Renderer::new();
    for name in [
        "Wolfeschlegelsteinhausenbergerdorff Bartholomew Reginald III X",
        "김민지김민지김민지김민지김민지김민지김민지김민지김민지김민지",
        "🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥",
        "Averyveryveryveryveryveryveryveryveryveryveryverylongsingleword",
    ] {
        for size in Size::ALL {
            let layout = renderer.name_layout(name, size);
            assert!(layout.lines.len() <= 2, "{name} {size:?}: {layout:?}");
            assert!(
                layout.width <= layout.max_width + 0.5,
                "{name} {size:?}: {layout:?}"
            );
        }
    }
    let short = renderer.name_layout("Mira", Size::Square);
    assert_eq!(short.lines, ["Mira"]);
    assert!(
        short.font_size >= 90.0,
        "short names are set large: {short:?}"
    );
}

#[test]
fn nothing_renders_as_a_box() {
    let renderer = Renderer::new();
    let layout = renderer.name_layout("❤️ 👩‍💻 \u{10FFFD} 🇰🇷 Mira", Size::Square);
    assert_eq!(layout.lines, ["❤ 👩💻 Mira"]);
}

/// Compares with the stored snapshot; `UPDATE_SNAPSHOTS=1` rewrites it. A mismatch writes the
/// actual image beside it (`*.actual.png`) to look at.
fn assert_snapshot(name: &str, png_bytes: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.png"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, png_bytes).unwrap();
        return;
    }
    assert!(
        path.exists(),
        "no snapshot {}; run with UPDATE_SNAPSHOTS=1 and look at it",
        path.display()
    );
    let expected = decode(&std::fs::read(&path).unwrap());
    let actual = decode(png_bytes);
    if expected != actual {
        std::fs::write(path.with_extension("actual.png"), png_bytes).unwrap();
        panic!(
            "{name} differs from its snapshot; see {}",
            path.with_extension("actual.png").display()
        );
    }
}

#[test]
fn snapshots_of_a_hangul_name_an_emoji_name_and_a_sixty_character_name() {
    let renderer = Renderer::new();
    let sixty = "Mira Kim the Radiant Sunshine of Every Single Friendly Room!";
    assert_eq!(sixty.chars().count(), 60);
    assert_snapshot(
        "hangul-square",
        &renderer
            .render(&data("김미라 (Mira)", Theme::Default), Size::Square)
            .unwrap()
            .png,
    );
    assert_snapshot(
        "emoji-link",
        &renderer
            .render(&data("Mira 🔥✨🌙", Theme::Neon), Size::Link)
            .unwrap()
            .png,
    );
    assert_snapshot(
        "sixty-story",
        &renderer
            .render(&data(sixty, Theme::Pastel), Size::Story)
            .unwrap()
            .png,
    );
    assert_snapshot(
        "sixty-square-dark",
        &renderer
            .render(&data(sixty, Theme::Dark), Size::Square)
            .unwrap()
            .png,
    );
}

#[test]
fn rendering_is_deterministic() {
    let renderer = Renderer::new();
    let a = renderer
        .render(&data("Mira", Theme::Default), Size::Square)
        .unwrap();
    let b = renderer
        .render(&data("Mira", Theme::Default), Size::Square)
        .unwrap();
    assert_eq!(a.png, b.png, "content-addressed keys depend on it");
}
