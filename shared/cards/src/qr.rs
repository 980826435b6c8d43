//! The QR code's modules. The code is the one `qrcode::QrCode::with_error_correction_level`
//! makes (a unit test compares them): the same data, error correction and mask. Only choosing
//! the mask is done here, because the crate scores the eight candidate masks with a boxed
//! closure per module position, which cost more than everything else in laying out a card.

use qrcode::{
    bits,
    canvas::{Canvas, MaskPattern},
    ec, Color, EcLevel,
};

/// The masks in the order the crate tries them; the first of equal scores wins.
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// Modules per side, and whether each module (row by row) is dark; `None` if `data` does not
/// fit in a QR code.
pub fn modules(data: &[u8], level: EcLevel) -> Option<(usize, Vec<bool>)> {
    let bits = bits::encode_auto(data, level).ok()?;
    let version = bits.version();
    let (data, error_correction) =
        ec::construct_codewords(&bits.into_bytes(), version, level).ok()?;
    let mut canvas = Canvas::new(version, level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &error_correction);
    let width = version.width() as usize;
    let mut best: Option<(u16, Vec<bool>)> = None;
    for mask in MASKS {
        let mut masked = canvas.clone();
        masked.apply_mask(mask);
        let dark: Vec<bool> = masked
            .into_colors()
            .into_iter()
            .map(|color| color == Color::Dark)
            .collect();
        let score = penalty(&dark, width);
        if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
            best = Some((score, dark));
        }
    }
    best.map(|(_, dark)| (width, dark))
}

/// The crate's penalty score (ISO/IEC 18004 section 7.8.3 as the crate reads it), computed
/// the same way, with the same 16-bit wrapping sums.
fn penalty(dark: &[bool], width: usize) -> u16 {
    let at = |x: usize, y: usize| dark[y * width + x];
    let mut score = 0u16;
    for horizontal in [true, false] {
        let line = |i: usize, j: usize| if horizontal { at(j, i) } else { at(i, j) };
        // Runs of five or more modules of one colour: length - 2 each.
        for i in 0..width {
            let mut run = 1u16;
            for j in 1..=width {
                if j < width && line(i, j) == line(i, j - 1) {
                    run += 1;
                } else {
                    if run >= 5 {
                        score = score.wrapping_add(run - 2);
                    }
                    run = 1;
                }
            }
        }
    }
    // 2x2 blocks of one colour: 3 each.
    for y in 0..width - 1 {
        for x in 0..width - 1 {
            let this = at(x, y);
            if this == at(x + 1, y) && this == at(x, y + 1) && this == at(x + 1, y + 1) {
                score = score.wrapping_add(3);
            }
        }
    }
    // Finder-like 1:1:3:1:1 patterns with four light modules on one side: 40 each, less the
    // 360 every code scores for its own finder patterns.
    const PATTERN: [bool; 7] = [true, false, true, true, true, false, true];
    for horizontal in [true, false] {
        let line = |i: usize, j: usize| if horizontal { at(j, i) } else { at(i, j) };
        let mut finders = 0u16;
        for i in 0..width {
            for j in 0..width - 6 {
                if (0..7).any(|k| line(i, j + k) != PATTERN[k]) {
                    continue;
                }
                let dark_in = |from: usize, to: usize| (from..to.min(width)).any(|k| line(i, k));
                if !dark_in(j.saturating_sub(4), j) || !dark_in(j + 7, j + 11) {
                    finders = finders.wrapping_add(40);
                }
            }
        }
        score = score.wrapping_add(finders.wrapping_sub(360));
    }
    // Balance of dark and light.
    let dark_count = dark.iter().filter(|d| **d).count();
    let ratio = dark_count * 200 / dark.len();
    score.wrapping_add(ratio.abs_diff(100) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modules_are_the_ones_the_qrcode_crate_makes() {
        for i in 0..60u32 {
            let url = format!(
                "https://remirai.app/p/{:08x}-{:04x}-7a4c-9a51-{:012x}{}",
                i.wrapping_mul(2_654_435_761),
                i * 7 % 65_536,
                u64::from(i) * 1_000_003,
                "x".repeat(i as usize % 3 * 20),
            );
            let expected =
                qrcode::QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M).unwrap();
            let (width, dark) = modules(url.as_bytes(), EcLevel::M).unwrap();
            assert_eq!(width, expected.width(), "{url}");
            assert_eq!(
                dark,
                expected
                    .to_colors()
                    .iter()
                    .map(|c| *c == Color::Dark)
                    .collect::<Vec<_>>(),
                "{url}"
            );
        }
    }
}
