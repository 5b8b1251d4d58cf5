//! `tea-pgcloud vectors`: runs the vector files through this crate or an adapter. Exit 0 when
//! every selected case passed, 1 when some failed, 2 when the run could not be made.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tea_pgcloud::vectors::{self, Adapter, Builtin, Runner, Selection, Verdict};

/// The options of `tea-pgcloud vectors`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A directory of vector files; by default the vectors built into this binary.
    dir: Option<PathBuf>,
    /// Run the cases through another implementation speaking the JSON-lines protocol.
    #[arg(long, value_name = "CMD", conflicts_with_all = ["serve", "export"])]
    adapter: Option<String>,
    /// Serve the adapter protocol for this implementation (JSON lines on stdin/stdout).
    #[arg(long, conflicts_with = "export")]
    serve: bool,
    /// Write the built-in vector files and SPEC.md into DIR, and run nothing.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Only these kinds (comma-separated or repeated).
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    kind: Vec<String>,
    /// Only these files (stem `plan-aws` or name `plan-aws.yaml`; comma-separated or repeated).
    #[arg(long, value_name = "FILE", value_delimiter = ',')]
    file: Vec<String>,
    /// Only cases whose id `FILE-STEM::NAME` matches (`*` is any run of characters; repeatable).
    #[arg(long = "case", value_name = "GLOB")]
    case: Vec<String>,
    /// Kinds the implementation claims: an unsupported case of these kinds fails.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    require: Vec<String>,
    /// Seconds an adapter has to answer one case.
    #[arg(long, value_name = "SECS", default_value_t = vectors::DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
    /// Write a JSON report (per case: id, kind, verdict, diff) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print every case as it is judged, not only the failures.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs the command.
pub fn run(args: &Args) -> i32 {
    if args.serve {
        let stdin = std::io::stdin().lock();
        return match vectors::serve(stdin, std::io::stdout().lock()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vectors --serve: {e}");
                1
            }
        };
    }
    if let Some(dir) = &args.export {
        return match vectors::export(dir) {
            Ok(paths) => {
                println!("wrote {} files to {}", paths.len(), dir.display());
                0
            }
            Err(e) => {
                eprintln!("vectors --export {}: {e}", dir.display());
                1
            }
        };
    }
    if let Some(kind) = args
        .require
        .iter()
        .find(|k| !vectors::KINDS.contains(&k.as_str()))
    {
        eprintln!(
            "--require {kind}: not a kind (kinds: {})",
            vectors::KINDS.join(", ")
        );
        return 2;
    }
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(t) if !t.is_zero() => t,
        _ => {
            eprintln!("--timeout {}: a positive number of seconds", args.timeout);
            return 2;
        }
    };
    let loaded = match &args.dir {
        Some(dir) => vectors::load_dir(dir),
        None => vectors::embedded(),
    };
    let selection = Selection {
        kinds: args.kind.clone(),
        files: args.file.clone(),
        cases: args.case.clone(),
    };
    let files = match loaded.and_then(|files| selection.apply(files)) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let mut runner: Box<dyn Runner> = match &args.adapter {
        Some(command) => match Adapter::spawn(command, timeout) {
            Ok(adapter) => Box::new(adapter),
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        },
        None => Box::new(Builtin),
    };
    let total: usize = files.iter().map(|f| f.cases.len()).sum();
    let source = args.dir.as_ref().map_or_else(
        || "built-in vectors".to_string(),
        |d| d.display().to_string(),
    );
    eprintln!(
        "running {total} case(s) of {} file(s) from {source} through {}",
        files.len(),
        args.adapter.as_deref().unwrap_or("this crate")
    );
    let verbose = args.verbose;
    let report = vectors::run(&files, runner.as_mut(), &args.require, |o| {
        if verbose {
            eprintln!("{:<12} {}", o.verdict.as_str(), o.id);
        } else if o.verdict == Verdict::Failed {
            eprintln!("failed       {}", o.id);
        }
    });
    drop(runner);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(report.text().as_bytes());
    if let Some(path) = &args.json {
        let text = match serde_json::to_string_pretty(&report.to_json(args.adapter.as_deref())) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("--json: {e}");
                return 2;
            }
        };
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("--json {}: {e}", path.display());
            return 2;
        }
    }
    report.exit_code()
}
