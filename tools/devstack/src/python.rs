//! The Python tools the local stack and the tests run (the AWS emulator, cfn-lint, an OpenAPI
//! validator, schemathesis), each pinned to one version and installed from PyPI into the
//! project's own virtual environment under `$XDG_CACHE_HOME/remirai/venv` (or
//! `~/.cache/remirai/venv`), once per machine.
//!
//! The system interpreter is never taken just because it happens to import a module: what a
//! machine has lying around would decide which versions the tests run, and a folder of the
//! repository (`tests/schemathesis/`) once passed for the real package. Set `REMIRAI_PYTHON` to an
//! interpreter to use it instead of the venv; it must then have the pinned versions.
//!
//! Every check and every run uses isolated mode (`python -I`): neither the working directory nor
//! `PYTHON*` variables nor user site-packages can change what is imported.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context};

/// The environment variable that names an interpreter to use instead of the project's venv.
pub const PYTHON_OVERRIDE: &str = "REMIRAI_PYTHON";

/// A pinned Python tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The AWS emulator for SQS, S3, DynamoDB and Secrets Manager.
    Moto,
    /// The CloudFormation linter `template.yaml` must pass.
    CfnLint,
    /// The reference OpenAPI 3.1 validator.
    OpenApiSpecValidator,
    /// Property-based API testing against the served OpenAPI document.
    Schemathesis,
}

impl Tool {
    pub const ALL: [Tool; 4] = [
        Tool::Moto,
        Tool::CfnLint,
        Tool::OpenApiSpecValidator,
        Tool::Schemathesis,
    ];

    /// What `pip install` is given.
    pub fn requirement(self) -> &'static str {
        match self {
            Tool::Moto => "moto[server]==5.2.1",
            Tool::CfnLint => "cfn-lint==1.51.0",
            Tool::OpenApiSpecValidator => "openapi-spec-validator==0.9.0",
            Tool::Schemathesis => "schemathesis==4.32.5",
        }
    }

    /// The module a run imports (`python -m …` or `from … import`): the check imports exactly
    /// that, not a parent package a same-named folder could stand in for.
    pub fn module(self) -> &'static str {
        match self {
            Tool::Moto => "moto.server",
            Tool::CfnLint => "cfnlint.runner",
            Tool::OpenApiSpecValidator => "openapi_spec_validator.__main__",
            Tool::Schemathesis => "schemathesis.cli",
        }
    }

    /// The installed distribution's name and pinned version.
    fn distribution(self) -> (&'static str, &'static str) {
        let requirement = self.requirement();
        let (name, version) = requirement
            .split_once("==")
            .expect("every requirement is pinned with ==");
        (name.split('[').next().unwrap_or(name), version)
    }

    /// A command that runs this tool's interpreter in isolated mode; add `-m module` or `-c`.
    pub fn python(self) -> anyhow::Result<Command> {
        let interpreter = interpreter_for(self)?;
        let mut command = Command::new(interpreter);
        command.arg("-I");
        Ok(command)
    }
}

/// The interpreter that runs `tool` at its pinned version: `REMIRAI_PYTHON` when set, otherwise
/// the project's venv, created and filled on first use.
pub fn interpreter_for(tool: Tool) -> anyhow::Result<PathBuf> {
    if let Some(python) = std::env::var_os(PYTHON_OVERRIDE) {
        let python = PathBuf::from(python);
        if !has(&python, tool) {
            bail!(
                "{PYTHON_OVERRIDE}={} cannot import {} at {}; install it there or unset \
                 {PYTHON_OVERRIDE} to use the project's own environment",
                python.display(),
                tool.module(),
                tool.requirement()
            );
        }
        return Ok(python);
    }
    install_into(&venv_dir(), tool)
}

/// Makes sure the venv at `venv` has `tool` at its pinned version and returns its interpreter.
/// Safe to call from several processes at once (tests, a devstack they start): one installs
/// while the others wait on a lock file beside the venv.
pub fn install_into(venv: &Path, tool: Tool) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin/python");
    if has(&python, tool) {
        return Ok(python);
    }
    let parent = venv.parent().context("the venv path has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let lock = File::create(parent.join("venv.lock")).context("creating the venv lock file")?;
    lock.lock().context("locking the venv")?;
    // Another process may have installed it while this one waited.
    if has(&python, tool) {
        return Ok(python);
    }
    if !python.is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(venv))
            .context("creating the tools virtual environment")?;
    }
    eprintln!(
        "devstack: installing {} into {}",
        tool.requirement(),
        venv.display()
    );
    run(Command::new(&python).current_dir(venv).args([
        "-I",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        tool.requirement(),
    ]))
    .with_context(|| format!("installing {}", tool.requirement()))?;
    if !has(&python, tool) {
        bail!(
            "{} installed but `import {}` at that version still fails",
            tool.requirement(),
            tool.module()
        );
    }
    Ok(python)
}

/// Where the project's venv lives (outside the repository, shared by checkouts).
pub fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("remirai/venv")
}

/// Whether `python` imports the tool's module and has its pinned version installed, asked in
/// isolated mode from a directory that holds no Python code.
fn has(python: &Path, tool: Tool) -> bool {
    let (distribution, version) = tool.distribution();
    let check = format!(
        "import sys, importlib.metadata as m\nimport {module}\n\
         sys.exit(0 if m.version('{distribution}') == '{version}' else 1)",
        module = tool.module()
    );
    Command::new(python)
        .current_dir(std::env::temp_dir())
        .args(["-I", "-c", &check])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_of_the_working_directory_never_passes_for_a_tool() {
        // A fake `schemathesis.cli` in the working directory, as `tests/schemathesis/` once was,
        // and an interpreter that always starts there.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("schemathesis")).unwrap();
        std::fs::write(dir.path().join("schemathesis/cli.py"), "").unwrap();
        let wrapper = dir.path().join("python");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\ncd '{}' && exec python3 \"$@\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let fooled = Command::new(&wrapper)
            .args(["-c", "import schemathesis.cli"])
            .status()
            .unwrap()
            .success();
        assert!(
            fooled,
            "the fake must fool a plain import, or this test proves nothing"
        );

        // The check sees only what the interpreter really has installed.
        assert_eq!(
            has(&wrapper, Tool::Schemathesis),
            has(Path::new("python3"), Tool::Schemathesis)
        );
    }

    #[test]
    fn every_tool_is_pinned_to_one_version() {
        for tool in Tool::ALL {
            let (name, version) = tool.distribution();
            assert!(!name.is_empty() && !name.contains('['), "{tool:?}");
            assert!(version.chars().all(|c| c.is_ascii_digit() || c == '.'));
        }
    }
}
