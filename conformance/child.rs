//! Child processes of a test binary: one test of the running binary again (libtest's
//! `--exact NAME --ignored`), in an environment the parent gives it, reporting on standard
//! output. A test that needs a process environment of its own (the SDKs' credential chains
//! read theirs) runs its half there, while the parent, whose environment never changes, holds
//! the emulators.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// One test of this test binary, to be run as a child process.
#[derive(Debug)]
pub struct ChildTest {
    name: String,
    command: Command,
}

/// What a child printed, and whether it passed.
#[derive(Debug, Clone)]
pub struct ChildOutput {
    /// The child's test passed.
    pub success: bool,
    /// How it ended (`exit status: 0`, ...).
    pub status: String,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl ChildTest {
    /// The ignored test `name` of the running test binary, alone (`--exact`, one thread),
    /// printing what it prints (`--nocapture`); the environment is this process's until
    /// [`ChildTest::env_clear`].
    pub fn new(name: &str) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this test binary: {e}"))?;
        let mut command = Command::new(exe);
        command.args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        Ok(Self {
            name: name.to_string(),
            command,
        })
    }

    /// Starts from an empty environment.
    pub fn env_clear(mut self) -> Self {
        self.command.env_clear();
        self
    }

    /// Sets a variable.
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Sets variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.command.envs(vars);
        self
    }

    /// Removes a variable.
    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(name);
        self
    }

    /// Passes on these variables of this process, those that are set (read here, never
    /// changed).
    pub fn pass_env(mut self, names: &[&str]) -> Self {
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                self.command.env(name, value);
            }
        }
        self
    }

    /// Keeps this machine's AWS set-up out: `home` as HOME, shared config and credentials
    /// files that do not exist there, and no instance metadata.
    pub fn without_aws_setup(self, home: &Path) -> Self {
        let home = home.to_string_lossy().into_owned();
        self.env("HOME", &home)
            .env("AWS_CONFIG_FILE", format!("{home}/no-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                format!("{home}/no-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// Runs the child to its end.
    pub fn run(mut self) -> Result<ChildOutput, String> {
        let output = self
            .command
            .output()
            .map_err(|e| format!("the child {} does not run: {e}", self.name))?;
        Ok(ChildOutput {
            success: output.status.success(),
            status: output.status.to_string(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

impl ChildOutput {
    /// What follows `prefix` on each line of standard output that holds it (libtest may print
    /// the test's name on the same line first), in order.
    pub fn reports<'a>(&'a self, prefix: &str) -> Vec<&'a str> {
        self.stdout
            .lines()
            .filter_map(|l| l.find(prefix).map(|at| &l[at + prefix.len()..]))
            .collect()
    }

    /// The first of [`ChildOutput::reports`].
    pub fn report<'a>(&'a self, prefix: &str) -> Option<&'a str> {
        self.reports(prefix).into_iter().next()
    }

    /// Everything the child printed, for a failure message.
    pub fn shown(&self) -> String {
        format!("{}:\n{}\n{}", self.status, self.stdout, self.stderr)
    }
}
