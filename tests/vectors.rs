//! Runs every case of `fixtures/vectors/*.yaml` as its own test, in-process; then the whole set
//! again through the adapter protocol (`tea-pgcloud vectors --serve`), so that the JSON-lines
//! contract other ports rely on is exercised end to end.

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};
use tea_pgcloud::vectors::{self, Adapter, Builtin, Runner};

fn main() {
    let args = Arguments::from_args();
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
        let stem = file.stem();
        for case in &file.cases {
            let kind = file.kind.clone();
            let case = case.clone();
            trials.push(
                Trial::test(format!("{stem}::{}", case.name), move || {
                    let actual = Builtin.run(&kind, &case)?;
                    vectors::matches(&case.expect, &actual)
                        .map_err(|e| Failed::from(format!("{e}\nresult: {actual:#}")))
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
        let mut adapter = Adapter::spawn(&format!("'{bin}' vectors --serve"))?;
        let outcomes = vectors::run_all(&files, &mut adapter);
        if outcomes.len() != count {
            return Err(format!("ran {} of {count} cases", outcomes.len()).into());
        }
        let failed: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| format!("{}: {e}", o.id)))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("\n").into())
        }
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
        _ => "other",
    }
}
