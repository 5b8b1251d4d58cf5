//! Runs every case of `fixtures/vectors/*.yaml` as its own test, in-process; then the whole set
//! again through the adapter protocol (`tea-pgcloud vectors --serve`), so that the JSON-lines
//! contract other ports rely on is exercised end to end.

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};
use tea_pgcloud::vectors::{self, Adapter, Answer, Builtin, Runner, Verdict};

fn main() {
    let args = Arguments::from_args();
    // The files on disk: the embedded copy is held equal to them by a unit test.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors");
    let files = match vectors::load_dir(&dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut trials = Vec::new();
    for file in &files {
        for case in &file.cases {
            let kind = file.kind.clone();
            let id = file.id(case);
            let case = case.clone();
            trials.push(
                Trial::test(id.clone(), move || {
                    let actual = match Builtin.run(&id, &kind, &case)? {
                        Answer::Result(actual) => actual,
                        Answer::Unsupported(why) => {
                            return Err(format!("unsupported: {why}").into());
                        }
                    };
                    let judged = vectors::judge(&kind, &case.expect, &actual);
                    judged
                        .result
                        .map_err(|e| Failed::from(format!("{e}\nresult: {actual:#}")))?;
                    // This crate's own wording is what the `wording` checks were taken from.
                    if judged.notes.is_empty() {
                        Ok(())
                    } else {
                        Err(judged.notes.join("\n").into())
                    }
                })
                .with_kind(kind_label(&file.kind))
                .with_ignored_flag(!supported(&file.kind)),
            );
        }
    }
    // The adapter run covers every kind this build can run.
    let files: Vec<_> = files.into_iter().filter(|f| supported(&f.kind)).collect();
    let count = files.iter().map(|f| f.cases.len()).sum::<usize>();
    trials.push(Trial::test("adapter_protocol_runs_every_case", move || {
        let bin = env!("CARGO_BIN_EXE_tea-pgcloud");
        let mut adapter = Adapter::spawn(
            &format!("'{bin}' vectors --serve"),
            vectors::DEFAULT_TIMEOUT,
        )?;
        // Every kind is required: this crate may not answer `unsupported` for a kind it builds.
        let require: Vec<String> = vectors::KINDS.iter().map(|k| (*k).to_string()).collect();
        let report = vectors::run(&files, &mut adapter, &require, |_| {});
        if let Some(e) = &report.error {
            return Err(e.clone().into());
        }
        if report.outcomes.len() != count || report.passed() != count {
            let failed: Vec<String> = report
                .outcomes
                .iter()
                .filter(|o| o.verdict != Verdict::Passed)
                .map(|o| format!("{}: {:?}", o.id, o.diff))
                .collect();
            return Err(format!(
                "{} of {count} passed:\n{}",
                report.passed(),
                failed.join("\n")
            )
            .into());
        }
        Ok(())
    }));
    libtest_mimic::run(&args, trials).exit();
}

/// `rds-token` cases need the `aws` feature (the SigV4 signer); without it they are listed as
/// ignored rather than silently dropped.
fn supported(kind: &str) -> bool {
    kind != "rds-token" || cfg!(feature = "aws")
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "plan" => "plan",
        "error" => "error",
        "conninfo" => "conninfo",
        "expand" => "expand",
        "rds-token" => "rds-token",
        "content-hash" => "content-hash",
        "connection-string" => "connection-string",
        "credentials" => "credentials",
        _ => "other",
    }
}
