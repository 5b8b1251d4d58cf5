//! The story's env and connection-string examples resolve their credentials (the GCP, AWS and
//! Azure ones resolve against their emulators in `tests/secrets_*.rs`).

use std::sync::Arc;

use tea_pgcloud::config::load_file;
use tea_pgcloud::credentials::{resolve, secrets_for};
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
    let secrets = secrets_for(&plan, Arc::new(env.clone()))
        .await
        .expect("env backend")
        .expect("credentials come from it");
    let resolved = resolve(&plan, Some(&secrets)).await.expect("resolves");
    assert_eq!(resolved.login.user.as_deref(), Some("ltm_app"));
    assert_eq!(resolved.user_from, "env:POSTGRES_USER");
    assert_eq!(resolved.password_from, "env:POSTGRES_PASSWORD");
    assert_eq!(
        resolved.login.password.as_ref().map(|p| p.expose()),
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
    assert!(
        secrets_for(&plan, Arc::new(env.clone()))
            .await
            .expect("none")
            .is_none()
    );
    let resolved = resolve(&plan, None).await.expect("nothing to fetch");
    assert_eq!(resolved.password_from, "literal");
    assert_eq!(plan.password.as_ref().map(|p| p.expose()), Some("story@pw"));
}
