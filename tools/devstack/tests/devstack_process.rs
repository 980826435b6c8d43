//! The `devstack` binary as a user runs it: with no configuration it serves a ready API, and
//! neither Ctrl-C nor its sudden death leaves PostgreSQL or the emulator running.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_devstack(port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_devstack"))
        .env("PORT", port.to_string())
        .env_remove("DATABASE_URL")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_until_ready(port: u16) -> serde_json::Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/v1/health/ready"))
            .send()
            .await
        {
            if response.status() == 200 {
                return response.json().await.unwrap();
            }
        }
        assert!(Instant::now() < deadline, "devstack never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every process below `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name; Z is a zombie (already dead).
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_for_exit(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| is_running(*p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

#[tokio::test]
async fn devstack_serves_a_ready_api_and_ctrl_c_leaves_no_process_behind() {
    let port = free_port();
    let mut devstack = start_devstack(port);

    let readiness = wait_until_ready(port).await;
    let children = descendants(devstack.id());
    signal(&devstack, libc::SIGINT);
    let status = devstack.wait().unwrap();

    assert_eq!(
        readiness,
        serde_json::json!({
            "status": "ready",
            "checks": { "postgres": "ok", "schema": "ok", "dynamodb": "ok", "s3": "ok", "sqs": "ok" }
        })
    );
    assert!(
        children.len() >= 2,
        "postgres and moto run below devstack: {children:?}"
    );
    assert!(
        status.success(),
        "devstack exits cleanly on Ctrl-C: {status}"
    );
    assert_eq!(
        wait_for_exit(&children, Duration::from_secs(15)),
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn killing_devstack_takes_its_servers_down_with_it() {
    let port = free_port();
    let mut devstack = start_devstack(port);
    wait_until_ready(port).await;
    let children = descendants(devstack.id());

    signal(&devstack, libc::SIGKILL);
    devstack.wait().unwrap();

    assert_eq!(
        wait_for_exit(&children, Duration::from_secs(20)),
        Vec::<u32>::new()
    );
}

#[test]
fn the_demo_runs_the_whole_product_and_writes_three_cards() {
    let folder = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .arg("demo")
        .arg(folder.path())
        .env_remove("DATABASE_URL")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "[1/4]",
        "[2/4]",
        "[3/4]",
        "[4/4]",
        "ready",
        "Cards written to",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let mut cards: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    cards.sort();
    assert_eq!(
        cards,
        [
            "link-1200x630.png",
            "square-1080x1080.png",
            "story-1080x1920.png"
        ]
    );
    for card in cards {
        let bytes = std::fs::read(folder.path().join(card)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
