//! `tea-pgcloud vectors --adapter` against adapters that misbehave: an extra line, a missing
//! line, a hang, a crash, garbage, and honest `unsupported` answers. Each adapter is this
//! crate's own (`vectors --serve`) behind a small Python proxy that breaks the protocol in one
//! way at one case, so every other reply is right and only the breach can explain the result.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");

/// The proxy: passes requests to `tea-pgcloud vectors --serve` and replies back, except that
/// at the request numbered `AT` (from 1) it does `MODE`.
const PROXY: &str = r#"
import json, subprocess, sys, time
mode, at, bin_ = sys.argv[1], int(sys.argv[2]), sys.argv[3]
serve = subprocess.Popen([bin_, "vectors", "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(line):
    serve.stdin.write(line); serve.stdin.flush()
    return serve.stdout.readline()
n = 0
for line in sys.stdin:
    n += 1
    request = json.loads(line)
    reply = ask(line)
    if n == at:
        if mode == "extra-line":
            sys.stdout.write(reply); sys.stdout.write(reply)
        elif mode == "missing-line":
            continue
        elif mode == "hang":
            time.sleep(3600)
        elif mode == "crash":
            sys.exit(3)
        elif mode == "garbage":
            sys.stdout.write("this is not json\n")
        elif mode == "extra-line-at-the-end":
            sys.stdout.write(reply); sys.stdout.write('{"id": "surplus"}\n')
        else:
            raise SystemExit("unknown mode")
        sys.stdout.flush()
        continue
    if mode == "unsupported-expand" and request["kind"] == "expand":
        reply = json.dumps({"id": request["id"], "unsupported": True, "reason": "no expansion yet"}) + "\n"
    sys.stdout.write(reply); sys.stdout.flush()
"#;

struct Proxy {
    _dir: tempfile::TempDir,
    script: PathBuf,
}

fn proxy() -> Proxy {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("proxy.py");
    std::fs::write(&script, PROXY).expect("writes the proxy");
    Proxy { _dir: dir, script }
}

fn adapter(p: &Proxy, mode: &str, at: usize) -> String {
    format!("python3 '{}' {mode} {at} '{BIN}'", p.script.display())
}

/// Runs `vectors` with `args`, writing the JSON report beside the proxy; returns the output
/// and the report.
fn vectors(p: &Proxy, args: &[&str]) -> (Output, Value) {
    let report = p.script.with_file_name("report.json");
    let _ = std::fs::remove_file(&report);
    let out = Command::new(BIN)
        .arg("vectors")
        .args(args)
        .arg("--json")
        .arg(&report)
        .current_dir(Path::new("/"))
        .output()
        .expect("runs");
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out, json)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn verdicts(report: &Value) -> Vec<(String, String)> {
    report["cases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_string(),
                        c["verdict"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The expand cases: quick, and every one passes through the faithful proxy.
const EXPAND: &[&str] = &["--kind", "expand", "--case", "expand::*", "--timeout", "2"];

fn expand_run(p: &Proxy, mode: &str, at: usize) -> (Output, Value) {
    let adapter = adapter(p, mode, at);
    let mut args: Vec<&str> = vec!["--adapter", &adapter];
    args.extend_from_slice(EXPAND);
    // Only the first five expand cases.
    let (out, report) = vectors(p, &args);
    (out, report)
}

#[test]
fn a_faithful_adapter_passes_from_any_directory() {
    let p = proxy();
    let (out, report) = expand_run(&p, "none", 0);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        report["passed"].as_u64().is_some_and(|n| n >= 5),
        "{report}"
    );
    assert_eq!(report["failed"], 0);
    assert_eq!(report["error"], Value::Null);
    assert!(
        verdicts(&report).iter().all(|(_, v)| v == "passed"),
        "{report}"
    );
}

#[test]
fn an_extra_line_stops_the_run_at_the_next_case() {
    let p = proxy();
    let (out, report) = expand_run(&p, "extra-line", 2);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The extra line is either already waiting when the next request goes out, or arrives
    // as the answer to it: both are protocol errors at the next case.
    let all = text(&out);
    assert!(
        all.contains("extra line") || all.contains("out of step"),
        "{all}"
    );
    let v = verdicts(&report);
    assert_eq!(v[0].1, "passed");
    assert_eq!(v[1].1, "passed");
    assert!(
        v[2..].iter().all(|(_, verdict)| verdict == "not-run"),
        "{v:?}"
    );
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains(&v[2].0)),
        "{report}"
    );
}

#[test]
fn a_missing_line_is_a_timeout_that_names_the_case() {
    let p = proxy();
    let (out, report) = expand_run(&p, "missing-line", 3);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v = verdicts(&report);
    let error = report["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("no reply to") && error.contains(&v[2].0),
        "{error}"
    );
    assert_eq!(v[1].1, "passed");
    assert!(
        v[2..].iter().all(|(_, verdict)| verdict == "not-run"),
        "{v:?}"
    );
}

#[test]
fn a_hanging_adapter_is_stopped() {
    let p = proxy();
    let (out, report) = expand_run(&p, "hang", 2);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no reply to") && error.contains("stopped"),
        "{error}"
    );
    // The proxy sleeps for an hour: only the runner's timeout can have ended the run, and the
    // error says it did.
}

#[test]
fn a_crash_is_one_error_with_the_exit_status() {
    let p = proxy();
    let (out, report) = expand_run(&p, "crash", 2);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.contains("closed its output"), "{error}");
    assert!(error.contains("exit status: 3"), "{error}");
    let v = verdicts(&report);
    assert_eq!(v[0].1, "passed");
    assert_eq!(
        v.iter().filter(|(_, verdict)| verdict == "failed").count(),
        0,
        "a crash is not a list of failed cases: {v:?}"
    );
    // One line about it, not one per case.
    assert_eq!(
        text(&out).matches("closed its output").count(),
        1,
        "{}",
        text(&out)
    );
}

#[test]
fn garbage_is_a_protocol_error() {
    let p = proxy();
    let (out, report) = expand_run(&p, "garbage", 1);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("not JSON") && error.contains("this is not json"),
        "{error}"
    );
}

#[test]
fn a_line_after_the_last_reply_is_caught() {
    let p = proxy();
    // Select exactly one case so that the surplus comes after the last reply.
    let adapter = adapter(&p, "extra-line-at-the-end", 1);
    let (out, report) = vectors(
        &p,
        &["--adapter", &adapter, "--case", "expand::set-variable"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("after the last reply") && error.contains("surplus"),
        "{error}"
    );
    assert_eq!(
        verdicts(&report),
        vec![("expand::set-variable".to_string(), "passed".to_string())]
    );
}

#[test]
fn unsupported_is_counted_apart_unless_required() {
    let p = proxy();
    let adapter = adapter(&p, "unsupported-expand", 0);
    let args = ["--adapter", &adapter, "--kind", "expand,conninfo"];
    let (out, report) = vectors(&p, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let expand = &report["kinds"]["expand"];
    assert_eq!(expand["passed"], 0, "{report}");
    assert!(
        expand["unsupported"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(report["kinds"]["conninfo"]["failed"], 0);
    assert!(
        report["kinds"]["conninfo"]["passed"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unsupported"), "{stdout}");

    let mut required = args.to_vec();
    required.extend(["--require", "expand"]);
    let (out, report) = vectors(&p, &required);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(report["kinds"]["expand"]["unsupported"], 0);
    assert_eq!(report["kinds"]["expand"]["failed"], expand["unsupported"]);
}

#[test]
fn usage_errors_exit_2() {
    let p = proxy();
    for args in [
        vec!["--kind", "plans"],
        vec!["--file", "no-such-file"],
        vec!["--case", "no::such-case"],
        vec!["--require", "plans"],
        vec!["--timeout", "0"],
        vec!["--adapter", "/nonexistent/adapter-program"],
    ] {
        let (out, _) = vectors(&p, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
}

#[test]
fn export_writes_what_a_directory_run_reads() {
    let p = proxy();
    let dir = p.script.with_file_name("exported");
    let out = Command::new(BIN)
        .args(["vectors", "--export"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(dir.join("SPEC.md").is_file());
    let (out, report) = vectors(&p, &[dir.to_str().expect("utf-8"), "--kind", "conninfo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(report["passed"].as_u64().is_some_and(|n| n > 0));
}
