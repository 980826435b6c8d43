//! Renders sample cards: `cargo run -p cards --release --example render -- <folder> [name]`.

use cards::{CardData, Renderer, Size, Theme};
use domain::{archetypes::Archetype, synthesis::Stats};

fn main() {
    let mut args = std::env::args().skip(1);
    let folder = args.next().unwrap_or_else(|| "cards-out".into());
    let name = args.next().unwrap_or_else(|| "Mira the Open Sun".into());
    std::fs::create_dir_all(&folder).expect("creating the folder");
    let renderer = Renderer::new();
    for theme in Theme::ALL {
        let data = CardData {
            name: name.clone(),
            archetype: Archetype::Deredere,
            stats: Stats {
                charisma: 82,
                intellect: 64,
                kindness: 91,
                energy: 47,
            },
            share_url: "http://localhost:5173/p/0190f0c2-7d1e-7a4c-9a51-2b6c1f3e9d10".into(),
            theme,
        };
        for size in Size::ALL {
            let card = renderer.render(&data, size).expect("rendering");
            let path = format!(
                "{folder}/{}-{}x{}.png",
                theme.name(),
                card.width,
                card.height
            );
            std::fs::write(&path, &card.png).expect("writing");
            println!("{path} ({} bytes)", card.png.len());
        }
    }
}
