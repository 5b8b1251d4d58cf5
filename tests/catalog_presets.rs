//! `PostgresCatalog` over every provider preset, end to end: each case turns a catalog YAML into
//! a plan, opens a catalog against a launched PostgreSQL (with the emulators standing in for the
//! clouds' identity and secrets services), runs a small real workload (track, get, list,
//! retrieve, snapshot, changed entries, a batch, stats) and checks from the server's side who
//! logged in and whether over TLS (`pg_stat_activity` joined with `pg_stat_ssl`). The harness
//! is the conformance kit's (`tea_pgcloud::conformance::presets`); this file is the table of
//! cases.
//!
//! A launched server cannot check cloud tokens: it holds one password per role. Each token is
//! made the role's password as it is issued, which stands in for the cloud's server-side
//! token check.
//!
//! The AWS case runs in a child process (this binary again, filtered to
//! [`aws_child_process_entry`], with an environment of its own: aws-config's container
//! credentials provider reads its endpoint only from the process environment), while the
//! emulator runs here.

use std::time::Duration;

use tea_pgcloud::conformance::presets::{
    self, AWS_CHILD_TEST, AWS_CHILD_VAR, AWS_REPORT, Login, Preset, Reach, RotationLoad, User,
};

/// TLS with a SCRAM password (verify-full against the generated root).
const HOSTSSL: Reach = Reach::Tls {
    hba: "hostssl all all 127.0.0.1/32 scram-sha-256",
    client_ca: false,
};

/// AWS RDS IAM: verify-full with `ssl_bundle` (a generated CA file), tokens signed by the real
/// `RdsTokenProvider` with credentials from the container credentials emulator.
const AWS_RDS: Preset = Preset {
    server: "presets-aws",
    reach: HOSTSSL,
    user: User::Rotating("ltm_agent"),
    login: Login::AwsContainerCredentials,
    tag: "aws",
};

/// Declares one test per row.
macro_rules! preset_cases {
    ($($(#[$doc:meta])* $name:ident: $row:expr;)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                presets::run(&$row);
            }
        )*
    };
}

preset_cases! {
    /// GCP Cloud SQL through the Auth Proxy's socket path (`socket_dir/PROJECT:REGION:INSTANCE`),
    /// IAM tokens from the metadata server emulator.
    gcp_auth_proxy_socket_with_iam_tokens_from_the_metadata_server: Preset {
        server: "presets-gcp-iam",
        reach: Reach::AuthProxySocket,
        user: User::Rotating("ltm-agent@emulator-project.iam"),
        login: Login::GcpMetadataServer,
        tag: "gcp",
    };
    /// The same socket, the password from the Secret Manager emulator.
    gcp_auth_proxy_socket_with_a_password_from_secret_manager: Preset {
        server: "presets-gcp-sm",
        reach: Reach::AuthProxySocket,
        user: User::Launcher,
        login: Login::GcpSecretManager,
        tag: "gcp-sm",
    };
    /// AWS RDS IAM in a child process ([`AWS_RDS`]).
    aws_rds_iam_verify_full_with_ssl_bundle_and_container_credentials: AWS_RDS;
    /// Azure Entra: verify-full with a generated CA, tokens from `EntraTokenProvider` against
    /// the Entra token emulator.
    azure_entra_tokens_with_verify_full: Preset {
        server: "presets-azure",
        reach: HOSTSSL,
        user: User::Rotating("ltm_app"),
        login: Login::AzureEntra,
        tag: "azure",
    };
    /// Self-hosted verify-full with a client certificate the server demands (and the password
    /// too), the password from the `env` backend (a `MapEnv`); without the certificate the
    /// same password is refused.
    self_hosted_verify_full_with_a_client_certificate_and_env_credentials: Preset {
        server: "presets-self-hosted",
        reach: Reach::Tls {
            hba: "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
            client_ca: true,
        },
        user: User::Launcher,
        login: Login::EnvWithClientCert,
        tag: "self",
    };
    /// A plain `connection_string` with the password inside.
    a_connection_string_with_the_password_inside: Preset {
        server: "presets-connection-string",
        reach: HOSTSSL,
        user: User::Launcher,
        login: Login::ConnectionString,
        tag: "plain",
    };
}

/// Token rotation under load: 8 tasks write 2,000 entries while Cloud SQL tokens (2 s) rotate
/// at least 5 times and connections live 150 ms; no write is lost.
#[test]
fn token_rotation_mid_workload_loses_no_write() {
    presets::rotation_under_load(&RotationLoad {
        server: "presets-rotation",
        service_account: "ltm-writer@my-project.iam.gserviceaccount.com",
        user: "ltm-writer@my-project.iam",
        tasks: 8,
        entries: 2_000,
        min_rotations: 5,
        // Refreshed after 1 s (half their life), so about one rotation a second.
        token_secs: 2,
        // About 7 rotations, for the 5 required.
        span: Duration::from_secs(8),
    });
}

/// Runs in the child: the whole AWS case with aws-config's container credentials provider,
/// which reads `AWS_CONTAINER_CREDENTIALS_FULL_URI` from this (the child's) environment.
/// Prints a JSON report for the parent, which holds the emulator.
#[test]
#[ignore = "the child process of the AWS case: it does something only in the environment that case gives it"]
fn aws_child_process_entry() {
    assert_eq!(
        AWS_CHILD_TEST, "aws_child_process_entry",
        "the kit starts this test by name"
    );
    // Run directly (`--ignored`), it has nothing to check: say so by failing, not by passing.
    assert!(
        std::env::var(AWS_CHILD_VAR).is_ok(),
        "the child half of the AWS preset case: run that case, which starts this one"
    );
    let report = presets::aws_child(&AWS_RDS);
    println!("{AWS_REPORT}{report}");
}
