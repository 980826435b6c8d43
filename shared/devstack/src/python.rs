//! Python tools the local stack and tests use (the AWS emulator, cfn-lint, an OpenAPI
//! validator): taken from the system interpreter when it has them, otherwise installed from PyPI
//! into a virtual environment under `~/.cache/remirai/venv`, once per machine.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::Mutex,
};

use anyhow::{bail, Context};

static INSTALL: Mutex<()> = Mutex::new(());

/// A Python interpreter that can `import module`, installing `requirement` when needed.
pub fn interpreter_with(module: &str, requirement: &str) -> anyhow::Result<PathBuf> {
    let _guard = INSTALL.lock().unwrap_or_else(|poison| poison.into_inner());
    let system = PathBuf::from("python3");
    if can_import(&system, module) {
        return Ok(system);
    }
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if !python.is_file() {
        std::fs::create_dir_all(venv.parent().context("venv path has no parent")?)?;
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("creating the tools virtual environment")?;
    }
    if !can_import(&python, module) {
        eprintln!("devstack: installing {requirement} into {}", venv.display());
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]))
        .with_context(|| format!("installing {requirement}"))?;
    }
    if !can_import(&python, module) {
        bail!("{requirement} installed but `import {module}` still fails");
    }
    Ok(python)
}

/// Where the virtual environment lives (outside the repository, shared by checkouts).
pub fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("remirai/venv")
}

fn can_import(python: &PathBuf, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.stdout(Stdio::null()).output()?;
    if !output.status.success() {
        bail!("{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
