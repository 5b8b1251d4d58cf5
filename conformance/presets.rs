//! The provider presets end to end, for `PostgresCatalog`: each [`Preset`] turns a catalog
//! YAML into a plan, opens a catalog against a launched PostgreSQL (with the emulators
//! standing in for the clouds' identity and secrets services), runs a small real workload
//! (track, get, list, retrieve, snapshot, changed entries, a batch, stats) and checks from the
//! server's side who logged in and whether over TLS (`pg_stat_activity` joined with
//! `pg_stat_ssl`). `tests/catalog_presets.rs` holds the table of cases.
//!
//! A launched server cannot check cloud tokens: it holds one password per role. Each token is
//! made the role's password as it is issued ([`RoleRotator`]), which stands in for the cloud's
//! server-side token check: by the emulator's `on_issue` hook where it has one (GCP), else by
//! [`PasswordOnFetch`], a test-only wrapper around the real provider (RDS, Entra).
//!
//! aws-config's container credentials provider reads its endpoint only from the process
//! environment, and the tests never change their process's environment: the AWS case runs in
//! a child process ([`AWS_CHILD_TEST`] of the same test binary, with an environment of its
//! own), while the emulator runs in the parent.
//!
//! The checks panic as `assert!` does: this module is the body of those tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::certs::CertFactory;
use super::child::ChildTest;
use super::emulators::aws_creds::ContainerCredentialsEmulator;
use super::emulators::azure_token::{AzureTokenEmulator, CLIENT_ID, CLIENT_SECRET, TENANT_ID};
use super::emulators::gcp::GcpSecretManager;
use super::emulators::gcp_token::{DEFAULT_EMAIL, MetadataServerEmulator};
use super::launcher::{PgServer, Profile};
use super::rotation::{RoleRotator, RotatingIssuer};
use crate::catalog::{
    BatchOutcome, CatalogOptions, Entry, ListQuery, NewEntry, PostgresCatalog, content_hash,
};
use crate::env::{Environment, MapEnv};
use crate::iam::cache::{CacheOptions, CachedProvider};
use crate::iam::gcp::{CloudSqlTokenProvider, SQLSERVICE_LOGIN_SCOPE};
use crate::iam::{
    CredentialProvider, SystemWallClock, TokenError, TokenErrorKind, TokenFuture, TokenSource,
};
use crate::plan::ConnectPlan;
use crate::pool::{HealthCheck, Pool, PoolOptions};
use crate::sslmode::Verify;

/// The database every case's catalog lives in (fresh per server).
pub const DB: &str = "ltm";
/// The Cloud SQL instance of the Auth Proxy cases.
pub const GCP_INSTANCE: &str = "p:r:i";
/// The RDS cases' region.
pub const RDS_REGION: &str = "us-east-1";
/// Connection lifetime in the IAM cases: short, so that a rotation is followed by new logins.
pub const IAM_LIFETIME: Duration = Duration::from_millis(300);
/// The test of the test binary that runs the AWS case's child half: the binary must have an
/// ignored test of this name that calls [`aws_child`].
pub const AWS_CHILD_TEST: &str = "aws_child_process_entry";
/// Set (to `1`) in the AWS child's environment, and only there.
pub const AWS_CHILD_VAR: &str = "TEA_PRESETS_AWS_CHILD";
/// Marks the AWS child's JSON report on its standard output.
pub const AWS_REPORT: &str = "PRESETS-AWS-REPORT ";

/// One preset case.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The launched server's name.
    pub server: &'static str,
    /// How the catalog reaches the server.
    pub reach: Reach,
    /// The role the catalog logs in as.
    pub user: User,
    /// Where the login's password or token comes from.
    pub login: Login,
    /// The workload's key prefix.
    pub tag: &'static str,
}

/// How the catalog reaches the server.
#[derive(Debug, Clone, Copy)]
pub enum Reach {
    /// The Cloud SQL Auth Proxy's socket, `socket_dir/PROJECT:REGION:INSTANCE/.s.PGSQL.5432`
    /// (a symlink to a native server's own socket, where passwords are then required).
    AuthProxySocket,
    /// TCP with TLS, verify-full against the factory's root: a server with these
    /// `pg_hba.conf` lines, and `ssl_ca_file` set to the root when `client_ca`.
    Tls {
        /// The `pg_hba.conf` line.
        hba: &'static str,
        /// The server asks for client certificates signed by the root.
        client_ca: bool,
    },
}

/// The role the catalog logs in as.
#[derive(Debug, Clone, Copy)]
pub enum User {
    /// The launcher's login role, with its password.
    Launcher,
    /// A role whose password is each token as it is issued.
    Rotating(&'static str),
}

/// Where the login comes from.
#[derive(Debug, Clone, Copy)]
pub enum Login {
    /// GCP IAM tokens from the metadata server emulator (`iam_auth: true`).
    GcpMetadataServer,
    /// The password from the GCP Secret Manager emulator (`credentials: source: gcp`).
    GcpSecretManager,
    /// RDS IAM tokens signed by the real `RdsTokenProvider` with credentials from the
    /// container credentials emulator, with `ssl_bundle` (in a child process).
    AwsContainerCredentials,
    /// Tokens from `EntraTokenProvider` against the Entra token emulator (client secret).
    AzureEntra,
    /// The password from the `env` backend, and a client certificate the server demands.
    EnvWithClientCert,
    /// A `connection_string` with the password inside.
    ConnectionString,
}

/// Runs `preset` to its end (on a runtime of its own); panics at the first failed check.
pub fn run(preset: &Preset) {
    if let Login::AwsContainerCredentials = preset.login {
        // The server, the catalog and their checks live in the child.
        return block_on_multi(aws_parent());
    }
    let (server, factory) = match preset.reach {
        // The Auth Proxy's socket needs the server's own socket on this host: native launcher.
        Reach::AuthProxySocket => (native_plain_server(preset.server), None),
        Reach::Tls { hba, client_ca } => {
            let factory = CertFactory::new().expect("certs");
            let server = PgServer::start_tls(preset.server, &factory, &[hba], client_ca);
            (server, Some(factory))
        }
    };
    let rotator = match preset.user {
        User::Rotating(role) => Some(RoleRotator::start(&server, role).expect("the IAM role")),
        User::Launcher => None,
    };
    let user = match preset.user {
        User::Rotating(role) => role.to_string(),
        User::Launcher => server.user().to_string(),
    };
    server
        .create_database(DB, &user)
        .expect("creates the database");
    let socket_dir = tempfile::tempdir().expect("a socket dir");
    let files = tempfile::tempdir().expect("a temp dir");
    let case = Case {
        preset,
        server: &server,
        user: &user,
        rotator,
        factory: factory.as_ref(),
        socket_dir: socket_dir.path(),
        files: files.path(),
    };
    block_on_multi(async {
        if let Reach::AuthProxySocket = preset.reach {
            let socket = proxy_socket(&server, socket_dir.path());
            require_passwords_on_the_socket(&server, &socket).await;
        }
        match preset.login {
            Login::GcpMetadataServer => gcp_metadata_server(&case).await,
            Login::GcpSecretManager => gcp_secret_manager(&case).await,
            Login::AzureEntra => azure_entra(&case).await,
            Login::EnvWithClientCert => env_with_client_cert(&case).await,
            Login::ConnectionString => connection_string(&case).await,
            Login::AwsContainerCredentials => unreachable!("run in a child"),
        }
    });
}

/// A running case: the server, the role, and where its files go.
struct Case<'a> {
    preset: &'a Preset,
    server: &'a PgServer,
    user: &'a str,
    rotator: Option<Arc<RoleRotator>>,
    factory: Option<&'a CertFactory>,
    socket_dir: &'a Path,
    files: &'a Path,
}

impl Case<'_> {
    /// What every backend of the catalog's database must look like.
    fn expect(&self) -> Expect<'_> {
        let (tls, local) = match self.preset.reach {
            Reach::AuthProxySocket => (false, true),
            Reach::Tls { .. } => (true, false),
        };
        Expect {
            user: self.user,
            tls,
            local,
            client_cn: matches!(self.preset.login, Login::EnvWithClientCert)
                .then_some(self.server.user()),
        }
    }

    fn rotator(&self) -> &Arc<RoleRotator> {
        self.rotator.as_ref().expect("a rotating role")
    }

    fn factory(&self) -> &CertFactory {
        self.factory.expect("a TLS case")
    }

    /// Writes the factory's root certificate into the case's files; returns its path.
    fn root(&self) -> String {
        write_file(self.files, "root.pem", self.factory().root_pem(), 0o644)
    }
}

// --- The cases --------------------------------------------------------------------------------

async fn gcp_metadata_server(case: &Case<'_>) {
    let (server, rotator) = (case.server, case.rotator());
    assert_eq!(
        crate::provider::gcp::iam_user(DEFAULT_EMAIL),
        case.user,
        "the role of the emulator's service account"
    );
    let mds = MetadataServerEmulator::start().await;
    mds.on_issue(rotator.hook());
    let yaml = format!(
        "provider: gcp\nconnection_name: {GCP_INSTANCE}\nsocket_dir: {}\ndatabase: {DB}\n\
         user: {DEFAULT_EMAIL}\niam_auth: true\nmax_size: 2\n",
        case.socket_dir.display()
    );
    let env = MapEnv::new().with_var("GCE_METADATA_HOST", mds.host());
    let plan = plan_with(&yaml, &env);
    check_socket_plan(&plan, case.socket_dir);
    assert_eq!(plan.password_source.to_string(), "iam:gcp");
    assert_eq!(plan.user.as_deref(), Some(case.user));

    // The production path: YAML, plan, the provider the plan names, the shared cache.
    let catalog = PostgresCatalog::from_yaml(&yaml, "agent.yaml", Arc::new(env))
        .await
        .expect("a catalog over the proxy socket");
    workload(&catalog, case.preset.tag).await;
    assert_server_saw(server, DB, &case.expect());
    assert_eq!(own_session(&catalog).await, (case.user.to_string(), false));
    assert!(mds.issued() >= 1);
    assert_eq!(rotator.rotations(), mds.issued() as u64);
    assert_eq!(rotator.failures(), 0);
    assert_eq!(
        mds.last_scope().as_deref(),
        Some(SQLSERVICE_LOGIN_SCOPE),
        "a token for database login"
    );
    let token = mds.last_token().expect("a token");
    assert_hidden(&catalog, &[&token], "");
    catalog.close();
}

async fn gcp_secret_manager(case: &Case<'_>) {
    let server = case.server;
    let sm = GcpSecretManager::start().await;
    // The project comes from the connection name.
    sm.put("p", "ltm-postgres-username", server.user()).await;
    sm.put("p", "ltm-postgres-password", server.password())
        .await;
    let yaml = format!(
        "provider: gcp\nconnection_name: {GCP_INSTANCE}\nsocket_dir: {}\ndatabase: {DB}\n\
         credentials:\n  source: gcp\n  secret_prefix: ltm-postgres-\n  endpoint: {}\n",
        case.socket_dir.display(),
        sm.uri()
    );
    let env = MapEnv::new();
    check_socket_plan(&plan_with(&yaml, &env), case.socket_dir);
    let catalog = PostgresCatalog::from_yaml(&yaml, "agent.yaml", Arc::new(env))
        .await
        .expect("a catalog over the proxy socket");
    workload(&catalog, case.preset.tag).await;
    assert_server_saw(server, DB, &case.expect());
    assert!(sm.requests_for("ltm-postgres-password").await >= 1);
    assert_hidden(&catalog, &[server.password()], "");
    catalog.close();
}

async fn azure_entra(case: &Case<'_>) {
    use crate::iam::azure::{EntraTokenProvider, OSSRDBMS_SCOPE};
    use crate::secrets::azure::AzureTimeouts;

    let (server, rotator) = (case.server, case.rotator());
    let root = case.root();
    let emulator = AzureTokenEmulator::start().await;
    let env: Arc<dyn Environment> = Arc::new(
        MapEnv::new()
            .with_file(root.clone())
            .with_var("AZURE_TENANT_ID", TENANT_ID)
            .with_var("AZURE_CLIENT_ID", CLIENT_ID)
            .with_var("AZURE_CLIENT_SECRET", CLIENT_SECRET),
    );
    let plan = plan_with(
        &format!(
            "provider: azure\nhost: localhost\nport: {}\ndatabase: {DB}\nuser: {}\n\
             iam_auth: true\nsslrootcert: {root}\n",
            server.port(),
            case.user
        ),
        env.as_ref(),
    );
    assert_eq!(plan.sslmode.as_str(), "verify-full");
    assert_eq!(plan.tls.verify, Verify::Full);
    assert_eq!(plan.password_source.to_string(), "iam:azure");
    let provider = EntraTokenProvider::for_emulator(
        &plan,
        Arc::clone(&env),
        &emulator.uri(),
        AzureTimeouts {
            request: Duration::from_secs(2),
            connect: Duration::from_secs(2),
            max_retries: 2,
            retry_initial_delay: Duration::from_millis(10),
            retry_max_delay: Duration::from_secs(1),
            total: Duration::from_secs(10),
        },
    )
    .expect("an Entra provider");
    assert_eq!(provider.credential_name(), "ClientSecretCredential");
    let wrapper = PasswordOnFetch::new(Arc::new(provider), Arc::clone(rotator));
    let (catalog, cache) = iam_catalog(
        &plan,
        env,
        Arc::clone(&wrapper) as Arc<dyn CredentialProvider>,
        IAM_LIFETIME,
    )
    .await;
    workload(&catalog, case.preset.tag).await;
    let expect = case.expect();
    assert_server_saw(server, DB, &expect);
    rotate_and_reconnect(&catalog, &cache, IAM_LIFETIME, case.preset.tag).await;
    assert_server_saw(server, DB, &expect);
    assert_eq!(own_session(&catalog).await, (case.user.to_string(), true));
    cache.stop().await;

    let tokens = wrapper.tokens();
    assert!(tokens.len() >= 2, "{}", tokens.len());
    assert_eq!(rotator.rotations(), tokens.len() as u64);
    // No SDK cache in between: each token is one request to Entra, for the database scope,
    // authenticated with the client secret.
    assert_eq!(emulator.requests(), tokens.len());
    assert_eq!(emulator.issued(), tokens.len());
    let last = emulator.last_request().expect("a request");
    assert_eq!(last.audience(), Some(OSSRDBMS_SCOPE));
    assert_eq!(last.tenant.as_deref(), Some(TENANT_ID));
    assert_eq!(last.client_auth, Some("client_secret"));
    assert_eq!(
        emulator.last_token().as_deref(),
        tokens.last().map(String::as_str)
    );
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.push(CLIENT_SECRET);
    assert_hidden(&catalog, &secrets, &format!("{cache:?}\n{wrapper:?}"));
    catalog.close();
}

async fn env_with_client_cert(case: &Case<'_>) {
    let server = case.server;
    let client = case.factory().client(server.user()).expect("a client cert");
    let root = case.root();
    let cert = write_file(case.files, "client.crt", &client.cert, 0o644);
    let key = write_file(case.files, "client.key", &client.key, 0o600);
    let yaml = |with_cert: bool| {
        let mut yaml = format!(
            "host: localhost\nport: {}\ndatabase: {DB}\nsslmode: verify-full\nsslrootcert: {root}\n\
             credentials:\n  source: env\n  prefix: LTM_\n",
            server.port()
        );
        if with_cert {
            yaml.push_str(&format!("sslcert: {cert}\nsslkey: {key}\n"));
        }
        yaml
    };
    let env = MapEnv::new()
        .with_file(root.clone())
        .with_file(cert.clone())
        .with_file(key.clone())
        .with_var("LTM_USER", server.user())
        .with_var("LTM_PASSWORD", server.password());
    let plan = plan_with(&yaml(true), &env);
    assert_eq!(plan.kind.as_str(), "self-hosted");
    assert_eq!(plan.tls.verify, Verify::Full);
    assert_eq!(plan.password, None, "the password is not in the plan");

    let catalog = PostgresCatalog::from_yaml(&yaml(true), "agent.yaml", Arc::new(env.clone()))
        .await
        .expect("a catalog");
    workload(&catalog, case.preset.tag).await;
    assert_server_saw(server, DB, &case.expect());
    assert_eq!(
        own_session(&catalog).await,
        (server.user().to_string(), true)
    );
    assert_hidden(&catalog, &[server.password()], "");
    catalog.close();

    // Without the certificate the same password is refused: the certificate took part.
    let err = PostgresCatalog::from_yaml(&yaml(false), "agent.yaml", Arc::new(env))
        .await
        .expect_err("no client certificate");
    let shown = format!("{err}\n{err:?}");
    assert!(shown.contains("certificate"), "{shown}");
    assert!(!shown.contains(server.password()), "{shown}");
}

async fn connection_string(case: &Case<'_>) {
    let server = case.server;
    let yaml = format!(
        "connection_string: \"postgresql://{}:{}@127.0.0.1:{}/{DB}?sslmode=require&application_name=ltm-presets\"\n",
        server.user(),
        server.password(),
        server.port()
    );
    let plan = plan_with(&yaml, &MapEnv::new());
    assert_eq!(
        plan.password.as_ref().map(|p| p.expose()),
        Some(server.password())
    );
    assert!(!format!("{plan:?}").contains(server.password()));
    let catalog = PostgresCatalog::from_yaml(&yaml, "agent.yaml", Arc::new(MapEnv::new()))
        .await
        .expect("a catalog");
    workload(&catalog, case.preset.tag).await;
    assert_server_saw(server, DB, &case.expect());
    let apps = server
        .admin_sql(&format!(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = '{DB}'"
        ))
        .expect("application names");
    assert_eq!(apps, "ltm-presets");
    assert_hidden(&catalog, &[server.password()], "");
    catalog.close();
}

// --- AWS RDS IAM, in a child process ----------------------------------------------------------

/// The access key id a SigV4-presigned token was signed with (`X-Amz-Credential=KEY%2F...`).
fn access_key_of(token: &str) -> String {
    let (_, rest) = token
        .split_once("X-Amz-Credential=")
        .expect("a presigned token");
    rest.split("%2F").next().expect("a key id").to_string()
}

/// The parent half of the AWS case: the container credentials emulator here, the case in the
/// child; checks what the child reports against what the emulator issued.
async fn aws_parent() {
    let emulator = ContainerCredentialsEmulator::start().await;
    let (report, output) = run_aws_child(emulator.full_uri()).await;
    let fetches = report["fetches"].as_u64().expect("fetches");
    // The first token, and the forced rotation's.
    assert!(fetches >= 2, "{report}");
    assert_eq!(
        report["distinct_tokens"].as_u64(),
        Some(fetches),
        "{report}"
    );
    assert_eq!(report["rotations"].as_u64(), Some(fetches), "{report}");
    assert!(report["connections_opened"].as_u64() >= Some(2), "{report}");
    // Nothing caches credentials between the token cache and the container endpoint: one
    // request per token, and each token is signed with the credentials that request got.
    assert_eq!(emulator.requests() as u64, fetches, "{report}");
    let issued = emulator.issued();
    let issued_ids: Vec<&str> = issued.iter().map(|c| c.access_key_id.as_str()).collect();
    let signed_with: Vec<&str> = report["access_key_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("an id"))
        .collect();
    assert_eq!(signed_with, issued_ids);
    // The credentials' secrets are in no output of the child (its Debug and errors were
    // checked against the tokens there).
    for c in &issued {
        assert!(
            !output.contains(&c.secret_access_key),
            "a secret key leaked"
        );
        assert!(!output.contains(&c.session_token), "a session token leaked");
    }
}

/// Runs the AWS case in a child with only the variables given here, a fresh HOME, no shared
/// AWS files and no instance metadata; returns its report and everything it printed.
async fn run_aws_child(container_uri: String) -> (Value, String) {
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().expect("a home");
        let output = ChildTest::new(AWS_CHILD_TEST)
            .expect("the test binary")
            .env_clear()
            .without_aws_setup(home.path())
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", container_uri)
            .env(AWS_CHILD_VAR, "1")
            // What the launcher needs to find and run PostgreSQL.
            .pass_env(&["PATH", "TEA_PG_BINDIR", "TEA_PG_TMPDIR"])
            .run()
            .expect("the child runs");
        match (output.success, output.report(AWS_REPORT)) {
            (true, Some(line)) => (
                serde_json::from_str(line).expect("a JSON report"),
                format!("{}\n{}", output.stdout, output.stderr),
            ),
            _ => panic!("the child failed ({})", output.shown()),
        }
    })
    .await
    .expect("the child's thread")
}

/// The child half of the AWS case `preset` (run by [`AWS_CHILD_TEST`]): the whole case with
/// aws-config's container credentials provider, which reads
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` from this (the child's) environment. Returns a JSON
/// report for the parent, which holds the emulator.
pub fn aws_child(preset: &Preset) -> Value {
    block_on_multi(aws_child_case(preset))
}

async fn aws_child_case(preset: &Preset) -> Value {
    use crate::iam::aws::RdsTokenProvider;
    use aws_config::Region;
    use aws_config::ecs::EcsCredentialsProvider;
    use aws_config::provider_config::ProviderConfig;

    let (Reach::Tls { hba, client_ca }, User::Rotating(user)) = (preset.reach, preset.user) else {
        panic!("the AWS case is over TLS with a rotating role: {preset:?}");
    };
    let factory = CertFactory::new().expect("certs");
    let server = PgServer::start_tls(preset.server, &factory, &[hba], client_ca);
    let rotator = RoleRotator::start(&server, user).expect("the IAM role");
    server
        .create_database(DB, user)
        .expect("creates the database");
    let files = tempfile::tempdir().expect("a temp dir");
    let bundle = write_file(files.path(), "rds-ca.pem", factory.root_pem(), 0o644);
    let env: Arc<dyn Environment> = Arc::new(MapEnv::new().with_file(bundle.clone()));
    let plan = plan_with(
        &format!(
            "provider: aws\nhost: localhost\nport: {}\nregion: {RDS_REGION}\ndatabase: {DB}\n\
             user: {user}\niam_auth: true\nssl_bundle: {bundle}\n",
            server.port()
        ),
        env.as_ref(),
    );
    assert_eq!(plan.sslmode.as_str(), "verify-full");
    assert_eq!(plan.tls.verify, Verify::Full);
    assert_eq!(plan.sslrootcert.as_deref(), Some(bundle.as_str()));
    assert_eq!(plan.password_source.to_string(), "iam:aws-rds");
    assert_eq!(plan.region.as_deref(), Some(RDS_REGION));

    let host = &plan.hosts[0];
    let provider = RdsTokenProvider::builder()
        .host(host.host.clone())
        .port(host.port)
        .user(plan.user.clone().expect("a user"))
        .region(plan.region.clone().expect("a region"))
        .credentials_provider(
            EcsCredentialsProvider::builder()
                .configure(
                    &ProviderConfig::without_region()
                        .with_http_client(crate::secrets::aws::http_client())
                        .with_region(Some(Region::new(RDS_REGION))),
                )
                .build(),
        )
        .build()
        .expect("an RDS token provider");
    assert_eq!(
        provider.key(),
        format!("{RDS_REGION}:localhost:{}:{user}", server.port())
    );
    let wrapper = PasswordOnFetch::new(Arc::new(provider), Arc::clone(&rotator));
    let (catalog, cache) = iam_catalog(
        &plan,
        env,
        Arc::clone(&wrapper) as Arc<dyn CredentialProvider>,
        IAM_LIFETIME,
    )
    .await;
    workload(&catalog, preset.tag).await;
    let expect = Expect {
        user,
        tls: true,
        local: false,
        client_cn: None,
    };
    assert_server_saw(&server, DB, &expect);
    rotate_and_reconnect(&catalog, &cache, IAM_LIFETIME, preset.tag).await;
    assert_server_saw(&server, DB, &expect);
    assert_eq!(own_session(&catalog).await, (user.to_string(), true));

    cache.stop().await;
    let tokens = wrapper.tokens();
    let prefix = format!("localhost:{}/?Action=connect&DBUser={user}&", server.port());
    for token in &tokens {
        assert!(
            token.starts_with(&prefix),
            "not an RDS token for this endpoint"
        );
        assert!(token.contains("X-Amz-Expires=900"), "not a 15-minute token");
        assert!(
            token.contains("X-Amz-Security-Token="),
            "not signed with session credentials"
        );
        assert!(token.contains(&format!("%2F{RDS_REGION}%2Frds-db%2Faws4_request")));
    }
    let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert_hidden(
        &catalog,
        &token_refs,
        &format!("{cache:?}\n{wrapper:?}\n{:?}", cache.last_error()),
    );
    let report = json!({
        "fetches": tokens.len(),
        "distinct_tokens": tokens.iter().collect::<BTreeSet<_>>().len(),
        "access_key_ids": tokens.iter().map(|t| access_key_of(t)).collect::<Vec<_>>(),
        "rotations": rotator.rotations(),
        "connections_opened": catalog.pool().await.expect("pool").stats().connections_opened,
        "catalog_debug": format!("{catalog:?}"),
    });
    catalog.close();
    report
}

// --- Token rotation under a write load ---------------------------------------------------------

/// The rotation-under-load case: `tasks` tasks write `entries` entries, spread over at least
/// `span`, while Cloud SQL tokens that live `token_secs` rotate (each made the role's password
/// as it is issued) and pool connections live 150 ms; no write may be lost.
#[derive(Debug, Clone, Copy)]
pub struct RotationLoad {
    /// The launched server's name.
    pub server: &'static str,
    /// The service account the tokens are for.
    pub service_account: &'static str,
    /// Its database role.
    pub user: &'static str,
    /// Writing tasks.
    pub tasks: usize,
    /// Entries written in all.
    pub entries: usize,
    /// Rotations required while writing, at least.
    pub min_rotations: u64,
    /// Token life: refreshed after half of it.
    pub token_secs: i64,
    /// How long the writes are spread over, at least.
    pub span: Duration,
}

impl RotationLoad {
    /// One task's share of the writes, in steps: two entries tracked one by one, then eight in
    /// one non-atomic batch.
    fn entries(&self, task: usize) -> Vec<NewEntry> {
        (0..self.entries / self.tasks)
            .map(|i| {
                NewEntry::inline(
                    format!("rot:{task}:{i}"),
                    json!({"task": task, "i": i, "pad": "x".repeat(i % 40)}),
                )
            })
            .collect()
    }
}

/// Runs the rotation-under-load case; panics at the first failed check.
pub fn rotation_under_load(load: &RotationLoad) {
    let server = PgServer::start(&Profile::new(
        load.server,
        None,
        ["host all all 127.0.0.1/32 scram-sha-256"],
    ))
    .expect("a server");
    block_on_multi(rotation_under_load_on(&server, *load));
}

async fn rotation_under_load_on(server: &PgServer, load: RotationLoad) {
    let issuer = RotatingIssuer::start(server, load.service_account, load.token_secs)
        .await
        .expect("a rotating issuer");
    assert_eq!(issuer.role(), load.user);
    server
        .create_database(DB, load.user)
        .expect("creates the database");
    let plan = plan_with(&issuer.plain_yaml(server, DB), &MapEnv::new());
    assert_eq!(plan.user.as_deref(), Some(load.user));
    let builder =
        CloudSqlTokenProvider::builder_from_plan(&plan, &MapEnv::new()).expect("a builder");
    let provider = issuer
        .provider_from(builder, Duration::from_secs(5))
        .await
        .expect("a provider");
    let RotatingIssuer {
        emulator: oauth,
        rotator,
        ..
    } = issuer;
    let cache = CachedProvider::new(
        Arc::new(provider) as Arc<dyn CredentialProvider>,
        CacheOptions {
            retry_backoff: Duration::from_millis(200),
            ..CacheOptions::default()
        },
        Arc::new(SystemWallClock),
    );
    let pool = Pool::builder(plan, Arc::new(MapEnv::new()))
        .tokens(TokenSource::Cached(Arc::clone(&cache)))
        .options(PoolOptions {
            min_size: 2,
            max_size: 4,
            max_lifetime: Some(Duration::from_millis(150)),
            health_check: HealthCheck::Fast,
            wait_timeout: Some(Duration::from_secs(30)),
            ..PoolOptions::default()
        })
        .build()
        .await
        .expect("a pool");
    let catalog = PostgresCatalog::from_pool(pool, CatalogOptions::default())
        .await
        .expect("a catalog");
    let rotations_at_start = rotator.rotations();

    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..load.tasks)
        .map(|task| {
            let catalog = catalog.clone();
            let failures = Arc::clone(&failures);
            tokio::spawn(async move {
                let entries = load.entries(task);
                let steps: Vec<&[NewEntry]> = entries.chunks(10).collect();
                let pace = load.span / steps.len() as u32;
                let mut errors = Vec::new();
                let mut written = 0usize;
                for (n, step) in steps.iter().enumerate() {
                    tokio::time::sleep_until((started + pace * n as u32).into()).await;
                    let (singles, batch) = step.split_at(2.min(step.len()));
                    for e in singles {
                        match catalog.track_entry(e).await {
                            Ok(_) => written += 1,
                            Err(err) => errors.push(format!("track {}: {err}", e.key)),
                        }
                    }
                    match catalog.store_batch(batch, false).await {
                        Ok(report) => {
                            written += report.stored_count();
                            if !report.success() {
                                errors.push(format!("batch: {report:?}"));
                            }
                        }
                        Err(err) => errors.push(format!("batch: {err}")),
                    }
                }
                failures.fetch_add(errors.len() as u64, Ordering::Relaxed);
                (written, errors)
            })
        })
        .collect();
    let mut written = 0;
    let mut errors = Vec::new();
    for t in tasks {
        let (w, e) = t.await.expect("a task");
        written += w;
        errors.extend(e);
    }
    let elapsed = started.elapsed();
    cache.stop().await;
    let rotations = rotator.rotations() - rotations_at_start;
    let pool_stats = catalog.pool().await.expect("pool").stats();
    let cache_stats = cache.stats();
    let report = format!(
        "rotation: {written} entries in {:.1} s from {} tasks, {} failed writes; {rotations} \
         rotations ({} ALTER ROLE failures); token requests {}; cache {cache_stats:?}; pool \
         {pool_stats:?}",
        elapsed.as_secs_f64(),
        load.tasks,
        failures.load(Ordering::Relaxed),
        rotator.failures(),
        oauth.requests(),
    );
    eprintln!("{report}");
    assert!(
        errors.is_empty(),
        "{report}\nfirst errors: {:#?}",
        &errors[..errors.len().min(5)]
    );
    assert_eq!(written, load.entries, "{report}");
    assert!(rotations >= load.min_rotations, "{report}");
    assert_eq!(rotator.failures(), 0, "{report}");
    assert_eq!(oauth.requests() as u64, cache_stats.fetches, "{report}");
    assert_eq!(pool_stats.connect_failures, 0, "{report}");
    assert!(
        pool_stats.expired > 0,
        "connections were never retired: {report}"
    );
    assert!(
        pool_stats.connections_opened > rotations,
        "too few logins to cross the rotations: {report}"
    );

    // Every entry reads back with the content it was written with.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for task in 0..load.tasks {
        for e in load.entries(task) {
            expected.insert(e.key, e.content_hash);
        }
    }
    assert_eq!(expected.len(), load.entries);
    let keys: Vec<&String> = expected.keys().collect();
    for chunk in keys.chunks(500) {
        let got = catalog.retrieve_batch(chunk).await.expect("reads back");
        for (key, entry) in got {
            let entry = entry.unwrap_or_else(|| panic!("{key} was lost"));
            assert_eq!(entry.content_hash, expected[&key], "{key}");
            let value = entry.inlined_value.expect("inlined");
            assert_eq!(
                content_hash(&value),
                expected[&key],
                "{key}: the value itself"
            );
        }
    }
    let stats = catalog.stats().await.expect("stats");
    assert_eq!(stats.entries as usize, load.entries);
    assert_hidden(
        &catalog,
        &[&oauth.last_token().expect("a token")],
        &format!("{cache:?}"),
    );
    catalog.close();
}

// --- Servers, files and what the server saw ---------------------------------------------------

/// Runs a future on a fresh multi-thread runtime (two workers) with time and I/O enabled.
fn block_on_multi<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A plain PostgreSQL (SCRAM over TCP) from the machine's binaries, whatever
/// `TEA_PG_LAUNCHER` says.
fn native_plain_server(name: &str) -> PgServer {
    PgServer::start_native(&Profile::new(
        name,
        None,
        ["host all all 127.0.0.1/32 scram-sha-256"],
    ))
    .expect("a server")
}

/// Writes `contents` to `dir/name` with `mode`; returns the path as text.
fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("writes a file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_str().expect("a UTF-8 path").to_string()
}

/// A plan of `yaml` with `env`, through the same functions the catalog uses.
fn plan_with(yaml: &str, env: &dyn Environment) -> ConnectPlan {
    let config = crate::config::load_str(yaml, "agent.yaml", env).expect("valid YAML");
    crate::provider::plan(&config, env).expect("a plan")
}

/// One backend of the catalog's database, as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    user: String,
    ssl: bool,
    tls_version: String,
    client_dn: String,
    /// Connected over a unix socket (no client address).
    local: bool,
}

/// Every client backend connected to `db`, from `pg_stat_activity` and `pg_stat_ssl` (asked
/// over the harness's own admin connection, which is on database `postgres`).
fn seen(server: &PgServer, db: &str) -> Vec<Seen> {
    let out = server
        .admin_sql(&format!(
            "SELECT a.usename, s.ssl, COALESCE(s.version, ''), COALESCE(s.client_dn, ''), \
                    a.client_addr IS NULL \
             FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.datname = '{db}' AND a.backend_type = 'client backend' ORDER BY a.pid"
        ))
        .expect("pg_stat_activity");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 5, "{line}");
            Seen {
                user: f[0].to_string(),
                ssl: f[1] == "t",
                tls_version: f[2].to_string(),
                client_dn: f[3].to_string(),
                local: f[4] == "t",
            }
        })
        .collect()
}

/// What every backend of the catalog's database must look like.
struct Expect<'a> {
    user: &'a str,
    tls: bool,
    local: bool,
    /// The client certificate's CN, when one must have been presented.
    client_cn: Option<&'a str>,
}

/// Checks that the server has at least one backend on `db` and that every one of them is the
/// expected user, over the expected transport.
fn assert_server_saw(server: &PgServer, db: &str, expect: &Expect<'_>) {
    let sessions = seen(server, db);
    assert!(!sessions.is_empty(), "no session on {db}");
    for s in &sessions {
        assert_eq!(s.user, expect.user, "{sessions:?}");
        assert_eq!(s.ssl, expect.tls, "{sessions:?}");
        assert_eq!(s.local, expect.local, "{sessions:?}");
        if expect.tls {
            assert!(s.tls_version.starts_with("TLSv1."), "{sessions:?}");
        }
        match expect.client_cn {
            Some(cn) => assert!(s.client_dn.contains(&format!("CN={cn}")), "{sessions:?}"),
            None => assert!(s.client_dn.is_empty(), "{sessions:?}"),
        }
    }
}

/// The user and TLS state of one pooled connection, as its own backend reports them.
async fn own_session(catalog: &PostgresCatalog) -> (String, bool) {
    let client = catalog
        .pool()
        .await
        .expect("the pool")
        .get()
        .await
        .expect("a connection");
    let row = client
        .query_one(
            "SELECT current_user::text, s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

/// Fails when a secret shows in the catalog's `Debug` (plan, pool, token source) or in `more`.
fn assert_hidden(catalog: &PostgresCatalog, secrets: &[&str], more: &str) {
    let shown = format!("{catalog:?}\n{:?}\n{more}", catalog.pool_if_open());
    assert!(
        shown.len() > 100,
        "too little shown to prove anything: {shown}"
    );
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(!shown.contains(secret), "a secret is shown:\n{shown}");
    }
}

fn meta(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn sorted_keys(entries: &[Entry]) -> Vec<String> {
    let mut keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    keys.sort_unstable();
    keys
}

/// The workload every case runs on its own fresh database; `tag` prefixes the keys.
async fn workload(catalog: &PostgresCatalog, tag: &str) {
    let k = |s: &str| format!("{tag}:{s}");
    let a_value = json!({"tag": tag, "note": "Zoë's first", "n": [1, 2.5, -3]});
    let a = NewEntry::inline(k("a"), a_value.clone()).with_metadata(meta(json!({"kind": "note"})));
    let b = NewEntry::inline(k("b"), json!([tag, 2]));
    let c = NewEntry::stored(k("c"), "sha256:0123abcd", format!("gs://ltm/{tag}/c"), 4096);
    for e in [&a, &b, &c] {
        let t = catalog.track_entry(e).await.expect("tracks");
        assert!(t.created, "{} is new", e.key);
    }
    assert!(
        !catalog.track_entry(&a).await.expect("tracks").created,
        "a second track updates"
    );

    let got = catalog
        .get_entry(&k("a"))
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(got.content_hash, content_hash(&a_value));
    assert_eq!(got.inlined_value.as_ref(), Some(&a_value));
    assert_eq!(got.metadata, json!({"kind": "note"}));
    let got = catalog
        .get_entry(&k("c"))
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(
        (got.storage_uri.as_deref(), got.byte_size),
        (Some(format!("gs://ltm/{tag}/c").as_str()), 4096)
    );
    assert_eq!(catalog.get_entry(&k("none")).await.expect("reads"), None);

    let listed = catalog
        .list_entries(&ListQuery::prefix(format!("{tag}:")))
        .await
        .expect("lists");
    assert_eq!(sorted_keys(&listed), [k("a"), k("b"), k("c")]);
    let notes = catalog
        .list_entries(&ListQuery::default().with_metadata(meta(json!({"kind": "note"}))))
        .await
        .expect("lists");
    assert_eq!(sorted_keys(&notes), [k("a")]);
    let got = catalog
        .retrieve_batch(&[k("b"), k("none")])
        .await
        .expect("retrieves");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].1.as_ref().map(|e| e.content_hash.clone()),
        Some(b.content_hash.clone())
    );
    assert_eq!(got[1].1, None);

    let snapshot = catalog.create_snapshot("before").await.expect("snapshot");
    assert_eq!(snapshot.entry_count, 3);
    assert_eq!(
        snapshot.total_bytes,
        i64::from(a.byte_size) + i64::from(b.byte_size) + 4096
    );
    assert!(
        catalog
            .get_changed_entries(Some(&snapshot.id))
            .await
            .expect("changes")
            .is_empty()
    );
    catalog
        .track_entry(&NewEntry::inline(k("b"), json!("changed")))
        .await
        .expect("changes b");
    catalog
        .track_entry(&a)
        .await
        .expect("a again, same content");
    let report = catalog
        .store_batch(
            &[
                NewEntry::inline(k("d"), json!({"d": 1})),
                NewEntry::inline(k("e"), json!({"e": 2})),
            ],
            true,
        )
        .await
        .expect("a batch");
    assert!(report.success(), "{report:?}");
    assert!(
        report
            .items
            .iter()
            .all(|i| i.outcome == BatchOutcome::Stored { created: true })
    );
    let changed = catalog
        .get_changed_entries(Some(&snapshot.id))
        .await
        .expect("changes");
    assert_eq!(sorted_keys(&changed), [k("b"), k("d"), k("e")]);

    let stats = catalog.stats().await.expect("stats");
    assert_eq!(stats.entries, 5);
    assert_eq!(stats.snapshots, 1);
    assert_eq!(stats.schema_version, Some(1));
}

// --- Making issued tokens the role's password ------------------------------------------------

/// Test-only: after every fetch from the real provider, makes the token the role's password
/// ([`RoleRotator::set`]) before handing it out. It stands in for the cloud's server-side token
/// check (RDS and Entra check the token itself; a launched server knows only passwords).
/// Everything else is the real provider's: the fetch, its errors, its name and key.
pub struct PasswordOnFetch {
    inner: Arc<dyn CredentialProvider>,
    rotator: Arc<RoleRotator>,
    tokens: Mutex<Vec<String>>,
}

impl fmt::Debug for PasswordOnFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordOnFetch")
            .field("inner", &self.inner)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl PasswordOnFetch {
    /// Wraps `inner`; its tokens become `rotator`'s role's password.
    pub fn new(inner: Arc<dyn CredentialProvider>, rotator: Arc<RoleRotator>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            rotator,
            tokens: Mutex::new(Vec::new()),
        })
    }

    /// The tokens fetched so far, oldest first.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// How many tokens were fetched.
    pub fn fetches(&self) -> usize {
        self.tokens.lock().map(|t| t.len()).unwrap_or_default()
    }
}

impl CredentialProvider for PasswordOnFetch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn key(&self) -> String {
        self.inner.key()
    }

    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let token = self.inner.fetch().await?;
            let password = token.secret.expose().to_string();
            let rotator = Arc::clone(&self.rotator);
            let failed = |message: String| {
                TokenError::new(self.inner.name(), TokenErrorKind::Unavailable, message)
            };
            // `set` blocks until the ALTER ROLE is committed.
            tokio::task::spawn_blocking(move || rotator.set(&password))
                .await
                .map_err(|_| failed("the password change did not run".into()))?
                .map_err(failed)?;
            self.tokens
                .lock()
                .map_err(|_| failed("the token list is poisoned".into()))?
                .push(token.secret.expose().to_string());
            Ok(token)
        })
    }
}

/// A pool over `plan` whose tokens come from `provider` through a fresh cache (default
/// options: a token is used until 5 minutes before its expiry), connections living at most
/// `lifetime`.
async fn iam_catalog(
    plan: &ConnectPlan,
    env: Arc<dyn Environment>,
    provider: Arc<dyn CredentialProvider>,
    lifetime: Duration,
) -> (PostgresCatalog, Arc<CachedProvider>) {
    let cache = CachedProvider::new(provider, CacheOptions::default(), Arc::new(SystemWallClock));
    let pool = Pool::builder(plan.clone(), env)
        .tokens(TokenSource::Cached(Arc::clone(&cache)))
        .options(PoolOptions {
            min_size: 1,
            max_size: 2,
            max_lifetime: Some(lifetime),
            ..PoolOptions::default()
        })
        .build()
        .await
        .expect("a pool");
    let catalog = PostgresCatalog::from_pool(pool, CatalogOptions::default())
        .await
        .expect("a catalog");
    (catalog, cache)
}

/// Rotates the token mid-use: a forced refresh (a new token, made the password at once, so
/// the old one stops working), then waits out the connections' lifetime so that the next
/// operations log in anew, with the new token.
async fn rotate_and_reconnect(
    catalog: &PostgresCatalog,
    cache: &Arc<CachedProvider>,
    lifetime: Duration,
    tag: &str,
) {
    let opened = catalog
        .pool()
        .await
        .expect("pool")
        .stats()
        .connections_opened;
    cache.force_refresh().await.expect("a new token");
    tokio::time::sleep(lifetime + Duration::from_millis(50)).await;
    for i in 0..3 {
        let e = NewEntry::inline(format!("{tag}:after-rotation:{i}"), json!(i));
        assert!(catalog.track_entry(&e).await.expect("tracks").created);
    }
    let stats = catalog.pool().await.expect("pool").stats();
    assert!(
        stats.connections_opened > opened,
        "no new login after the rotation: {stats:?}"
    );
    assert_eq!(stats.connect_failures, 0, "{stats:?}");
}

// --- The Cloud SQL Auth Proxy's socket ---------------------------------------------------------

/// Makes the server reachable where the Auth Proxy would put its socket,
/// `<socket_dir>/<connection name>/.s.PGSQL.5432`: a symlink to the server's own socket file.
fn proxy_socket(server: &PgServer, socket_dir: &Path) -> PathBuf {
    let dir = socket_dir.join(GCP_INSTANCE);
    std::fs::create_dir(&dir).expect("the instance's socket directory");
    std::os::unix::fs::symlink(
        server
            .socket_dir()
            .expect("a native server's socket")
            .join(format!(".s.PGSQL.{}", server.port())),
        dir.join(".s.PGSQL.5432"),
    )
    .expect("a symlink to the server's socket");
    dir
}

/// The launcher trusts every unix-socket login (its admin connections); the Auth Proxy's
/// instance does not. Keeps `trust` for the superuser only and requires SCRAM passwords of
/// everyone else over the socket, then waits until a wrong password is refused there.
async fn require_passwords_on_the_socket(server: &PgServer, socket: &Path) {
    let hba = server
        .dir()
        .expect("a native server's directory")
        .join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
    let changed = text.replacen(
        "local all all trust\n",
        "local all postgres trust\nlocal all all scram-sha-256\n",
        1,
    );
    assert_ne!(changed, text, "the launcher's trust line moved:\n{text}");
    std::fs::write(&hba, changed).expect("rewrites pg_hba.conf");
    server
        .admin_sql("SELECT pg_reload_conf()")
        .expect("reloads");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = tokio_postgres::Config::new()
            .host_path(socket)
            .port(5432)
            .user(server.user())
            .password("not-the-password")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5))
            .connect(tokio_postgres::NoTls)
            .await;
        match attempt {
            Err(e) if e.code().map(|c| c.code()) == Some("28P01") => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "a wrong password is still let in over the socket: {:?}",
                    other.map(|_| "connected")
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn check_socket_plan(plan: &ConnectPlan, socket_dir: &Path) {
    assert_eq!(plan.hosts.len(), 1);
    assert_eq!(
        plan.hosts[0].host,
        format!("{}/{GCP_INSTANCE}", socket_dir.display())
    );
    assert_eq!(plan.hosts[0].port, 5432);
    assert!(plan.hosts[0].is_socket());
    assert_eq!(plan.sslmode.as_str(), "disable", "no TLS on a socket");
    assert_eq!(plan.instance_connection_name.as_deref(), Some(GCP_INSTANCE));
}
