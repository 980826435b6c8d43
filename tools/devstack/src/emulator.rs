//! The AWS emulator (moto server) for SQS, S3 and DynamoDB, on a free loopback port.

use std::{process::Stdio, time::Duration};

use anyhow::Context;

use crate::{
    children::{free_port, wait_for_port, Child},
    python,
};

pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = python::Tool::Moto.python()?;
        command
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child =
            Child::spawn("moto", command, libc::SIGTERM).context("starting the AWS emulator")?;
        wait_for_port(&child, port, Duration::from_secs(30))?;
        Ok(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The emulator's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    pub fn stop(&self) {
        self.child.stop(libc::SIGTERM, Duration::from_secs(5));
    }
}
