//! `tea-pgcloud conformance` and `tea-pgcloud certs` (cargo feature `conformance`).

use std::io::{IsTerminal, Write};
use std::path::Path;

use tea_pgcloud::conformance::certs::CertFactory;
use tea_pgcloud::conformance::launcher::Launcher;
use tea_pgcloud::conformance::matrix::{self, Recording};

/// Runs the matrix and prints the table: exit 0 when every case agrees with libpq and with
/// the recording, 1 otherwise.
pub fn conformance(
    launcher: Option<&str>,
    image: Option<&str>,
    json: Option<&Path>,
    record: bool,
) -> i32 {
    let launcher = match (launcher, image) {
        (Some(name), _) if name != "docker" && image.is_some() => {
            eprintln!("conformance: --image goes with --launcher docker, not {name}");
            return 2;
        }
        (_, Some(image)) => Ok(Launcher::Docker {
            image: image.to_owned(),
        }),
        (Some(name), None) => Launcher::parse(name),
        (None, None) => Launcher::from_env(),
    };
    let launcher = match launcher {
        Ok(launcher) => launcher,
        Err(e) => {
            eprintln!("conformance: {e}");
            return 2;
        }
    };
    #[cfg(feature = "docker")]
    if matches!(launcher, Launcher::Docker { .. })
        && let Some(code) = tea_pgcloud::conformance::docker_shim::rerun_through_shim()
    {
        return code;
    }
    eprintln!("conformance: launcher {}", launcher.describe());
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
    let report = matrix::run_all(&launcher, &recording, |done, total, result| {
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

/// Serves the Docker API version shim until killed.
#[cfg(feature = "docker")]
pub fn docker_shim(socket: &Path) -> i32 {
    use tea_pgcloud::conformance::docker_shim;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("docker-shim: {e}");
            return 1;
        }
    };
    let engine = docker_shim::engine_socket();
    runtime.block_on(async {
        match docker_shim::bind(socket, &engine).await {
            Ok((shim, serve)) => {
                eprintln!(
                    "docker-shim: engine {} speaks API {}; requests for API {} are rewritten to it",
                    engine.display(),
                    shim.engine_api,
                    docker_shim::CLIENT_API
                );
                println!("export DOCKER_HOST={}", shim.docker_host());
                let _ = std::io::stdout().flush();
                serve.await;
                0
            }
            Err(e) => {
                eprintln!("docker-shim: {e}");
                1
            }
        }
    })
}
