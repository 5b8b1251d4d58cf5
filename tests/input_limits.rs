//! `check` on input made to exhaust the loader: nesting too deep for any stack, files without
//! end (`/dev/zero`, `/dev/urandom`, a FIFO, standard input), files over the size limit, and
//! bytes that are not UTF-8. Each must end in a located error and exit code 1, never in a
//! signal, an abort (134) or a panic (101).
//!
//! Every child runs under a generous wall-clock budget: one that outlives it is killed and the
//! test fails, so a regression to an endless read cannot hang the suite.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tea_pgcloud::config::MAX_CONFIG_BYTES;
use tea_pgcloud::config::MAX_DEPTH;

const BIN: &str = env!("CARGO_BIN_EXE_tea-pgcloud");

/// Far more than any of these runs needs; only a runaway child reaches it.
const BUDGET: Duration = Duration::from_secs(60);

/// A valid bare catalog, the start of every file that should be accepted.
const CATALOG: &str = "host: db.internal\nsslmode: verify-full\nsslrootcert: system\n";

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Asserts exit code 1 and a first stderr line `FILE:LINE:COL: ...` holding `needle`;
    /// returns the line and column.
    fn refused_at(&self, file: &str, needle: &str) -> (usize, usize) {
        self.refused(needle);
        let line = self.stderr.lines().next().unwrap_or_default();
        location(line, file).unwrap_or_else(|| {
            panic!("expected a `{file}:LINE:COL:` location, got: {line}");
        })
    }

    /// Asserts exit code 1 (not a signal, an abort or a panic) and `needle` in stderr.
    fn refused(&self, needle: &str) {
        assert_eq!(
            self.status.code(),
            Some(1),
            "status {:?}; stderr: {}",
            self.status,
            self.stderr_head()
        );
        assert!(
            self.stderr.contains(needle),
            "expected `{needle}` in: {}",
            self.stderr_head()
        );
        assert!(self.stdout.is_empty(), "stdout: {}", self.stdout);
    }

    fn stderr_head(&self) -> String {
        self.stderr.chars().take(2000).collect()
    }
}

/// `FILE:LINE:COL:` at the start of `line`, as numbers.
fn location(line: &str, file: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix(file)?.strip_prefix(':')?;
    let mut parts = rest.splitn(3, ':');
    let line_no = parts.next()?.parse().ok()?;
    let col = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((line_no, col))
}

/// Runs `tea-pgcloud check ARG` with `stdin`, killing it when it outlives [`BUDGET`].
fn check(arg: &str, stdin: Stdio) -> Outcome {
    let mut child = Command::new(BIN)
        .args(["check", arg])
        .env_clear()
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + BUDGET;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`check {arg}` outlived its {BUDGET:?} budget and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn check_file(path: &Path) -> Outcome {
    check(path.to_str().expect("a UTF-8 temp path"), Stdio::null())
}

/// A file in a directory of its own, removed when the guard drops.
fn temp_file(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("temp file");
    (dir, path)
}

fn depth_message() -> String {
    format!("nested deeper than {MAX_DEPTH} levels")
}

/// `- - - ... v`: `depth` block sequences on one line.
fn block_sequences(depth: usize) -> String {
    format!("{}v\n", "- ".repeat(depth))
}

/// `k:` keys each one space deeper than the last: `depth` block mappings.
fn block_mappings(depth: usize, indent: usize) -> String {
    let mut text = String::new();
    for level in 0..depth {
        text.push_str(&" ".repeat(indent + level));
        text.push_str("k:\n");
    }
    text.push_str(&" ".repeat(indent + depth));
    text.push_str("v\n");
    text
}

#[test]
fn deep_block_sequences_are_refused_at_the_collection_past_the_limit() {
    for depth in [MAX_DEPTH + 1, 5_000, 100_000, 1_000_000] {
        let (_dir, path) = temp_file("d.yaml", block_sequences(depth).as_bytes());
        let file = path.to_str().expect("utf-8");
        let at = check_file(&path).refused_at(file, &depth_message());
        // Level n opens at column 2n - 1: the first one past the limit is named.
        assert_eq!(at, (1, 2 * MAX_DEPTH + 1), "depth {depth}");
    }
}

#[test]
fn block_sequences_at_the_limit_load() {
    // The root mapping is the first level.
    let text = format!(
        "settings:\n  ltm:\n    catalog:\n      host: db.internal\n      sslmode: verify-full\n      sslrootcert: system\nnodes:\n  {}",
        block_sequences(MAX_DEPTH - 1)
    );
    let (_dir, path) = temp_file("ok.yaml", text.as_bytes());
    let out = check_file(&path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_head());
}

#[test]
fn deep_block_mappings_are_refused() {
    // 2,500 levels of one-space indentation is about 3 MB, within the size limit.
    for depth in [MAX_DEPTH + 1, 2_500] {
        let (_dir, path) = temp_file("m.yaml", block_mappings(depth, 0).as_bytes());
        let file = path.to_str().expect("utf-8");
        let (line, col) = check_file(&path).refused_at(file, &depth_message());
        // On the key `k:` that opens level MAX_DEPTH + 1 (yaml-rust2 marks a block mapping at
        // its first key's `:`).
        assert_eq!(line, MAX_DEPTH + 1, "depth {depth}");
        assert!(
            (MAX_DEPTH + 1..=MAX_DEPTH + 2).contains(&col),
            "depth {depth}: column {col}"
        );
    }
}

#[test]
fn deep_flow_collections_are_refused() {
    for depth in [MAX_DEPTH + 1, 300, 100_000, 1_000_000] {
        let sequences = format!("{}{}\n", "[".repeat(depth), "]".repeat(depth));
        // `{a:` without the space: a million levels of `{a: ` would pass the size limit.
        let mappings = format!("{}x{}\n", "{a:".repeat(depth), "}".repeat(depth));
        // Pairs of levels: at least `depth` of them.
        let pairs = depth.div_ceil(2);
        let alternating = format!("{}x{}\n", "[{a: ".repeat(pairs), "}]".repeat(pairs));
        for (form, text) in [
            ("sequences", sequences),
            ("mappings", mappings),
            ("alternating", alternating),
        ] {
            let (_dir, path) = temp_file("f.yaml", text.as_bytes());
            let file = path.to_str().expect("utf-8");
            let (line, _) = check_file(&path).refused_at(file, &depth_message());
            assert_eq!(line, 1, "{form} at depth {depth}");
        }
    }
}

#[test]
fn block_and_flow_nesting_add_up() {
    // 100 block levels and 100 flow levels: neither alone is past the limit.
    let text = format!(
        "{}{}x{}\n",
        "- ".repeat(100),
        "[{a: ".repeat(50),
        "}]".repeat(50)
    );
    let (_dir, path) = temp_file("mixed.yaml", text.as_bytes());
    let file = path.to_str().expect("utf-8");
    check_file(&path).refused_at(file, &depth_message());
}

#[test]
fn deep_nesting_inside_an_agent_file_is_refused() {
    let agent = "name: agent\nsettings:\n  ltm:\n    catalog:\n      host: db.internal\n";
    let cases = [
        (
            "catalog value, flow",
            format!(
                "{agent}      port: {}{}\n",
                "[".repeat(200),
                "]".repeat(200)
            ),
        ),
        (
            "catalog credentials, block mappings",
            format!("{agent}      credentials:\n{}", block_mappings(2_000, 8)),
        ),
        (
            "elsewhere, block sequences",
            format!("{agent}nodes:\n  - {}", block_sequences(100_000)),
        ),
    ];
    for (name, text) in cases {
        let (_dir, path) = temp_file("agent.yaml", text.as_bytes());
        let file = path.to_str().expect("utf-8");
        let (line, _) = check_file(&path).refused_at(file, &depth_message());
        assert!(line >= 5, "{name}: line {line}");
    }
}

#[test]
fn an_alias_cannot_nest_past_the_limit() {
    // The anchor and the place of its alias are each within the limit; the copy is not.
    let half = MAX_DEPTH / 2 + 1;
    let text = format!(
        "a: &deep {}x{}\nb: {}*deep{}\n",
        "[".repeat(half),
        "]".repeat(half),
        "[".repeat(half),
        "]".repeat(half)
    );
    let (_dir, path) = temp_file("alias.yaml", text.as_bytes());
    let file = path.to_str().expect("utf-8");
    let (line, _) = check_file(&path).refused_at(file, &depth_message());
    assert_eq!(line, 2);
}

fn size_message() -> String {
    format!("{MAX_CONFIG_BYTES} bytes")
}

#[test]
fn endless_devices_are_refused_at_the_size_limit() {
    for device in ["/dev/zero", "/dev/urandom"] {
        let out = check(device, Stdio::null());
        out.refused(&size_message());
        assert!(out.stderr.contains(device), "{}", out.stderr_head());
    }
}

#[test]
fn endless_standard_input_is_refused_at_the_size_limit() {
    let zero = std::fs::File::open("/dev/zero").expect("/dev/zero opens");
    let out = check("-", Stdio::from(zero));
    out.refused(&size_message());
    assert!(
        out.stderr.contains("standard input"),
        "{}",
        out.stderr_head()
    );
}

/// A valid catalog padded with a comment to exactly `len` bytes.
fn padded_catalog(len: usize) -> Vec<u8> {
    let mut text = format!("{CATALOG}# ").into_bytes();
    text.resize(len - 1, b'x');
    text.push(b'\n');
    text
}

#[test]
fn a_file_over_the_size_limit_is_refused_and_one_at_it_loads() {
    let limit = usize::try_from(MAX_CONFIG_BYTES).expect("the limit fits in memory");
    let (_dir, path) = temp_file("big.yaml", &padded_catalog(limit + 1));
    let out = check_file(&path);
    out.refused(&size_message());
    assert!(
        out.stderr.contains(path.to_str().expect("utf-8")),
        "{}",
        out.stderr_head()
    );

    let (_dir, path) = temp_file("limit.yaml", &padded_catalog(limit));
    let out = check_file(&path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_head());
}

/// A FIFO at `dir/name`, fed by a thread that writes `content` `times` times (forever when
/// `None`, until the reader goes away).
fn fifo(dir: &Path, content: &'static [u8], times: Option<usize>) -> PathBuf {
    let path = dir.join("fifo.yaml");
    let made = Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let writer_path = path.clone();
    std::thread::spawn(move || {
        let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&writer_path) else {
            return;
        };
        let mut written = 0;
        while times.is_none_or(|n| written < n) {
            if pipe.write_all(content).is_err() {
                return;
            }
            written += 1;
        }
    });
    path
}

#[test]
fn a_fifo_is_read_without_relying_on_its_length() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = fifo(dir.path(), CATALOG.as_bytes(), Some(1));
    let out = check_file(&path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_head());

    let dir = tempfile::tempdir().expect("temp dir");
    let path = fifo(dir.path(), b"# an endless comment line\n", None);
    check_file(&path).refused(&size_message());
}

#[test]
fn invalid_utf8_is_located_at_its_first_bad_byte() {
    // Line 2: `#`, a space, `é` (two bytes, one character), then 0xFF at character 4.
    let content = b"host: db\n# \xc3\xa9\xff more\n";
    let (_dir, path) = temp_file("u.yaml", content);
    let file = path.to_str().expect("utf-8");
    let at = check_file(&path).refused_at(file, "UTF-8");
    assert_eq!(at, (2, 4));

    let (_dir, path) = temp_file("stdin.yaml", content);
    let input = std::fs::File::open(&path).expect("temp file opens");
    let at = check("-", Stdio::from(input)).refused_at("<stdin>", "UTF-8");
    assert_eq!(at, (2, 4));
}

#[test]
fn a_truncated_utf8_sequence_at_the_end_is_located() {
    // `é` cut after its first byte, after `\r\n` (one line break, as YAML counts it).
    let (_dir, path) = temp_file("t.yaml", b"host: db\r\nuser: \xc3");
    let file = path.to_str().expect("utf-8");
    let at = check_file(&path).refused_at(file, "UTF-8");
    assert_eq!(at, (2, 7));
}
