//! This crate's answers to every kind of case, in-process ([`Builtin`]) and as an adapter
//! of its own ([`super::serve`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Answer, Case, Runner};
use crate::config::expand::expand_str;
use crate::config::{CredentialsConfig, SecretSource, load_str};
use crate::conninfo::ConnInfo;
use crate::env::MapEnv;
use crate::error::ConfigError;
use crate::provider::{ResolvedCredentials, build_provider_connection_string, plan};
use crate::secret::Secret;

/// Runs cases in-process through this crate.
#[derive(Debug, Default)]
pub struct Builtin;

impl Runner for Builtin {
    fn run(&mut self, _id: &str, kind: &str, case: &Case) -> Result<Answer, String> {
        Ok(run_case(
            kind,
            &case.env_strings(),
            &case.files,
            &case.input,
        ))
    }
}

fn error_json(e: &ConfigError) -> Value {
    json!({
        "class": e.class().as_str(),
        "kind": e.kind().as_str(),
        "path": e.path(),
        "message": e.message(),
        "line": e.location().map(|l| l.line),
        "col": e.location().map(|l| l.col),
    })
}

fn simple_error(kind: &str, message: String) -> Value {
    json!({"error": {"class": "config", "kind": kind, "message": message}})
}

/// Runs one case through this crate: the result object of `SPEC.md` section 4, or
/// [`Answer::Unsupported`] for what this build cannot run.
pub fn run_case(
    kind: &str,
    env: &BTreeMap<String, String>,
    files: &[String],
    input: &Value,
) -> Answer {
    let mut map_env = MapEnv::new();
    for (k, v) in env {
        map_env = map_env.with_var(k.clone(), v.clone());
    }
    for f in files {
        map_env = map_env.with_file(f.clone());
    }
    match kind {
        k if !super::KINDS.contains(&k) => Answer::Unsupported(format!("unknown kind `{k}`")),
        "credentials" => credentials_case(input, map_env),
        #[cfg(not(feature = "aws"))]
        "rds-token" => Answer::Unsupported("rds-token cases need the cargo feature `aws`".into()),
        _ => Answer::Result(result_of(kind, input, &map_env)),
    }
}

fn result_of(kind: &str, input: &Value, map_env: &MapEnv) -> Value {
    let text = input.as_str().unwrap_or_default();
    match kind {
        "plan" | "error" => {
            if !input.is_string() {
                return simple_error("vector", "input must be YAML text".into());
            }
            match load_str(text, "input.yaml", map_env).and_then(|c| plan(&c, map_env)) {
                Ok(plan) => json!({"plan": plan.to_json()}),
                Err(e) => json!({"error": error_json(&e)}),
            }
        }
        "conninfo" => match ConnInfo::parse(text) {
            Ok(map) => {
                let keyword_value = map.to_keyword_value();
                let uri = map.to_uri();
                for rendered in [&keyword_value, &uri] {
                    if ConnInfo::parse(rendered).as_ref() != Ok(&map) {
                        return simple_error(
                            "round-trip",
                            "rendering the map and parsing it back gave a different map".into(),
                        );
                    }
                }
                let pairs: serde_json::Map<String, Value> = map
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                json!({"map": pairs, "keyword_value": keyword_value, "uri": uri})
            }
            Err(e) => simple_error("conninfo", e.to_string()),
        },
        "expand" => match expand_str(text, map_env) {
            Ok(value) => json!({"value": value}),
            Err(e) => simple_error("expansion", e.message),
        },
        "connection-string" => connection_string_case(input, map_env),
        #[cfg(feature = "aws")]
        "rds-token" => rds_token_case(input),
        "content-hash" => content_hash_case(input),
        other => simple_error("vector", format!("unknown kind `{other}`")),
    }
}

/// `build_provider_connection_string` for `{config, credentials: {username, password}}`.
fn connection_string_case(input: &Value, env: &MapEnv) -> Value {
    let Some(text) = input.get("config").and_then(Value::as_str) else {
        return simple_error(
            "vector",
            "connection-string input needs `config` (YAML text)".into(),
        );
    };
    let field = |k: &str| {
        input
            .get("credentials")
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
    };
    let credentials = ResolvedCredentials {
        username: field("username").map(str::to_string),
        password: field("password").map(Secret::new),
    };
    match load_str(text, "input.yaml", env)
        .and_then(|c| build_provider_connection_string(c.provider, &credentials, &c, env))
    {
        // A vector's password is test data, not a secret.
        Ok(dsn) => json!({"connection_string": dsn.expose()}),
        Err(e) => json!({"error": error_json(&e)}),
    }
}

/// `resolve_catalog_credentials` over the environment backend, for the plan's `credentials`
/// block (none is the same as `{source: env}`).
fn credentials_case(input: &Value, env: MapEnv) -> Answer {
    let Some(text) = input.as_str() else {
        return Answer::Result(simple_error("vector", "input must be YAML text".into()));
    };
    let credentials = match load_str(text, "input.yaml", &env).and_then(|c| plan(&c, &env)) {
        Ok(plan) => plan
            .credentials
            .clone()
            .unwrap_or_else(|| CredentialsConfig::new(SecretSource::Env)),
        Err(e) => return Answer::Result(json!({"error": error_json(&e)})),
    };
    if credentials.source != SecretSource::Env {
        return Answer::Unsupported(
            "credentials cases run the environment backend only (the others need a network)".into(),
        );
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(e) => return Answer::Result(simple_error("vector", format!("no runtime: {e}"))),
    };
    let resolved = runtime.block_on(crate::credentials::resolve_catalog_credentials(
        &credentials,
        Arc::new(env),
    ));
    Answer::Result(match resolved {
        // A vector's password is test data, not a secret.
        Ok((user, password)) => json!({"user": user, "password": password.expose()}),
        Err(e) => json!({"error": {
            "class": e.class().as_str(),
            "kind": e.kind().as_str(),
            "message": e.message(),
        }}),
    })
}

/// The catalog's ids and hashes: `{"json": TEXT}` is a value as JSON text (parsed here, so
/// key order and number forms are the text's), `{"key": str}` an entry key.
fn content_hash_case(input: &Value) -> Value {
    use crate::catalog::{content_hash, entry_id, python_json_dumps};
    if let Some(text) = input.get("json").and_then(Value::as_str) {
        return match serde_json::from_str::<Value>(text) {
            Ok(value) => json!({
                "dumps": python_json_dumps(&value),
                "content_hash": content_hash(&value),
            }),
            Err(e) => simple_error("vector", format!("content-hash input is not JSON: {e}")),
        };
    }
    if let Some(key) = input.get("key").and_then(Value::as_str) {
        return json!({"entry_id": entry_id(key)});
    }
    simple_error(
        "vector",
        "content-hash input needs `json` (JSON text) or `key` (a string)".into(),
    )
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2024-08-26T22:00:00Z`).
#[cfg(feature = "aws")]
fn parse_utc(text: &str) -> Option<u64> {
    let t = text.strip_suffix('Z')?;
    let (date, clock) = t.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(feature = "aws")]
fn rds_token_case(input: &Value) -> Value {
    use crate::iam::aws::{TokenRequest, rds_auth_token};
    let field = |k: &str| input.get(k).and_then(Value::as_str);
    let (Some(host), Some(region), Some(user), Some(akid), Some(secret), Some(time)) = (
        field("host"),
        field("region"),
        field("user"),
        field("access_key_id"),
        field("secret_access_key"),
        field("time"),
    ) else {
        return simple_error(
            "vector",
            "rds-token input needs host, port, region, user, access_key_id, secret_access_key, time".into(),
        );
    };
    let Some(port) = input
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
    else {
        return simple_error("vector", "rds-token input needs a numeric port".into());
    };
    let Some(secs) = parse_utc(time) else {
        return simple_error("vector", format!("time `{time}` is not RFC 3339 UTC (…Z)"));
    };
    let creds = aws_credential_types::Credentials::new(
        akid,
        secret,
        field("session_token").map(str::to_string),
        None,
        "vector",
    );
    let request = TokenRequest {
        host,
        port,
        user,
        region,
    };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    match rds_auth_token(&request, &creds, when) {
        // A vector's token is test data signed with example keys, not a secret.
        Ok(token) => json!({"token": token.expose(), "canonical": canonical_token(token.expose())}),
        Err(e) => simple_error("iam", e.to_string()),
    }
}

/// A token with its query parameters sorted: SigV4 signs the sorted query, so two tokens that
/// differ only in parameter order (botocore puts `X-Amz-Security-Token` before the signature,
/// aws-sigv4 after it) are the same token.
pub fn canonical_token(token: &str) -> String {
    match token.split_once('?') {
        Some((base, query)) => {
            let mut params: Vec<&str> = query.split('&').collect();
            params.sort_unstable();
            format!("{base}?{}", params.join("&"))
        }
        None => token.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "aws")]
    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_utc("2024-08-26T22:00:00Z"), Some(1_724_709_600));
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_utc("2024-08-26T22:00:00+02:00"), None);
        assert_eq!(parse_utc("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn the_story_functions_answer() {
        let no_env = BTreeMap::new();
        let input = json!({"config": "host: db\ndatabase: ltm\n", "credentials": {"username": "app", "password": "p@ss/w:rd#1"}});
        assert_eq!(
            run_case("connection-string", &no_env, &[], &input),
            Answer::Result(
                json!({"connection_string": "postgresql://app:p%40ss%2Fw%3Ard%231@db:5432/ltm?sslmode=prefer"})
            )
        );
        let env = BTreeMap::from([("POSTGRES_PASSWORD".to_string(), "pw".to_string())]);
        let Answer::Result(missing_user) = run_case("credentials", &env, &[], &json!("host: db\n"))
        else {
            panic!("the env backend is built in");
        };
        assert_eq!(missing_user["error"]["class"], "credentials");
        assert_eq!(missing_user["error"]["kind"], "missing");
        assert!(matches!(
            run_case(
                "credentials",
                &no_env,
                &[],
                &json!("host: db\ncredentials: {source: aws, secret_name: x, region: us-east-1}\n")
            ),
            Answer::Unsupported(_)
        ));
        assert!(matches!(
            run_case("nope", &no_env, &[], &json!(1)),
            Answer::Unsupported(_)
        ));
    }
}
