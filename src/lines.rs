//! A program that speaks one message per line on its standard input and output: the vector
//! adapters (`vectors --adapter`) and the live clients of the conformance kit.
//!
//! Nothing such a program does can hang or flood the caller: its output is read by a thread
//! into a channel, a line is bounded, every wait has a deadline, and it runs in its own process
//! group, so that a kill reaches whatever it started too.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// One thing read from the program's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line, with its newline if it had one.
    Text(Vec<u8>),
    /// A line longer than the limit (the rest of it was skipped).
    TooLong,
    /// The output was closed (the program ended, or closed it).
    End,
}

/// How long a program may take to end once its input or output is closed.
pub(crate) const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A started program.
pub(crate) struct LineProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
}

impl fmt::Debug for LineProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineProcess")
            .field("pid", &self.child.id())
            .field("input_open", &self.stdin.is_some())
            .finish()
    }
}

impl LineProcess {
    /// Starts `sh -c command` with `env` added to its environment. Output lines longer than
    /// `max_line` bytes are reported as [`Line::TooLong`]. Its standard error is passed through
    /// when `stderr_prefix` is `None`, else printed line by line (bounded) after `[prefix]`.
    pub(crate) fn start(
        command: &str,
        env: &[(String, String)],
        max_line: usize,
        stderr_prefix: Option<&str>,
    ) -> Result<Self, String> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if stderr_prefix.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("sh -c {command:?}: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_group(&mut child);
            return Err("the program's pipes were not set up".into());
        };
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || read_lines(stdout, max_line, &tx));
        if let (Some(prefix), Some(stderr)) = (stderr_prefix, child.stderr.take()) {
            let prefix = prefix.to_owned();
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr);
                loop {
                    let mut line = Vec::new();
                    match (&mut reader).take(4096).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => eprintln!(
                            "[{prefix}] {}",
                            crate::text::escape_controls(&crate::text::bounded(
                                String::from_utf8_lossy(&line).trim_end(),
                                500
                            ))
                        ),
                    }
                }
            });
        }
        Ok(Self {
            child,
            stdin: Some(stdin),
            lines,
        })
    }

    /// Writes `line` and a newline, and flushes.
    pub(crate) fn send(&mut self, line: &str) -> std::io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "input closed"))?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush())
    }

    /// The next output line, waiting at most `timeout`; `None` when none came in time.
    pub(crate) fn recv(&self, timeout: Duration) -> Option<Line> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => Some(Line::End),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// An output line already waiting, if any.
    pub(crate) fn pending(&self) -> Option<Line> {
        self.lines.try_recv().ok()
    }

    /// Closes the program's input (a well-behaved program then ends).
    pub(crate) fn close_input(&mut self) {
        drop(self.stdin.take());
    }

    /// Kills the process group and reaps the program; returns its exit status as text.
    pub(crate) fn stop(mut self) -> String {
        kill_group(&mut self.child);
        status_text(self.child.wait().ok())
    }

    /// Closes its input and waits [`EXIT_GRACE`] for the program to end, killing its process
    /// group when it does not; returns its exit status and whether it ended by itself with
    /// status 0.
    pub(crate) fn end(mut self) -> (String, bool) {
        self.close_input();
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status_text(Some(status)), status.success());
            }
            thread::sleep(Duration::from_millis(10));
        }
        kill_group(&mut self.child);
        (status_text(self.child.wait().ok()), false)
    }
}

impl Drop for LineProcess {
    fn drop(&mut self) {
        // A program left behind (an early return, a panic elsewhere) is killed and reaped.
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(&mut self.child);
            let _ = self.child.wait();
        }
    }
}

fn status_text(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => "exit status unknown".to_owned(),
    }
}

/// SIGKILL to the child's process group (the child leads it: `process_group(0)`), then to the
/// child itself in case the group is gone.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

/// Reads `out` line by line into `tx`, each line bounded by `max_line` bytes.
fn read_lines(out: impl Read, max_line: usize, tx: &mpsc::Sender<Line>) {
    let mut reader = BufReader::new(out);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(max_line)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Line::End);
                return;
            }
            Ok(_) if line.last() != Some(&b'\n') && line.len() > max_line => {
                let _ = tx.send(Line::TooLong);
                // Skip the rest of the overlong line without holding it.
                loop {
                    let mut rest = Vec::new();
                    match (&mut reader).take(64 * 1024).read_until(b'\n', &mut rest) {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(Line::End);
                            return;
                        }
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
            }
            Ok(_) => {
                if tx.send(Line::Text(line)).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_and_bounded() {
        let mut p = LineProcess::start(
            "read x; echo \"got $x\"; head -c 100 /dev/zero | tr '\\0' a; echo; echo short",
            &[],
            50,
            None,
        )
        .expect("starts");
        p.send("hello").expect("send");
        let wait = Duration::from_secs(10);
        assert_eq!(p.recv(wait), Some(Line::Text(b"got hello\n".to_vec())));
        assert_eq!(p.recv(wait), Some(Line::TooLong));
        assert_eq!(p.recv(wait), Some(Line::Text(b"short\n".to_vec())));
        assert_eq!(p.recv(wait), Some(Line::End));
        let (status, clean) = p.end();
        assert!(clean, "{status}");
    }

    #[test]
    fn a_silent_program_times_out_and_is_killed() {
        let p = LineProcess::start("sleep 30", &[], 50, None).expect("starts");
        assert_eq!(p.recv(Duration::from_millis(200)), None);
        let status = p.stop();
        assert!(status.contains("signal"), "{status}");
    }
}
