//! Running a selection of cases and reporting on it (`SPEC.md` section 7).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::matching::judge;
use super::{Answer, Runner, VectorFile};

/// What became of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// The reply matched `expect`.
    Passed,
    /// It did not, or it was unsupported in a kind named by `--require`.
    Failed,
    /// The implementation said it does not cover the case.
    Unsupported,
    /// The run stopped before the case (the adapter broke down).
    NotRun,
}

impl Verdict {
    /// `passed`, `failed`, `unsupported` or `not-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Unsupported => "unsupported",
            Self::NotRun => "not-run",
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `FILE-STEM::NAME`.
    pub id: String,
    /// The kind of its file.
    pub kind: String,
    /// What became of it.
    pub verdict: Verdict,
    /// Why it failed (what differed), or why it was unsupported.
    pub diff: Option<String>,
    /// Informative differences (`wording`).
    pub notes: Vec<String>,
}

/// Counts of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases answered `unsupported` (and not required).
    pub unsupported: usize,
    /// Cases the run did not reach.
    pub not_run: usize,
}

/// A whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every selected case, in order.
    pub outcomes: Vec<Outcome>,
    /// Why the run stopped early or ended badly (exit 2), if it did.
    pub error: Option<String>,
}

/// Runs every case of `files` through `runner`; an unsupported case of a kind in `require`
/// fails. After a fatal runner error the remaining cases are [`Verdict::NotRun`].
/// `progress` sees each outcome as it is made.
pub fn run(
    files: &[VectorFile],
    runner: &mut dyn Runner,
    require: &[String],
    mut progress: impl FnMut(&Outcome),
) -> Report {
    let mut report = Report::default();
    for file in files {
        for case in &file.cases {
            let id = file.id(case);
            let outcome = if report.error.is_some() {
                Outcome {
                    id,
                    kind: file.kind.clone(),
                    verdict: Verdict::NotRun,
                    diff: None,
                    notes: Vec::new(),
                }
            } else {
                match runner.run(&id, &file.kind, case) {
                    Ok(Answer::Result(reply)) => {
                        let judged = judge(&file.kind, &case.expect, &reply);
                        let (verdict, diff) = match judged.result {
                            Ok(()) => (Verdict::Passed, None),
                            Err(e) => (Verdict::Failed, Some(format!("{e}\n    result: {reply}"))),
                        };
                        Outcome {
                            id,
                            kind: file.kind.clone(),
                            verdict,
                            diff,
                            notes: judged.notes,
                        }
                    }
                    Ok(Answer::Unsupported(reason)) => {
                        let required = require.contains(&file.kind);
                        let reason = if reason.is_empty() {
                            "no reason given".to_string()
                        } else {
                            reason
                        };
                        Outcome {
                            id,
                            kind: file.kind.clone(),
                            verdict: if required {
                                Verdict::Failed
                            } else {
                                Verdict::Unsupported
                            },
                            diff: Some(if required {
                                format!("unsupported ({reason}), but --require names {}", file.kind)
                            } else {
                                reason
                            }),
                            notes: Vec::new(),
                        }
                    }
                    Err(fatal) => {
                        report.error = Some(fatal.clone());
                        Outcome {
                            id,
                            kind: file.kind.clone(),
                            verdict: Verdict::NotRun,
                            diff: Some(fatal),
                            notes: Vec::new(),
                        }
                    }
                }
            };
            progress(&outcome);
            report.outcomes.push(outcome);
        }
    }
    if report.error.is_none()
        && let Err(e) = runner.finish()
    {
        report.error = Some(e);
    }
    report
}

impl Report {
    fn count(&self, verdict: Verdict) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.verdict == verdict)
            .count()
    }

    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.count(Verdict::Passed)
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.count(Verdict::Failed)
    }

    /// Cases answered unsupported (not required).
    pub fn unsupported(&self) -> usize {
        self.count(Verdict::Unsupported)
    }

    /// Cases not reached.
    pub fn not_run(&self) -> usize {
        self.count(Verdict::NotRun)
    }

    /// Counts per kind, kinds in the order they were run.
    pub fn by_kind(&self) -> Vec<(String, KindCounts)> {
        let mut order: Vec<String> = Vec::new();
        let mut counts: BTreeMap<String, KindCounts> = BTreeMap::new();
        for o in &self.outcomes {
            if !order.contains(&o.kind) {
                order.push(o.kind.clone());
            }
            let c = counts.entry(o.kind.clone()).or_default();
            match o.verdict {
                Verdict::Passed => c.passed += 1,
                Verdict::Failed => c.failed += 1,
                Verdict::Unsupported => c.unsupported += 1,
                Verdict::NotRun => c.not_run += 1,
            }
        }
        order
            .into_iter()
            .map(|k| {
                let c = counts.get(&k).copied().unwrap_or_default();
                (k, c)
            })
            .collect()
    }

    /// The process exit code: 2 when the run could not be made, 1 when a case failed, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.error.is_some() {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }

    /// The text report: each failure, the informative notes, a table per kind and a total.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for o in self
            .outcomes
            .iter()
            .filter(|o| o.verdict == Verdict::Failed)
        {
            let _ = writeln!(out, "FAIL {}: {}", o.id, o.diff.as_deref().unwrap_or(""));
        }
        let notes: usize = self.outcomes.iter().map(|o| o.notes.len()).sum();
        if notes > 0 {
            let _ = writeln!(
                out,
                "{notes} informative difference(s) in wording (never failing):"
            );
            for o in &self.outcomes {
                for n in &o.notes {
                    let _ = writeln!(out, "  note {}: {n}", o.id);
                }
            }
        }
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>7} {:>12} {:>8}",
            "kind", "passed", "failed", "unsupported", "not-run"
        );
        for (kind, c) in self.by_kind() {
            let _ = writeln!(
                out,
                "{kind:<18} {:>7} {:>7} {:>12} {:>8}",
                c.passed, c.failed, c.unsupported, c.not_run
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "the run stopped: {e}");
        }
        let _ = write!(out, "{} passed, {} failed", self.passed(), self.failed());
        if self.unsupported() > 0 {
            let _ = write!(out, ", {} unsupported", self.unsupported());
        }
        if self.not_run() > 0 {
            let _ = write!(out, ", {} not run", self.not_run());
        }
        out.push('\n');
        out
    }

    /// The JSON report of `SPEC.md` section 7; `adapter` is the command, `null` for this
    /// crate.
    pub fn to_json(&self, adapter: Option<&str>) -> Value {
        let kinds: serde_json::Map<String, Value> = self
            .by_kind()
            .into_iter()
            .map(|(k, c)| {
                (
                    k,
                    json!({"passed": c.passed, "failed": c.failed, "unsupported": c.unsupported, "not_run": c.not_run}),
                )
            })
            .collect();
        json!({
            "adapter": adapter,
            "passed": self.passed(),
            "failed": self.failed(),
            "unsupported": self.unsupported(),
            "not_run": self.not_run(),
            "error": self.error,
            "kinds": kinds,
            "cases": self.outcomes.iter().map(|o| json!({
                "id": o.id,
                "kind": o.kind,
                "verdict": o.verdict.as_str(),
                "diff": o.diff,
                "notes": o.notes,
            })).collect::<Vec<_>>(),
        })
    }
}
