//! A bounded, deterministic, structured fuzz run of the configuration pipeline behind
//! `tea-pgcloud check` and `plan`: [`load_file`] (the file read, then `config::load_str`),
//! `provider::plan`, the warnings and the plan JSON, in-process; and on a sampled subset the
//! real binary's `check`, `plan` and `plan --json` (the plan text lives only in the CLI),
//! compared with the library.
//!
//! Seeds: the fragments of `tests/robustness.rs`, every file of `fixtures/examples` and
//! `fixtures/cloud`, the input of every case of `fixtures/vectors` (read with the crate's vector
//! loader), and catalogs built from the key table. Mutations: `${VAR}` moved into every field
//! (one at a time, several at once, partial forms inside `connection_string`), control
//! characters in keys and values, deep nesting of every form, size, anchors and aliases,
//! invalid UTF-8 anywhere, and byte-level edits.
//!
//! Even cases first sweep every field: each written value of every seed, and each key of the
//! key table under every provider and secrets source, replaced by `${TEA_FUZZ_CANARY}` one at a
//! time (a partial form inside `connection_string`); the other cases are random.
//!
//! Per case: no panic; success, or an error that carries `FILE:LINE:COL` of this file; the
//! canary (a value reachable only through `${VAR}`) in no error and no warning (it may show in
//! the plan where a value is shown by design, see `tests/robustness.rs`); the password nowhere
//! (errors, warnings, `Debug`, plan text and JSON); no control character in an error or a
//! warning (each is printed as one line); plan JSON that parses back to itself.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TEA_FUZZ_SEED` | `0x7ea0f022` | the run's seed (decimal or `0x` hex) |
//! | `TEA_FUZZ_CASES` | 20000 | how many cases |
//! | `TEA_FUZZ_ONLY` | | run only this case index, and print it |
//! | `TEA_FUZZ_KEEP_GOING` | | `1`: run every case, collect failures by class, fail at the end |
//! | `TEA_FUZZ_MAX_DEPTH` | 100000 | the deepest nesting generated; `0` turns depth mutations off |
//! | `TEA_FUZZ_BIN_CASES` | 200 | how many cases also run through the binary |
//! | `TEA_FUZZ_CASE_SECS` | 5 | the budget of one case: over it the run fails |
//! | `TEA_FUZZ_BUDGET_SECS` | 600 | the budget of the whole run |
//!
//! Cases run on a thread with the 8 MiB stack a Linux main thread has (where the CLI runs). A
//! stack overflow aborts the process, which fails the test; the case that was running is then
//! in `target/tmp/tea-fuzz/current.txt` (and its text in `case.yaml`). The report (outcomes,
//! time per case, each failure class with its shrunk reproduction) goes to stderr and to
//! `target/tmp/tea-fuzz/report.txt`, the reproductions to `repro-N.yaml` beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use tea_pgcloud::config::keys::{CATALOG_KEYS, CREDENTIAL_KEYS};
use tea_pgcloud::config::load_file;
use tea_pgcloud::env::{Environment, MapEnv};
use tea_pgcloud::error::ConfigError;
use tea_pgcloud::plan::ConnectPlan;
use tea_pgcloud::provider::plan;
use tea_pgcloud::vectors;

/// Every canary value holds this; it never appears literally in a generated YAML text.
const CANARY_MARK: &str = "cAnArY";
/// Every password holds this (also its percent-encoded form in URIs).
const PASSWORD_MARK: &str = "pAsSwOrD";
/// The password, in connection strings and password variables.
const PASSWORD: &str = "pAsSwOrD-4q?";
/// The variable `${VAR}` mutations move into fields; its value is one of [`CANARIES`].
const CANARY_VAR: &str = "TEA_FUZZ_CANARY";
/// A connection string with a password (one of [`DSNS`]), for `connection_string` values.
const DSN_VAR: &str = "TEA_FUZZ_DSN";
/// The password alone, for `password=` inside connection strings.
const PASSWORD_VAR: &str = "TEA_FUZZ_PASSWORD";

const DEFAULT_SEED: u64 = 0x7ea0_f022;
const DEFAULT_CASES: u64 = 20_000;
const DEFAULT_MAX_DEPTH: u64 = 100_000;
const DEFAULT_BIN_CASES: u64 = 200;
const DEFAULT_CASE_SECS: u64 = 5;
const DEFAULT_BUDGET_SECS: u64 = 600;
/// What shrinking one failure class may spend.
const SHRINK_ATTEMPTS: usize = 3000;
const SHRINK_TIME: Duration = Duration::from_secs(20);
/// Inputs larger than this, or slower than [`SHRINK_SLOW`], are reported as generated.
const SHRINK_MAX_BYTES: usize = 256 * 1024;
const SHRINK_SLOW: Duration = Duration::from_secs(1);
/// The main-thread stack of a Linux process (`ulimit -s` 8192), where the CLI runs.
const WORKER_STACK: usize = 8 << 20;
const WORKER: &str = "tea-fuzz-worker";
/// How many of the slowest cases the report names.
const SLOWEST_SHOWN: usize = 5;
/// Indented nesting grows quadratically in bytes: these forms stop at this depth.
const INDENTED_DEPTH_CAP: usize = 3000;
/// Nested anchors copy every subtree into the anchor table (quadratic memory): capped.
const NESTED_ANCHOR_CAP: usize = 1500;

/// Canary values: each holds [`CANARY_MARK`]; some hold control characters or look like a
/// location, a connection string or a reference.
const CANARIES: &[&str] = &[
    "cAnArY-9x!",
    "cAnArY\nFAKE.yaml:9:9: ok",
    "cAnArY\x1b[2J",
    "cAnArY\0",
    "cAnArY\x7f",
    "cAnArY\u{9b}31m",
    "\rcAnArY",
    "host=db sslmode=cAnArY",
    "cAnArY é✓ü",
    "cAnArY'\"\\",
    "cAnArY-${X}",
    "5432cAnArY",
];

/// Connection strings holding the password, some also a canary where an error would point.
const DSNS: &[&str] = &[
    "host=db port=5432 user=app password='pAsSwOrD-4q?' sslmode=require",
    "host=db sslmode=cAnArY password=pAsSwOrD-4q?",
    "postgresql://u:pAsSwOrD-4q%3F@h/d?sslmode=cAnArY",
    "host=db password=pAsSwOrD-4q? cAnArY=1",
    "host=db password='pAsSwOrD-4q? sslmode=require",
    "host=cAnArY\n password=pAsSwOrD-4q?",
    "password=pAsSwOrD-4q? host=a,b port=1,2,3",
    "host=db port=cAnArY password=pAsSwOrD-4q?",
    "cAnArY",
    "postgresql://u:pAsSwOrD-4q%3F@cAnArY:99999/d",
    "host=db password=pAsSwOrD-4q? sslrootcert=cAnArY sslmode=verify-full",
    "host=db password=pAsSwOrD-4q? connect_timeout=cAnArY",
];

/// What a `${VAR}` mutation writes in place of a value.
const VALUE_FORMS: &[&str] = &[
    "${TEA_FUZZ_CANARY}",
    "\"${TEA_FUZZ_CANARY}\"",
    "'${TEA_FUZZ_CANARY}'",
    "pre-${TEA_FUZZ_CANARY}-post",
    "${TEA_FUZZ_CANARY:-fallback}",
    "${TEA_FUZZ_CANARY}${TEA_FUZZ_CANARY}",
    "[${TEA_FUZZ_CANARY}]",
    "{a: ${TEA_FUZZ_CANARY}}",
    "${X}",
];

/// What a `${VAR}` mutation writes in place of a `connection_string`: partial forms.
const DSN_FORMS: &[&str] = &[
    "\"host=${TEA_FUZZ_CANARY} sslmode=${TEA_FUZZ_CANARY}\"",
    "\"host=db sslmode=${TEA_FUZZ_CANARY}\"",
    "\"host=db port=${TEA_FUZZ_CANARY}\"",
    "\"host=db ${TEA_FUZZ_CANARY}=1\"",
    "\"host=db application_name=${TEA_FUZZ_CANARY} connect_timeout=${TEA_FUZZ_CANARY}\"",
    "\"postgresql://u@h/d?sslmode=${TEA_FUZZ_CANARY}\"",
    "\"postgresql://${TEA_FUZZ_CANARY}@h:${TEA_FUZZ_CANARY}/d\"",
    "\"host=db password=${TEA_FUZZ_PASSWORD} sslmode=${TEA_FUZZ_CANARY}\"",
    "${TEA_FUZZ_DSN}",
    "\"${TEA_FUZZ_DSN}\"",
    "\"${TEA_FUZZ_DSN} sslmode=${TEA_FUZZ_CANARY}\"",
    "\"host=db password='${TEA_FUZZ_PASSWORD}' target_session_attrs=${TEA_FUZZ_CANARY}\"",
    "\"host=db sslrootcert=${TEA_FUZZ_CANARY} sslmode=verify-full\"",
    "\"host=a,b port=${TEA_FUZZ_CANARY},1\"",
    "\"host=db sslnegotiation=${TEA_FUZZ_CANARY}\"",
    "${TEA_FUZZ_CANARY}",
];

/// Keys with control characters, as YAML writes them (double-quoted escapes, raw bytes).
const CONTROL_KEYS: &[&str] = &[
    "\"sslmdoe\\nFAKE.yaml:9:9: ok\"",
    "\"host\\r\"",
    "\"ho\\x1b[2Jst\"",
    "\"\\0\"",
    "\"key\\x7f\"",
    "\"key\\u009b31m\"",
    "\"\\e]0;title\\a\"",
    "\"tab\\there\"",
    "\"sslmode\\n\"",
    "\"\\x1b[31mhost\"",
    "ke\x1by",
    "ke\u{9b}y",
    "ke\x7fy",
];

/// Values with control characters.
const CONTROL_VALUES: &[&str] = &[
    "\"require\\nFAKE.yaml:9:9: ok\"",
    "\"db\\x1b[2J\"",
    "\"\\0\"",
    "\"x\\x7f\"",
    "\"\\u009b31m\"",
    "\"5432\\r\"",
    "\"true\\n\"",
    "\"verify-full\\t\"",
    "\"gcp\\x1b[0m\"",
    "db\x1b[2J",
    "db\u{9b}x",
    "x\x7f",
    "'a\u{85}b'",
];

/// `connection_string` values with control characters.
const CONTROL_DSNS: &[&str] = &[
    "\"host=db sslmode=require\\nFAKE.yaml:1:1: ok\"",
    "\"host=db\\x1b[2J\"",
    "\"host=db sslmode=\\x1b[31mred\"",
    "\"postgresql://h/d?sslmode=\\n\"",
    "\"host=db \\x07bell=1\"",
    "\"host='db\\0' port=1\"",
    "\"postgresql://h:\\r/d\"",
];

/// Bytes that are not UTF-8: lone bytes, a surrogate, an overlong form, past U+10FFFF,
/// truncated sequences.
const BAD_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe",
    b"\xc3",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    b"\xf0\x9f",
    b"\xe2\x82",
    b"\xff\xfe\xfd",
];

// The fragments of tests/robustness.rs (its proptest strategy), shared with it.
#[path = "common/fragments.rs"]
mod fragments;
use fragments::{
    CONNECTION_STRINGS as FRAGMENT_CONNECTION_STRINGS, KEYS as FRAGMENT_KEYS,
    VALUES as FRAGMENT_VALUES,
};
/// Characters for the `\PC{0,12}` fragment: printable ASCII and some non-control Unicode.
const FRAGMENT_CHARS: &[char] = &[
    ' ', 'a', 'z', 'Z', '0', '9', ':', '-', '#', '&', '*', '!', '|', '>', '\'', '"', '[', ']', '{',
    '}', ',', '?', '%', '@', '`', '$', '\\', '/', '.', '=', 'é', '✓', '𝄞', '\u{a0}', '\u{2028}',
    '\u{feff}', '\u{200b}',
];

/// The run's parameters, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    seed: u64,
    cases: usize,
    only: Option<usize>,
    keep_going: bool,
    max_depth: usize,
    bin_cases: usize,
    case_budget: Duration,
    run_budget: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let only = std::env::var("TEA_FUZZ_ONLY")
            .ok()
            .map(|v| parse_number("TEA_FUZZ_ONLY", &v) as usize);
        Self {
            seed: env_number("TEA_FUZZ_SEED", DEFAULT_SEED),
            cases: env_number("TEA_FUZZ_CASES", DEFAULT_CASES) as usize,
            only,
            keep_going: std::env::var("TEA_FUZZ_KEEP_GOING").is_ok_and(|v| v == "1"),
            max_depth: env_number("TEA_FUZZ_MAX_DEPTH", DEFAULT_MAX_DEPTH) as usize,
            bin_cases: env_number("TEA_FUZZ_BIN_CASES", DEFAULT_BIN_CASES) as usize,
            case_budget: Duration::from_secs(env_number("TEA_FUZZ_CASE_SECS", DEFAULT_CASE_SECS)),
            run_budget: Duration::from_secs(env_number(
                "TEA_FUZZ_BUDGET_SECS",
                DEFAULT_BUDGET_SECS,
            )),
        }
    }

    /// The case indices this run covers.
    fn indices(&self) -> std::ops::Range<usize> {
        match self.only {
            Some(i) => i..i + 1,
            None => 0..self.cases,
        }
    }

    /// Whether case `index` also runs through the binary: every n-th case.
    fn through_binary(&self, index: usize) -> bool {
        if self.only.is_some() {
            return true;
        }
        self.bin_cases > 0 && index.is_multiple_of((self.cases / self.bin_cases).max(1))
    }

    fn reproduce(&self, index: usize) -> String {
        let depth = if self.max_depth == DEFAULT_MAX_DEPTH as usize {
            String::new()
        } else {
            format!("TEA_FUZZ_MAX_DEPTH={} ", self.max_depth)
        };
        format!(
            "{depth}TEA_FUZZ_SEED={:#x} TEA_FUZZ_ONLY={index} cargo test --features conformance --test fuzz",
            self.seed
        )
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| parse_number(name, &v))
}

fn parse_number(name: &str, text: &str) -> u64 {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    match parsed {
        Ok(n) => n,
        Err(e) => panic!("{name}={text:?} is not a number: {e}"),
    }
}

/// SplitMix64: small and the same everywhere, so that a seed and an index give one case.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, index: usize) -> Self {
        let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n`; 0 when `n` is 0.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// In `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo))
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut roll = self.next() % total.max(1);
        for (weight, item) in items {
            if roll < u64::from(*weight) {
                return *item;
            }
            roll -= u64::from(*weight);
        }
        items[items.len() - 1].1
    }
}

/// One seed input.
#[derive(Debug, Clone)]
struct Seed {
    name: String,
    text: String,
    env: BTreeMap<String, String>,
    files: Vec<String>,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every fixture file and every vector input, in a fixed order.
fn corpus() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for dir in ["fixtures/examples", "fixtures/cloud"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join(dir))
            .expect("a fixtures directory")
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "{dir} holds no YAML file");
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("a readable fixture");
            let name = path.file_name().expect("a file name").to_string_lossy();
            seeds.push(Seed {
                name: format!("{dir}/{name}"),
                text,
                env: BTreeMap::new(),
                files: Vec::new(),
            });
        }
    }
    let files = vectors::load_dir(&manifest_dir().join("fixtures/vectors")).expect("vectors");
    for file in &files {
        for case in &file.cases {
            let text = match (file.kind.as_str(), &case.input) {
                ("conninfo", Value::String(s)) => format!("connection_string: {}\n", yaml_dq(s)),
                ("expand", Value::String(s)) => format!("host: {}\n", yaml_dq(s)),
                (_, Value::String(s)) => s.clone(),
                // A mapping input (rds-token, content-hash): JSON is YAML's flow syntax.
                (_, other) => other.to_string(),
            };
            seeds.push(Seed {
                name: format!("vectors/{}#{}", file.stem(), case.name),
                text,
                env: case.env_strings(),
                files: case.files.clone(),
            });
        }
    }
    seeds
}

/// A YAML double-quoted scalar holding exactly `s`.
fn yaml_dq(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One generated case.
#[derive(Debug, Clone, PartialEq)]
struct Case {
    index: usize,
    desc: String,
    bytes: Vec<u8>,
    env: BTreeMap<String, String>,
    files: Vec<String>,
}

fn map_env(vars: &BTreeMap<String, String>, files: &[String]) -> MapEnv {
    let mut env = MapEnv::new();
    for (k, v) in vars {
        env = env.with_var(k.clone(), v.clone());
    }
    for f in files {
        env = env.with_file(f.clone());
    }
    env
}

/// The variables and real files of a process run with exactly `vars` as its environment: what
/// the binary's `ProcessEnv` sees after `env_clear`.
struct ClearedProcessEnv<'a>(&'a BTreeMap<String, String>);

impl Environment for ClearedProcessEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    fn is_file(&self, path: &str) -> bool {
        Path::new(path).is_file()
    }

    fn file_exists(&self, path: &str) -> std::io::Result<bool> {
        tea_pgcloud::env::stat_exists(path)
    }
}

/// What cases are made from: the seeds, and the sweep.
struct Inputs {
    seeds: Vec<Seed>,
    /// One case per written value of every seed, per key of the key table under every
    /// provider and secrets source, and per partial connection-string form: each with one
    /// `${VAR}` in place of a value. Even case indices run these first.
    sweep: Vec<Seed>,
}

impl Inputs {
    fn load() -> Self {
        let seeds = corpus();
        let sweep = sweep(&seeds);
        Self { seeds, sweep }
    }

    /// The sweep item case `index` runs, if any.
    fn sweep_item(&self, index: usize) -> Option<&Seed> {
        index
            .is_multiple_of(2)
            .then(|| self.sweep.get(index / 2))
            .flatten()
    }
}

/// `${VAR}` moved into every field, one at a time.
fn sweep(seeds: &[Seed]) -> Vec<Seed> {
    let mut out = Vec::new();
    for seed in seeds {
        for site in sites(&seed.text).into_iter().filter(|s| s.has_value) {
            let form = if site.key == "connection_string" {
                DSN_FORMS[out.len() % DSN_FORMS.len()]
            } else {
                "${TEA_FUZZ_CANARY}"
            };
            let mut text = seed.text.clone();
            set_value(&mut text, &site, Shape::Inline(form.into()));
            out.push(Seed {
                name: format!("{} | sweep {}: {form}", seed.name, site.key),
                text,
                ..seed.clone()
            });
        }
    }
    let bare = |name: String, text: String| Seed {
        name,
        text,
        env: BTreeMap::new(),
        files: Vec::new(),
    };
    for provider in ["gcp", "aws", "azure", "self-hosted"] {
        for key in CATALOG_KEYS.iter().map(|k| k.name) {
            let text = if key == "provider" {
                "provider: ${TEA_FUZZ_CANARY}\n".to_string()
            } else {
                format!("provider: {provider}\n{key}: ${{TEA_FUZZ_CANARY}}\n")
            };
            out.push(bare(
                format!("sweep {provider} {key}: ${{TEA_FUZZ_CANARY}}"),
                text,
            ));
        }
    }
    for source in ["env", "gcp", "aws", "azure"] {
        for key in CREDENTIAL_KEYS.iter().map(|k| k.name) {
            let text = if key == "source" {
                "credentials:\n  source: ${TEA_FUZZ_CANARY}\n".to_string()
            } else {
                format!("credentials:\n  source: {source}\n  {key}: ${{TEA_FUZZ_CANARY}}\n")
            };
            out.push(bare(
                format!("sweep credentials {source} {key}: ${{TEA_FUZZ_CANARY}}"),
                text,
            ));
        }
    }
    for form in DSN_FORMS {
        out.push(bare(
            format!("sweep connection_string: {form}"),
            format!("connection_string: {form}\n"),
        ));
    }
    out
}

/// Case `index` of the run with `seed`.
fn generate(seed: u64, max_depth: usize, inputs: &Inputs, index: usize) -> Case {
    let mut rng = Rng::for_case(seed, index);
    if let Some(item) = inputs.sweep_item(index) {
        let mut env = item.env.clone();
        fill_env(&mut rng, item.text.as_bytes(), &mut env);
        return Case {
            index,
            desc: item.name.clone(),
            bytes: item.text.clone().into_bytes(),
            env,
            files: item.files.clone(),
        };
    }
    let mut desc = Vec::new();
    let Seed {
        name,
        mut text,
        mut env,
        files,
    } = pick_base(&mut rng, &inputs.seeds);
    desc.push(name);
    let rounds = match rng.below(20) {
        0..=2 => 0,
        3..=12 => 1,
        13..=17 => 2,
        _ => 3,
    };
    let mut families: Vec<Family> = (0..rounds)
        .map(|_| pick_family(&mut rng, max_depth))
        .collect();
    // At most one heavy mutation, and last: editing a 4 MB text line by line is slow.
    let mut heavy_seen = false;
    for family in &mut families {
        if family.is_heavy() {
            if heavy_seen {
                *family = Family::Canary;
            }
            heavy_seen = true;
        }
    }
    families.sort_by_key(|f| f.is_heavy());
    for family in families {
        desc.push(mutate_text(&mut rng, &mut text, family, max_depth));
    }
    let mut bytes = text.into_bytes();
    if rng.chance(8) {
        desc.push(insert_invalid_utf8(&mut rng, &mut bytes));
    }
    if rng.chance(20) {
        for _ in 0..rng.range(1, 4) {
            desc.push(mutate_bytes(&mut rng, &mut bytes));
        }
    }
    fill_env(&mut rng, &bytes, &mut env);
    Case {
        index,
        desc: desc.join(" | "),
        bytes,
        env,
        files,
    }
}

fn pick_base(rng: &mut Rng, corpus: &[Seed]) -> Seed {
    let (name, text) = match rng.below(10) {
        0..=5 => return rng.pick(corpus).clone(),
        6..=7 => {
            let n = rng.below(12);
            let text: String = (0..n).map(|_| fragment(rng)).collect();
            (format!("robustness fragments x{n}"), text)
        }
        _ => ("catalog from the key table".into(), synthesized(rng)),
    };
    Seed {
        name,
        text,
        env: BTreeMap::new(),
        files: Vec::new(),
    }
}

/// One fragment of the robustness strategy.
fn fragment(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => format!(
            "{}: {}\n",
            rng.pick(FRAGMENT_KEYS.as_slice()),
            rng.pick(FRAGMENT_VALUES)
        ),
        1 => format!(
            "connection_string: \"{}\"\n",
            rng.pick(FRAGMENT_CONNECTION_STRINGS)
        ),
        2 => format!("{}:\n  ", rng.pick(FRAGMENT_KEYS.as_slice())),
        3 => "  ".into(),
        4 => "- ".into(),
        5 => "---\n".into(),
        6 => "\t".into(),
        _ => (0..rng.below(13))
            .map(|_| *rng.pick(FRAGMENT_CHARS))
            .collect(),
    }
}

/// A catalog (bare or in an agent file) from the crate's key table with plausible values.
fn synthesized(rng: &mut Rng) -> String {
    let agent = rng.chance(50);
    let indent = if agent { "      " } else { "" };
    let mut text = String::new();
    if agent {
        text.push_str("settings:\n  ltm:\n    backend: duckdb\n    catalog:\n");
    }
    let mut used = BTreeSet::new();
    for _ in 0..rng.range(1, 9) {
        let key = rng.pick(CATALOG_KEYS).name;
        if !used.insert(key) {
            continue;
        }
        if key == "credentials" {
            text.push_str(&format!("{indent}credentials:\n"));
            let mut used = BTreeSet::new();
            for _ in 0..rng.range(1, 5) {
                let key = rng.pick(CREDENTIAL_KEYS).name;
                if used.insert(key) {
                    let value = value_for(rng, key);
                    text.push_str(&format!("{indent}  {key}: {value}\n"));
                }
            }
        } else {
            let value = value_for(rng, key);
            text.push_str(&format!("{indent}{key}: {value}\n"));
        }
    }
    text
}

fn value_for(rng: &mut Rng, key: &str) -> String {
    let choices: &[&str] = match key {
        "type" => &["postgres", "sqlite"],
        "provider" => &["gcp", "aws", "azure", "self-hosted", "GCP"],
        "port" => &["5432", "6432", "0", "65536", "'5432'"],
        "sslmode" => &[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ],
        "source" => &["env", "gcp", "aws", "azure", "vault"],
        "ip_type" => &["socket", "public", "private"],
        "iam_auth" | "auto_migrate" | "lazy" => &["true", "false", "yes"],
        "min_size" | "max_size" | "connect_timeout" | "max_lifetime" => &["0", "1", "10", "-1"],
        "token_refresh" => &["ahead", "lazy"],
        "ssl_bundle" => &["auto", "/etc/ssl/rds.pem"],
        "connection_string" => FRAGMENT_CONNECTION_STRINGS,
        _ => FRAGMENT_VALUES,
    };
    let value = *rng.pick(choices);
    if key == "connection_string" {
        yaml_dq(value)
    } else {
        value.to_string()
    }
}

/// A `key: value` line of the text.
#[derive(Debug, Clone)]
struct Site {
    line: usize,
    key_start: usize,
    key_end: usize,
    /// Where the value starts (the line's length when it has none).
    value_start: usize,
    /// The indentation of a sibling key.
    sibling_indent: usize,
    key: String,
    has_value: bool,
}

fn sites(text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let mut pos = line.len() - line.trim_start_matches(' ').len();
        while line[pos..].starts_with("- ") {
            pos += 2;
        }
        let rest = &line[pos..];
        if rest.is_empty() || rest.starts_with(['#', '[', '{']) {
            continue;
        }
        let (key_len, value_off) = match rest.find(": ") {
            Some(j) => (j, j + 2),
            None if rest.ends_with(':') => (rest.len() - 1, rest.len()),
            None => continue,
        };
        if key_len == 0 {
            continue;
        }
        let value = rest[value_off..].trim();
        out.push(Site {
            line: n,
            key_start: pos,
            key_end: pos + key_len,
            value_start: pos + value_off,
            sibling_indent: pos,
            key: rest[..key_len].to_string(),
            has_value: !value.is_empty() && !value.starts_with('#'),
        });
    }
    out
}

/// A value to write: on the key's line, or as lines below it (relative indentation).
enum Shape {
    Inline(String),
    Block(Vec<String>),
}

fn edit_lines(text: &mut String, edit: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    edit(&mut lines);
    *text = lines.join("\n");
}

fn set_value(text: &mut String, site: &Site, value: Shape) {
    edit_lines(text, |lines| {
        let head = lines[site.line][..site.key_end].to_string();
        match value {
            Shape::Inline(v) => lines[site.line] = format!("{head}: {v}"),
            Shape::Block(block) => {
                lines[site.line] = format!("{head}:");
                let pad = " ".repeat(site.sibling_indent + 2);
                let at = site.line + 1;
                lines.splice(at..at, block.into_iter().map(|l| format!("{pad}{l}")));
            }
        }
    });
}

/// Adds `key: value` beside a key that has a value, else at the end of the text.
fn add_sibling(rng: &mut Rng, text: &mut String, key: &str, value: Shape) -> String {
    let sites = sites(text);
    let candidates: Vec<&Site> = sites.iter().filter(|s| s.has_value).collect();
    if candidates.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        match value {
            Shape::Inline(v) => text.push_str(&format!("{key}: {v}\n")),
            Shape::Block(block) => {
                text.push_str(&format!("{key}:\n"));
                for line in block {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
        return "the end".into();
    }
    let site = (*rng.pick(&candidates)).clone();
    edit_lines(text, |lines| {
        let pad = " ".repeat(site.sibling_indent);
        let mut new = Vec::new();
        match value {
            Shape::Inline(v) => new.push(format!("{pad}{key}: {v}")),
            Shape::Block(block) => {
                new.push(format!("{pad}{key}:"));
                new.extend(block.into_iter().map(|l| format!("{pad}  {l}")));
            }
        }
        let at = site.line + 1;
        lines.splice(at..at, new);
    });
    format!("beside {}", site.key)
}

fn pick_site(rng: &mut Rng, text: &str, with_value: bool) -> Option<Site> {
    let sites: Vec<Site> = sites(text)
        .into_iter()
        .filter(|s| s.has_value || !with_value)
        .collect();
    (!sites.is_empty()).then(|| rng.pick(&sites).clone())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Canary,
    CanaryMany,
    Dsn,
    ControlKey,
    ControlValue,
    Anchors,
    Deep,
    Size,
}

impl Family {
    fn is_heavy(self) -> bool {
        matches!(self, Self::Deep | Self::Size)
    }
}

fn pick_family(rng: &mut Rng, max_depth: usize) -> Family {
    let deep = if max_depth > 0 { 6 } else { 0 };
    rng.weighted(&[
        (30, Family::Canary),
        (8, Family::CanaryMany),
        (12, Family::Dsn),
        (8, Family::ControlKey),
        (10, Family::ControlValue),
        (8, Family::Anchors),
        (deep, Family::Deep),
        (1, Family::Size),
    ])
}

fn mutate_text(rng: &mut Rng, text: &mut String, family: Family, max_depth: usize) -> String {
    match family {
        Family::Canary => {
            let form = *rng.pick(VALUE_FORMS);
            match pick_site(rng, text, true) {
                Some(site) => {
                    let form = if site.key == "connection_string" && rng.chance(60) {
                        *rng.pick(DSN_FORMS)
                    } else {
                        form
                    };
                    set_value(text, &site, Shape::Inline(form.into()));
                    format!("{}: {form}", site.key)
                }
                None => {
                    let key = rng.pick(CATALOG_KEYS).name;
                    let at = add_sibling(rng, text, key, Shape::Inline(form.into()));
                    format!("add {key}: {form} at {at}")
                }
            }
        }
        Family::CanaryMany => {
            let all = rng.chance(30);
            let form = *rng.pick(VALUE_FORMS);
            let chosen: Vec<Site> = sites(text)
                .into_iter()
                .filter(|s| s.has_value)
                .filter(|_| all || rng.chance(50))
                .collect();
            edit_lines(text, |lines| {
                for site in &chosen {
                    let head = lines[site.line][..site.key_end].to_string();
                    lines[site.line] = format!("{head}: {form}");
                }
            });
            format!("{} value(s) set to {form}", chosen.len())
        }
        Family::Dsn => {
            let form = *rng.pick(DSN_FORMS);
            match sites(text)
                .into_iter()
                .find(|s| s.key == "connection_string")
            {
                Some(site) => {
                    set_value(text, &site, Shape::Inline(form.into()));
                    format!("connection_string: {form}")
                }
                None => {
                    let at =
                        add_sibling(rng, text, "connection_string", Shape::Inline(form.into()));
                    format!("add connection_string: {form} at {at}")
                }
            }
        }
        Family::ControlKey => {
            let key = *rng.pick(CONTROL_KEYS);
            match pick_site(rng, text, false).filter(|_| rng.chance(50)) {
                Some(site) => {
                    edit_lines(text, |lines| {
                        let line = &lines[site.line];
                        lines[site.line] =
                            format!("{}{key}{}", &line[..site.key_start], &line[site.key_end..]);
                    });
                    format!("rename key {} to {key:?}", site.key)
                }
                None => {
                    let value = *rng.pick(FRAGMENT_VALUES);
                    let at = add_sibling(rng, text, key, Shape::Inline(value.into()));
                    format!("add key {key:?}: {value} at {at}")
                }
            }
        }
        Family::ControlValue => match pick_site(rng, text, true) {
            Some(site) => {
                let value = if site.key == "connection_string" {
                    *rng.pick(CONTROL_DSNS)
                } else {
                    *rng.pick(CONTROL_VALUES)
                };
                set_value(text, &site, Shape::Inline(value.into()));
                format!("{}: {value:?}", site.key)
            }
            None => {
                let value = *rng.pick(CONTROL_VALUES);
                let at = add_sibling(rng, text, "host", Shape::Inline(value.into()));
                format!("add host: {value:?} at {at}")
            }
        },
        Family::Anchors => anchors(rng, text, max_depth),
        Family::Deep => deep(rng, text, max_depth),
        Family::Size => size(rng, text),
    }
}

fn pick_depth(rng: &mut Rng, max_depth: usize) -> usize {
    let depth = match rng.below(10) {
        0..=4 => rng.range(2, 64),
        5..=6 => rng.range(64, 2000),
        7..=8 => rng.range(2000, 30_000),
        _ => max_depth,
    };
    depth.clamp(1, max_depth.max(1))
}

/// A nested value of `depth` levels in one of the YAML forms; returns its name, the depth it
/// really has (indented forms are capped) and the value.
fn deep_shape(rng: &mut Rng, depth: usize) -> (&'static str, usize, Shape) {
    let leaf = *rng.pick(&[
        "v",
        "${TEA_FUZZ_CANARY}",
        "\"q\\x1b\"",
        "5432",
        "~",
        "*nope",
    ]);
    let capped = depth.min(INDENTED_DEPTH_CAP);
    match rng.below(9) {
        0 => (
            "flow sequence",
            depth,
            Shape::Inline(format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth))),
        ),
        1 => (
            "flow mapping",
            depth,
            Shape::Inline(format!(
                "{}{leaf}{}",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            )),
        ),
        2 => {
            let mut open = String::new();
            let mut close = String::new();
            for i in 0..depth {
                if i % 2 == 0 {
                    open.push('[');
                    close.push(']');
                } else {
                    open.push_str("{a: ");
                    close.push('}');
                }
            }
            let close: String = close.chars().rev().collect();
            (
                "mixed flow",
                depth,
                Shape::Inline(format!("{open}{leaf}{close}")),
            )
        }
        3 => {
            let open = if rng.chance(50) { "[" } else { "{a: " };
            ("unclosed flow", depth, Shape::Inline(open.repeat(depth)))
        }
        4 => (
            "block sequence on one line",
            depth,
            Shape::Block(vec![format!("{}{leaf}", "- ".repeat(depth))]),
        ),
        5 => {
            let mut lines: Vec<String> = (0..capped)
                .map(|i| format!("{}a:", " ".repeat(i)))
                .collect();
            lines.push(format!("{}{leaf}", " ".repeat(capped)));
            ("indented block mappings", capped, Shape::Block(lines))
        }
        6 => {
            let mut lines: Vec<String> =
                (0..capped).map(|i| format!("{}-", " ".repeat(i))).collect();
            lines.push(format!("{}{leaf}", " ".repeat(capped)));
            ("indented block sequences", capped, Shape::Block(lines))
        }
        7 => {
            let half = depth / 2;
            let rest = depth - half;
            (
                "block sequences around flow",
                depth,
                Shape::Block(vec![format!(
                    "{}{}{leaf}{}",
                    "- ".repeat(half),
                    "[".repeat(rest),
                    "]".repeat(rest)
                )]),
            )
        }
        _ => {
            let capped = capped.min(INDENTED_DEPTH_CAP / 2);
            let mut lines: Vec<String> = (0..capped)
                .map(|i| format!("{}- a:", " ".repeat(2 * i)))
                .collect();
            lines.push(format!("{}{leaf}", " ".repeat(2 * capped + 2)));
            ("block sequences of mappings", capped, Shape::Block(lines))
        }
    }
}

fn deep(rng: &mut Rng, text: &mut String, max_depth: usize) -> String {
    let depth = pick_depth(rng, max_depth);
    let (form, depth, shape) = deep_shape(rng, depth);
    let at = match rng.below(4) {
        0 => match pick_site(rng, text, true) {
            Some(site) => {
                set_value(text, &site, shape);
                format!("the value of {}", site.key)
            }
            None => add_sibling(rng, text, "host", shape),
        },
        1 => add_sibling(rng, text, "zz_deep", shape),
        2 => {
            *text = match shape {
                Shape::Inline(s) => s,
                Shape::Block(lines) => lines.join("\n"),
            };
            "the whole text".into()
        }
        _ => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            match shape {
                Shape::Inline(s) => text.push_str(&format!("deep: {s}\n")),
                Shape::Block(lines) => {
                    text.push_str("deep:\n");
                    for line in lines {
                        text.push_str(&format!("  {line}\n"));
                    }
                }
            }
            "a root key".into()
        }
    };
    format!("deep {form}, depth {depth}, at {at}")
}

fn size(rng: &mut Rng, text: &mut String) -> String {
    match rng.below(6) {
        0 => {
            let n = rng.weighted(&[(6, 100_000usize), (3, 1_000_000), (1, 4_000_000)]);
            let (style, value) = match rng.below(5) {
                0 => ("plain", "x".repeat(n)),
                1 => ("double-quoted", format!("\"{}\"", "x".repeat(n))),
                2 => ("single-quoted", format!("'{}'", "x".repeat(n))),
                3 => ("connection string", format!("\"host={}\"", "h".repeat(n))),
                _ => (
                    "with a reference",
                    format!("{}${{TEA_FUZZ_CANARY}}", "x".repeat(n)),
                ),
            };
            let at = match pick_site(rng, text, true) {
                Some(site) => {
                    set_value(text, &site, Shape::Inline(value));
                    site.key
                }
                None => add_sibling(rng, text, "host", Shape::Inline(value)),
            };
            format!("huge {style} scalar of {n} bytes at {at}")
        }
        1 => {
            let n = rng.weighted(&[(6, 10_000usize), (3, 20_000), (1, 50_000)]);
            let lines: Vec<String> = (0..n).map(|i| format!("k{i}: v")).collect();
            let at = add_sibling(rng, text, "zz_many", Shape::Block(lines));
            format!("{n} keys in one mapping at {at}")
        }
        2 => {
            let n = rng.weighted(&[(6, 10_000usize), (3, 20_000), (1, 50_000)]);
            let mut block = String::new();
            for i in 0..n {
                block.push_str(&format!("k{i}: v\n"));
            }
            let agent = text.starts_with("settings:");
            *text = if agent {
                format!("{block}{text}")
            } else {
                format!("{text}\n{block}")
            };
            format!("{n} keys at the root")
        }
        3 => {
            let n = rng.weighted(&[(3, 100_000usize), (1, 1_000_000)]);
            if rng.chance(50) {
                *text = format!("# {}\n{text}", "x".repeat(n));
                format!("a comment line of {n} bytes")
            } else {
                let items = vec!["x"; n / 3].join(", ");
                let at = add_sibling(rng, text, "zz_long", Shape::Inline(format!("[{items}]")));
                format!("a flow sequence of {} items on one line at {at}", n / 3)
            }
        }
        4 => {
            let n = rng.weighted(&[(3, 100_000usize), (1, 400_000)]);
            let filler = if rng.chance(50) { "\n" } else { "# c\n" };
            *text = format!("{}{text}", filler.repeat(n));
            format!("{n} filler lines first")
        }
        _ => {
            let n = rng.weighted(&[(3, 50_000usize), (1, 200_000)]);
            let lines = vec!["- x".to_string(); n];
            let at = add_sibling(rng, text, "zz_seq", Shape::Block(lines));
            format!("a block sequence of {n} items at {at}")
        }
    }
}

fn anchors(rng: &mut Rng, text: &mut String, max_depth: usize) -> String {
    match rng.below(10) {
        0 => {
            let n = rng.range(100, 10_001);
            let defs: Vec<String> = (0..n).map(|i| format!("&a{i} v{i}")).collect();
            let uses: Vec<String> = (0..n).map(|i| format!("*a{}", rng.below(i + 1))).collect();
            add_sibling(
                rng,
                text,
                "zz_anchors",
                Shape::Inline(format!("[{}]", defs.join(", "))),
            );
            add_sibling(
                rng,
                text,
                "zz_aliases",
                Shape::Inline(format!("[{}]", uses.join(", "))),
            );
            format!("{n} anchors and {n} aliases")
        }
        1 => {
            let levels = rng.range(3, 10);
            let mut lines = vec![format!("l0: &l0 [{}]", ["x"; 10].join(", "))];
            for i in 1..levels {
                let prev = vec![format!("*l{}", i - 1); 10].join(", ");
                lines.push(format!("l{i}: &l{i} [{prev}]"));
            }
            let at = add_sibling(rng, text, "zz_bomb", Shape::Block(lines));
            format!("alias bomb of {levels} levels at {at}")
        }
        2 => {
            let key = rng.pick(CATALOG_KEYS).name;
            add_sibling(rng, text, "zz_k", Shape::Inline(format!("&k {key}")));
            add_sibling(rng, text, "*k ", Shape::Inline("db".into()));
            format!("an alias as a key (*k = {key})")
        }
        3 => {
            let has_catalog = text.split('\n').any(|l| l.trim_end() == "    catalog:");
            if has_catalog {
                *text = text.replacen("    catalog:\n", "    catalog: &cat\n", 1);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str("zz_copy: *cat\n");
                "the catalog anchored and aliased at the root".into()
            } else {
                let at = add_sibling(
                    rng,
                    text,
                    "<<",
                    Shape::Inline("{host: merged, port: 1}".into()),
                );
                format!("a merge key at {at}")
            }
        }
        4 => {
            let value = *rng.pick(&["{host: merged, port: 1}", "*nope", "[*nope]", "&m {}"]);
            let at = add_sibling(rng, text, "<<", Shape::Inline(value.into()));
            format!("a merge key << {value} at {at}")
        }
        5 => match pick_site(rng, text, true) {
            Some(site) => {
                set_value(text, &site, Shape::Inline("*nope".into()));
                format!("{}: an alias to no anchor", site.key)
            }
            None => add_sibling(rng, text, "host", Shape::Inline("*nope".into())),
        },
        6 => match pick_site(rng, text, true) {
            Some(site) => {
                set_value(text, &site, Shape::Inline("&s [*s]".into()));
                format!("{}: an anchor that refers to itself", site.key)
            }
            None => add_sibling(rng, text, "host", Shape::Inline("&s [*s]".into())),
        },
        7 => {
            let value_of = |site: &Site| {
                text.split('\n')
                    .nth(site.line)
                    .map(|l| l[site.value_start..].to_string())
                    .unwrap_or_default()
            };
            // A password written in a connection string, aliased into another key, is a value
            // written literally in that key: an error may quote it, by design.
            let sites: Vec<Site> = sites(text)
                .into_iter()
                .filter(|s| s.has_value && !value_of(s).contains(PASSWORD_MARK))
                .collect();
            if sites.is_empty() {
                return add_sibling(rng, text, "host", Shape::Inline("&h db".into()));
            }
            let site = rng.pick(&sites).clone();
            let value = value_of(&site);
            set_value(text, &site, Shape::Inline(format!("&v1 {value}")));
            let other = rng.pick(CATALOG_KEYS).name;
            add_sibling(rng, text, other, Shape::Inline("*v1".into()));
            format!("{} anchored, aliased as {other}", site.key)
        }
        8 if max_depth > 0 => {
            let depth = pick_depth(rng, max_depth).min(NESTED_ANCHOR_CAP);
            let open: String = (0..depth).map(|i| format!("&n{i} [")).collect();
            let value = format!("{open}v{}", "]".repeat(depth));
            add_sibling(rng, text, "zz_nested", Shape::Inline(value));
            let alias = rng.below(depth);
            add_sibling(rng, text, "zz_alias", Shape::Inline(format!("*n{alias}")));
            format!("{depth} nested anchors, alias *n{alias}")
        }
        _ => {
            let at = add_sibling(
                rng,
                text,
                "zz_redefined",
                Shape::Inline("[&a x, &a y, *a, &a z, *a]".into()),
            );
            format!("an anchor redefined at {at}")
        }
    }
}

fn insert_invalid_utf8(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let bad = *rng.pick(BAD_UTF8);
    let text = String::from_utf8_lossy(bytes).into_owned();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let sites = if text.len() == bytes.len() {
        sites(&text)
    } else {
        Vec::new()
    };
    let (where_, at) = match rng.below(6) {
        0 => ("at the start", 0),
        1 => ("at the end", bytes.len()),
        2 if !sites.is_empty() => {
            let site = rng.pick(&sites);
            let start = line_starts[site.line];
            (
                "in a key",
                start + rng.range(site.key_start, site.key_end + 1),
            )
        }
        3 if sites.iter().any(|s| s.has_value) => {
            let with_value: Vec<&Site> = sites.iter().filter(|s| s.has_value).collect();
            let site = *rng.pick(&with_value);
            let start = line_starts[site.line];
            let len = text.split('\n').nth(site.line).map_or(0, str::len);
            ("in a value", start + rng.range(site.value_start, len + 1))
        }
        4 if bytes.contains(&b'$') => {
            let dollars: Vec<usize> = (0..bytes.len()).filter(|i| bytes[*i] == b'$').collect();
            ("after a $", rng.pick(&dollars) + 1)
        }
        _ => ("anywhere", rng.below(bytes.len() + 1)),
    };
    bytes.splice(at..at, bad.iter().copied());
    format!("invalid UTF-8 {} {where_} (byte {at})", bad.escape_ascii())
}

fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) -> String {
    let mut lines = split_lines(bytes);
    let n = lines.len();
    let desc = match rng.below(12) {
        0 => {
            let i = rng.below(n);
            lines.remove(i);
            format!("delete line {}", i + 1)
        }
        1 => {
            let i = rng.below(n);
            let line = lines[i].clone();
            lines.insert(i, line);
            format!("duplicate line {}", i + 1)
        }
        2 => {
            let (i, j) = (rng.below(n), rng.below(n));
            lines.swap(i, j);
            format!("swap lines {} and {}", i + 1, j + 1)
        }
        3 => {
            let at = rng.below(bytes.len() + 1);
            bytes.truncate(at);
            return format!("truncate at byte {at}");
        }
        4 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            return format!("flip bit {bit} of byte {at}");
        }
        5 => {
            let at = rng.below(bytes.len() + 1);
            let b = rng.below(256) as u8;
            bytes.insert(at, b);
            return format!("insert byte {b:#04x} at {at}");
        }
        6 => {
            *bytes = lines.join(&b"\r\n"[..]);
            return "CRLF line ends".into();
        }
        7 => {
            bytes.splice(0..0, [0xef, 0xbb, 0xbf]);
            return "a byte-order mark first".into();
        }
        8 => {
            let i = rng.below(n);
            if lines[i].starts_with(b"  ") {
                lines[i].splice(0..2, [b'\t']);
            } else {
                lines[i].insert(0, b'\t');
            }
            format!("a tab indents line {}", i + 1)
        }
        9 => {
            let at = rng.below(bytes.len() + 1);
            let b = *rng.pick(&[0u8, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x7f, b'\r']);
            bytes.insert(at, b);
            return format!("raw control byte {b:#04x} at {at}");
        }
        10 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            let len = rng.range(1, 17).min(bytes.len() - at);
            bytes.drain(at..at + len);
            return format!("delete {len} bytes at {at}");
        }
        _ => {
            let at = rng.below(bytes.len() + 1);
            bytes.insert(at, b'\r');
            return format!("a bare CR at byte {at}");
        }
    };
    *bytes = lines.join(&b"\n"[..]);
    desc
}

/// The variables a case sees: the canary, a password and connection strings, the seed's own
/// variables, and (half the time) a canary for each variable the text names that is unset.
fn fill_env(rng: &mut Rng, bytes: &[u8], env: &mut BTreeMap<String, String>) {
    let canary = *rng.pick(CANARIES);
    let dsn = *rng.pick(DSNS);
    for (name, value) in [
        (CANARY_VAR, canary),
        ("X", canary),
        (DSN_VAR, dsn),
        ("DSN", dsn),
        (PASSWORD_VAR, PASSWORD),
        ("POSTGRES_PASSWORD", PASSWORD),
    ] {
        env.entry(name.to_string())
            .or_insert_with(|| value.to_string());
    }
    for name in referenced(bytes) {
        if env.contains_key(&name) || !rng.chance(50) {
            continue;
        }
        let value =
            if name.contains("CONNECTION_STRING") || name.contains("URL") || name.contains("DSN") {
                *rng.pick(DSNS)
            } else {
                *rng.pick(CANARIES)
            };
        env.insert(name, value.to_string());
    }
}

/// The names of the `${NAME...}` references in a text.
fn referenced(bytes: &[u8]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'{' {
            let name: String = bytes[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .map(|b| char::from(*b))
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    names
}

/// One broken property.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    /// What is broken, without the case's particulars: failures of one class are one bug.
    class: String,
    /// The offending text, escaped.
    detail: String,
}

fn failure(class: String, detail: &str) -> Failure {
    Failure {
        class,
        detail: format!("{detail:?}"),
    }
}

/// A message's shape, so that one bug gives one class whatever the case: the file name and
/// quoted parts taken out, cut where a canary, a password or a control character starts (with
/// the word it cuts), numbers as 9, and only the first plain words (values are often written
/// unquoted after them).
fn template(message: &str, file: &str) -> String {
    const WORDS: usize = 3;
    let text = message.replace(file, "FILE");
    let mut out = String::new();
    let mut quote = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                out.push('…');
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    let cut = [
        out.find(CANARY_MARK),
        out.find(PASSWORD_MARK),
        out.find(char::is_control),
    ]
    .into_iter()
    .flatten()
    .min();
    if let Some(cut) = cut {
        out.truncate(cut);
        while out.ends_with(|c: char| !c.is_whitespace()) {
            out.pop();
        }
    }
    let plain = |word: &&str| {
        let word = word.trim_end_matches([':', ',', ';', '.', '?']);
        matches!(word, "\"…\"" | "`…`" | "FILE")
            || (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()))
    };
    let words: Vec<&str> = out
        .split_whitespace()
        .take_while(plain)
        .take(WORDS)
        .collect();
    words.join(" ")
}

/// How many lines YAML sees: CR LF, CR and LF each end one.
fn yaml_lines(bytes: &[u8]) -> usize {
    let mut lines = 1;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                lines += 1;
                i += 1;
            }
            b'\r' | b'\n' => lines += 1,
            _ => {}
        }
        i += 1;
    }
    lines
}

/// What the checks know of the case.
struct Ctx<'a> {
    file: &'a str,
    lines: usize,
}

fn check_error(e: &ConfigError, stage: &str, ctx: &Ctx, out: &mut Vec<Failure>) {
    let kind = e.kind().as_str();
    let shown = e.to_string();
    let debug = format!("{e:?}");
    let shape = template(e.message(), ctx.file);
    match e.location() {
        None => out.push(failure(
            format!("{stage} error without a location ({kind}): {shape}"),
            &shown,
        )),
        Some(loc) => {
            if loc.file != ctx.file {
                out.push(failure(
                    format!("{stage} error location names another file ({kind})"),
                    &shown,
                ));
            }
            if loc.line == 0 || loc.col == 0 || loc.line > ctx.lines + 1 {
                out.push(failure(
                    format!("{stage} error location outside the text ({kind}): {shape}"),
                    &format!("{shown} (the text has {} lines)", ctx.lines),
                ));
            }
        }
    }
    if shown.contains(CANARY_MARK) || debug.contains(CANARY_MARK) {
        out.push(failure(
            format!("canary in a {stage} error ({kind}): {shape}"),
            &shown,
        ));
    }
    if shown.contains(PASSWORD_MARK) || debug.contains(PASSWORD_MARK) {
        out.push(failure(
            format!("password in a {stage} error ({kind}): {shape}"),
            &shown,
        ));
    }
    if shown.chars().any(char::is_control) {
        out.push(failure(
            format!("control character in a {stage} error ({kind}): {shape}"),
            &shown,
        ));
    }
}

fn check_plan(p: &ConnectPlan, ctx: &Ctx, out: &mut Vec<Failure>) {
    for w in &p.warnings {
        let shown = w.to_string();
        let shape = template(&w.message, ctx.file);
        if w.location.file != ctx.file
            || w.location.line == 0
            || w.location.col == 0
            || w.location.line > ctx.lines + 1
        {
            out.push(failure(
                format!("warning location not in this text: {shape}"),
                &shown,
            ));
        }
        if shown.contains(CANARY_MARK) {
            out.push(failure(format!("canary in a warning: {shape}"), &shown));
        }
        if shown.contains(PASSWORD_MARK) {
            out.push(failure(format!("password in a warning: {shape}"), &shown));
        }
        if shown.chars().any(char::is_control) {
            out.push(failure(
                format!("control character in a warning: {shape}"),
                &shown,
            ));
        }
    }
    let json = p.to_json();
    for (what, text) in [
        ("Debug", format!("{p:?}")),
        ("JSON", json.to_string()),
        ("conninfo", p.conninfo()),
        ("uri", p.uri()),
    ] {
        if text.contains(PASSWORD_MARK) {
            out.push(failure(format!("password in the plan's {what}"), &text));
        }
    }
    match serde_json::to_string_pretty(&json) {
        Err(e) => out.push(failure(
            "plan JSON does not serialize".into(),
            &e.to_string(),
        )),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(back) if back == json => {}
            Ok(_) => out.push(failure(
                "plan JSON does not parse back to itself".into(),
                &text,
            )),
            Err(e) => out.push(failure(
                "plan JSON does not parse".into(),
                &format!("{e}: {text}"),
            )),
        },
    }
}

/// `check` and `plan` in-process: load the file, plan, check everything shown.
fn examine(path: &str, env: &dyn Environment, lines: usize) -> (String, Vec<Failure>) {
    let ctx = Ctx { file: path, lines };
    let mut out = Vec::new();
    let label = match load_file(path, env) {
        Err(e) => {
            check_error(&e, "load", &ctx, &mut out);
            format!("load error: {}", e.kind().as_str())
        }
        Ok(config) => {
            let debug = format!("{config:?}");
            if debug.contains(PASSWORD_MARK) {
                out.push(failure("password in the config's Debug".into(), &debug));
            }
            match plan(&config, env) {
                Err(e) => {
                    check_error(&e, "plan", &ctx, &mut out);
                    format!("plan error: {}", e.kind().as_str())
                }
                Ok(p) => {
                    check_plan(&p, &ctx, &mut out);
                    "ok".into()
                }
            }
        }
    };
    (label, out)
}

/// The last panic on the worker thread: where, and what it said.
static PANIC_NOTE: Mutex<Option<(String, String)>> = Mutex::new(None);

/// Panics on the worker thread are recorded (and reported as a failure class) instead of
/// printed once per case; every other thread keeps the default report.
fn install_panic_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if thread::current().name() == Some(WORKER) {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut note) = PANIC_NOTE.lock() {
                *note = Some((at, message));
            }
        } else {
            previous(info);
        }
    }));
}

/// [`examine`] on `bytes` written to `path`, with panics caught; also the time it took.
fn examine_guarded(
    path: &Path,
    bytes: &[u8],
    env: &dyn Environment,
) -> (String, Vec<Failure>, Duration) {
    std::fs::write(path, bytes).expect("the case file is writable");
    let name = path.to_str().expect("a UTF-8 work directory");
    let lines = yaml_lines(bytes);
    let start = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| examine(name, env, lines)));
    let elapsed = start.elapsed();
    match result {
        Ok((label, failures)) => (label, failures, elapsed),
        Err(_) => {
            let (at, message) = PANIC_NOTE
                .lock()
                .ok()
                .and_then(|mut n| n.take())
                .unwrap_or_default();
            let class = format!("panic at {at}: {}", template(&message, name));
            ("panic".into(), vec![failure(class, &message)], elapsed)
        }
    }
}

/// A binary run: exit code (`None`: killed by a signal), stdout, stderr.
struct BinRun {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_binary(
    args: &[&str],
    env: &BTreeMap<String, String>,
    budget: Duration,
) -> Result<BinRun, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tea-pgcloud"))
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the binary: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
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
    let deadline = Instant::now() + budget;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{}` ran over its budget of {budget:?}",
                    args.join(" ")
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for the binary: {e}")),
        }
    };
    let text = |h: thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(BinRun {
        code: status.code(),
        signal: status.signal(),
        stdout: text(stdout),
        stderr: text(stderr),
    })
}

/// The plan text's rows, in order (`tea-pgcloud plan`).
const PLAN_ROWS: &[&str] = &[
    "provider",
    "hosts",
    "dbname",
    "user",
    "user source",
    "password source",
    "sslmode",
    "sslrootcert",
    "tls",
    "conninfo",
    "uri",
];

/// `check`, `plan` and `plan --json` through the binary, against the library with the
/// same variables and the real file system.
fn check_binary(path: &Path, env: &BTreeMap<String, String>, budget: Duration) -> Vec<Failure> {
    let name = path.to_str().expect("a UTF-8 work directory");
    let process_env = ClearedProcessEnv(env);
    let expected = load_file(name, &process_env).and_then(|c| plan(&c, &process_env));
    let expected_stderr = match &expected {
        Ok(p) => p
            .warnings
            .iter()
            .map(|w| format!("{w}\n"))
            .collect::<String>(),
        Err(e) => format!("{e}\n"),
    };
    let mut out = Vec::new();
    for args in [
        vec!["check", name],
        vec!["plan", name],
        vec!["plan", "--json", name],
    ] {
        let command = args[..args.len() - 1].join(" ");
        let run = match run_binary(&args, env, budget) {
            Ok(run) => run,
            Err(e) => {
                out.push(failure(format!("binary `{command}` did not finish"), &e));
                continue;
            }
        };
        let everything = format!("{}{}", run.stdout, run.stderr);
        if everything.contains(PASSWORD_MARK) {
            out.push(failure(
                format!("password in the output of binary `{command}`"),
                &everything,
            ));
        }
        match (run.code, &expected) {
            (Some(0), Ok(_)) | (Some(1), Err(_)) => {}
            (Some(code), _) => {
                out.push(failure(
                    format!(
                        "binary `{command}` exits {code}, the library says {}",
                        if expected.is_ok() { "ok" } else { "error" }
                    ),
                    &run.stderr,
                ));
                continue;
            }
            (None, _) => {
                out.push(failure(
                    format!(
                        "binary `{command}` killed by signal {}",
                        run.signal.unwrap_or(0)
                    ),
                    &run.stderr,
                ));
                continue;
            }
        }
        if run.stderr != expected_stderr {
            out.push(failure(
                format!("binary `{command}` stderr is not the library's errors and warnings"),
                &format!("binary: {:?}\nlibrary: {expected_stderr:?}", run.stderr),
            ));
        }
        let Ok(p) = &expected else { continue };
        match args[1] {
            "--json" => match serde_json::from_str::<Value>(&run.stdout) {
                Ok(v) if v == p.to_json() => {}
                Ok(_) => out.push(failure(
                    "binary `plan --json` is not the library's plan JSON".into(),
                    &run.stdout,
                )),
                Err(e) => out.push(failure(
                    "binary `plan --json` is not JSON".into(),
                    &format!("{e}: {}", run.stdout),
                )),
            },
            _ if args[0] == "check" => {
                if !run
                    .stdout
                    .starts_with(&format!("{name}: ok: provider {},", p.kind.as_str()))
                {
                    out.push(failure(
                        "binary `check` does not say ok".into(),
                        &run.stdout,
                    ));
                }
            }
            _ => {
                let mut rest = PLAN_ROWS.iter();
                let mut want = rest.next();
                for line in run.stdout.lines() {
                    if let Some(label) = want
                        && line.starts_with(&format!("{label:<16} "))
                    {
                        want = rest.next();
                    }
                }
                if let Some(label) = want {
                    out.push(failure(
                        format!("binary `plan` text lacks the row `{label}`"),
                        &run.stdout,
                    ));
                }
            }
        }
    }
    out
}

/// Where the run writes its case files, breadcrumbs, reproductions and report.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tea-fuzz");
    std::fs::create_dir_all(&dir).expect("a work directory");
    dir
}

/// A case that failed, kept to be reported.
#[derive(Debug, Clone)]
struct Example {
    index: usize,
    desc: String,
    bytes: Vec<u8>,
    env: BTreeMap<String, String>,
    files: Vec<String>,
    detail: String,
    elapsed: Duration,
    in_process: bool,
}

/// Every failure of one class.
#[derive(Debug, Clone)]
struct ClassRecord {
    count: usize,
    first: usize,
    smallest: Example,
    shrunk: Option<(Vec<u8>, BTreeMap<String, String>, String)>,
    shrink_note: String,
}

/// What the worker reports at the end.
#[derive(Debug, Default)]
struct Summary {
    planned: usize,
    run: usize,
    outcomes: BTreeMap<String, usize>,
    times: Vec<Duration>,
    /// The slowest cases, slowest first.
    slowest: Vec<(Duration, usize, String)>,
    binary_cases: usize,
    binary_skipped_nul: usize,
    binary_time: Duration,
    classes: BTreeMap<String, ClassRecord>,
    stopped: Option<String>,
    only_case: Option<String>,
    sweep_run: usize,
    sweep_len: usize,
}

enum Msg {
    Start { index: usize, desc: String },
    Done(Box<Summary>),
}

fn run_cases(
    settings: &Settings,
    inputs: &Inputs,
    dir: &Path,
    tx: &Sender<Msg>,
    stop: &AtomicBool,
) -> Summary {
    let case_path = dir.join("case.yaml");
    let mut summary = Summary {
        planned: settings.indices().len(),
        ..Summary::default()
    };
    for index in settings.indices() {
        if stop.load(Ordering::SeqCst) {
            summary.stopped = Some(format!(
                "stopped at case {index}: the run is over its budget"
            ));
            break;
        }
        let case = generate(settings.seed, settings.max_depth, inputs, index);
        if inputs.sweep_item(index).is_some() {
            summary.sweep_run += 1;
        }
        let _ = tx.send(Msg::Start {
            index,
            desc: case.desc.clone(),
        });
        // A stack overflow kills the process before anything is reported: this says which case.
        let _ = std::fs::write(
            dir.join("current.txt"),
            format!(
                "case {index}: {}\nreproduce: {}\ntext: {} bytes in case.yaml\nenv: {:?}\n",
                case.desc,
                settings.reproduce(index),
                case.bytes.len(),
                case.env
            ),
        );
        let env = map_env(&case.env, &case.files);
        let (label, mut failures, elapsed) = examine_guarded(&case_path, &case.bytes, &env);
        let in_process = failures.len();
        if settings.through_binary(index) {
            if case.env.values().any(|v| v.contains('\0')) {
                // An OS limit: a variable's value cannot hold NUL.
                summary.binary_skipped_nul += 1;
            } else {
                let start = Instant::now();
                failures.extend(check_binary(&case_path, &case.env, settings.case_budget));
                summary.binary_time += start.elapsed();
                summary.binary_cases += 1;
            }
        }
        if settings.only.is_some() {
            summary.only_case = Some(format!(
                "case {index}: {}\noutcome: {label}\nenv: {:?}\ntext: {}\n",
                case.desc,
                case.env,
                shown_bytes(&case.bytes, 16_000)
            ));
        }
        summary.run += 1;
        *summary.outcomes.entry(label).or_default() += 1;
        summary.times.push(elapsed);
        if summary.slowest.len() < SLOWEST_SHOWN
            || summary.slowest.iter().any(|(t, _, _)| elapsed > *t)
        {
            summary.slowest.push((elapsed, index, case.desc.clone()));
            summary.slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
            summary.slowest.truncate(SLOWEST_SHOWN);
        }
        let failed = !failures.is_empty();
        for (n, f) in failures.into_iter().enumerate() {
            let example = Example {
                index,
                desc: case.desc.clone(),
                bytes: case.bytes.clone(),
                env: case.env.clone(),
                files: case.files.clone(),
                detail: f.detail,
                elapsed,
                in_process: n < in_process,
            };
            match summary.classes.get_mut(&f.class) {
                Some(record) => {
                    record.count += 1;
                    if example.bytes.len() < record.smallest.bytes.len() {
                        record.smallest = example;
                    }
                }
                None => {
                    summary.classes.insert(
                        f.class,
                        ClassRecord {
                            count: 1,
                            first: index,
                            smallest: example,
                            shrunk: None,
                            shrink_note: String::new(),
                        },
                    );
                }
            }
        }
        if failed && !settings.keep_going {
            summary.stopped = Some(format!(
                "stopped at the first failing case, {index} (TEA_FUZZ_KEEP_GOING=1 runs every case)"
            ));
            break;
        }
    }
    for (class, record) in &mut summary.classes {
        let _ = tx.send(Msg::Start {
            index: record.smallest.index,
            desc: format!("shrinking the reproduction of: {class}"),
        });
        shrink(class, record, dir, tx);
    }
    summary
}

/// Makes a class's smallest example smaller: drops lines, then bytes, then variables, as
/// long as the same class still fails.
fn shrink(class: &str, record: &mut ClassRecord, dir: &Path, tx: &Sender<Msg>) {
    let example = record.smallest.clone();
    if !example.in_process {
        record.shrink_note = "not shrunk (a binary-only failure)".into();
        return;
    }
    if example.bytes.len() > SHRINK_MAX_BYTES || example.elapsed > SHRINK_SLOW {
        record.shrink_note = format!(
            "not shrunk ({} bytes, {:?}): the generated case is the reproduction",
            example.bytes.len(),
            example.elapsed
        );
        return;
    }
    let path = dir.join("shrink.yaml");
    let started = Instant::now();
    let mut attempts = 0;
    let mut still_fails = |bytes: &[u8], env: &BTreeMap<String, String>| -> bool {
        attempts += 1;
        if attempts > SHRINK_ATTEMPTS || started.elapsed() > SHRINK_TIME {
            return false;
        }
        let _ = tx.send(Msg::Start {
            index: example.index,
            desc: format!("shrink attempt {attempts} for: {class}"),
        });
        let (_, failures, _) = examine_guarded(&path, bytes, &map_env(env, &example.files));
        // Classes hold no file name (see `template`): the same class at another path.
        failures.iter().any(|f| f.class == class)
    };
    let mut bytes = example.bytes.clone();
    let mut env = example.env.clone();
    if !still_fails(&bytes, &env) {
        record.shrink_note = "not shrunk (does not fail again alone)".into();
        return;
    }
    // Lines, in halving chunks.
    let mut chunk = split_lines(&bytes).len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        loop {
            let lines = split_lines(&bytes);
            if i >= lines.len() || lines.len() <= 1 {
                break;
            }
            let mut fewer = lines.clone();
            fewer.drain(i..(i + chunk).min(lines.len()));
            let candidate = fewer.join(&b"\n"[..]);
            if still_fails(&candidate, &env) {
                bytes = candidate;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    // Bytes, in halving chunks.
    let mut chunk = bytes.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < bytes.len() {
            let mut candidate = bytes.clone();
            candidate.drain(i..(i + chunk).min(bytes.len()));
            if still_fails(&candidate, &env) {
                bytes = candidate;
            } else {
                i += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for name in env.keys().cloned().collect::<Vec<_>>() {
        let mut fewer = env.clone();
        fewer.remove(&name);
        if still_fails(&bytes, &fewer) {
            env = fewer;
        }
    }
    record.shrink_note = format!("shrunk in {attempts} attempts, {:?}", started.elapsed());
    let detail = {
        let (_, failures, _) = examine_guarded(&path, &bytes, &map_env(&env, &example.files));
        failures
            .into_iter()
            .find(|f| f.class == class)
            .map(|f| f.detail)
            .unwrap_or_default()
    };
    record.shrunk = Some((bytes, env, detail));
}

/// Bytes as a Rust string literal (escaped), cut at `max` characters.
fn shown_bytes(bytes: &[u8], max: usize) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("b\"{}\"", bytes.escape_ascii()),
    };
    if text.chars().count() > max {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}… ({} bytes in all)", bytes.len())
    } else {
        text
    }
}

fn render(
    settings: &Settings,
    summary: &Summary,
    budget_failures: &[String],
    dir: &Path,
) -> String {
    let mut r = String::new();
    let push = |r: &mut String, s: String| {
        r.push_str(&s);
        r.push('\n');
    };
    push(
        &mut r,
        format!(
            "tea-fuzz: seed {:#x}, cases run {} of {}, keep-going {}, depth mutations {}",
            settings.seed,
            summary.run,
            summary.planned,
            if settings.keep_going { "on" } else { "off" },
            if settings.max_depth == 0 {
                "OFF (TEA_FUZZ_MAX_DEPTH=0)".to_string()
            } else {
                format!("up to {}", settings.max_depth)
            },
        ),
    );
    push(
        &mut r,
        format!(
            "sweep (each written value, key and connection-string form with one ${{VAR}}, on even cases): {} of {}",
            summary.sweep_run, summary.sweep_len
        ),
    );
    if let Some(stopped) = &summary.stopped {
        push(&mut r, format!("  {stopped}"));
    }
    push(&mut r, "outcomes:".into());
    for (label, n) in &summary.outcomes {
        push(&mut r, format!("  {label:<28} {n}"));
    }
    let mut times = summary.times.clone();
    times.sort();
    if !times.is_empty() {
        let median = times[times.len() / 2];
        let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
        let total: Duration = times.iter().sum();
        push(
            &mut r,
            format!(
                "time per case (in-process load + plan + checks): median {median:?}, p99 {p99:?}, max {:?}, total {total:?}",
                times[times.len() - 1]
            ),
        );
    }
    for (n, (t, index, desc)) in summary.slowest.iter().enumerate() {
        let label = if n == 0 {
            "slowest case:"
        } else {
            "          then:"
        };
        push(
            &mut r,
            format!(
                "{label} {index} ({t:?}): {}",
                desc.chars().take(300).collect::<String>()
            ),
        );
    }
    push(
        &mut r,
        format!(
            "binary: {} case(s) x 3 commands in {:?}; {} sampled case(s) not run (a variable holds NUL, which no process environment can)",
            summary.binary_cases, summary.binary_time, summary.binary_skipped_nul
        ),
    );
    if let Some(only) = &summary.only_case {
        push(&mut r, only.clone());
    }
    for failure in budget_failures {
        push(&mut r, format!("BUDGET: {failure}"));
    }
    push(
        &mut r,
        format!("failure classes: {}", summary.classes.len()),
    );
    for (n, (class, record)) in summary.classes.iter().enumerate() {
        let ex = &record.smallest;
        push(
            &mut r,
            format!(
                "\n[{}] {class}\n    {} case(s), first at case {}",
                n + 1,
                record.count,
                record.first
            ),
        );
        push(
            &mut r,
            format!(
                "    smallest: case {} ({} bytes): {}",
                ex.index,
                ex.bytes.len(),
                ex.desc
            ),
        );
        push(
            &mut r,
            format!("    reproduce: {}", settings.reproduce(ex.index)),
        );
        push(
            &mut r,
            format!(
                "    detail: {}",
                ex.detail.chars().take(600).collect::<String>()
            ),
        );
        let repro = dir.join(format!("repro-{}.yaml", n + 1));
        match &record.shrunk {
            Some((bytes, env, detail)) => {
                let _ = std::fs::write(&repro, bytes);
                push(
                    &mut r,
                    format!(
                        "    minimal ({}): {}",
                        record.shrink_note,
                        shown_bytes(bytes, 1200)
                    ),
                );
                let names = referenced(bytes);
                let env: Vec<String> = env
                    .iter()
                    .filter(|(k, _)| names.contains(*k) || k.as_str() == "POSTGRES_PASSWORD")
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                push(&mut r, format!("    env: {}", env.join(" ")));
                push(
                    &mut r,
                    format!(
                        "    gives: {}",
                        detail.chars().take(600).collect::<String>()
                    ),
                );
                push(&mut r, format!("    file: {}", repro.display()));
            }
            None => {
                let _ = std::fs::write(&repro, &ex.bytes);
                push(
                    &mut r,
                    format!(
                        "    {}; text: {}",
                        record.shrink_note,
                        shown_bytes(&ex.bytes, 1200)
                    ),
                );
                let names = referenced(&ex.bytes);
                let env: Vec<String> = ex
                    .env
                    .iter()
                    .filter(|(k, _)| names.contains(*k))
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                push(&mut r, format!("    env (referenced): {}", env.join(" ")));
                push(&mut r, format!("    file: {}", repro.display()));
            }
        }
    }
    r
}

#[test]
fn the_config_pipeline_survives_structured_fuzzing() {
    let settings = Settings::from_env();
    let inputs = Arc::new(Inputs::load());
    let dir = work_dir();
    install_panic_hook();
    let mut err = std::io::stderr();
    // Written to stderr directly, past the test harness's capture: a stack overflow kills the
    // process before the harness would show anything.
    let _ = writeln!(
        err,
        "tea-fuzz: seed {:#x}, {} case(s); if the process aborts, the case running is in {}",
        settings.seed,
        settings.indices().len(),
        dir.join("current.txt").display()
    );
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (settings, inputs, dir, stop) =
            (settings.clone(), inputs.clone(), dir.clone(), stop.clone());
        thread::Builder::new()
            .name(WORKER.into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let mut summary = run_cases(&settings, &inputs, &dir, &tx, &stop);
                summary.sweep_len = inputs.sweep.len();
                let _ = tx.send(Msg::Done(Box::new(summary)));
            })
            .expect("a worker thread")
    };
    let started = Instant::now();
    let mut current: Option<(usize, String, Instant)> = None;
    let mut flagged: Option<usize> = None;
    let mut budget_failures = Vec::new();
    let summary = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Start { index, desc }) => current = Some((index, desc, Instant::now())),
            Ok(Msg::Done(summary)) => break summary,
            Err(RecvTimeoutError::Timeout) => {
                if let Some((index, desc, since)) = &current {
                    let waited = since.elapsed();
                    if waited > settings.case_budget && flagged != Some(*index) {
                        let message = format!(
                            "case {index} ran over its budget of {:?}: {desc}\n    reproduce: {}",
                            settings.case_budget,
                            settings.reproduce(*index)
                        );
                        assert!(settings.keep_going, "{message}");
                        let _ = writeln!(err, "tea-fuzz: {message}");
                        budget_failures.push(message);
                        flagged = Some(*index);
                    }
                    // Keep-going waits for a slow case, but not past the run's budget.
                    assert!(
                        started.elapsed() <= settings.run_budget || waited <= settings.case_budget,
                        "the run is over its budget of {:?} and case {index} still runs after {waited:?}: {desc}\n    reproduce: {}",
                        settings.run_budget,
                        settings.reproduce(*index)
                    );
                }
                if started.elapsed() > settings.run_budget && !stop.swap(true, Ordering::SeqCst) {
                    let message = format!(
                        "the run is over its budget of {:?}{}",
                        settings.run_budget,
                        current
                            .as_ref()
                            .map(|(i, d, _)| format!(" at case {i}: {d}"))
                            .unwrap_or_default()
                    );
                    assert!(settings.keep_going, "{message}");
                    budget_failures.push(message);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let outcome = worker.join();
                panic!("the fuzz worker ended without a summary: {outcome:?}");
            }
        }
    };
    let report = render(&settings, &summary, &budget_failures, &dir);
    let _ = std::fs::write(dir.join("report.txt"), &report);
    let _ = writeln!(err, "{report}");
    assert!(summary.run > 0, "no case ran");
    assert!(
        summary.classes.is_empty() && budget_failures.is_empty(),
        "{} failure class(es), {} budget overrun(s); the report is above and in {}",
        summary.classes.len(),
        budget_failures.len(),
        dir.join("report.txt").display()
    );
}

// The oracle itself must be able to fail: these feed it what it must catch.

fn located(e: ConfigError) -> ConfigError {
    e.at_location(Some(tea_pgcloud::error::Location {
        file: "f.yaml".into(),
        line: 1,
        col: 1,
    }))
}

fn classes_of(e: &ConfigError) -> Vec<String> {
    let mut out = Vec::new();
    check_error(
        e,
        "load",
        &Ctx {
            file: "f.yaml",
            lines: 3,
        },
        &mut out,
    );
    out.into_iter().map(|f| f.class).collect()
}

#[test]
fn the_oracle_flags_an_error_without_a_location() {
    use tea_pgcloud::error::ConfigErrorKind;
    let classes = classes_of(&ConfigError::new(
        ConfigErrorKind::Io,
        "cannot read f.yaml: bad bytes",
    ));
    assert_eq!(
        classes,
        ["load error without a location (io): cannot read FILE:"]
    );
}

#[test]
fn the_oracle_flags_canaries_passwords_and_control_characters() {
    use tea_pgcloud::error::ConfigErrorKind;
    let e = located(ConfigError::new(
        ConfigErrorKind::InvalidValue,
        "invalid sslmode value: \"cAnArY\nFAKE.yaml:9:9: ok\" pAsSwOrD-4q?",
    ));
    let classes = classes_of(&e);
    // The error's Display escapes the newline itself (the crate's rule for every text
    // output), so only the canary and the password are left to flag. No public type can hand
    // the checker a raw control character any more; its control-character check stays as
    // the guard that the escaping is kept.
    assert_eq!(classes.len(), 2, "{classes:?}");
    assert!(
        classes[0].starts_with("canary in a load error (invalid-value)"),
        "{classes:?}"
    );
    assert!(
        classes[1].starts_with("password in a load error"),
        "{classes:?}"
    );
    assert!(
        e.to_string().contains("\\nFAKE.yaml"),
        "the newline is shown escaped: {e}"
    );
    let outside = ConfigError::new(ConfigErrorKind::Syntax, "x").at_location(Some(
        tea_pgcloud::error::Location {
            file: "other.yaml".into(),
            line: 9,
            col: 0,
        },
    ));
    assert_eq!(classes_of(&outside).len(), 2, "{:?}", classes_of(&outside));
}

#[test]
fn the_oracle_accepts_a_clean_located_error() {
    use tea_pgcloud::error::ConfigErrorKind;
    let e = located(
        ConfigError::new(ConfigErrorKind::UnknownKey, "unknown key `sslmdoe`").at_path("sslmdoe"),
    );
    assert_eq!(classes_of(&e), Vec::<String>::new());
}

#[test]
fn one_bug_gives_one_class_whatever_the_canary() {
    let file = "/tmp/tea-fuzz/case.yaml";
    let shapes = [
        "invalid sslmode value: \"cAnArY-9x!\" (one of disable, ...)",
        "invalid sslmode value: \"cAnArY'\"\" (one of disable, ...)",
        "invalid sslmode value: \"\x1b[31mred\" (one of disable, ...)",
    ]
    .map(|m| template(m, file));
    assert_eq!(shapes, ["invalid sslmode value:"; 3].map(String::from));
    assert_eq!(
        template("root certificate file \rcAnArY does not exist", file),
        template("root certificate file 5432\r does not exist", file)
    );
    assert_eq!(
        template("cannot read /tmp/tea-fuzz/case.yaml: bad", file),
        "cannot read FILE:"
    );
    assert_eq!(
        template("expected an integer from 1 to 65535", file),
        "expected an integer"
    );
}

#[test]
fn lines_are_counted_as_yaml_counts_them() {
    assert_eq!(yaml_lines(b""), 1);
    assert_eq!(yaml_lines(b"a\nb"), 2);
    assert_eq!(yaml_lines(b"a\r\nb\rc\n"), 4);
}

#[test]
fn cases_are_reproducible_from_seed_and_index() {
    let inputs = Inputs::load();
    for index in [0, 1, 2, 77, 19_999] {
        let a = generate(DEFAULT_SEED, 2000, &inputs, index);
        assert_eq!(a, generate(DEFAULT_SEED, 2000, &inputs, index));
        // Sweep cases (even, early) are the same text under every seed; random ones are not.
        let other = generate(DEFAULT_SEED ^ 1, 2000, &inputs, index);
        assert_eq!(
            inputs.sweep_item(index).is_some(),
            a.bytes == other.bytes,
            "case {index}"
        );
    }
}

#[test]
fn the_corpus_holds_every_fixture_and_every_vector_input() {
    let corpus = corpus();
    let files = vectors::load_dir(&manifest_dir().join("fixtures/vectors")).expect("vectors");
    let vector_cases: usize = files.iter().map(|f| f.cases.len()).sum();
    assert_eq!(
        corpus
            .iter()
            .filter(|s| s.name.starts_with("vectors/"))
            .count(),
        vector_cases
    );
    for dir in ["fixtures/examples", "fixtures/cloud"] {
        let on_disk = std::fs::read_dir(manifest_dir().join(dir))
            .expect("a fixtures directory")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            })
            .count();
        assert_eq!(
            corpus.iter().filter(|s| s.name.starts_with(dir)).count(),
            on_disk,
            "{dir}"
        );
    }
}

#[test]
fn the_sweep_puts_a_reference_in_every_key_and_every_written_value() {
    let inputs = Inputs::load();
    for key in CATALOG_KEYS {
        let written = format!("{}: ${{TEA_FUZZ_CANARY}}", key.name);
        assert!(
            inputs.sweep.iter().any(|s| s.text.contains(&written)),
            "{written}"
        );
    }
    for key in CREDENTIAL_KEYS {
        let written = format!("  {}: ${{TEA_FUZZ_CANARY}}", key.name);
        assert!(
            inputs.sweep.iter().any(|s| s.text.contains(&written)),
            "{written}"
        );
    }
    let values: usize = inputs
        .seeds
        .iter()
        .map(|s| sites(&s.text).iter().filter(|s| s.has_value).count())
        .sum();
    let from_seeds = inputs
        .sweep
        .iter()
        .filter(|s| s.name.contains(" | sweep "))
        .count();
    assert_eq!(from_seeds, values);
    assert!(
        DEFAULT_CASES as usize >= 2 * inputs.sweep.len(),
        "the default run covers the sweep"
    );
}
