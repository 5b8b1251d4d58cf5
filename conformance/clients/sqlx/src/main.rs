//! The sqlx client of the live conformance kit (see `../PROTOCOL.md`).
//!
//! It maps a request the way a sqlx user does: the request's libpq URI goes, unchanged, to
//! `PgConnectOptions::from_str`, and `PgConnection::connect_with` opens the connection. What
//! sqlx makes of each parameter is what the kit measures:
//!
//! - `sslmode`, `sslrootcert`, `host`, `port`, `user`, `password`, `dbname` and
//!   `application_name` are understood;
//! - `hostaddr` is understood but replaces the host: sqlx then dials that address and also
//!   checks the server certificate against it (and sends no host name in SNI);
//! - `connect_timeout` is ignored by sqlx (it logs "ignoring unrecognized connect parameter");
//!   this client still bounds the connection attempt by it, as a sqlx user would with
//!   `tokio::time::timeout`, so that a stuck connect cannot hang the run.
//!
//! sqlx has no default root certificate file (it never reads `~/.postgresql/root.crt`), so the
//! request's `home` is not used. With `sslmode` `allow`, `disable`, `prefer` or `require` it
//! does not verify the server certificate at all, whatever `sslrootcert` says; with
//! `verify-ca` and `verify-full` it trusts the webpki roots plus `sslrootcert`.
//!
//! Once connected it asks the server whether the session is encrypted, answers, and closes the
//! connection. Nothing but the reply lines is written to standard output.

use std::error::Error as StdError;
use std::io::{self, BufRead, Write};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

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
    let Some(uri) = request.get("uri").and_then(Value::as_str) else {
        return Outcome::Fail("request has no uri".into());
    };
    let options = match PgConnectOptions::from_str(uri) {
        Ok(options) => options,
        Err(e) => return Outcome::Fail(describe(&e)),
    };

    let connect_timeout = request
        .pointer("/params/connect_timeout")
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs);
    let connecting = PgConnection::connect_with(&options);
    let connected = match connect_timeout {
        Some(limit) => match tokio::time::timeout(limit, connecting).await {
            Ok(connected) => connected,
            Err(_) => {
                return Outcome::Fail(format!(
                    "connection not established within connect_timeout ({} s)",
                    limit.as_secs()
                ))
            }
        },
        None => connecting.await,
    };
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(e) => return Outcome::Fail(describe(&e)),
    };

    let asked: Result<Option<bool>, sqlx::Error> =
        sqlx::query_scalar(SSL_QUERY).fetch_one(&mut conn).await;
    let outcome = match asked {
        Ok(Some(true)) => Outcome::Tls,
        Ok(Some(false)) => Outcome::Plain,
        Ok(None) => Outcome::Fail("connected, but pg_stat_ssl has no row for this session".into()),
        Err(e) => Outcome::Fail(format!("connected, but the query failed: {}", describe(&e))),
    };
    match tokio::time::timeout(Duration::from_secs(2), conn.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("closing the connection: {}", describe(&e)),
        Err(_) => eprintln!("closing the connection took more than 2 s"),
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
