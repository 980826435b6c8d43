//! Card rendering against the Node pipeline.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use cards::{CardData, Renderer, Size, Theme};
use domain::{archetypes::Archetype, synthesis::Stats};

const WARM_ITERATIONS: usize = 60;
const COLD_RUNS: usize = 5;

fn sample() -> CardData {
    CardData {
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
    }
}

fn size_of(name: &str) -> anyhow::Result<Size> {
    Ok(match name {
        "square" => Size::Square,
        "story" => Size::Story,
        "link" => Size::Link,
        _ => bail!("unknown size {name}"),
    })
}

const SIZES: [&str; 3] = ["square", "story", "link"];

/// `bench cold-render <size> <out>`: what a cold Lambda does for one card.
pub fn cold_render(size: &str, out: &str) -> anyhow::Result<()> {
    let renderer = Renderer::new();
    let card = renderer.render(&sample(), size_of(size)?)?;
    std::fs::write(out, &card.png)?;
    Ok(())
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

struct Figures {
    warm_median: f64,
    warm_p95: f64,
    cold_median: f64,
    peak_rss_mib: f64,
    png_bytes: usize,
}

/// Runs `command` to completion; returns (wall time, peak RSS in KiB).
fn timed(mut command: Command) -> anyhow::Result<(Duration, i64)> {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with an out-parameter we own.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    if waited != pid || !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("benchmark child failed (status {status})");
    }
    Ok((elapsed, usage.ru_maxrss))
}

fn rust_figures(size: &str, scratch: &Path) -> anyhow::Result<Figures> {
    let renderer = Renderer::new();
    let data = sample();
    let card_size = size_of(size)?;
    for _ in 0..3 {
        renderer.render(&data, card_size)?;
    }
    let mut warm = Vec::with_capacity(WARM_ITERATIONS);
    let mut png_bytes = 0;
    for _ in 0..WARM_ITERATIONS {
        let started = Instant::now();
        let card = renderer.render(&data, card_size)?;
        warm.push(started.elapsed().as_secs_f64() * 1000.0);
        png_bytes = card.png.len();
    }
    let exe = std::env::current_exe()?;
    let mut cold = Vec::new();
    let mut rss = 0;
    for run in 0..COLD_RUNS {
        let mut command = Command::new(&exe);
        command
            .args(["cold-render", size])
            .arg(scratch.join(format!("rust-{size}-{run}.png")));
        let (elapsed, peak) = timed(command)?;
        cold.push(elapsed.as_secs_f64() * 1000.0);
        rss = rss.max(peak);
    }
    Ok(Figures {
        warm_median: percentile(&mut warm.clone(), 0.5),
        warm_p95: percentile(&mut warm, 0.95),
        cold_median: percentile(&mut cold, 0.5),
        peak_rss_mib: rss as f64 / 1024.0,
        png_bytes,
    })
}

/// Installs the Node pipeline into a scratch folder (once) and returns the folder.
fn node_pipeline(scratch: &Path) -> anyhow::Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let folder = scratch.join("node");
    std::fs::create_dir_all(&folder)?;
    for file in ["package.json", "render.mjs"] {
        std::fs::copy(source.join(file), folder.join(file))
            .with_context(|| format!("copying {file}"))?;
    }
    if !folder.join("node_modules/satori").exists() {
        eprintln!(
            "installing the Node pipeline (satori, @resvg/resvg-js, qrcode) into {}",
            folder.display()
        );
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&folder)
            .status()
            .context("running npm (is Node.js installed?)")?;
        if !status.success() {
            bail!("npm install failed");
        }
    }
    Ok(folder)
}

fn node_figures(folder: &Path, size: &str) -> anyhow::Result<Figures> {
    let fonts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cards/fonts");
    let output = Command::new("node")
        .args(["render.mjs", "warm", size, &WARM_ITERATIONS.to_string()])
        .env("FONTS_DIR", &fonts)
        .current_dir(folder)
        .output()?;
    if !output.status.success() {
        bail!(
            "node warm run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let warm: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("node warm output")?;
    let mut cold = Vec::new();
    let mut rss = 0;
    for run in 0..COLD_RUNS {
        let mut command = Command::new("node");
        command
            .args([
                "render.mjs",
                "cold",
                size,
                &format!("node-{size}-{run}.png"),
            ])
            .env("FONTS_DIR", &fonts)
            .current_dir(folder);
        let (elapsed, peak) = timed(command)?;
        cold.push(elapsed.as_secs_f64() * 1000.0);
        rss = rss.max(peak);
    }
    Ok(Figures {
        warm_median: warm["median_ms"].as_f64().unwrap_or(f64::NAN),
        warm_p95: warm["p95_ms"].as_f64().unwrap_or(f64::NAN),
        cold_median: percentile(&mut cold, 0.5),
        peak_rss_mib: rss as f64 / 1024.0,
        png_bytes: warm["png_bytes"].as_u64().unwrap_or(0) as usize,
    })
}

pub fn run() -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let scratch = std::env::temp_dir().join("remirai-bench");
    std::fs::create_dir_all(&scratch)?;
    let node = match node_pipeline(&scratch) {
        Ok(folder) => Some(folder),
        Err(error) => {
            eprintln!("Node baseline unavailable: {error:#}");
            None
        }
    };
    println!("\n## Card rendering ({WARM_ITERATIONS} warm renders per size, {COLD_RUNS} cold processes)\n");
    println!("| size | Rust warm median / p95 | Rust cold | Rust peak RSS | PNG | Node warm median / p95 | Node cold | Node peak RSS | warm speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for size in SIZES {
        let rust = rust_figures(size, &scratch)?;
        let node = node
            .as_deref()
            .map(|folder| node_figures(folder, size))
            .transpose()
            .unwrap_or_else(|error| {
                eprintln!("node {size}: {error:#}");
                None
            });
        let (node_cells, ratio) = match &node {
            Some(n) => (
                format!(
                    "{:.1} / {:.1} ms | {:.0} ms | {:.0} MiB",
                    n.warm_median, n.warm_p95, n.cold_median, n.peak_rss_mib
                ),
                format!("{:.1}x", n.warm_median / rust.warm_median),
            ),
            None => ("n/a | n/a | n/a".into(), "n/a".into()),
        };
        println!(
            "| {size} | {:.1} / {:.1} ms | {:.0} ms | {:.1} MiB | {} KiB | {node_cells} | {ratio} |",
            rust.warm_median,
            rust.warm_p95,
            rust.cold_median,
            rust.peak_rss_mib,
            rust.png_bytes / 1024,
        );
    }
    Ok(())
}
