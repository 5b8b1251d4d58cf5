//! Bad input fails loudly and never panics; secrets never leak into errors, warnings, `Debug`
//! or the plan.

use proptest::prelude::*;
use tea_pgcloud::config::load_str;
use tea_pgcloud::env::MapEnv;
use tea_pgcloud::provider::plan;

#[path = "common/fragments.rs"]
mod fragments;

/// Reaches the YAML only through `${X}`: it may show up where a value is shown by design (a
/// misplaced `database: ${X}` is the database name), but never in an error message.
const CANARY: &str = "cAnArY-9x!";
/// A password: in connection strings and the password variable; it must never show anywhere.
const PASSWORD: &str = "pAsSwOrD-4q?";

/// Fragments of catalog YAML: every key of the library's key table, a few names that are not
/// keys, odd values and broken syntax.
fn fragment() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(fragments::KEYS.clone());
    let values = prop::sample::select(fragments::VALUES.to_vec());
    // A value written literally in the YAML may be quoted back in an error (the file is what
    // the user reads anyway); the canary reaches the YAML only through ${X}, whose expansion is
    // never quoted, and through connection strings, whose errors never quote a password.
    let connection_strings = prop::sample::select(fragments::CONNECTION_STRINGS.to_vec());
    prop_oneof![
        (keys.clone(), values).prop_map(|(k, v)| format!("{k}: {v}\n")),
        connection_strings.prop_map(|v| format!("connection_string: \"{v}\"\n")),
        keys.prop_map(|k| format!("{k}:\n  ")),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just("---\n".to_string()),
        Just("\t".to_string()),
        "\\PC{0,12}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_a_plan_or_an_error_and_never_leaks(parts in prop::collection::vec(fragment(), 0..12)) {
        let text: String = parts.concat();
        let env = MapEnv::new()
            .with_var("X", CANARY)
            .with_var("POSTGRES_PASSWORD", PASSWORD)
            .with_var("RDS_HOSTNAME", "db.abc.eu-west-1.rds.amazonaws.com");
        match load_str(&text, "f.yaml", &env) {
            Ok(config) => {
                let debug = format!("{config:?}");
                prop_assert!(!debug.contains(PASSWORD), "{}", debug);
                match plan(&config, &env) {
                    Ok(plan) => {
                        let shown = format!("{plan:?}{}", plan.to_json());
                        prop_assert!(!shown.contains(PASSWORD), "{}", shown);
                        for w in &plan.warnings {
                            let w = w.to_string();
                            prop_assert!(!w.contains(PASSWORD), "{}", w);
                        }
                    }
                    Err(e) => {
                        let shown = format!("{e}{e:?}");
                        prop_assert!(!shown.contains(CANARY) && !shown.contains(PASSWORD), "{}", shown);
                    }
                }
            }
            Err(e) => {
                let shown = format!("{e}{e:?}");
                prop_assert!(!shown.contains(CANARY) && !shown.contains(PASSWORD), "{}", shown);
                prop_assert!(e.location().is_some(), "an error without a location: {}", e);
            }
        }
    }
}

#[test]
fn a_password_in_a_connection_string_stays_out_of_everything_printed() {
    let env = MapEnv::new().with_var(
        "DSN",
        format!("host=db1,db2 port=5432 user=app password='{PASSWORD}' sslmode=require"),
    );
    let config = load_str("connection_string: ${DSN}\n", "f.yaml", &env).expect("valid");
    let plan = plan(&config, &env).expect("plannable");
    assert_eq!(plan.password.as_ref().map(|p| p.expose()), Some(PASSWORD));
    let shown = format!(
        "{config:?}{plan:?}{}{}{}",
        plan.to_json(),
        plan.conninfo(),
        plan.uri()
    );
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert_eq!(plan.password_source.to_string(), "literal");
}
