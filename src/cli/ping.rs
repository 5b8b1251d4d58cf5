//! `tea-pgcloud ping`: connect once and report.

use serde_json::{Value, json};

use std::sync::Arc;

use tea_pgcloud::connect::{ConnectError, Connected, SessionState};
use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::ProcessEnv;
use tea_pgcloud::plan::{ConnectPlan, Source};
use tea_pgcloud::text::Escaped;

/// `ping`'s `connect_timeout` when the configuration sets none.
const DEFAULT_TIMEOUT_SECS: u32 = 10;

/// What the client offered to authenticate with (the server may not have asked).
fn auth(plan: &ConnectPlan, password_used: bool) -> String {
    match &plan.password_source {
        Source::Iam(kind) => format!("iam:{}", kind.as_str()),
        _ if password_used => "password".to_string(),
        _ if plan.params.get("sslcert").is_some() => "cert".to_string(),
        _ => "trust".to_string(),
    }
}

/// What the server reported about itself: `primary, read-write`, `standby`, ...
fn server_kind(session: &SessionState) -> String {
    let role = match session.in_hot_standby() {
        Some(true) => "standby",
        Some(false) => "primary",
        None => "not reported",
    };
    match session.default_transaction_read_only() {
        Some(true) => format!("{role}, default_transaction_read_only on"),
        _ => role.to_string(),
    }
}

fn report(
    plan: &ConnectPlan,
    result: &Result<Connected, ConnectError>,
    password_used: bool,
    user: Option<&str>,
) -> Value {
    match result {
        Ok(c) => {
            let mut v = json!({
                "connected": true,
                "server_version": c.server_version,
                "tls": c.tls.as_ref().map(|t| json!({
                    "version": t.version,
                    "cipher": t.cipher,
                    "verified": t.verified.as_str(),
                })),
                "auth": auth(plan, password_used),
                "host": format!("{}:{}", c.host.host, c.host.port),
                "session": {
                    "target_session_attrs": plan.target_session_attrs.as_str(),
                    "in_hot_standby": c.session.in_hot_standby(),
                    "default_transaction_read_only": c.session.default_transaction_read_only(),
                },
                "timings_ms": {
                    "connect": c.timings.connect_ms,
                    "tls": c.timings.tls_ms,
                    "startup": c.timings.startup_ms,
                    "query": c.timings.query_ms,
                    "total": c.timings.total_ms,
                },
                "error": null,
            });
            if let Some(user) = user {
                v["user"] = json!(user);
            }
            v
        }
        Err(e) => json!({
            "connected": false,
            "server_version": null,
            "tls": null,
            "auth": auth(plan, password_used),
            "timings_ms": {},
            "error": {"class": e.class().as_str(), "action": e.action().as_str(), "message": e.to_string()},
        }),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            None
        }
    }
}

/// Runs `resolve`: the user name and where each value came from; the password only with
/// `reveal`. Exit 0 when both resolve, 1 otherwise.
pub fn resolve_command(file: &str, reveal: bool) -> i32 {
    let plan = match super::load_plan(file) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return 1;
    };
    let resolved = runtime.block_on(async {
        Credentials::for_plan(plan.clone(), Arc::new(ProcessEnv))
            .await?
            .login()
            .await
    });
    match resolved {
        Ok(r) => {
            let user = plan.user.clone().or(r.user.clone());
            println!(
                "user      {}  (from {})",
                Escaped(user.as_deref().unwrap_or("-")),
                Escaped(&r.user_from.to_string())
            );
            let password = match (plan.password.as_ref().or(r.password.as_ref()), reveal) {
                (None, _) => "-".to_string(),
                (Some(p), true) => p.expose().to_string(),
                (Some(_), false) => "<redacted> (--reveal shows it)".to_string(),
            };
            println!(
                "password  {}  (from {})",
                Escaped(&password),
                Escaped(&r.password_from.to_string())
            );
            0
        }
        Err(e) => {
            eprintln!("{}: {}: {e}", Escaped(file), e.class());
            1
        }
    }
}

/// Runs `ping`: exit 0 when connected, 1 otherwise.
pub fn run(file: &str, as_json: bool, reveal: bool) -> i32 {
    let mut plan = match super::load_plan(file) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    // A check should not wait forever on a server that accepts and never answers.
    if plan.params.get("connect_timeout").is_none() {
        plan.set_connect_timeout(DEFAULT_TIMEOUT_SECS);
    }
    let Some(runtime) = runtime() else {
        return 1;
    };
    let (result, password_used, user) = runtime.block_on(async {
        let credentials = match Credentials::for_plan(plan.clone(), Arc::new(ProcessEnv)).await {
            Ok(credentials) => credentials,
            Err(e) => return (Err(e), false, None),
        };
        // Resolved here for the report; `connect` resolves again from the caches (no second
        // fetch) and refetches only after a failed login.
        let resolved = credentials.login().await;
        let password_used =
            plan.password.is_some() || resolved.as_ref().is_ok_and(|r| r.password.is_some());
        let user = plan
            .user
            .clone()
            .or_else(|| resolved.as_ref().ok().and_then(|r| r.user.clone()));
        let result = match resolved {
            Ok(_) => credentials.connect().await,
            Err(e) => Err(e),
        };
        (result, password_used, user)
    });
    let value = report(
        &plan,
        &result,
        password_used,
        reveal.then_some(user.as_deref()).flatten(),
    );
    if as_json {
        match serde_json::to_string_pretty(&value) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("cannot print the report: {e}"),
        }
    } else {
        match &result {
            Ok(c) => {
                let tls = match &c.tls {
                    Some(t) => format!(
                        "{} {} (verified: {})",
                        t.version,
                        t.cipher,
                        t.verified.as_str()
                    ),
                    None => "none (plain)".to_string(),
                };
                println!(
                    "connected to {}:{} (PostgreSQL {})",
                    Escaped(&c.host.host),
                    c.host.port,
                    Escaped(&c.server_version)
                );
                println!("tls      {tls}");
                println!(
                    "server   {} (target_session_attrs {})",
                    server_kind(&c.session),
                    plan.target_session_attrs
                );
                println!("auth     {}", auth(&plan, password_used));
                if let Some(user) = reveal.then_some(user.as_deref()).flatten() {
                    println!("user     {}", Escaped(user));
                }
                println!(
                    "timings  connect {:.1} ms, startup {:.1} ms, query {:.1} ms, total {:.1} ms",
                    c.timings.connect_ms,
                    c.timings.startup_ms,
                    c.timings.query_ms,
                    c.timings.total_ms
                );
            }
            Err(e) => eprintln!("{}: {}: {e}", Escaped(file), e.class()),
        }
    }
    i32::from(result.is_err())
}
