//! libpq options this crate honours, checked on a real server: what the server sees.

mod common;

use std::sync::Arc;

use tea_pgcloud::credentials::Credentials;
use tea_pgcloud::env::MapEnv;

async fn shown(connection_string: &str, setting: &str) -> String {
    let plan = common::plan_of(&format!("connection_string: \"{connection_string}\"\n"));
    let connected = Credentials::for_plan(plan, Arc::new(MapEnv::new()))
        .await
        .expect("a credentials stage")
        .connect()
        .await
        .expect("connects");
    connected
        .client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .expect("SHOW")
        .get(0)
}

#[test]
fn application_names_and_the_client_encoding_reach_the_server() {
    let server = common::plain_server("libpq-options");
    let base = format!(
        "host=127.0.0.1 port={} user={} password={} dbname=postgres sslmode=disable",
        server.port(),
        server.user(),
        server.password()
    );
    common::block_on(async {
        // libpq: fallback_application_name applies when application_name is not set ...
        let fallback = format!("{base} fallback_application_name=tea-fallback");
        assert_eq!(shown(&fallback, "application_name").await, "tea-fallback");
        // ... and application_name wins when both are.
        let both = format!("{fallback} application_name=tea-app");
        assert_eq!(shown(&both, "application_name").await, "tea-app");
        // The honoured client_encoding values are the encoding the client speaks.
        for encoding in ["UTF8", "utf8", "UNICODE"] {
            let with = format!("{base} client_encoding={encoding}");
            assert_eq!(shown(&with, "client_encoding").await, "UTF8", "{encoding}");
        }
    });
}
