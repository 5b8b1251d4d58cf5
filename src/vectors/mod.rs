//! Language-neutral test vectors: `fixtures/vectors/*.yaml` (input -> expected output), the
//! runner, and the JSON-lines adapter protocol through which other TEA ports run them.
//!
//! The specification other ports read is `fixtures/vectors/SPEC.md` (shipped with the
//! vectors, and written out by `tea-pgcloud vectors --export DIR`): the file format, every
//! kind's request and result, the error kinds and warning codes, the matching rules
//! ([`matching`]) and the protocol ([`adapter`]). The vector files are built into this library
//! ([`embedded`]), so the runner works from any directory.
//!
//! ```
//! use tea_pgcloud::vectors::{self, Builtin, Selection};
//! let files = vectors::embedded().unwrap();
//! let files = Selection { kinds: vec!["expand".into()], ..Selection::default() }
//!     .apply(files)
//!     .unwrap();
//! let report = vectors::run(&files, &mut Builtin, &[], |_| {});
//! assert!(report.passed() > 0 && report.failed() == 0 && report.error.is_none());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

pub mod adapter;
pub mod builtin;
pub mod matching;
pub mod report;

pub use adapter::{Adapter, DEFAULT_TIMEOUT, serve};
pub use builtin::{Builtin, canonical_token, run_case};
pub use matching::{Judgement, judge, matches};
pub use report::{KindCounts, Outcome, Report, Verdict, run};

/// The kinds of vector file (`SPEC.md` section 4).
pub const KINDS: &[&str] = &[
    "plan",
    "error",
    "conninfo",
    "expand",
    "connection-string",
    "credentials",
    "rds-token",
    "content-hash",
];

/// The specification, as shipped beside the vectors.
pub const SPEC: &str = include_str!("../../fixtures/vectors/SPEC.md");

/// The vector files built into this library: `(file name, text)`, sorted by name. A test keeps
/// this list equal to `fixtures/vectors/`.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "connection-string.yaml",
        include_str!("../../fixtures/vectors/connection-string.yaml"),
    ),
    (
        "conninfo.yaml",
        include_str!("../../fixtures/vectors/conninfo.yaml"),
    ),
    (
        "content-hash.yaml",
        include_str!("../../fixtures/vectors/content-hash.yaml"),
    ),
    (
        "credentials.yaml",
        include_str!("../../fixtures/vectors/credentials.yaml"),
    ),
    (
        "error-details.yaml",
        include_str!("../../fixtures/vectors/error-details.yaml"),
    ),
    (
        "error-providers.yaml",
        include_str!("../../fixtures/vectors/error-providers.yaml"),
    ),
    (
        "error-redaction.yaml",
        include_str!("../../fixtures/vectors/error-redaction.yaml"),
    ),
    (
        "error-unsupported.yaml",
        include_str!("../../fixtures/vectors/error-unsupported.yaml"),
    ),
    (
        "error-validation.yaml",
        include_str!("../../fixtures/vectors/error-validation.yaml"),
    ),
    (
        "expand.yaml",
        include_str!("../../fixtures/vectors/expand.yaml"),
    ),
    (
        "plan-aws.yaml",
        include_str!("../../fixtures/vectors/plan-aws.yaml"),
    ),
    (
        "plan-azure.yaml",
        include_str!("../../fixtures/vectors/plan-azure.yaml"),
    ),
    (
        "plan-connection-string.yaml",
        include_str!("../../fixtures/vectors/plan-connection-string.yaml"),
    ),
    (
        "plan-gcp.yaml",
        include_str!("../../fixtures/vectors/plan-gcp.yaml"),
    ),
    (
        "plan-libpq-details.yaml",
        include_str!("../../fixtures/vectors/plan-libpq-details.yaml"),
    ),
    (
        "plan-redaction.yaml",
        include_str!("../../fixtures/vectors/plan-redaction.yaml"),
    ),
    (
        "plan-self-hosted.yaml",
        include_str!("../../fixtures/vectors/plan-self-hosted.yaml"),
    ),
    (
        "plan-story-examples.yaml",
        include_str!("../../fixtures/vectors/plan-story-examples.yaml"),
    ),
    (
        "plan-tls.yaml",
        include_str!("../../fixtures/vectors/plan-tls.yaml"),
    ),
    (
        "rds-token.yaml",
        include_str!("../../fixtures/vectors/rds-token.yaml"),
    ),
];

/// One vector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    /// One of [`KINDS`].
    pub kind: String,
    /// What the file covers (free text).
    #[serde(default)]
    pub description: Option<String>,
    /// The cases.
    pub cases: Vec<Case>,
    /// Where it was read from (set by the loader; a bare file name for embedded files).
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
    /// The input: YAML text (`plan`, `error`, `credentials`), a connection string
    /// (`conninfo`), a string to expand (`expand`), or a mapping (`connection-string`,
    /// `rds-token`, `content-hash`).
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

    /// The line an adapter reads for this case (`SPEC.md` section 2).
    pub fn request(&self, id: &str, kind: &str) -> Value {
        json!({
            "id": id,
            "kind": kind,
            "env": self.env_strings(),
            "files": self.files,
            "input": self.input,
        })
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

    /// The id of one of its cases: `FILE-STEM::NAME`.
    pub fn id(&self, case: &Case) -> String {
        format!("{}::{}", self.stem(), case.name)
    }
}

/// Reads one vector file and checks its shape.
pub fn load_file(path: &Path) -> Result<VectorFile, String> {
    // As a configuration is read: bounded, and invalid UTF-8 located.
    let (text, name) =
        crate::config::read_source(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    parse_file(&text, &name, path)
}

/// Parses the text of a vector file named `name` (for messages) and checks its shape.
pub fn parse_file(text: &str, name: &str, path: &Path) -> Result<VectorFile, String> {
    let node = crate::yaml::parse(text, name).map_err(|e| e.to_string())?;
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
    let mut names = BTreeSet::new();
    for case in &file.cases {
        let at = format!("{name}: case `{}`", case.name);
        if !names.insert(case.name.as_str()) {
            return Err(format!("{at} appears twice"));
        }
        if !case.expect.is_object() {
            return Err(format!("{at}: expect must be a mapping"));
        }
        if file.kind == "error" && case.expect.get("error").is_none() {
            return Err(format!("{at}: an error case must expect `error`"));
        }
        check_expect(&case.expect).map_err(|e| format!("{at}: {e}"))?;
    }
    Ok(file)
}

/// The special keys of `expect` must be used as `SPEC.md` section 3 says, so that a typo
/// cannot turn a check into one that always passes.
fn check_expect(expect: &Value) -> Result<(), String> {
    match expect {
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "contains" | "wording" | "not_contains" | "like" if !value.is_string() => {
                        return Err(format!("`{key}` takes a string"));
                    }
                    "contains" | "wording" | "not_contains" if value.as_str() == Some("") => {
                        return Err(format!("`{key}` takes a non-empty string"));
                    }
                    "like" if map.len() != 1 => {
                        return Err("`like` stands alone in its mapping".into());
                    }
                    "warnings" => {
                        if let Some(items) = value.as_array()
                            && let Some(bad) =
                                items.iter().find(|i| matching::warning_code(i).is_none())
                        {
                            return Err(format!(
                                "a warning is expected by its code (a string or {{code: ...}}): {bad}"
                            ));
                        }
                    }
                    _ => check_expect(value)?,
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_expect),
        _ => Ok(()),
    }
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

/// The vector files built into this library.
pub fn embedded() -> Result<Vec<VectorFile>, String> {
    EMBEDDED
        .iter()
        .map(|(name, text)| parse_file(text, name, Path::new(name)))
        .collect()
}

/// Writes the embedded vector files and `SPEC.md` into `dir` (created if needed); returns the
/// paths written.
pub fn export(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in EMBEDDED.iter().chain([("SPEC.md", SPEC)].iter()) {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

/// Which cases to run: every list empty selects everything; otherwise a case must pass each
/// non-empty list.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Kinds (`plan`, `conninfo`, ...).
    pub kinds: Vec<String>,
    /// File stems (`plan-aws`) or names (`plan-aws.yaml`).
    pub files: Vec<String>,
    /// Patterns on the case id `FILE-STEM::NAME`, `*` standing for any run of characters.
    pub cases: Vec<String>,
}

impl Selection {
    /// Keeps the selected cases (and the files that still hold some). A kind or file that is
    /// not there, or a selection that leaves nothing, is an error.
    pub fn apply(&self, files: Vec<VectorFile>) -> Result<Vec<VectorFile>, String> {
        if let Some(kind) = self.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(format!(
                "--kind {kind}: not a kind (kinds: {})",
                KINDS.join(", ")
            ));
        }
        let stem = |f: &str| f.strip_suffix(".yaml").unwrap_or(f).to_string();
        if let Some(missing) = self
            .files
            .iter()
            .find(|f| !files.iter().any(|v| v.stem() == stem(f)))
        {
            return Err(format!("--file {missing}: no such vector file"));
        }
        let mut kept = Vec::new();
        for mut file in files {
            if !self.kinds.is_empty() && !self.kinds.contains(&file.kind) {
                continue;
            }
            if !self.files.is_empty() && !self.files.iter().any(|f| stem(f) == file.stem()) {
                continue;
            }
            let file_stem = file.stem();
            file.cases.retain(|case| {
                let id = format!("{file_stem}::{}", case.name);
                self.cases.is_empty() || self.cases.iter().any(|p| matching::glob(p, &id, |_| true))
            });
            if !file.cases.is_empty() {
                kept.push(file);
            }
        }
        if kept.is_empty() {
            return Err("the selection leaves no case to run".into());
        }
        Ok(kept)
    }
}

/// What a runner made of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The result object (`SPEC.md` section 4), without its `id`.
    Result(Value),
    /// The implementation does not cover this case or kind; why, if it said.
    Unsupported(String),
}

/// Something that runs cases: this crate, or another port through the adapter protocol.
pub trait Runner {
    /// Runs one case (`id` is `FILE-STEM::NAME`). `Err` means the run cannot go on (the
    /// adapter broke the protocol, hung or ended).
    fn run(&mut self, id: &str, kind: &str, case: &Case) -> Result<Answer, String>;

    /// Called once after the last case; `Err` when the implementation did not end as the
    /// protocol says (an extra line, a failing exit).
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_files_are_the_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("fixtures/vectors")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let names: Vec<String> = EMBEDDED.iter().map(|(n, _)| (*n).to_string()).collect();
        assert_eq!(names, on_disk);
        for (name, text) in EMBEDDED {
            let disk = std::fs::read_to_string(dir.join(name)).expect("readable");
            assert_eq!(*text, disk, "{name}");
        }
        let spec = std::fs::read_to_string(dir.join("SPEC.md")).expect("SPEC.md");
        assert_eq!(SPEC, spec);
        let files = embedded().expect("the embedded files load");
        assert_eq!(files.len(), EMBEDDED.len());
        assert!(files.iter().all(|f| KINDS.contains(&f.kind.as_str())));
    }

    #[test]
    fn every_kind_has_cases_and_is_in_the_spec() {
        let files = embedded().expect("loads");
        for kind in KINDS {
            assert!(
                files.iter().any(|f| f.kind == *kind && !f.cases.is_empty()),
                "no case of kind {kind}"
            );
            assert!(
                SPEC.contains(&format!("| `{kind}` |")),
                "{kind} not in SPEC.md's table"
            );
        }
    }

    #[test]
    fn selection_by_kind_file_and_pattern() {
        let all = embedded().expect("loads");
        let total: usize = all.iter().map(|f| f.cases.len()).sum();
        let pick = |s: Selection| s.apply(all.clone());
        let expand = pick(Selection {
            kinds: vec!["expand".into()],
            ..Selection::default()
        })
        .expect("expand cases");
        assert!(expand.iter().all(|f| f.kind == "expand"));
        let aws = pick(Selection {
            files: vec!["plan-aws".into()],
            cases: vec!["*iam*".into()],
            ..Selection::default()
        })
        .expect("plan-aws iam cases");
        let n: usize = aws.iter().map(|f| f.cases.len()).sum();
        assert!(n > 0 && n < total);
        assert!(aws.iter().all(|f| f.stem() == "plan-aws"));
        assert!(aws[0].cases.iter().all(|c| c.name.contains("iam")));
        assert!(
            pick(Selection {
                kinds: vec!["plans".into()],
                ..Selection::default()
            })
            .is_err()
        );
        assert!(
            pick(Selection {
                files: vec!["nope".into()],
                ..Selection::default()
            })
            .is_err()
        );
        assert!(
            pick(Selection {
                cases: vec!["no-such-case".into()],
                ..Selection::default()
            })
            .is_err()
        );
    }

    #[test]
    fn misused_special_keys_are_refused_at_load() {
        let text = |expect: &str| {
            format!("kind: expand\ncases:\n  - name: a\n    input: x\n    expect: {expect}\n")
        };
        let load = |expect: &str| parse_file(&text(expect), "t.yaml", Path::new("t.yaml"));
        assert!(load("{value: x}").is_ok());
        assert!(load("{error: {contains: 3}}").is_err());
        assert!(load("{error: {wording: ''}}").is_err());
        assert!(load("{value: {like: 'a*', other: 1}}").is_err());
        assert!(load("{plan: {warnings: [{path: sslmode}]}}").is_err());
        assert!(load("{plan: {warnings: [weak-tls, {code: root-cert-missing}]}}").is_ok());
    }

    #[test]
    fn export_writes_the_files_and_the_spec() {
        let dir = std::env::temp_dir().join(format!("tea-vectors-export-{}", std::process::id()));
        let written = export(&dir).expect("writes");
        assert_eq!(written.len(), EMBEDDED.len() + 1);
        let loaded = load_dir(&dir).expect("loads back");
        assert_eq!(loaded.len(), EMBEDDED.len());
        assert!(dir.join("SPEC.md").is_file());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
