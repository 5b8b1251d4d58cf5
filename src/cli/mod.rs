//! Command-line front end. Exit codes: 0 success, 1 invalid input or failed cases, 2 usage.

use std::io::Write;
#[cfg(feature = "conformance")]
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use tea_pgcloud::config::load_file;
use tea_pgcloud::env::ProcessEnv;
use tea_pgcloud::plan::ConnectPlan;
use tea_pgcloud::provider::plan;
use tea_pgcloud::text::Escaped;

mod catalog;
#[cfg(feature = "conformance")]
mod live;
mod ping;
mod vectors;

/// Connects The Edge Agent's LTM catalog to PostgreSQL on GCP, AWS, Azure or your own server.
#[derive(Debug, Parser)]
#[command(name = "tea-pgcloud", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load, expand and validate a catalog; print warnings (e.g. TLS weaker than verify-full).
    Check {
        /// A TEA agent YAML (catalog at settings.ltm.catalog) or a bare catalog; `-` for stdin.
        file: String,
    },
    /// Print the connection plan, offline: never fetches or prints a secret.
    Plan {
        /// A TEA agent YAML or a bare catalog; `-` for stdin.
        file: String,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resolve credentials, connect as the plan says, and report (TLS, timings, error class).
    Ping {
        /// A TEA agent YAML or a bare catalog; `-` for stdin.
        file: String,
        /// Print the report as JSON (DESIGN.md "Ping JSON").
        #[arg(long)]
        json: bool,
        /// Also show the resolved user name (which may come from a secret). The password is
        /// never shown.
        #[arg(long)]
        reveal: bool,
    },
    /// Run the live TLS matrix: every case through this library and through libpq (psql), or,
    /// with --client, through other PostgreSQL clients (conformance/clients/PROTOCOL.md).
    #[cfg(feature = "conformance")]
    Conformance {
        /// How to run PostgreSQL: `native` (the machine's server binaries), `docker` (a container
        /// through testcontainers; cargo feature `docker`) or `auto` (native when the binaries
        /// exist, else docker). Default: `TEA_PG_LAUNCHER`, else `auto`.
        #[arg(long)]
        launcher: Option<String>,
        /// The image for the docker launcher (`name:tag`); default `TEA_PG_IMAGE`, else
        /// tea-pgcloud/postgres:17 when the engine holds it, else postgres:17-alpine.
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Also write the JSON report to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Rewrite the recording of libpq's outcomes (fixtures/conformance/tls-matrix.json).
        #[arg(long, conflicts_with_all = ["client", "serve_client"])]
        record: bool,
        /// Run the matrix through this client instead of this library: a folder holding a
        /// `client.yaml` (e.g. conformance/clients/asyncpg), or a command speaking the client
        /// protocol. Repeat for several clients; they share the servers.
        #[arg(long, value_name = "DIR|CMD")]
        client: Vec<String>,
        /// The expectations file of the one --client given as a command (default: the folder's
        /// expectations.yaml, or one beside the first file the command names).
        #[arg(long, value_name = "FILE", requires = "client")]
        expectations: Option<PathBuf>,
        /// Write each client's deviations in this run as a draft expectations file (with one
        /// client: FILE; with several: FILE.<name>).
        #[arg(long, value_name = "FILE", requires = "client")]
        write_expectations: Option<PathBuf>,
        /// Only the cases whose id matches one of these patterns (`*` within a part, e.g.
        /// `tls-on/verify-*/*/*`); repeat for several.
        #[arg(long = "cases", value_name = "PATTERN", requires = "client")]
        select: Vec<String>,
        /// Also write the static HTML report (a heat map per client) to this file.
        #[arg(long, value_name = "FILE", requires = "client")]
        html: Option<PathBuf>,
        /// Serve the client protocol for this library (JSON lines on stdin/stdout), as the
        /// `tea-pgcloud` client of the kit does.
        #[arg(long, conflicts_with_all = ["client", "launcher", "image", "json"])]
        serve_client: bool,
    },
    /// Serve a Docker API version shim in front of an engine older than testcontainers' API
    /// (1.52): export the DOCKER_HOST it prints. Runs until killed.
    #[cfg(feature = "docker")]
    DockerShim {
        /// The unix socket to listen on.
        #[arg(long, default_value = "/tmp/tea-docker.sock")]
        socket: PathBuf,
    },
    /// Write a development CA, a server certificate (localhost, 127.0.0.1) and a client
    /// certificate into DIR.
    #[cfg(feature = "conformance")]
    Certs {
        /// Where to write them.
        dir: PathBuf,
        /// The client certificate's common name (the database user for `cert` auth).
        #[arg(long, default_value = "tea")]
        client_cn: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Resolve the credentials and say where each value came from; the password only with
    /// --reveal.
    Resolve {
        /// A TEA agent YAML or a bare catalog; `-` for stdin.
        file: String,
        /// Print the password too.
        #[arg(long)]
        reveal: bool,
    },
    /// Operate on the LTM catalog: `migrate` creates or upgrades the schema, `stats` reports
    /// entries, bytes, snapshots and the schema version.
    Catalog {
        /// A TEA agent YAML or a bare catalog; `-` for stdin.
        file: String,
        /// What to do.
        #[arg(value_enum)]
        action: catalog::Action,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the language-neutral vector files (fixtures/vectors/SPEC.md), through this crate
    /// or through another port's adapter.
    Vectors(vectors::Args),
}

/// Runs the command line and returns the process exit code.
pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Plan { file, json } => show_plan(&file, json),
        Command::Ping { file, json, reveal } => ping::run(&file, json, reveal),
        Command::Resolve { file, reveal } => ping::resolve_command(&file, reveal),
        Command::Catalog { file, action, json } => catalog::run(&file, action, json),
        #[cfg(feature = "conformance")]
        Command::Conformance {
            launcher,
            image,
            json,
            record,
            client,
            expectations,
            write_expectations,
            select,
            html,
            serve_client,
        } => {
            if serve_client {
                live::serve_client()
            } else if client.is_empty() {
                live::conformance(
                    launcher.as_deref(),
                    image.as_deref(),
                    json.as_deref(),
                    record,
                )
            } else {
                live::clients(
                    launcher.as_deref(),
                    image.as_deref(),
                    &live::ClientOptions {
                        clients: &client,
                        expectations: expectations.as_deref(),
                        json: json.as_deref(),
                        write_expectations: write_expectations.as_deref(),
                        select: &select,
                        html: html.as_deref(),
                    },
                )
            }
        }
        #[cfg(feature = "docker")]
        Command::DockerShim { socket } => live::docker_shim(&socket),
        #[cfg(feature = "conformance")]
        Command::Certs {
            dir,
            client_cn,
            force,
        } => live::certs(&dir, &client_cn, force),
        Command::Vectors(args) => vectors::run(&args),
    }
}

pub(crate) fn load_plan(file: &str) -> Result<ConnectPlan, i32> {
    let env = ProcessEnv;
    let result = load_file(file, &env).and_then(|config| plan(&config, &env));
    result.map_err(|e| {
        eprintln!("{e}");
        1
    })
}

fn check(file: &str) -> i32 {
    match load_plan(file) {
        Ok(plan) => {
            for warning in &plan.warnings {
                eprintln!("{warning}");
            }
            let name = if file == "-" { "<stdin>" } else { file };
            println!(
                "{}: ok: provider {}, {} host(s), tls {}, user from {}, password from {}",
                Escaped(name),
                plan.kind.as_str(),
                plan.hosts.len(),
                plan.tls,
                Escaped(&plan.user_source.to_string()),
                Escaped(&plan.password_source.to_string())
            );
            0
        }
        Err(code) => code,
    }
}

fn show_plan(file: &str, json: bool) -> i32 {
    let plan = match load_plan(file) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    for warning in &plan.warnings {
        eprintln!("{warning}");
    }
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_string_pretty(&plan.to_json())
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        let hosts: Vec<String> = plan
            .hosts
            .iter()
            .map(|h| format!("{}:{}", h.host, h.port))
            .collect();
        let rows = [
            ("provider", plan.kind.as_str().to_string()),
            ("hosts", hosts.join(", ")),
            (
                "dbname",
                plan.dbname
                    .clone()
                    .unwrap_or_else(|| "(libpq default)".into()),
            ),
            ("user", plan.user.clone().unwrap_or_else(|| "-".into())),
            ("user source", plan.user_source.to_string()),
            ("password source", plan.password_source.to_string()),
            ("sslmode", plan.sslmode.to_string()),
            (
                "sslrootcert",
                plan.sslrootcert.clone().unwrap_or_else(|| "-".into()),
            ),
            ("tls", plan.tls.to_string()),
            ("conninfo", plan.conninfo()),
            ("uri", plan.uri()),
        ];
        rows.iter()
            .try_for_each(|(k, v)| writeln!(out, "{k:<16} {}", Escaped(v)))
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cannot write the plan: {e}");
            1
        }
    }
}
