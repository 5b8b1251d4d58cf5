//! The client protocol against real servers (cargo feature `conformance`): this crate through
//! the protocol agrees with libpq; a client that lies is caught by the server check; clients
//! that hang, crash, write extra lines, answer for another case or write garbage are reported
//! per case and can neither hang the run nor shift a reply onto another case.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tea_pgcloud::conformance::client::{self, ClientRun, ClientSpec};
use tea_pgcloud::conformance::launcher::Launcher;
use tea_pgcloud::conformance::matrix::{self, Recording};
use tea_pgcloud::conformance::report::Report;
use tea_pgcloud::conformance::verdict::Verdict;

fn recording() -> Recording {
    Recording::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(matrix::RECORDING))
        .expect("the recording reads")
}

/// A Python client from `body`, which runs once per request with `req` (the parsed request)
/// and `n` (its number, from 1) in scope; `reply(outcome)` answers for the request's id.
fn python_client(dir: &Path, name: &str, body: &str) -> ClientSpec {
    let path: PathBuf = dir.join(format!("{name}.py"));
    let script = format!(
        "import json, sys, time\n\
         def reply(outcome, id=None):\n    \
             print(json.dumps({{'id': id or req['id'], 'outcome': outcome, 'message': None}}), flush=True)\n\
         n = 0\n\
         for line in sys.stdin:\n    \
             req = json.loads(line)\n    \
             n += 1\n\
         {}\n",
        body.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    std::fs::write(&path, script).expect("write the client");
    ClientSpec {
        name: name.to_owned(),
        driver: None,
        command: format!("python3 {}", path.display()),
        expectations: None,
    }
}

fn run(specs: Vec<ClientSpec>, select: &[&str], timeout: Duration) -> Vec<ClientRun> {
    let launcher = Launcher::from_env().expect("a launcher");
    let mut runs: Vec<ClientRun> = specs
        .into_iter()
        .map(|spec| {
            let mut run = ClientRun::new(spec).expect("the client is set up");
            run.timeout = timeout;
            run
        })
        .collect();
    let select: Vec<String> = select.iter().map(|s| (*s).to_owned()).collect();
    client::run(&launcher, &recording(), &mut runs, &select, |_, _, _| {}).expect("the run");
    runs
}

fn verdicts(run: &ClientRun) -> Vec<(String, Verdict)> {
    run.results
        .iter()
        .map(|r| (r.case.id(), r.verdict))
        .collect()
}

#[test]
fn this_crate_through_the_protocol_agrees_with_libpq() {
    let spec = ClientSpec {
        name: "tea-pgcloud".into(),
        driver: None,
        command: format!(
            "{} conformance --serve-client",
            env!("CARGO_BIN_EXE_tea-pgcloud")
        ),
        expectations: Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("conformance/clients/tea-pgcloud/expectations.yaml"),
        ),
    };
    let runs = run(
        vec![spec],
        &["wildcard/*/*/*", "hostssl-only/*/*/*"],
        client::CASE_TIMEOUT,
    );
    let info = client::RunInfo::default();
    let report = Report::new(&info, &runs);
    let client = &report.clients[0];
    assert_eq!(runs[0].results.len(), 96);
    assert!(client.check.passes(), "{client}");
    // Both kinds of connection happened and were confirmed by the server.
    assert!(runs[0].results.iter().any(|r| r.seen.tls));
    assert!(runs[0].results.iter().any(|r| r.seen.plain));
    assert!(runs[0].results.iter().any(|r| r.libpq.as_str() != "tls"));
}

#[test]
fn a_lying_client_is_caught_by_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Claims TLS without ever connecting; and one that claims plain where TLS was used cannot
    // be written without connecting, so the second liar connects nowhere and claims plain.
    let liar = python_client(dir.path(), "liar", "reply('tls')");
    let plain_liar = python_client(dir.path(), "plain-liar", "reply('plain')");
    let runs = run(
        vec![liar, plain_liar],
        &["tls-on/require/*/ip", "tls-on/disable/no-root/ip"],
        Duration::from_secs(5),
    );
    for run in &runs {
        assert_eq!(run.results.len(), 5);
        for (id, verdict) in verdicts(run) {
            assert_eq!(verdict, Verdict::Unconfirmed, "{id}");
        }
        let info = client::RunInfo::default();
        let report = Report::new(&info, std::slice::from_ref(run));
        assert!(!report.passes());
    }
}

#[test]
fn bad_clients_are_reported_per_case_and_never_hang_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timeout = Duration::from_secs(2);
    let clients = vec![
        // Answers the first request, then sleeps past the limit on the second.
        python_client(
            dir.path(),
            "sleeper",
            "if n == 2:\n    time.sleep(60)\nreply('fail')",
        ),
        // Answers once, then exits with status 3 on its next request.
        python_client(
            dir.path(),
            "crasher",
            "if n == 2:\n    sys.exit(3)\nreply('fail')",
        ),
        // Writes its reply twice: the second line is caught on the next case.
        python_client(
            dir.path(),
            "chatty",
            "reply('fail')\nif n == 1:\n    reply('fail')",
        ),
        // Answers the second request for another case.
        python_client(
            dir.path(),
            "misaddressed",
            "reply('fail', id='tls-off/disable/no-root/ip' if n == 2 else None)",
        ),
        // Writes text that is not JSON on the second request.
        python_client(
            dir.path(),
            "garbage",
            "if n == 2:\n    print('connected!', flush=True)\nelse:\n    reply('fail')",
        ),
        // Never answers anything: given up after three failures in a row.
        python_client(dir.path(), "mute", "sys.exit(0)"),
    ];
    // Every wait is bounded by `timeout`: this returns even though "sleeper" sleeps for a
    // minute on each of its second requests.
    let runs = run(clients, &["tls-on/verify-full/*/*"], timeout);
    let by_name = |name: &str| {
        runs.iter()
            .find(|r| r.process.spec().name == name)
            .map(verdicts)
            .expect("the client ran")
    };
    // libpq: tls-on/verify-full/* fails without a root and with the wrong CA; `fail` agrees
    // there and is stricter elsewhere; what matters here is the fault on the second case and
    // that the cases around it are judged on their own replies.
    let second = |v: &[(String, Verdict)]| v[1].1;
    assert_eq!(second(&by_name("sleeper")), Verdict::Timeout);
    assert_eq!(second(&by_name("crasher")), Verdict::Exited);
    assert_eq!(second(&by_name("chatty")), Verdict::BadReply);
    assert_eq!(second(&by_name("misaddressed")), Verdict::BadReply);
    assert_eq!(second(&by_name("garbage")), Verdict::BadReply);
    // Each is restarted after its fault, so its second request comes round again two cases
    // later: faults on every second case, every other case judged on its own reply.
    for name in ["sleeper", "crasher", "chatty", "misaddressed", "garbage"] {
        let v = by_name(name);
        assert_eq!(v.len(), 8, "{name}");
        for (n, (id, verdict)) in v.iter().enumerate() {
            assert_eq!(verdict.is_fault(), n % 2 == 1, "{name}: {id}: {verdict}");
        }
    }
    let mute = by_name("mute");
    assert!(
        mute[..3].iter().all(|(_, v)| *v == Verdict::Exited),
        "{mute:?}"
    );
    assert!(
        mute[3..].iter().all(|(_, v)| *v == Verdict::NotRun),
        "{mute:?}"
    );
    let crasher = runs
        .iter()
        .find(|r| r.process.spec().name == "crasher")
        .expect("crasher ran");
    let message = crasher.results[1].message.as_deref().unwrap_or_default();
    assert!(message.contains("exit status: 3"), "{message}");
}

/// The command line: a run that cannot start exits 2 and says why, naming the file and key.
#[test]
fn the_command_line_refuses_what_cannot_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("expectations.yaml");
    std::fs::write(
        &bad,
        "deviations:\n  - verdict: weaker\n    cases: ['*/require/*/*']\n    reason: TODO\n",
    )
    .expect("write");
    let tea = env!("CARGO_BIN_EXE_tea-pgcloud");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(tea)
            .arg("conformance")
            .args(args)
            .output()
            .expect("tea-pgcloud runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[
        "--client",
        "true",
        "--expectations",
        &bad.display().to_string(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("deviations[0].reason"), "{stderr}");
    let (code, stderr) = run(&["--client", &dir.path().display().to_string()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("without a client.yaml"), "{stderr}");
    let (code, stderr) = run(&[
        "--client",
        "true",
        "--client",
        "false",
        "--expectations",
        &bad.display().to_string(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("exactly one --client"), "{stderr}");
    let (code, stderr) = run(&["--client", "true", "--cases", "no-such/*/*/*"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no case matches"), "{stderr}");
}
