//! The story's env and connection-string examples resolve their credentials (the GCP, AWS and
//! Azure ones resolve against their emulators in `tests/secrets_*.rs`).

use std::sync::Arc;

use tea_pgcloud::config::load_file;
use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;

fn example(name: &str) -> String {
    format!("{}/fixtures/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn env_example_resolves_postgres_user_and_password() {
    let env = MapEnv::new()
        .with_var("POSTGRES_HOST", "db.internal")
        .with_var("POSTGRES_DB", "ltm")
        .with_var("POSTGRES_USER", "ltm_app")
        .with_var("POSTGRES_PASSWORD", "story-canary-pw");
    let config = load_file(&example("env-self-hosted.yaml"), &env).expect("valid");
    let plan = plan(&config, &env).expect("plannable");
    let credentials = Credentials::for_plan(plan, Arc::new(env.clone()))
        .await
        .expect("env backend");
    assert!(
        credentials.secrets().is_some(),
        "credentials come from the env backend"
    );
    let resolved = credentials.login().await.expect("resolves");
    assert_eq!(resolved.user.as_deref(), Some("ltm_app"));
    assert_eq!(resolved.user_from.to_string(), "env:POSTGRES_USER");
    assert_eq!(resolved.password_from.to_string(), "env:POSTGRES_PASSWORD");
    assert_eq!(
        resolved.password.as_ref().map(|p| p.expose()),
        Some("story-canary-pw")
    );
    assert!(!format!("{resolved:?}").contains("story-canary-pw"));
}

#[tokio::test]
async fn connection_string_example_uses_its_own_password() {
    let env = MapEnv::new().with_var(
        "POSTGRES_CONNECTION_STRING",
        "postgresql://app:story%40pw@db.internal:5432/ltm?sslmode=verify-full",
    );
    let config = load_file(&example("connection-string.yaml"), &env).expect("valid");
    let plan = plan(&config, &env).expect("plannable");
    let credentials = Credentials::for_plan(plan.clone(), Arc::new(env.clone()))
        .await
        .expect("nothing to set up");
    assert!(credentials.secrets().is_none());
    let resolved = credentials.login().await.expect("nothing to fetch");
    assert_eq!(resolved.password_from.to_string(), "literal");
    assert_eq!(plan.password.as_ref().map(|p| p.expose()), Some("story@pw"));
}
