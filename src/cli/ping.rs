//! `tea-pgcloud ping`: connect once and report.

use serde_json::{Value, json};

use tea_pgcloud::connect::{self, ConnectError, Connected};
use tea_pgcloud::credentials::resolve_static;
use tea_pgcloud::env::ProcessEnv;
use tea_pgcloud::plan::{ConnectPlan, Source};

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
            "error": {"class": e.class().as_str(), "message": e.to_string()},
        }),
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
        let _ = plan
            .params
            .set("connect_timeout", DEFAULT_TIMEOUT_SECS.to_string());
    }
    let env = ProcessEnv;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let login = resolve_static(&plan, &env);
    let password_used =
        plan.password.is_some() || login.as_ref().is_ok_and(|l| l.password.is_some());
    let user = plan
        .user
        .clone()
        .or_else(|| login.as_ref().ok().and_then(|l| l.user.clone()));
    let result = match &login {
        Ok(login) => runtime.block_on(connect::connect(&plan, login, &env)),
        Err(e) => Err(e.clone()),
    };
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
                    c.host.host, c.host.port, c.server_version
                );
                println!("tls      {tls}");
                println!("auth     {}", auth(&plan, password_used));
                if let Some(user) = reveal.then_some(user.as_deref()).flatten() {
                    println!("user     {user}");
                }
                println!(
                    "timings  connect {:.1} ms, startup {:.1} ms, query {:.1} ms, total {:.1} ms",
                    c.timings.connect_ms,
                    c.timings.startup_ms,
                    c.timings.query_ms,
                    c.timings.total_ms
                );
            }
            Err(e) => eprintln!("{file}: {}: {e}", e.class()),
        }
    }
    i32::from(result.is_err())
}
