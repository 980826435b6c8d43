//! Where a render's time goes: `cargo run -p cards --release --example phases`.

use cards::{CardData, Renderer, Size, Theme};
use domain::{archetypes::Archetype, synthesis::Stats};

fn main() {
    let renderer = Renderer::new();
    let data = CardData {
        name: "Mira the Bright Mind".into(),
        archetype: Archetype::Kamidere,
        stats: Stats {
            charisma: 82,
            intellect: 97,
            kindness: 41,
            energy: 63,
        },
        share_url: "https://remirai.app/p/0190f0c2-7d1e-7a4c-9a51-2b6c1f3e9d10".into(),
        theme: Theme::Default,
    };
    for _ in 0..5 {
        renderer.render(&data, Size::Square).unwrap();
    }
    let runs = 30;
    let mut totals = [0f64; 4];
    for _ in 0..runs {
        let phases = renderer.profile(&data, Size::Square).unwrap();
        for (total, phase) in totals.iter_mut().zip(phases) {
            *total += phase;
        }
    }
    for (name, total) in [
        "svg string (incl. name fit)",
        "usvg parse + text layout",
        "rasterize",
        "png encode (rgb)",
    ]
    .iter()
    .zip(totals)
    {
        println!("{name:>28}: {:.2} ms", total / runs as f64);
    }
}
