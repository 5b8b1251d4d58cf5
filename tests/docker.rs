//! The container launcher's suite (cargo feature `docker`): the TLS matrix on PostgreSQL 15
//! and 17 containers, the libpq 17 cases (`sslnegotiation=direct`, `sslrootcert=system`), the
//! image's official contract, and docker-compose.yml with `ping`.
//!
//! Images: `TEA_PG_IMAGES` (comma-separated), else `tea-pgcloud/postgres:15` and `:17` when the
//! engine holds them (`conformance/image/build.sh`), else the official `postgres:15-alpine` and
//! `postgres:17-alpine`. With no Docker engine every test is ignored, saying why. An engine
//! older than testcontainers' API 1.52 is reached through the version shim (this program runs
//! itself again behind one).
//!
//! `TEA_RECORD_LIBPQ17=1` rewrites `fixtures/conformance/libpq17.json` from libpq 17's outcomes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use tea_pgcloud::conformance::certs::{CertFactory, ServerCertKind};
use tea_pgcloud::conformance::docker::{self, split_image};
use tea_pgcloud::conformance::docker_shim;
use tea_pgcloud::conformance::launcher::{Launcher, PgServer, Profile, TlsFiles};
use tea_pgcloud::conformance::libpq17;
use tea_pgcloud::conformance::matrix::{self, Recording};
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{CopyDataSource, ImageExt};
use testcontainers_modules::postgres::Postgres;

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The images to run on.
fn images() -> Vec<String> {
    if let Ok(list) = std::env::var("TEA_PG_IMAGES")
        && !list.trim().is_empty()
    {
        return list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    ["15", "17"]
        .iter()
        .map(|major| {
            let offline = format!("tea-pgcloud/postgres:{major}");
            if docker::image_present(&offline) {
                offline
            } else {
                format!("postgres:{major}-alpine")
            }
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    if let Some(code) = docker_shim::rerun_through_shim() {
        std::process::exit(code);
    }
    let engine = docker_shim::engine_socket();
    let skip = if docker::engine_answers() {
        None
    } else {
        Some(format!(
            "no Docker engine answers at {} (set DOCKER_HOST, or start one)",
            engine.display()
        ))
    };
    if let Some(why) = &skip {
        eprintln!("docker suite: every test ignored: {why}");
    }
    let images = images();
    let mut trials = Vec::new();
    for image in &images {
        let image = image.clone();
        trials.push(
            Trial::test(format!("tls_matrix_on::{image}"), move || {
                tls_matrix(&image).map_err(Failed::from)
            })
            .with_ignored_flag(skip.is_some()),
        );
    }
    for image in &images {
        let image = image.clone();
        trials.push(
            Trial::test(format!("image_contract::{image}"), move || {
                image_contract(&image).map_err(Failed::from)
            })
            .with_ignored_flag(skip.is_some()),
        );
    }
    let by_major = |major: &str| {
        images
            .iter()
            .find(|i| split_image(i).1.starts_with(major))
            .cloned()
    };
    let (pg15, pg17) = (by_major("15"), by_major("17"));
    trials.push(
        Trial::test("libpq17_cases", move || match (&pg15, &pg17) {
            (Some(pg15), Some(pg17)) => libpq17_cases(pg15, pg17).map_err(Failed::from),
            _ => Err(Failed::from(
                "needs a PostgreSQL 15 and a 17 image among the images",
            )),
        })
        .with_ignored_flag(skip.is_some()),
    );
    let ha_image = by_major("17").unwrap_or_else(|| images[0].clone());
    trials.push(
        Trial::test(format!("standby_takes_over::{ha_image}"), move || {
            standby_takes_over(&ha_image).map_err(Failed::from)
        })
        .with_ignored_flag(skip.is_some()),
    );
    let compose_image = by_major("17").unwrap_or_else(|| images[0].clone());
    trials.push(
        Trial::test("compose_up_then_ping", move || {
            compose_up_then_ping(&compose_image).map_err(Failed::from)
        })
        .with_ignored_flag(skip.is_some()),
    );
    libtest_mimic::run(&args, trials).exit();
}

/// The whole TLS matrix on containers of `image`: every case agrees with libpq and with the
/// recording.
fn tls_matrix(image: &str) -> Result<(), String> {
    let path = root().join(matrix::RECORDING);
    let recording = Recording::load(&path)?;
    let launcher = Launcher::Docker {
        image: image.to_owned(),
    };
    let report = matrix::run_all(&launcher, &recording, |_, _, _| {})?;
    eprintln!(
        "tls_matrix_on::{image}: {} cases, {} disagree, {} differ from the recording, server {}, \
         {:.1} s",
        report.results.len(),
        report.disagreements().len(),
        report.drift().len(),
        report.server,
        report.elapsed.as_secs_f64()
    );
    let mut problems: Vec<String> = report
        .disagreements()
        .iter()
        .map(|r| {
            format!(
                "{}: ours {} ({}) but libpq {} ({})",
                r.case.id(),
                r.ours,
                r.ours_message.as_deref().unwrap_or("-"),
                r.libpq,
                r.libpq_message.as_deref().unwrap_or("-")
            )
        })
        .collect();
    problems.extend(report.drift().iter().map(|r| {
        format!(
            "{}: libpq gives {} but {} says {}",
            r.case.id(),
            r.libpq,
            matrix::RECORDING,
            r.recorded.map(|o| o.as_str()).unwrap_or("nothing")
        )
    }));
    let expected = matrix::PROFILES.len() * 48;
    if report.results.len() != expected {
        problems.push(format!(
            "ran {} cases, expected {expected}",
            report.results.len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A TLS server (the factory's good certificate) from `image`, asking for client certificates
/// (the factory's root as its client CA) when `client_ca`. Besides `tea` (SCRAM), roles that
/// authenticate by trust (`trust_u`), cleartext password (`pw_u`) and MD5 (`md5_u`), with
/// `tea`'s password, for libpq 16's `require_auth`.
fn tls_server(image: &str, factory: &CertFactory, client_ca: bool) -> Result<PgServer, String> {
    let pem = factory
        .server(ServerCertKind::Good)
        .map_err(|e| e.to_string())?;
    let server = Launcher::Docker {
        image: image.to_owned(),
    }
    .start(&Profile::new(
        "libpq17",
        Some(TlsFiles {
            cert_pem: pem.cert,
            key_pem: pem.key,
            client_ca_pem: client_ca.then(|| factory.root_pem().to_owned()),
        }),
        [
            "hostssl all trust_u 127.0.0.1/32 trust",
            "hostssl all pw_u 127.0.0.1/32 password",
            "hostssl all md5_u 127.0.0.1/32 md5",
            "hostssl all all 127.0.0.1/32 scram-sha-256",
        ],
    ))
    .map_err(|e| e.to_string())?;
    let password = server.password().replace('\'', "''");
    server
        .admin_sql(&format!(
            "CREATE ROLE trust_u LOGIN; \
             CREATE ROLE pw_u LOGIN PASSWORD '{password}'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_u LOGIN PASSWORD '{password}';"
        ))
        .map_err(|e| e.to_string())?;
    Ok(server)
}

/// `sslnegotiation=direct`, `sslrootcert=system`, `require_auth` and `sslcertmode`: this
/// library against libpq 17.
fn libpq17_cases(pg15_image: &str, pg17_image: &str) -> Result<(), String> {
    let factory = CertFactory::new().map_err(|e| e.to_string())?;
    let pg17 = tls_server(pg17_image, &factory, false)?;
    let pg15 = tls_server(pg15_image, &factory, true)?;
    let path = root().join(libpq17::RECORDING);
    let recording = Recording::load(&path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = libpq17::run(&pg17, &pg15, &factory, &recording, &runtime)?;
    let mut problems = Vec::new();
    for r in &report.results {
        eprintln!(
            "  {:<36} ours {:<18} libpq17 {:<18} {}",
            r.case.id,
            r.ours.as_str(),
            r.libpq.as_str(),
            if r.agrees() { "" } else { "DISAGREE" }
        );
        if !r.agrees() {
            problems.push(format!(
                "{}: ours {} ({}) but libpq 17 {} ({})",
                r.case.id,
                r.ours,
                r.ours_message.as_deref().unwrap_or("-"),
                r.libpq,
                r.libpq_message.as_deref().unwrap_or("-")
            ));
        }
    }
    if std::env::var_os("TEA_RECORD_LIBPQ17").is_some() {
        report.recording().save(&path)?;
        eprintln!("recorded libpq 17's outcomes in {}", path.display());
    } else {
        for r in &report.results {
            match r.recorded {
                None => problems.push(format!(
                    "{}: not in {} (run with TEA_RECORD_LIBPQ17=1)",
                    r.case.id,
                    libpq17::RECORDING
                )),
                Some(recorded) if recorded != r.libpq => problems.push(format!(
                    "{}: libpq 17 gives {} but {} says {recorded}",
                    r.case.id,
                    r.libpq,
                    libpq17::RECORDING
                )),
                Some(_) => {}
            }
        }
    }
    eprintln!(
        "libpq17: {} cases ({}), {} disagree, {:.1} s",
        report.results.len(),
        report.libpq,
        problems.len(),
        report.elapsed_s
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The image honours the official contract as testcontainers' Postgres module uses it:
/// `POSTGRES_USER` / `POSTGRES_PASSWORD` / `POSTGRES_DB`, an init script, arguments for
/// `postgres`, and readiness by the module's log lines.
fn image_contract(image: &str) -> Result<(), String> {
    let (name, tag) = split_image(image);
    let password = "contract-Pw-91c2";
    common::block_on_multi(async move {
        let container = Postgres::default()
            .with_user("app")
            .with_password(password)
            .with_db_name("appdb")
            .with_init_sql(CopyDataSource::Data(
                b"CREATE TABLE contract_check (id int); INSERT INTO contract_check VALUES (7);"
                    .to_vec(),
            ))
            .with_name(name)
            .with_tag(tag)
            .with_cmd(["-c", "work_mem=7MB", "-c", "fsync=off"])
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .await
            .map_err(|e| format!("{image}: start: {e}"))?;
        let port = container
            .get_host_port_ipv4(5432.tcp())
            .await
            .map_err(|e| e.to_string())?;
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("app")
            .password(password)
            .dbname("appdb")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("{image}: app@appdb: {e}"))?;
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT (SELECT id FROM contract_check), current_setting('work_mem'), \
                 current_setting('fsync'), current_user, current_database(), \
                 (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let got = (
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, String>(4),
            row.get::<_, bool>(5),
        );
        let want = (
            7,
            "7MB".to_owned(),
            "off".to_owned(),
            "app".to_owned(),
            "appdb".to_owned(),
            true,
        );
        if got != want {
            return Err(format!("{image}: got {got:?}, expected {want:?}"));
        }
        // A wrong password is refused: the image does not trust remote logins.
        let wrong = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("app")
            .password("not-the-password")
            .dbname("appdb")
            .connect(tokio_postgres::NoTls)
            .await;
        if wrong.is_ok() {
            return Err(format!("{image}: a wrong password logged in"));
        }
        container.rm().await.map_err(|e| e.to_string())
    })
}

/// Runs docker-compose (v1 `docker-compose`, else `docker compose`).
fn compose(project: &str, env: &[(&str, String)], args: &[&str]) -> Result<String, String> {
    let mut last = String::new();
    for (program, prefix) in [("docker-compose", &[][..]), ("docker", &["compose"][..])] {
        let out = Command::new(program)
            .args(prefix)
            .args(["-p", project, "-f"])
            .arg(root().join("docker-compose.yml"))
            .args(args)
            .current_dir(root())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("DOCKER_HOST")
            .output();
        match out {
            Ok(out) if out.status.success() => {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            Ok(out) => {
                last = format!(
                    "{program} {}: {}\n{}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                if program == "docker-compose" {
                    return Err(last);
                }
            }
            Err(e) => last = format!("{program}: {e}"),
        }
    }
    Err(last)
}

/// Removes the stack (containers and the certificate volume) on drop.
struct Stack<'a> {
    project: String,
    env: &'a [(&'a str, String)],
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        let _ = compose(&self.project, self.env, &["down", "-v", "--timeout", "5"]);
    }
}

/// README's local stack: `tea-pgcloud certs certs/`, `docker-compose up`, then `tea-pgcloud
/// ping fixtures/examples/docker-compose.yaml` connects with verify-full; a plain connection
/// is refused (hostssl only).
fn compose_up_then_ping(image: &str) -> Result<(), String> {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_tea-pgcloud"));
    let certs = root().join("certs");
    let made_certs = !certs.join("ca.crt").exists();
    if made_certs {
        // What `tea-pgcloud certs certs/` does.
        CertFactory::new()
            .and_then(|f| f.write_dev_set(&certs, "tea", false))
            .map_err(|e| format!("writing the dev certificates: {e}"))?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let password = "compose-Pw-5d1e";
    let env = [
        ("TEA_PG_IMAGE", image.to_owned()),
        ("TEA_PG_PORT", port.to_string()),
        ("TEA_PG_PASSWORD", password.to_owned()),
    ];
    let project = format!("tea-compose-test-{}", std::process::id());
    let stack = Stack {
        project: project.clone(),
        env: &env,
    };
    let started = Instant::now();
    compose(&project, &env, &["up", "-d"])?;
    // Healthy: pg_isready in the container; then ping from the host.
    let deadline = Instant::now() + Duration::from_secs(90);
    let ping = loop {
        let out = Command::new(&bin)
            .args(["ping", "--json", "fixtures/examples/docker-compose.yaml"])
            .current_dir(root())
            .env("TEA_PG_PORT", port.to_string())
            .env("TEA_PG_PASSWORD", password)
            .env_remove("TEA_PG_USER")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if Instant::now() >= deadline {
            let logs = compose(&project, &env, &["logs", "--no-color"]).unwrap_or_default();
            return Err(format!(
                "ping did not succeed within 90 s: {}\n{logs}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let report: serde_json::Value = serde_json::from_str(&ping).map_err(|e| e.to_string())?;
    if report["tls"]["verified"] != "full" {
        return Err(format!(
            "ping did not report a verified TLS session: {ping}"
        ));
    }
    // hostssl only: a plain login with the right password is rejected.
    let plain = common::block_on(
        tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("tea")
            .password(password)
            .dbname("ltm")
            .ssl_mode(tokio_postgres::config::SslMode::Disable)
            .connect(tokio_postgres::NoTls),
    );
    if plain.is_ok() {
        return Err("the stack accepted a plain connection".into());
    }
    eprintln!(
        "compose_up_then_ping: {image} up and pinged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(stack);
    if made_certs {
        for f in tea_pgcloud::conformance::certs::DEV_SET_FILES {
            let _ = std::fs::remove_file(certs.join(f));
        }
    }
    Ok(())
}

/// The container launcher's streaming standby: `target_session_attrs` picks the primary or the
/// standby of a host list naming both containers; the standby replays the primary's writes; once
/// the primary is stopped and the standby promoted, `read-write` finds the new primary.
fn standby_takes_over(image: &str) -> Result<(), String> {
    use tea_pgcloud::conformance::docker::DockerServer;
    use tea_pgcloud::conformance::launcher::Server;
    let profile = Profile::new("ha", None, ["host all all 127.0.0.1/32 scram-sha-256"]);
    let primary = DockerServer::start(image, &profile).map_err(|e| e.to_string())?;
    let standby = primary.start_standby().map_err(|e| e.to_string())?;
    let port_for = |attrs: &str| -> Result<u16, String> {
        let conninfo = format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname=postgres \
             sslmode=disable connect_timeout=5 target_session_attrs={attrs}",
            primary.port(),
            standby.port(),
            primary.user(),
            primary.password()
        );
        let plan = common::plan_of(&format!("connection_string: \"{conninfo}\"\n"));
        let env = tea_pgcloud::env::MapEnv::new();
        let login = tea_pgcloud::connect::Login::new(None, None);
        common::block_on(tea_pgcloud::connect::connect(&plan, &login, &env))
            .map(|c| c.host.port)
            .map_err(|e| format!("{attrs}: {e}"))
    };
    let expect = |attrs: &str, port: u16, who: &str| -> Result<(), String> {
        let got = port_for(attrs)?;
        if got == port {
            Ok(())
        } else {
            Err(format!(
                "{attrs}: reached port {got}, not the {who} ({port})"
            ))
        }
    };
    expect("read-write", primary.port(), "primary")?;
    expect("standby", standby.port(), "standby")?;
    expect("prefer-standby", standby.port(), "standby")?;
    primary
        .admin_sql("CREATE TABLE ha_probe (v int);\nINSERT INTO ha_probe VALUES (1);")
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while standby
        .admin_sql("SELECT count(*) FROM ha_probe")
        .map_err(|e| e.to_string())
        .ok()
        .as_deref()
        != Some("1")
    {
        if Instant::now() >= deadline {
            return Err("the standby did not replay the primary's write in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    primary.stop().map_err(|e| e.to_string())?;
    standby.promote().map_err(|e| e.to_string())?;
    expect("read-write", standby.port(), "promoted standby")?;
    eprintln!(
        "standby_takes_over::{image}: read-write and standby chosen by libpq's rules, the write \
         replayed, read-write on the promoted standby after the primary stopped"
    );
    Ok(())
}
