//! Language-neutral test vectors: `fixtures/vectors/*.yaml` (input -> expected output).
//!
//! A vector file has a `kind` and `cases`; each case has a `name`, the `env` it sees (and
//! nothing else of the process environment), optional `files` that exist for it, an `input`
//! and an `expect` that must be a subset of the result. The result of a case, for this crate
//! and for any adapter, is one JSON object:
//!
//! | kind | success | failure |
//! |---|---|---|
//! | `plan`, `error` | `{"plan": <plan JSON>}` | `{"error": {"class", "kind", "path", "message", "line", "col"}}` |
//! | `conninfo` | `{"map": {keyword: value}, "keyword_value": str, "uri": str}` | `{"error": {"class", "kind", "message"}}` |
//! | `expand` | `{"value": str}` | `{"error": {"class", "kind", "message"}}` |
//! | `rds-token` | `{"token": str, "canonical": str}` (query parameters sorted) | `{"error": {"class", "kind", "message"}}` |
//! | `content-hash` | input `{"json": TEXT}`: `{"dumps": str, "content_hash": str}`; input `{"key": str}`: `{"entry_id": str}` | `{"error": {"class", "kind", "message"}}` |
//!
//! Matching: every key of `expect` must be in the result with a matching value (objects
//! recursively, lists element by element and of the same length, scalars equal), except that
//! inside an object `contains: TEXT` matches when that object's `message` contains TEXT, and
//! `not_contains: TEXT` when the object, rendered as JSON, nowhere contains TEXT (used to prove
//! that a password stays out of errors and plans).
//!
//! An adapter (another port's implementation) reads one JSON object per line on standard
//! input, `{"kind", "env", "files", "input"}`, and writes one result object per line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::expand::expand_str;
use crate::config::load_str;
use crate::conninfo::ConnInfo;
use crate::env::MapEnv;
use crate::error::Error;
use crate::provider::plan;

/// The kinds of vector file.
pub const KINDS: &[&str] = &[
    "plan",
    "error",
    "conninfo",
    "rds-token",
    "expand",
    "content-hash",
];

/// One vector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    /// `plan`, `error`, `conninfo`, `rds-token`, `expand` or `content-hash`.
    pub kind: String,
    /// What the file covers (free text).
    #[serde(default)]
    pub description: Option<String>,
    /// The cases.
    pub cases: Vec<Case>,
    /// Where it was read from (set by the loader).
    #[serde(skip)]
    pub path: PathBuf,
}

/// One case of a vector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique within its file.
    pub name: String,
    /// The environment variables the case sees; values are strings (numbers are stringified).
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// Paths that exist for the case (root certificates, `~/.postgresql/root.crt`).
    #[serde(default)]
    pub files: Vec<String>,
    /// The input: YAML text (`plan`, `error`), a connection string (`conninfo`), a string to
    /// expand (`expand`), or a mapping (`rds-token`, `content-hash`).
    pub input: Value,
    /// What the result must contain.
    pub expect: Value,
    /// Why the case exists, when the name does not say it.
    #[serde(default)]
    pub note: Option<String>,
}

impl Case {
    /// The case's environment as strings.
    pub fn env_strings(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The line an adapter reads for this case.
    pub fn request(&self, kind: &str) -> Value {
        json!({"kind": kind, "env": self.env_strings(), "files": self.files, "input": self.input})
    }
}

impl VectorFile {
    /// The file name without its extension: the first part of each case's id.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Reads one vector file and checks its shape.
pub fn load_file(path: &Path) -> Result<VectorFile, String> {
    // As a configuration is read: bounded, and invalid UTF-8 located.
    let (text, name) =
        crate::config::read_source(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    let node = crate::yaml::parse(&text, &name).map_err(|e| e.to_string())?;
    let mut file: VectorFile =
        serde_json::from_value(node.to_json()).map_err(|e| format!("{name}: {e}"))?;
    file.path = path.to_path_buf();
    if !KINDS.contains(&file.kind.as_str()) {
        return Err(format!(
            "{name}: kind `{}` is not one of {}",
            file.kind,
            KINDS.join(", ")
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for case in &file.cases {
        if !names.insert(case.name.as_str()) {
            return Err(format!("{name}: case `{}` appears twice", case.name));
        }
        if !case.expect.is_object() {
            return Err(format!(
                "{name}: case `{}`: expect must be a mapping",
                case.name
            ));
        }
        if file.kind == "error" && case.expect.get("error").is_none() {
            return Err(format!(
                "{name}: case `{}`: an error case must expect `error`",
                case.name
            ));
        }
    }
    Ok(file)
}

/// Reads every `*.yaml` file of a directory, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<VectorFile>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read directory: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no vector files (*.yaml)", dir.display()));
    }
    paths.iter().map(|p| load_file(p)).collect()
}

fn error_json(e: &Error) -> Value {
    json!({
        "class": e.class().as_str(),
        "kind": e.kind().as_str(),
        "path": e.path(),
        "message": e.message(),
        "line": e.location().map(|l| l.line),
        "col": e.location().map(|l| l.col),
    })
}

fn simple_error(kind: &str, message: String) -> Value {
    json!({"error": {"class": "config", "kind": kind, "message": message}})
}

/// Runs one case through this crate; the result object of the table above.
pub fn run_case(
    kind: &str,
    env: &BTreeMap<String, String>,
    files: &[String],
    input: &Value,
) -> Value {
    let mut map_env = MapEnv::new();
    for (k, v) in env {
        map_env = map_env.with_var(k.clone(), v.clone());
    }
    for f in files {
        map_env = map_env.with_file(f.clone());
    }
    let text = input.as_str().unwrap_or_default();
    match kind {
        "plan" | "error" => {
            if !input.is_string() {
                return simple_error("vector", "input must be YAML text".into());
            }
            match load_str(text, "input.yaml", &map_env).and_then(|c| plan(&c, &map_env)) {
                Ok(plan) => json!({"plan": plan.to_json()}),
                Err(e) => json!({"error": error_json(&e)}),
            }
        }
        "conninfo" => match ConnInfo::parse(text) {
            Ok(map) => {
                let keyword_value = map.to_keyword_value();
                let uri = map.to_uri();
                for rendered in [&keyword_value, &uri] {
                    if ConnInfo::parse(rendered).as_ref() != Ok(&map) {
                        return simple_error(
                            "round-trip",
                            "rendering the map and parsing it back gave a different map".into(),
                        );
                    }
                }
                let pairs: serde_json::Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                json!({"map": pairs, "keyword_value": keyword_value, "uri": uri})
            }
            Err(e) => simple_error("conninfo", e.to_string()),
        },
        "expand" => match expand_str(text, &map_env) {
            Ok(value) => json!({"value": value}),
            Err(e) => simple_error("expansion", e.message),
        },
        "rds-token" => rds_token_case(input),
        "content-hash" => content_hash_case(input),
        other => simple_error("vector", format!("unknown kind `{other}`")),
    }
}

/// The catalog's ids and hashes: `{"json": TEXT}` is a value as JSON text (parsed here, so
/// key order and number forms are the text's), `{"key": str}` an entry key.
fn content_hash_case(input: &Value) -> Value {
    use crate::catalog::{content_hash, entry_id, python_json_dumps};
    if let Some(text) = input.get("json").and_then(Value::as_str) {
        return match serde_json::from_str::<Value>(text) {
            Ok(value) => json!({
                "dumps": python_json_dumps(&value),
                "content_hash": content_hash(&value),
            }),
            Err(e) => simple_error("vector", format!("content-hash input is not JSON: {e}")),
        };
    }
    if let Some(key) = input.get("key").and_then(Value::as_str) {
        return json!({"entry_id": entry_id(key)});
    }
    simple_error(
        "vector",
        "content-hash input needs `json` (JSON text) or `key` (a string)".into(),
    )
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2024-08-26T22:00:00Z`).
#[cfg(feature = "aws")]
fn parse_utc(text: &str) -> Option<u64> {
    let t = text.strip_suffix('Z')?;
    let (date, clock) = t.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(feature = "aws")]
fn rds_token_case(input: &Value) -> Value {
    use crate::iam::aws::{TokenRequest, rds_auth_token};
    let field = |k: &str| input.get(k).and_then(Value::as_str);
    let (Some(host), Some(region), Some(user), Some(akid), Some(secret), Some(time)) = (
        field("host"),
        field("region"),
        field("user"),
        field("access_key_id"),
        field("secret_access_key"),
        field("time"),
    ) else {
        return simple_error(
            "vector",
            "rds-token input needs host, port, region, user, access_key_id, secret_access_key, time".into(),
        );
    };
    let Some(port) = input
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
    else {
        return simple_error("vector", "rds-token input needs a numeric port".into());
    };
    let Some(secs) = parse_utc(time) else {
        return simple_error("vector", format!("time `{time}` is not RFC 3339 UTC (…Z)"));
    };
    let creds = aws_credential_types::Credentials::new(
        akid,
        secret,
        field("session_token").map(str::to_string),
        None,
        "vector",
    );
    let request = TokenRequest {
        host,
        port,
        user,
        region,
    };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    match rds_auth_token(&request, &creds, when) {
        // A vector's token is test data signed with example keys, not a secret.
        Ok(token) => json!({"token": token.expose(), "canonical": canonical_token(token.expose())}),
        Err(e) => simple_error("iam", e.to_string()),
    }
}

/// A token with its query parameters sorted: SigV4 signs the sorted query, so two tokens that
/// differ only in parameter order (botocore puts `X-Amz-Security-Token` before the signature,
/// aws-sigv4 after it) are the same token.
pub fn canonical_token(token: &str) -> String {
    match token.split_once('?') {
        Some((base, query)) => {
            let mut params: Vec<&str> = query.split('&').collect();
            params.sort_unstable();
            format!("{base}?{}", params.join("&"))
        }
        None => token.to_string(),
    }
}

#[cfg(not(feature = "aws"))]
fn rds_token_case(_input: &Value) -> Value {
    simple_error(
        "unsupported",
        "rds-token vectors need the `aws` feature".into(),
    )
}

/// Checks that `expect` is a subset of `actual` (see the module docs); on mismatch says where.
pub fn matches(expect: &Value, actual: &Value) -> Result<(), String> {
    matches_at(expect, actual, "")
}

fn matches_at(expect: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expect, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, want_value) in want {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                if key == "not_contains" {
                    let needle = want_value.as_str().unwrap_or_default();
                    if mentions(actual, needle) {
                        return Err(format!("{here}: {needle:?} appears in the result"));
                    }
                    continue;
                }
                if key == "contains" {
                    let needle = want_value.as_str().unwrap_or_default();
                    let message = got
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !message.contains(needle) {
                        return Err(format!(
                            "{here}: message {message:?} does not contain {needle:?}"
                        ));
                    }
                    continue;
                }
                match got.get(key) {
                    Some(got_value) => matches_at(want_value, got_value, &here)?,
                    None => return Err(format!("{here}: missing from the result")),
                }
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{at}: expected {} items, got {}: {}",
                    want.len(),
                    got.len(),
                    actual
                ));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                matches_at(w, g, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (want, got) if want == got => Ok(()),
        (want, got) => Err(format!("{at}: expected {want}, got {got}")),
    }
}

/// Whether any key or string value anywhere in `value` contains `needle`.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(needle) || mentions(v, needle)),
        other => other.to_string().contains(needle),
    }
}

/// Something that runs cases: this crate, or another port through the adapter protocol.
pub trait Runner {
    /// Runs one case and returns its result object.
    fn run(&mut self, kind: &str, case: &Case) -> Result<Value, String>;
}

/// Runs cases in-process through this crate.
#[derive(Debug, Default)]
pub struct Builtin;

impl Runner for Builtin {
    fn run(&mut self, kind: &str, case: &Case) -> Result<Value, String> {
        Ok(run_case(
            kind,
            &case.env_strings(),
            &case.files,
            &case.input,
        ))
    }
}

/// Runs cases through an external command speaking JSON lines (`--adapter CMD`).
#[derive(Debug)]
pub struct Adapter {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// How long a finished adapter may take to exit once its input is closed.
const ADAPTER_EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Adapter {
    /// Starts `command` with `sh -c`.
    pub fn spawn(command: &str) -> Result<Self, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start adapter `{command}`: {e}"))?;
        let stdin = child.stdin.take().ok_or("adapter has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("adapter has no stdout")?);
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout,
        })
    }
}

impl Runner for Adapter {
    fn run(&mut self, kind: &str, case: &Case) -> Result<Value, String> {
        let line = case.request(kind).to_string();
        let stdin = self.stdin.as_mut().ok_or("adapter input is closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("adapter stdin: {e}"))?;
        let mut reply = String::new();
        let n = self
            .stdout
            .read_line(&mut reply)
            .map_err(|e| format!("adapter stdout: {e}"))?;
        if n == 0 {
            return Err("adapter closed its output".into());
        }
        serde_json::from_str(&reply).map_err(|e| format!("adapter reply is not JSON: {e}"))
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // Closing stdin ends a well-behaved adapter; one that lingers is killed, and either
        // way it is reaped.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + ADAPTER_EXIT_GRACE;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves the adapter protocol for this crate: one request per line in, one result per line
/// out (`tea-pgcloud vectors --serve`), so that the protocol itself is tested end to end.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<Value>(&line) {
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
                run_case(
                    kind,
                    &env,
                    &files,
                    request.get("input").unwrap_or(&Value::Null),
                )
            }
            Err(e) => simple_error("vector", format!("request is not JSON: {e}")),
        };
        writeln!(output, "{result}")?;
        output.flush()?;
    }
    Ok(())
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `file-stem::case-name`.
    pub id: String,
    /// `Ok` when the case passed; the mismatch otherwise.
    pub result: Result<(), String>,
}

/// Runs every case of `files` through `runner`.
pub fn run_all(files: &[VectorFile], runner: &mut dyn Runner) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for file in files {
        let stem = file.stem();
        for case in &file.cases {
            let result = runner.run(&file.kind, case).and_then(|actual| {
                matches(&case.expect, &actual).map_err(|e| format!("{e}\n    result: {actual}"))
            });
            outcomes.push(Outcome {
                id: format!("{stem}::{}", case.name),
                result,
            });
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "aws")]
    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_utc("2024-08-26T22:00:00Z"), Some(1_724_709_600));
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_utc("2024-08-26T22:00:00+02:00"), None);
        assert_eq!(parse_utc("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn subset_matching() {
        let actual = json!({"plan": {"a": 1, "b": [1, 2], "c": {"d": "x"}}, "error": null});
        assert!(matches(&json!({"plan": {"a": 1}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"b": [1, 2]}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"b": [1]}}), &actual).is_err());
        assert!(matches(&json!({"plan": {"a": 2}}), &actual).is_err());
        assert!(matches(&json!({"plan": {"z": 2}}), &actual).is_err());
        assert!(matches(&json!({"error": null}), &actual).is_ok());
    }

    #[test]
    fn not_contains_searches_the_whole_object() {
        let actual = json!({"plan": {"uri": "postgresql://h/db", "hosts": [{"host": "h"}]}});
        assert!(matches(&json!({"plan": {"not_contains": "secret"}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"not_contains": "db"}}), &actual).is_err());
        assert!(matches(&json!({"not_contains": "host"}), &actual).is_err());
        let quoted = json!({"error": {"message": "bad value \"pa\\ss\""}});
        assert!(matches(&json!({"error": {"not_contains": "\"pa\\ss\""}}), &quoted).is_err());
    }

    #[test]
    fn contains_reads_the_message() {
        let actual = json!({"error": {"message": "unknown key `sslmdoe`", "path": "sslmdoe"}});
        assert!(
            matches(
                &json!({"error": {"contains": "sslmdoe", "path": "sslmdoe"}}),
                &actual
            )
            .is_ok()
        );
        assert!(matches(&json!({"error": {"contains": "nope"}}), &actual).is_err());
    }

    #[test]
    fn serve_answers_one_line_per_request() {
        let input = b"{\"kind\":\"expand\",\"env\":{\"A\":\"1\"},\"input\":\"${A}\"}\n\n{\"kind\":\"expand\",\"env\":{},\"input\":\"${B}\"}\n";
        let mut out = Vec::new();
        serve(&input[..], &mut out).expect("in-memory io");
        let lines: Vec<Value> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], json!({"value": "1"}));
        assert_eq!(lines[1]["error"]["kind"], "expansion");
    }
}
