//! The adapter protocol of `SPEC.md` section 2: another port's program behind [`Adapter`], and
//! this crate's own adapter, [`serve`].

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{Value, json};

use super::builtin::run_case;
use super::{Answer, Case, Runner};
use crate::lines::{EXIT_GRACE, Line, LineProcess};

/// The longest reply line read, in bytes.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// The default time an adapter has to answer one case.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the first case may take beyond the timeout: the adapter's start-up (an interpreter,
/// a JVM).
pub const STARTUP_ALLOWANCE: Duration = Duration::from_secs(30);

/// Runs cases through an external command speaking JSON lines (`--adapter CMD`).
///
/// Any breach of the protocol is fatal ([`Runner::run`] returns `Err`) and stops the
/// adapter: a reply for another case, a line that is not a JSON object, an overlong line, no
/// reply in time, or an adapter that ends early, whose exit status the error gives.
#[derive(Debug)]
pub struct Adapter {
    process: Option<LineProcess>,
    timeout: Duration,
    answered: usize,
}

impl Adapter {
    /// Starts `command` with `sh -c`; each case must be answered within `timeout`.
    pub fn spawn(command: &str, timeout: Duration) -> Result<Self, String> {
        let process = LineProcess::start(command, &[], MAX_REPLY_BYTES, None)
            .map_err(|e| format!("cannot start the adapter: {e}"))?;
        Ok(Self {
            process: Some(process),
            timeout,
            answered: 0,
        })
    }

    /// Stops the adapter and returns `why`.
    fn fail(&mut self, why: String) -> String {
        if let Some(process) = self.process.take() {
            process.stop();
        }
        why
    }

    /// The adapter closed its output: waits for it to end and says so, with its status.
    fn ended(&mut self, id: &str) -> String {
        let status = match self.process.take() {
            Some(process) => process.end().0,
            None => "exit status unknown".into(),
        };
        format!("the adapter closed its output before answering {id} ({status})")
    }
}

impl Runner for Adapter {
    fn run(&mut self, id: &str, kind: &str, case: &Case) -> Result<Answer, String> {
        let Some(process) = self.process.as_mut() else {
            return Err("the adapter is not running".into());
        };
        if let Some(line) = process.pending() {
            return match line {
                Line::End => Err(self.ended(id)),
                other => Err(self.fail(format!(
                    "an extra line after the previous reply (before {id}): {}",
                    shown_line(&other)
                ))),
            };
        }
        if process.send(&case.request(id, kind).to_string()).is_err() {
            return Err(self.ended(id));
        }
        let wait = if self.answered == 0 {
            self.timeout + STARTUP_ALLOWANCE
        } else {
            self.timeout
        };
        match process.recv(wait) {
            None => Err(self.fail(format!(
                "no reply to {id} within {} s; the adapter was stopped",
                wait.as_secs_f64()
            ))),
            Some(Line::End) => Err(self.ended(id)),
            Some(Line::TooLong) => Err(self.fail(format!(
                "the reply to {id} is longer than {MAX_REPLY_BYTES} bytes"
            ))),
            Some(Line::Text(text)) => match parse_reply(id, &text) {
                Ok(answer) => {
                    self.answered += 1;
                    Ok(answer)
                }
                Err(why) => Err(self.fail(why)),
            },
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        process.close_input();
        let mut extra = None;
        // Bounded as a whole: an adapter that writes blank lines forever cannot hold the run.
        let deadline = std::time::Instant::now() + EXIT_GRACE;
        while let Some(line) =
            process.recv(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            match line {
                Line::End => break,
                Line::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
                other => {
                    // One is enough to report; an adapter that keeps writing is stopped below.
                    extra = Some(shown_line(&other));
                    break;
                }
            }
        }
        let (status, clean) = if extra.is_some() {
            (process.stop(), false)
        } else {
            process.end()
        };
        match (extra, clean) {
            (Some(line), _) => Err(format!(
                "an extra line after the last reply: {line} (the adapter was stopped: {status})"
            )),
            (None, false) => Err(format!(
                "the adapter did not end cleanly when its input closed ({status})"
            )),
            (None, true) => Ok(()),
        }
    }
}

/// A line of the adapter's as shown in an error: bounded, control characters escaped.
fn shown_line(line: &Line) -> String {
    match line {
        Line::Text(text) => shown(&String::from_utf8_lossy(text)),
        Line::TooLong => format!("a line longer than {MAX_REPLY_BYTES} bytes"),
        Line::End => "the end of its output".into(),
    }
}

fn shown(text: &str) -> String {
    crate::text::escape_controls(&crate::text::bounded(text.trim_end(), 300)).to_string()
}

/// Checks one reply line against the request's id; returns the result without its `id`.
pub fn parse_reply(id: &str, line: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(line).map_err(|_| format!("the reply to {id} is not UTF-8"))?;
    let value: Value = serde_json::from_str(text.trim_end())
        .map_err(|e| format!("the reply to {id} is not JSON ({e}): {}", shown(text)))?;
    let Value::Object(mut object) = value else {
        return Err(format!(
            "the reply to {id} is not a JSON object: {}",
            shown(text)
        ));
    };
    match object.remove("id") {
        Some(Value::String(got)) if got == id => {}
        Some(Value::String(got)) => {
            return Err(format!(
                "a reply for {:?} came where {id} was asked: the adapter is out of step",
                shown(&got)
            ));
        }
        _ => {
            return Err(format!(
                "the reply to {id} has no string `id`: {}",
                shown(text)
            ));
        }
    }
    if object.get("unsupported") == Some(&Value::Bool(true)) {
        let reason = object
            .get("reason")
            .and_then(Value::as_str)
            .map(shown)
            .unwrap_or_default();
        return Ok(Answer::Unsupported(reason));
    }
    Ok(Answer::Result(Value::Object(object)))
}

/// Serves the adapter protocol for this crate: one request per line in, one reply per line
/// out (`tea-pgcloud vectors --serve`), so that the protocol itself is tested end to end.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => {
                let kind = request
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let env: BTreeMap<String, String> = request
                    .get("env")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default();
                let files: Vec<String> = request
                    .get("files")
                    .and_then(|f| serde_json::from_value(f.clone()).ok())
                    .unwrap_or_default();
                let answer = run_case(
                    kind,
                    &env,
                    &files,
                    request.get("input").unwrap_or(&Value::Null),
                );
                let mut reply = match answer {
                    Answer::Result(result) => result,
                    Answer::Unsupported(reason) => {
                        json!({"unsupported": true, "reason": reason})
                    }
                };
                reply["id"] = request.get("id").cloned().unwrap_or(Value::Null);
                reply
            }
            Err(e) => json!({
                "id": null,
                "error": {"class": "config", "kind": "vector", "message": format!("request is not JSON: {e}")},
            }),
        };
        writeln!(output, "{reply}")?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_answers_one_line_per_request_with_its_id() {
        let input = b"{\"id\":\"a\",\"kind\":\"expand\",\"env\":{\"A\":\"1\"},\"input\":\"${A}\"}\n\n{\"id\":\"b\",\"kind\":\"expand\",\"env\":{},\"input\":\"${B}\"}\n{\"id\":\"c\",\"kind\":\"nope\",\"input\":1}\n";
        let mut out = Vec::new();
        serve(&input[..], &mut out).expect("in-memory io");
        let lines: Vec<Value> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], json!({"id": "a", "value": "1"}));
        assert_eq!(lines[1]["id"], "b");
        assert_eq!(lines[1]["error"]["kind"], "expansion");
        assert_eq!(lines[2]["id"], "c");
        assert_eq!(lines[2]["unsupported"], true);
    }

    #[test]
    fn replies_are_checked_against_the_id() {
        assert_eq!(
            parse_reply("f::a", br#"{"id":"f::a","value":"x"}"#),
            Ok(Answer::Result(json!({"value": "x"})))
        );
        assert_eq!(
            parse_reply(
                "f::a",
                br#"{"id":"f::a","unsupported":true,"reason":"later"}"#
            ),
            Ok(Answer::Unsupported("later".into()))
        );
        let out_of_step =
            parse_reply("f::b", br#"{"id":"f::a","value":"x"}"#).expect_err("another case's reply");
        assert!(out_of_step.contains("out of step"), "{out_of_step}");
        assert!(parse_reply("f::a", br#"{"value":"x"}"#).is_err());
        assert!(parse_reply("f::a", b"[1]").is_err());
        assert!(parse_reply("f::a", b"garbage").is_err());
        assert!(parse_reply("f::a", b"\xff\xfe").is_err());
    }
}
