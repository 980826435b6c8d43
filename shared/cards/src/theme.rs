//! Card themes. Every text colour meets WCAG 2.1 AA (4.5:1) against both ends of its
//! background gradient; a unit test checks it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Default,
    Dark,
    Neon,
    Pastel,
}

/// Colours of a theme, as `#rrggbb`.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    pub background_from: &'static str,
    pub background_to: &'static str,
    pub text: &'static str,
    pub muted: &'static str,
    pub accent: &'static str,
    pub track: &'static str,
}

impl Theme {
    pub const ALL: [Theme; 4] = [Theme::Default, Theme::Dark, Theme::Neon, Theme::Pastel];

    pub fn parse(name: &str) -> Option<Theme> {
        Self::ALL.into_iter().find(|theme| theme.name() == name)
    }

    /// Position in `ALL`.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Theme::Default => "default",
            Theme::Dark => "dark",
            Theme::Neon => "neon",
            Theme::Pastel => "pastel",
        }
    }

    pub fn palette(self) -> Palette {
        match self {
            Theme::Default => Palette {
                background_from: "#2e1065",
                background_to: "#7e22ce",
                text: "#ffffff",
                muted: "#ede9fe",
                accent: "#fbcfe8",
                track: "#1e0b45",
            },
            Theme::Dark => Palette {
                background_from: "#0b0f19",
                background_to: "#1f2937",
                text: "#f9fafb",
                muted: "#d1d5db",
                accent: "#60a5fa",
                track: "#374151",
            },
            Theme::Neon => Palette {
                background_from: "#0a0014",
                background_to: "#1a0033",
                text: "#39ff14",
                muted: "#e0e7ff",
                accent: "#ff2bd6",
                track: "#2e1065",
            },
            Theme::Pastel => Palette {
                background_from: "#fde2f3",
                background_to: "#dbeafe",
                text: "#1f2937",
                muted: "#374151",
                accent: "#6d28d9",
                track: "#f5f3ff",
            },
        }
    }
}

/// WCAG 2.1 contrast ratio of two `#rrggbb` colours.
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let value = u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0) as f64 / 255.0;
        if value <= 0.03928 {
            value / 12.92
        } else {
            ((value + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_colour_meets_wcag_aa_on_its_background() {
        for theme in Theme::ALL {
            let p = theme.palette();
            for text in [p.text, p.muted, p.accent] {
                for background in [p.background_from, p.background_to] {
                    let ratio = contrast(text, background);
                    assert!(
                        ratio >= 4.5,
                        "{theme:?}: {text} on {background} is {ratio:.2}:1"
                    );
                }
            }
        }
    }

    #[test]
    fn contrast_matches_known_values() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        assert!((contrast("#ffffff", "#ffffff") - 1.0).abs() < 0.01);
    }
}
