//! The tokio-postgres client of the live conformance kit (see `../PROTOCOL.md`), with TLS
//! from tokio-postgres-rustls (rustls, ring provider).
//!
//! tokio-postgres knows only `sslmode` `disable`, `prefer` and `require`, and its own
//! connection-string parser rejects libpq's other TLS keywords (`sslrootcert`, `verify-ca`,
//! `verify-full`, `allow`). So this client does what a tokio-postgres user with a libpq
//! keyword map does: it reads the map itself and builds a `tokio_postgres::Config` and a rustls
//! `ClientConfig` from it. The mapping:
//!
//! - `host`, `hostaddr`, `port`, `user`, `password`, `dbname`, `application_name`,
//!   `connect_timeout`: the `Config` setters of the same names. tokio-postgres dials
//!   `hostaddr` when given and checks the certificate against `host` (as libpq does).
//! - `sslmode`:
//!   - `disable` -> `SslMode::Disable` (and no TLS connector at all);
//!   - `allow`, `prefer`, or no `sslmode` -> `SslMode::Prefer` (tokio-postgres has no
//!     `allow`; `prefer` is its only mode that connects both to TLS and to plain servers);
//!   - `require`, `verify-ca`, `verify-full` -> `SslMode::Require`. With a rustls connector,
//!     `require` already verifies the certificate chain and the host name, so it is how a
//!     tokio-postgres user gets verification; there is no mode that checks the chain only.
//! - The rustls `ClientConfig`: its verifier is rustls' default one (`WebPkiServerVerifier`:
//!   chain, validity and host name, with the host name or IP address of `host`). Its roots are
//!   the certificates of the `sslrootcert` file when given, else the Mozilla roots of
//!   `webpki-roots`. libpq's default root file `~/.postgresql/root.crt` is a libpq convention
//!   a tokio-postgres user does not reproduce, so the request's `home` is not used.
//! - `sslcert` and `sslkey` (both or neither): the client certificate and key.
//!
//! In `prefer` mode tokio-postgres sends an `SSLRequest` and, when the server accepts it, does
//! the TLS handshake; a failed handshake is an error (there is no retry without TLS), and a
//! server that refuses TLS gets a plain connection.
//!
//! Once connected it asks the server whether the session is encrypted, answers, and closes the
//! connection. Nothing but the reply lines is written to standard output.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The query that tells whether this session uses TLS.
const SSL_QUERY: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// What one attempt came to.
enum Outcome {
    Tls,
    Plain,
    Fail(String),
}

fn main() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            std::process::exit(2);
        }
    };

    let stdin = io::stdin();
    let stdout = io::stdout();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("cannot read standard input: {e}");
                std::process::exit(2);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: Value = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("request is not JSON: {e}");
                continue;
            }
        };
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let outcome = runtime.block_on(attempt(&request));
        let (outcome, message) = match outcome {
            Outcome::Tls => ("tls", Value::Null),
            Outcome::Plain => ("plain", Value::Null),
            Outcome::Fail(message) => ("fail", Value::String(message)),
        };
        // Written by hand to keep the protocol's key order: id, outcome, message.
        let reply = format!(r#"{{"id":{id},"outcome":"{outcome}","message":{message}}}"#);
        let mut out = stdout.lock();
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            // The harness has gone away.
            std::process::exit(0);
        }
    }
}

/// One request: connect, ask, close, all within a bit less than the harness waits.
async fn attempt(request: &Value) -> Outcome {
    let timeout_s = request
        .get("timeout_s")
        .and_then(Value::as_f64)
        .unwrap_or(20.0);
    let budget = Duration::from_secs_f64((timeout_s - 2.0).max(timeout_s * 0.75).max(0.5));
    match tokio::time::timeout(budget, connect_and_ask(request)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Fail(format!("no answer within {:.1} s", budget.as_secs_f64())),
    }
}

async fn connect_and_ask(request: &Value) -> Outcome {
    let params: BTreeMap<String, String> = match request.get("params").and_then(Value::as_object) {
        Some(map) => map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        None => return Outcome::Fail("request has no params".into()),
    };
    let (config, tls) = match map_params(&params) {
        Ok(mapped) => mapped,
        Err(message) => return Outcome::Fail(message),
    };
    match tls {
        None => run(&config, NoTls).await,
        Some(tls) => run(&config, tls).await,
    }
}

/// The `Config` of the keyword map, and the TLS connector unless `sslmode` is `disable`.
fn map_params(
    params: &BTreeMap<String, String>,
) -> Result<(Config, Option<MakeRustlsConnect>), String> {
    let mut config = Config::new();
    for (key, value) in params {
        match key.as_str() {
            "host" => {
                config.host(value);
            }
            "hostaddr" => {
                let addr: IpAddr = value
                    .parse()
                    .map_err(|e| format!("invalid hostaddr {value:?}: {e}"))?;
                config.hostaddr(addr);
            }
            "port" => {
                let port: u16 = value
                    .parse()
                    .map_err(|e| format!("invalid port {value:?}: {e}"))?;
                config.port(port);
            }
            "user" => {
                config.user(value);
            }
            "password" => {
                config.password(value);
            }
            "dbname" => {
                config.dbname(value);
            }
            "application_name" => {
                config.application_name(value);
            }
            "connect_timeout" => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|e| format!("invalid connect_timeout {value:?}: {e}"))?;
                if seconds > 0 {
                    config.connect_timeout(Duration::from_secs(seconds));
                }
            }
            // Read below, with the TLS configuration.
            "sslmode" | "sslrootcert" | "sslcert" | "sslkey" => {}
            other => eprintln!("ignoring the parameter {other}"),
        }
    }

    let mode = match params.get("sslmode").map(String::as_str) {
        None | Some("allow" | "prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => return Err(format!("invalid sslmode {other:?}")),
    };
    config.ssl_mode(mode);
    if mode == SslMode::Disable {
        return Ok((config, None));
    }

    let roots = match params.get("sslrootcert") {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("bad certificate in sslrootcert {path}: {e}"))?;
            }
            roots
        }
        None => webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect(),
    };

    // rustls' process-default provider: ring, the only one this crate enables.
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let tls_config = match (params.get("sslcert"), params.get("sslkey")) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("cannot read sslcert {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read sslkey {key}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("rustls: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("sslcert and sslkey must be given together".into()),
    };
    Ok((config, Some(MakeRustlsConnect::new(tls_config))))
}

/// Connects, asks the server whether the session uses TLS, and closes the connection.
async fn run<T>(config: &Config, tls: T) -> Outcome
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = match config.connect(tls).await {
        Ok(connected) => connected,
        Err(e) => return Outcome::Fail(describe(&e)),
    };
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection: {}", describe(&e));
        }
    });

    let outcome = match client.query_opt(SSL_QUERY, &[]).await {
        Ok(Some(row)) => match row.try_get::<_, bool>(0) {
            Ok(true) => Outcome::Tls,
            Ok(false) => Outcome::Plain,
            Err(e) => Outcome::Fail(format!("connected, but: {}", describe(&e))),
        },
        Ok(None) => Outcome::Fail("connected, but pg_stat_ssl has no row for this session".into()),
        Err(e) => Outcome::Fail(format!("connected, but the query failed: {}", describe(&e))),
    };
    // Dropping the client sends Terminate; the connection task then ends.
    drop(client);
    if tokio::time::timeout(Duration::from_secs(2), driver)
        .await
        .is_err()
    {
        eprintln!("the connection did not end within 2 s of closing it");
    }
    outcome
}

/// The error's first line, followed by those of its sources that add something.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut message = first_line(&error.to_string());
    let mut source = error.source();
    let mut depth = 0;
    while let Some(cause) = source {
        let line = first_line(&cause.to_string());
        if !line.is_empty() && !message.contains(&line) {
            message.push_str(": ");
            message.push_str(&line);
        }
        source = cause.source();
        depth += 1;
        if depth >= 8 {
            break;
        }
    }
    if message.is_empty() {
        message = format!("{error:?}");
    }
    message
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}
