//! Card rendering against the earlier plan's Node pipeline, interleaved: one Rust render, one
//! Node render, again and again (A B A B), so both see the same machine at the same moment and
//! each pair gives its own ratio. Warm: both pipelines stay loaded in one process each (Node
//! answers `render` requests on stdin, timing the render inside its process as Rust does); cold:
//! a fresh process each, from spawn to PNG written.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use cards::{CardData, Renderer, Size, Theme};
use domain::{archetypes::Archetype, synthesis::Stats};

const WARM_PAIRS: usize = 60;
const WARM_UP: usize = 5;
const COLD_PAIRS: usize = 9;

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

/// Sorted samples, read as median, p95 and range.
struct Samples(Vec<f64>);

impl Samples {
    fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self(samples)
    }

    fn quantile(&self, p: f64) -> f64 {
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(index).copied().unwrap_or(f64::NAN)
    }

    fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    fn range(&self) -> String {
        match (self.0.first(), self.0.last()) {
            (Some(low), Some(high)) => format!("{low:.1}–{high:.1}"),
            _ => "n/a".into(),
        }
    }
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

fn fonts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/cards/fonts")
}

/// A warm Node pipeline: `render.mjs serve`, one render per request.
struct NodeServer {
    child: Child,
    requests: ChildStdin,
    replies: BufReader<ChildStdout>,
}

impl NodeServer {
    fn start(folder: &Path, size: &str) -> anyhow::Result<Self> {
        let mut child = Command::new("node")
            .args(["render.mjs", "serve", size])
            .env("FONTS_DIR", fonts_dir())
            .current_dir(folder)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting node")?;
        let requests = child.stdin.take().context("node stdin")?;
        let replies = BufReader::new(child.stdout.take().context("node stdout")?);
        Ok(Self {
            child,
            requests,
            replies,
        })
    }

    /// One render; returns (milliseconds as Node timed it, PNG bytes).
    fn render(&mut self) -> anyhow::Result<(f64, usize)> {
        self.requests.write_all(b"render\n")?;
        self.requests.flush()?;
        let mut line = String::new();
        if self.replies.read_line(&mut line)? == 0 {
            bail!("node exited");
        }
        let reply: serde_json::Value = serde_json::from_str(&line).context("node reply")?;
        Ok((
            reply["ms"].as_f64().context("ms")?,
            reply["png_bytes"].as_u64().context("png_bytes")? as usize,
        ))
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        // The server keeps nothing worth a clean exit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One pipeline's figures for one size.
#[derive(Default)]
struct Side {
    warm: Vec<f64>,
    /// Rust only: renders back to back, with no Node render between them evicting the caches
    /// (what a warm render Lambda does for a persona's three cards).
    warm_alone: Vec<f64>,
    cold: Vec<f64>,
    peak_rss_kib: i64,
    png_bytes: usize,
}

/// Both pipelines for one size, plus the per-pair ratios (Node time / Rust time).
struct Comparison {
    rust: Side,
    node: Option<Side>,
    warm_ratios: Vec<f64>,
    cold_ratios: Vec<f64>,
}

fn compare(size: &str, node: Option<&Path>, scratch: &Path) -> anyhow::Result<Comparison> {
    let renderer = Renderer::new();
    let data = sample();
    let card_size = size_of(size)?;
    let mut server = node
        .map(|folder| NodeServer::start(folder, size))
        .transpose()?;
    let mut rust = Side::default();
    let mut node_side = server.as_ref().map(|_| Side::default());
    let mut warm_ratios = Vec::new();
    for pair in 0..WARM_UP + WARM_PAIRS {
        let started = Instant::now();
        let card = renderer.render(&data, card_size)?;
        let rust_ms = started.elapsed().as_secs_f64() * 1000.0;
        let node_ms = match (&mut server, &mut node_side) {
            (Some(server), Some(side)) => {
                let (ms, bytes) = server.render()?;
                side.png_bytes = bytes;
                Some(ms)
            }
            _ => None,
        };
        if pair < WARM_UP {
            continue;
        }
        rust.warm.push(rust_ms);
        rust.png_bytes = card.png.len();
        if let (Some(ms), Some(side)) = (node_ms, &mut node_side) {
            side.warm.push(ms);
            warm_ratios.push(ms / rust_ms);
        }
    }
    drop(server);
    for render in 0..WARM_UP + WARM_PAIRS {
        let started = Instant::now();
        renderer.render(&data, card_size)?;
        if render >= WARM_UP {
            rust.warm_alone
                .push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }

    let exe = std::env::current_exe()?;
    let mut cold_ratios = Vec::new();
    for run in 0..COLD_PAIRS {
        let mut command = Command::new(&exe);
        command
            .args(["cold-render", size])
            .arg(scratch.join(format!("rust-{size}-{run}.png")));
        let (elapsed, peak) = timed(command)?;
        let rust_ms = elapsed.as_secs_f64() * 1000.0;
        rust.cold.push(rust_ms);
        rust.peak_rss_kib = rust.peak_rss_kib.max(peak);
        if let (Some(folder), Some(side)) = (node, &mut node_side) {
            let mut command = Command::new("node");
            command
                .args(["render.mjs", "cold", size])
                .arg(scratch.join(format!("node-{size}-{run}.png")))
                .env("FONTS_DIR", fonts_dir())
                .current_dir(folder);
            let (elapsed, peak) = timed(command)?;
            let node_ms = elapsed.as_secs_f64() * 1000.0;
            side.cold.push(node_ms);
            side.peak_rss_kib = side.peak_rss_kib.max(peak);
            cold_ratios.push(node_ms / rust_ms);
        }
    }
    Ok(Comparison {
        rust,
        node: node_side,
        warm_ratios,
        cold_ratios,
    })
}

fn ratio_cell(ratios: Vec<f64>) -> String {
    if ratios.is_empty() {
        return "n/a".into();
    }
    let ratios = Samples::new(ratios);
    format!("**{:.1}x** ({}x)", ratios.median(), ratios.range())
}

pub fn run() -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let scratch = std::env::temp_dir().join(format!("remirai-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let node_home = std::env::temp_dir().join("remirai-bench");
    let node = match node_pipeline(&node_home) {
        Ok(folder) => Some(folder),
        Err(error) => {
            eprintln!("Node baseline unavailable: {error:#}");
            None
        }
    };
    println!(
        "\n## Card rendering, Rust (A) and Node (B) interleaved A B A B: {WARM_PAIRS} warm pairs \
         after {WARM_UP} discarded, {COLD_PAIRS} cold pairs per size\n"
    );
    println!("Ratios are Node time / Rust time per pair: median (range). \"Rust warm alone\": {WARM_PAIRS} more Rust renders back to back, no Node render between them evicting the caches.\n");
    println!(
        "| size | Rust warm median / p95 (range) | Rust warm alone median / p95 (range) | Node warm median / p95 (range) | warm ratio | \
         Rust cold median (range) | Node cold median (range) | cold ratio | peak RSS Rust / Node | PNG Rust / Node |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for size in SIZES {
        let Comparison {
            rust,
            node,
            warm_ratios,
            cold_ratios,
        } = compare(size, node.as_deref(), &scratch)?;
        let warm = |samples: &[f64]| {
            let samples = Samples::new(samples.to_vec());
            format!(
                "{:.2} / {:.2} ms ({})",
                samples.median(),
                samples.quantile(0.95),
                samples.range()
            )
        };
        let cold = |samples: &[f64]| {
            let samples = Samples::new(samples.to_vec());
            format!("{:.0} ms ({})", samples.median(), samples.range())
        };
        let mib = |kib: i64| kib as f64 / 1024.0;
        let (node_warm, node_cold, node_rss, node_png) = match &node {
            Some(n) => (
                warm(&n.warm),
                cold(&n.cold),
                format!("{:.0} MiB", mib(n.peak_rss_kib)),
                format!("{} KiB", n.png_bytes / 1024),
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()),
        };
        println!(
            "| {size} | {} | {} | {node_warm} | {} | {} | {node_cold} | {} | {:.1} MiB / {node_rss} | {} KiB / {node_png} |",
            warm(&rust.warm),
            warm(&rust.warm_alone),
            ratio_cell(warm_ratios),
            cold(&rust.cold),
            ratio_cell(cold_ratios),
            mib(rust.peak_rss_kib),
            rust.png_bytes / 1024,
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
