//! `devstack demo`: the product in one command. Starts the local stack, signs in, creates a
//! survey, has three friends answer it, shows the saga's progress step by step, writes the
//! three card PNGs to a folder, and says hello to the persona.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::stack::{start, StackOptions};

pub async fn run(folder: Option<PathBuf>) -> anyhow::Result<()> {
    let folder = match folder {
        Some(folder) => folder,
        None => std::env::temp_dir().join(format!("remirai-demo-{}", std::process::id())),
    };
    println!("Re:MirAI demo\n");
    print!("starting the local stack (PostgreSQL, AWS emulator, API, workers)… ");
    std::io::stdout().flush()?;
    let started = Instant::now();
    let stack = start(
        StackOptions {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            prefix: format!("demo{}", std::process::id()),
            overrides: BTreeMap::new(),
            quiet: true,
        },
        CancellationToken::new(),
    )
    .await?;
    println!("ready in {:.1} s", started.elapsed().as_secs_f64());
    let outcome = drive(&format!("http://{}", stack.address), &folder).await;
    stack.stop().await?;
    outcome
}

async fn drive(base: &str, folder: &PathBuf) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let owner: Value = http
        .post(format!("{base}/v1/auth/dev"))
        .json(&json!({"email": "mira@example.com", "name": "Mira Kim"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = owner["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();
    println!(
        "[1/4] signed in as {} (local dev sign-in)",
        owner["user"]["display_name"].as_str().unwrap_or("?")
    );

    let survey: Value = http
        .post(format!("{base}/v1/surveys"))
        .bearer_auth(&token)
        .json(&json!({"title": "How do my friends see me?"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let survey_id = survey["id"].as_str().context("no survey id")?.to_owned();
    println!(
        "[2/4] survey created; share link {}",
        survey["share_url"].as_str().unwrap_or("?")
    );

    // The one answers fixture, built from the survey's question bank.
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .context("the current question bank")?;
    let friends = ["Jun", "Sora", "Hana"]
        .into_iter()
        .enumerate()
        .map(|(friend, name)| (name, domain::surveys::sample_answers(bank, friend as u32)));
    for (name, answers) in friends {
        http.post(format!("{base}/v1/surveys/{survey_id}/responses"))
            .header("x-fingerprint", format!("demo-device-{name}"))
            .json(&json!({ "answers": answers }))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("{name}'s answer"))?;
        println!("      a friend answered anonymously ({name}'s device)");
    }
    println!("[3/4] three answers in: the persona saga starts");

    println!("[4/4] saga progress:");
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let status: Value = http
            .get(format!("{base}/v1/personas/me/status"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let line = progress_line(&status);
        if line != last {
            println!("      {:>6.2} s  {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        match status["state"].as_str() {
            Some("ready") => break,
            Some("failed") => bail!("the saga failed: {}", status["error"]),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the saga did not finish within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    let persona: Value = http
        .get(format!("{base}/v1/personas/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "\n  {} — {} ({})\n  charisma {}  intellect {}  kindness {}  energy {}\n  \"{}\"",
        persona["name"].as_str().unwrap_or("?"),
        persona["archetype"].as_str().unwrap_or("?"),
        persona["synthesized_by"].as_str().unwrap_or("?"),
        persona["stats"]["charisma"],
        persona["stats"]["intellect"],
        persona["stats"]["kindness"],
        persona["stats"]["energy"],
        persona["greeting"].as_str().unwrap_or(""),
    );
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut written = Vec::new();
    for card in persona["card"]["sizes"].as_array().context("no cards")? {
        let bytes = http
            .get(card["url"].as_str().context("no card url")?)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let file = folder.join(format!(
            "{}-{}x{}.png",
            card["size"].as_str().unwrap_or("card"),
            card["width"],
            card["height"]
        ));
        std::fs::write(&file, &bytes)?;
        written.push(file);
    }
    println!("\nCards written to {}:", folder.display());
    for file in written {
        println!("  {}", file.display());
    }

    let said = "I went hiking in the mountains with Jun today!";
    let exchange: Value = http
        .post(format!("{base}/v1/personas/me/messages"))
        .bearer_auth(&token)
        .json(&json!({ "content": said }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!(
        "\nChat:\n  you      {said}\n  persona  {}\n  ({} reply; bond: {}, {} point)",
        exchange["reply"]["content"].as_str().unwrap_or("?"),
        exchange["reply"]["source"].as_str().unwrap_or("?"),
        exchange["bond_name"].as_str().unwrap_or("?"),
        exchange["bond_points"],
    );
    Ok(())
}

fn progress_line(status: &Value) -> String {
    let state = status["state"].as_str().unwrap_or("?");
    let steps: Vec<String> = status["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| {
                    let mark = match step["status"].as_str() {
                        Some("done") => "✔",
                        Some("running") => "▶",
                        Some("failed") => "✘",
                        _ => "·",
                    };
                    format!(
                        "{mark} {} (attempts {})",
                        step["name"].as_str().unwrap_or("?"),
                        step["attempts"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!("{state:<13} {}", steps.join("   "))
}
