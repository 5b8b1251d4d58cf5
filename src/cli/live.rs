//! `tea-pgcloud conformance` and `tea-pgcloud certs` (cargo feature `conformance`).

use std::io::{IsTerminal, Write};
use std::path::Path;

use tea_pgcloud::conformance::certs::CertFactory;
use tea_pgcloud::conformance::client::{self, ClientRun, ClientSpec};
use tea_pgcloud::conformance::launcher::Launcher;
use tea_pgcloud::conformance::matrix::{self, Recording};
use tea_pgcloud::conformance::report::Report;
use tea_pgcloud::conformance::verdict;

/// The launcher from `--launcher` / `--image` / the environment; `Err(exit code)` when it
/// cannot be had (or when the run went through the Docker API shim in a child process).
fn pick_launcher(launcher: Option<&str>, image: Option<&str>) -> Result<Launcher, i32> {
    let launcher = match (launcher, image) {
        (Some(name), _) if name != "docker" && image.is_some() => {
            eprintln!("conformance: --image goes with --launcher docker, not {name}");
            return Err(2);
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
            return Err(2);
        }
    };
    #[cfg(feature = "docker")]
    if matches!(launcher, Launcher::Docker { .. })
        && let Some(code) = tea_pgcloud::conformance::docker_shim::rerun_through_shim()
    {
        return Err(code);
    }
    Ok(launcher)
}

/// Runs the matrix and prints the table: exit 0 when every case agrees with libpq and with
/// the recording, 1 otherwise.
pub fn conformance(
    launcher: Option<&str>,
    image: Option<&str>,
    json: Option<&Path>,
    record: bool,
) -> i32 {
    let launcher = match pick_launcher(launcher, image) {
        Ok(launcher) => launcher,
        Err(code) => return code,
    };
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

/// What `conformance --client` was asked to do besides running the clients.
pub struct ClientOptions<'a> {
    /// The `--client` arguments: folders with a `client.yaml`, or commands.
    pub clients: &'a [String],
    /// `--expectations`: for the one client given as a command.
    pub expectations: Option<&'a Path>,
    /// `--json FILE`.
    pub json: Option<&'a Path>,
    /// `--write-expectations FILE`.
    pub write_expectations: Option<&'a Path>,
    /// `--cases PATTERN`s: only the matching cases.
    pub select: &'a [String],
    /// `--html FILE`.
    pub html: Option<&'a Path>,
}

/// Runs the matrix through libpq and each client (the client protocol), prints each client's
/// verdicts: exit 0 when every client passes its expectations and libpq its recording, 1 when
/// not, 2 when the run could not start.
pub fn clients(launcher: Option<&str>, image: Option<&str>, options: &ClientOptions) -> i32 {
    if options.expectations.is_some() && options.clients.len() != 1 {
        eprintln!(
            "conformance: --expectations goes with exactly one --client; give several clients \
             as folders with their own expectations.yaml"
        );
        return 2;
    }
    let mut runs = Vec::new();
    for arg in options.clients {
        let run = ClientSpec::from_arg(arg, options.expectations).and_then(ClientRun::new);
        match run {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("conformance: --client {arg}: {e}");
                return 2;
            }
        }
    }
    let launcher = match pick_launcher(launcher, image) {
        Ok(launcher) => launcher,
        Err(code) => return code,
    };
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r.process.spec().name.as_str())
        .collect();
    eprintln!(
        "conformance: launcher {}; clients: {}",
        launcher.describe(),
        names.join(", ")
    );
    let recording = match Recording::load(&matrix::recording_path()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let info = client::run(
        &launcher,
        &recording,
        &mut runs,
        options.select,
        |done, total, id| {
            if tty {
                eprint!("\r[{done}/{total}] {id:<48}");
                let _ = std::io::stderr().flush();
            } else if done % 48 == 0 || done == total {
                eprintln!(
                    "[{done}/{total}] {:.0} s, last case {id}",
                    started.elapsed().as_secs_f64()
                );
            }
        },
    );
    if tty {
        eprintln!();
    }
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            eprintln!("conformance: {e}");
            return 2;
        }
    };
    let report = Report::new(&info, &runs);
    print!("{report}");
    let mut code = i32::from(!report.passes());
    let mut write = |path: &Path, text: String| {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("{}: {e}", path.display());
            code = 1;
        }
    };
    if let Some(path) = options.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        write(path, text + "\n");
    }
    if let Some(path) = options.html {
        write(path, report.to_html());
        println!("HTML report: {}", path.display());
    }
    if let Some(path) = options.write_expectations {
        for run in &runs {
            let name = &run.process.spec().name;
            let target = if runs.len() == 1 {
                path.to_path_buf()
            } else {
                let mut p = path.as_os_str().to_owned();
                p.push(format!(".{name}"));
                p.into()
            };
            write(&target, verdict::draft(name, &run.results));
            println!("draft expectations of {name}: {}", target.display());
        }
    }
    code
}

/// Serves the client protocol for this library on standard input and output.
pub fn serve_client() -> i32 {
    let stdin = std::io::stdin().lock();
    match client::serve(stdin, std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("conformance --serve-client: {e}");
            1
        }
    }
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
