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
    let runs = 200;
    let mut samples: Vec<[f64; 4]> = Vec::new();
    for _ in 0..runs {
        samples.push(renderer.profile(&data, Size::Square).unwrap());
    }
    for (i, name) in [
        "svg string (incl. name fit)",
        "usvg parse + text layout",
        "draw over the template",
        "png encode (rgb)",
    ]
    .iter()
    .enumerate()
    {
        let mut v: Vec<f64> = samples.iter().map(|s| s[i]).collect();
        v.sort_by(f64::total_cmp);
        println!(
            "{name:>28}: median {:.3} ms, min {:.3} ms",
            v[v.len() / 2],
            v[0]
        );
    }
}
