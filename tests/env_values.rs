//! A value that came from the environment is never quoted in an error or a warning: not at
//! plan time (inside an expanded connection string too), not at run time (host names and
//! addresses that cannot be used), not when credentials cannot be resolved.

use std::sync::Arc;

use tea_pgcloud::config::load_str;
use tea_pgcloud::connect::{self, Login};
use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;

/// Stands for a secret; only `${X}` brings it into the YAML.
const CANARY: &str = "cAnArY7q";
/// Shorter than `Tainted::BARE_MIN`: only its quoted occurrences are taken out.
const SHORT: &str = "k9z";

fn env_with(value: &str) -> MapEnv {
    MapEnv::new()
        .with_var("X", value)
        .with_var("HOME", "/nonexistent")
}

fn planned(yaml: &str, value: &str) -> Result<tea_pgcloud::plan::ConnectPlan, String> {
    let env = env_with(value);
    load_str(yaml, "c.yaml", &env)
        .and_then(|c| plan(&c, &env))
        .map_err(|e| e.to_string())
}

/// What a plan result shows: the error, or the warnings.
fn shown<E: ToString>(result: &Result<tea_pgcloud::plan::ConnectPlan, E>) -> String {
    match result {
        Ok(p) => p
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => e.to_string(),
    }
}

fn assert_clean(shown: &str, value: &str) {
    assert!(!shown.contains(value), "the value shows in: {shown}");
}

#[test]
fn plan_errors_inside_an_expanded_connection_string_quote_nothing() {
    for value in [CANARY, SHORT] {
        for dsn in [
            format!("host=db sslmode={value}"),
            format!("host=db port={value}"),
            format!("host=db sslmode=require sslnegotiation={value}"),
            format!("host=db target_session_attrs={value}"),
            format!("host=db {value}=1"),
            format!("host=db sslmode='{value}"),
        ] {
            let yaml = "connection_string: ${X}\n".to_string();
            let env = env_with(&dsn);
            let result = load_str(&yaml, "c.yaml", &env).and_then(|c| plan(&c, &env));
            let shown = shown(&result);
            // Every one is an error, the refused `target_session_attrs` value included (refused
            // when the plan is made, naming the keyword only).
            assert!(result.is_err(), "{dsn} was accepted");
            assert_clean(&shown, value);
        }
    }
}

#[test]
fn plan_errors_about_expanded_keys_quote_nothing() {
    for value in [CANARY, SHORT] {
        for yaml in [
            "host: db\nport: ${X}\n",
            "host: db\nsslmode: ${X}\n",
            "host: db\nconnect_timeout: ${X}\n",
            "provider: ${X}\nhost: db\n",
            "host: db\nsslrootcert: /nonexistent/${X}\nsslmode: require\n",
            "provider: aws\nhost: ${X}\niam_auth: true\nuser: u\n",
        ] {
            assert_clean(&shown(&planned(yaml, value)), value);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn run_time_errors_quote_no_host_or_address_from_the_environment() {
    let cases = [
        // A host name that cannot be resolved: "could not translate host name ...".
        (
            format!("{CANARY}.invalid"),
            "host: ${X}\nconnect_timeout: 2\n",
        ),
        (
            "host=nohost.invalid".to_string(),
            "connection_string: ${X}\n",
        ),
        // An address that does not parse: "could not parse network address ...".
        (
            format!("host=db hostaddr={CANARY} connect_timeout=2"),
            "connection_string: ${X}\n",
        ),
        (
            format!("host=db hostaddr={SHORT} connect_timeout=2"),
            "connection_string: ${X}\n",
        ),
    ];
    let env = MapEnv::new().with_var("HOME", "/nonexistent");
    for (value, yaml) in &cases {
        let plan = planned(yaml, value).expect("plannable");
        let err = runtime()
            .block_on(connect::connect(
                &plan,
                &Login::new(Some("u".into()), None),
                &env,
            ))
            .expect_err("cannot connect");
        let shown = format!("{err} {err:?}");
        for part in [CANARY, SHORT, "nohost.invalid"] {
            if value.contains(part) {
                assert_clean(&shown, part);
            }
        }
        assert!(
            shown.contains("<a value from the environment>"),
            "the message says what it left out: {shown}"
        );
    }
}

#[test]
fn resolve_errors_quote_no_credentials_option_from_the_environment() {
    // The prefix names the variables looked up; none exists, so the error lists them.
    for value in [CANARY, SHORT] {
        for yaml in [
            "host: db\ncredentials:\n  source: env\n  prefix: ${X}\n",
            "host: db\ncredentials:\n  source: env\n  password_key: ${X}\n",
        ] {
            let plan = planned(yaml, value).expect("plannable");
            let env = Arc::new(MapEnv::new());
            let err = runtime()
                .block_on(async { Credentials::for_plan(plan, env).await?.login().await })
                .expect_err("nothing to resolve");
            assert_clean(&format!("{err} {err:?}"), value);
        }
    }
}
