//! `tea-pgcloud conformance` and `tea-pgcloud certs` (cargo feature `conformance`).

use std::io::{IsTerminal, Write};
use std::path::Path;

use tea_pgcloud::conformance::certs::CertFactory;
use tea_pgcloud::conformance::matrix::{self, Recording};

/// Runs the matrix and prints the table: exit 0 when every case agrees with libpq and with
/// the recording, 1 otherwise.
pub fn conformance(launcher: &str, json: Option<&Path>, record: bool) -> i32 {
    if launcher != "native" {
        eprintln!(
            "launcher `{launcher}`: only `native` exists in this build (docker comes with its issue)"
        );
        return 2;
    }
    let recording_path = matrix::recording_path();
    let recording_path = recording_path.as_path();
    let recording = match Recording::load(recording_path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let tty = std::io::stderr().is_terminal();
    let mut last_profile = String::new();
    let report = matrix::run_all(&recording, |done, total, result| {
        let profile = result.case.profile.name;
        if tty {
            let width = 40;
            let filled = done * width / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} {:<40}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                result.case.id()
            );
            let _ = std::io::stderr().flush();
        } else if profile != last_profile {
            eprintln!("[{done}/{total}] {profile}");
            last_profile = profile.to_string();
        }
    });
    if tty {
        eprintln!();
    }
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("conformance: {e}");
            return 1;
        }
    };
    print!("{report}");
    for r in report.disagreements() {
        println!(
            "DISAGREE {}: ours {} ({}), libpq {} ({})",
            r.case.id(),
            r.ours,
            r.ours_message.as_deref().unwrap_or("-"),
            r.libpq,
            r.libpq_message.as_deref().unwrap_or("-")
        );
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("{}: {e}", path.display());
            return 1;
        }
    }
    if record {
        if let Err(e) = report.recording().save(recording_path) {
            eprintln!("{e}");
            return 1;
        }
        println!("recorded libpq's outcomes in {}", recording_path.display());
        return i32::from(!report.disagreements().is_empty());
    }
    let drift = report.drift();
    for r in &drift {
        println!(
            "RECORDING {}: libpq now gives {}, the recording says {}",
            r.case.id(),
            r.libpq,
            r.recorded.map(|o| o.as_str()).unwrap_or("nothing")
        );
    }
    i32::from(!report.disagreements().is_empty() || !drift.is_empty())
}

/// Writes the development certificates.
pub fn certs(dir: &Path, client_cn: &str, force: bool) -> i32 {
    let result = CertFactory::new().and_then(|f| f.write_dev_set(dir, client_cn, force));
    match result {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            0
        }
        Err(e) => {
            eprintln!("certs: {e}");
            1
        }
    }
}
