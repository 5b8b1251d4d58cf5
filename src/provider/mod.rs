//! Provider presets: a validated [`CatalogConfig`] to a [`ConnectPlan`].
//!
//! Each provider module turns the configuration (and its environment-variable fallbacks) into a
//! `Target`: the libpq keywords, the default `sslmode`, the root certificate and where the
//! user name comes from. [`plan`] then applies what every provider shares: libpq's TLS rules,
//! credential sources and warnings.
//!
//! ```
//! use tea_pgcloud::config::load_str;
//! use tea_pgcloud::env::MapEnv;
//! use tea_pgcloud::provider::plan;
//! let env = MapEnv::new().with_var("RDS_HOSTNAME", "ltm.abc123.us-east-1.rds.amazonaws.com");
//! let config = load_str("provider: aws\nuser: app\niam_auth: true\n", "c.yaml", &env).unwrap();
//! let plan = plan(&config, &env).unwrap();
//! assert_eq!(plan.region.as_deref(), Some("us-east-1"));
//! assert_eq!(plan.password_source.to_string(), "iam:aws-rds");
//! assert_eq!(plan.tls.as_str(), "require");
//! ```

pub mod aws;
pub mod azure;
mod connection_string;
pub mod gcp;
mod self_hosted;

use crate::config::{CatalogConfig, CredentialField, CredentialsConfig, Provider, SecretSource};
use crate::conninfo::ConnInfo;
use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::plan::{
    ConnectPlan, HostPort, IamKind, LIBPQ_DEFAULT_SOCKET_DIR, PlanKind, RdsBundle, Source, Warning,
    WarningCode, hosts_of,
};
use crate::secret::Secret;
use crate::sslmode::{RootCert, SslMode, Verify, effective_tls, negotiation, verification};

/// What a provider preset decides; [`plan`] finishes it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub kind: PlanKind,
    /// Every libpq keyword but `sslmode` and the password.
    pub params: ConnInfo,
    /// The YAML key that holds the hosts (for errors about them).
    pub host_key: &'static str,
    /// `sslmode` as written.
    pub sslmode: Option<SslMode>,
    /// The preset's `sslmode` when none is written.
    pub default_sslmode: SslMode,
    /// Whether to write `sslmode` into the plan's keywords (presets do; a connection string
    /// is left as written).
    pub write_sslmode: bool,
    /// The YAML key and path of a configured root certificate.
    pub root_cert: Option<(&'static str, String)>,
    /// aws `ssl_bundle: auto`: the bundle put at `root_cert`'s path before connecting.
    pub rds_bundle: Option<RdsBundle>,
    /// Where the user in `params` came from, when there is one.
    pub user_source: Source,
    /// A password written in a connection string.
    pub password: Option<Secret>,
    /// A client-key passphrase written in a connection string.
    pub sslpassword: Option<Secret>,
    /// The IAM token that serves as password.
    pub iam: Option<IamKind>,
    /// Cloud region.
    pub region: Option<String>,
    /// gcp instance connection name.
    pub instance_connection_name: Option<String>,
    /// aws endpoint kind.
    pub aws_endpoint: Option<&'static str>,
    /// Warnings found so far.
    pub warnings: Vec<Warning>,
}

impl Target {
    pub(crate) fn new(kind: PlanKind, default_sslmode: SslMode) -> Self {
        Self {
            kind,
            params: ConnInfo::new(),
            host_key: "host",
            sslmode: None,
            default_sslmode,
            write_sslmode: true,
            root_cert: None,
            rds_bundle: None,
            user_source: Source::None,
            password: None,
            sslpassword: None,
            iam: None,
            region: None,
            instance_connection_name: None,
            aws_endpoint: None,
            warnings: Vec::new(),
        }
    }

    /// Sets a libpq keyword that this crate knows to exist.
    pub(crate) fn set(&mut self, key: &str, value: impl Into<String>) {
        // Only keywords from conninfo::KEYWORDS are passed here, so this cannot fail.
        let known = self.params.set(key, value);
        debug_assert!(known.is_ok(), "{key} is a libpq keyword");
    }
}

/// Builds the plan for a validated configuration. Reads only the environment it is given; never
/// fetches a secret.
pub fn plan(config: &CatalogConfig, env: &dyn Environment) -> Result<ConnectPlan, ConfigError> {
    let recording = crate::env::Recording::new(env);
    let result = plan_with(config, &recording);
    let mut tainted = config.tainted.clone();
    tainted.extend(&recording.tainted());
    // A connection string from the environment: each of its values too (errors quote those
    // one by one).
    if let Some(text) = config.connection_string.as_ref().map(Secret::expose)
        && tainted.contains(text)
        && let Ok(params) = crate::conninfo::ConnInfo::parse(text)
    {
        for (_, value) in params.iter() {
            tainted.add_fragment(value);
            // host, hostaddr and port hold lists: errors quote one item.
            for item in value.split(',') {
                tainted.add_fragment(item);
            }
        }
    }
    if let Some(credentials) = &config.credentials {
        credentials.taint_lookup_names(&mut tainted);
    }
    match result {
        Ok(mut plan) => {
            for warning in &mut plan.warnings {
                warning.message = tainted.scrub(&warning.message);
            }
            tracing::debug!(
                provider = plan.kind.as_str(),
                hosts = plan.hosts.len(),
                tls = plan.tls.as_str(),
                warnings = plan.warnings.len(),
                "plan made"
            );
            plan.tainted = tainted;
            Ok(plan)
        }
        Err(e) => Err(e.scrubbed(&tainted)),
    }
}

fn plan_with(config: &CatalogConfig, env: &dyn Environment) -> Result<ConnectPlan, ConfigError> {
    let mut target = if config.connection_string.is_some() {
        connection_string::target(config, env)?
    } else {
        let mut target = match config.provider {
            Provider::Gcp => gcp::target(config, env)?,
            Provider::Aws => aws::target(config, env)?,
            Provider::Azure => azure::target(config, env)?,
            Provider::SelfHosted => self_hosted::target(config),
        };
        common_keywords(config, &mut target);
        target
    };
    finish(config, env, &mut target)
}

/// The keys every preset passes to libpq unchanged.
fn common_keywords(config: &CatalogConfig, target: &mut Target) {
    target.sslmode = config.sslmode;
    if let Some(root) = config.sslrootcert.as_ref() {
        target.root_cert = Some(("sslrootcert", root.clone()));
    }
    for (key, value) in [
        ("sslcert", &config.sslcert),
        ("sslkey", &config.sslkey),
        ("application_name", &config.application_name),
    ] {
        if let Some(value) = value {
            target.set(key, value.clone());
        }
    }
    if let Some(timeout) = config.connect_timeout {
        target.set("connect_timeout", timeout.to_string());
    }
    if let Some(attrs) = config
        .target_session_attrs
        .or_else(|| default_session_attrs(config.provider, target.aws_endpoint))
    {
        target.set("target_session_attrs", attrs.as_str());
    }
}

/// The `target_session_attrs` a preset asks for when the YAML writes none: the catalog writes,
/// so a writer endpoint takes only a server that accepts writes (a failover that has not yet
/// moved the name finds the demoted server refused at connect time, not at the first write);
/// an Aurora reader endpoint prefers a replica. Self-hosted servers, and endpoints whose role
/// cannot be told from the name (Aurora custom endpoints, RDS Proxy's extra endpoints, a name
/// that is not RDS's), keep libpq's `any`. An RDS read replica's instance endpoint looks like a
/// primary's: a catalog on one writes `target_session_attrs: any` (or `read-only`).
pub fn default_session_attrs(
    provider: Provider,
    aws_endpoint: Option<&str>,
) -> Option<crate::plan::TargetSessionAttrs> {
    use crate::plan::TargetSessionAttrs as T;
    match provider {
        Provider::Gcp | Provider::Azure => Some(T::ReadWrite),
        Provider::Aws => match aws_endpoint {
            Some("instance" | "cluster" | "proxy") => Some(T::ReadWrite),
            Some("cluster-ro") => Some(T::PreferStandby),
            // Custom endpoints, RDS Proxy's extra endpoints, names that are not RDS's.
            _ => None,
        },
        Provider::SelfHosted => None,
    }
}

/// The port: written, else from the provider's environment variable, else 5432.
pub(crate) fn port_from(
    config: &CatalogConfig,
    env: &dyn Environment,
    var: &str,
) -> Result<u16, ConfigError> {
    let Some(text) = config
        .port
        .is_none()
        .then(|| env.var(var))
        .flatten()
        .filter(|v| !v.is_empty())
    else {
        return Ok(config.port.unwrap_or(crate::plan::DEFAULT_PORT));
    };
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(config.origin.error(
            "port",
            ConfigErrorKind::InvalidValue,
            format!(
                "{var} `{}` is not a port number",
                text.chars().take(20).collect::<String>()
            ),
        )),
    }
}

/// The path of libpq's default root certificate, `$HOME/.postgresql/root.crt`.
pub fn default_root_cert(env: &dyn Environment) -> Option<String> {
    home_path(env, ".postgresql/root.crt")
}

/// `$HOME/RELATIVE`, where libpq looks for its default files (root certificate, client
/// certificate and key, revocation list, password file); `None` when `HOME` is unset or empty.
fn home_path(env: &dyn Environment, relative: &str) -> Option<String> {
    env.var("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| format!("{}/{relative}", home.trim_end_matches('/')))
}

fn finish(
    config: &CatalogConfig,
    env: &dyn Environment,
    target: &mut Target,
) -> Result<ConnectPlan, ConfigError> {
    let origin = &config.origin;
    let (hosts, used_default) = hosts_of(&target.params)
        .map_err(|e| origin.value_error(target.host_key, ConfigErrorKind::InvalidValue, e))?;
    if used_default {
        target.warnings.push(Warning {
            code: WarningCode::DefaultSocketDir,
            path: origin.path(target.host_key),
            location: origin.value_location(target.host_key),
            message: format!(
                "no host: using {LIBPQ_DEFAULT_SOCKET_DIR}, the socket directory of packaged libpq builds (upstream builds use /tmp); write host= to be explicit"
            ),
        });
    }
    let all_sockets = !hosts.is_empty() && hosts.iter().all(HostPort::is_socket);

    // libpq: a root certificate file that exists turns on chain verification; `system`
    // means the OS store and demands verify-full.
    let (root, sslrootcert) = match &target.root_cert {
        Some((_, path)) if path == "system" => (RootCert::System, Some(path.clone())),
        // The downloaded bundle: connecting fails unless `rds_bundle::ensure` put it there,
        // so the plan is what libpq does with the file present, whether it is cached yet or not.
        Some((_, path)) if target.rds_bundle.is_some() => (RootCert::File, Some(path.clone())),
        Some((key, path)) => {
            if env.file_exists(path).unwrap_or(false) {
                (RootCert::File, Some(path.clone()))
            } else {
                if !all_sockets {
                    target.warnings.push(Warning {
            code: WarningCode::RootCertMissing,
                        path: origin.path(key),
                        location: origin.location(key),
                        message: format!(
                            "root certificate file \"{path}\" does not exist here: libpq would then check no certificate under allow, prefer and require, and verify-ca / verify-full would fail"
                        ),
                    });
                }
                (RootCert::Absent, Some(path.clone()))
            }
        }
        None => match default_root_cert(env).filter(|p| env.file_exists(p).unwrap_or(false)) {
            Some(path) => (RootCert::File, Some(path)),
            None => (RootCert::Absent, None),
        },
    };
    let sslmode = match (target.sslmode, root) {
        (Some(mode), _) => mode,
        (None, RootCert::System) => SslMode::VerifyFull,
        (None, _) => target.default_sslmode,
    };
    let sslmode_key = if config.connection_string.is_some() {
        "connection_string"
    } else {
        "sslmode"
    };
    let mut tls = effective_tls(sslmode, root)
        .map_err(|e| origin.error(sslmode_key, ConfigErrorKind::Conflict, e))?;
    // Where an error about a libpq keyword points: the connection string that carries it, or
    // the host key of a YAML catalog.
    let params_key = if config.connection_string.is_some() {
        "connection_string"
    } else {
        target.host_key
    };
    let channel_binding = crate::plan::ChannelBinding::parse(target.params.get("channel_binding"))
        .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?;
    let require_auth = crate::plan::RequireAuth::parse(target.params.get("require_auth"))
        .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?;
    let target_session_attrs =
        crate::plan::TargetSessionAttrs::parse(target.params.get("target_session_attrs"))
            .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?;
    let load_balance_hosts =
        crate::plan::LoadBalanceHosts::parse(target.params.get("load_balance_hosts"))
            .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?;
    let sslcertmode = crate::plan::CertMode::parse(target.params.get("sslcertmode"))
        .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?;
    let negotiation = negotiation(sslmode, target.params.get("sslnegotiation")).map_err(|e| {
        let kind = match e {
            crate::sslmode::NegotiationError::InvalidValue(_) => ConfigErrorKind::InvalidValue,
            crate::sslmode::NegotiationError::WeakMode(_) => ConfigErrorKind::Conflict,
        };
        origin.error(sslmode_key, kind, e.to_string())
    })?;
    let tls_versions = crate::sslmode::tls_versions(
        target.params.get("ssl_min_protocol_version"),
        target.params.get("ssl_max_protocol_version"),
    )
    .map_err(|e| {
        let kind = match e {
            crate::sslmode::TlsVersionError::InvalidValue(..) => ConfigErrorKind::InvalidValue,
            crate::sslmode::TlsVersionError::InvalidRange => ConfigErrorKind::Conflict,
            crate::sslmode::TlsVersionError::Unsupported(_) => ConfigErrorKind::Unsupported,
        };
        origin.error(sslmode_key, kind, e.to_string())
    })?;
    let sni = crate::sslmode::sni(target.params.get("sslsni"));
    let connect_timeout = crate::plan::connect_timeout(target.params.get("connect_timeout"))
        .map_err(|e| {
            let key = if config.connection_string.is_some() {
                "connection_string"
            } else {
                "connect_timeout"
            };
            origin.error(key, ConfigErrorKind::InvalidValue, e)
        })?;
    // libpq reads the keepalive keywords for TCP connections only.
    let keepalives = if all_sockets {
        crate::plan::Keepalives::default()
    } else {
        crate::plan::keepalives(&target.params)
            .map_err(|e| origin.error(params_key, ConfigErrorKind::InvalidValue, e))?
    };
    let mut tls_verify = verification(sslmode, root);
    if all_sockets {
        tls = SslMode::Disable;
        tls_verify = Verify::None;
    }
    // Every libpq option is honoured or refused here, never ignored (see `support`).
    if let Some(refusal) = crate::support::refusal(&target.params, env) {
        return Err(origin.error(params_key, ConfigErrorKind::Unsupported, refusal.message));
    }
    if target.write_sslmode {
        target.set("sslmode", sslmode.as_str());
    }
    if let Some((_, path)) = target.root_cert.clone() {
        target.set("sslrootcert", path);
    }
    if !all_sockets && tls < SslMode::VerifyFull {
        let message = match tls {
            SslMode::VerifyCa => {
                "TLS is verify-ca: the certificate chain is checked but not the host name"
                    .to_string()
            }
            SslMode::Disable => {
                "TLS is disabled: traffic and passwords cross the network in clear".to_string()
            }
            SslMode::Allow | SslMode::Prefer => format!(
                "TLS is {tls}: libpq falls back to plain text, which an attacker can force (sslmode verify-full with a root certificate closes that gap)"
            ),
            _ => "TLS is require: the server's identity is not verified (a root certificate and sslmode verify-full close that gap)".to_string(),
        };
        target.warnings.push(Warning {
            code: WarningCode::WeakTls,
            path: origin.path(sslmode_key),
            location: origin.location(sslmode_key),
            message,
        });
    }

    // libpq's file keywords: the value written, else libpq's default file under HOME.
    let non_empty = |key: &str| {
        target
            .params
            .get(key)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let sslcert = non_empty("sslcert").or_else(|| home_path(env, ".postgresql/postgresql.crt"));
    let sslkey = non_empty("sslkey").or_else(|| home_path(env, ".postgresql/postgresql.key"));
    // libpq: `fallback_application_name` applies when `application_name` is not set.
    let application_name = target
        .params
        .get("application_name")
        .or_else(|| target.params.get("fallback_application_name"))
        .map(str::to_string);
    let sslcrldir = non_empty("sslcrldir");
    let sslcrl = match (non_empty("sslcrl"), &sslcrldir) {
        (Some(file), _) => Some(file),
        (None, None) => home_path(env, ".postgresql/root.crl"),
        (None, Some(_)) => None,
    };

    let credentials = credentials_with_defaults(config, target.region.as_deref(), env);
    let credentials = credentials.as_ref();
    let password_source = match (target.iam, credentials, &target.password) {
        (Some(kind), _, _) => Source::Iam(kind),
        (None, _, Some(_)) => Source::Literal,
        (None, Some(creds), None) => secret_source(
            config,
            creds,
            CredentialField::Password,
            env,
            &mut target.warnings,
        )?,
        (None, None, None) => Source::None,
    };
    let user_source = match (&target.user_source, credentials) {
        (Source::None, Some(creds)) => secret_source(
            config,
            creds,
            CredentialField::Username,
            env,
            &mut target.warnings,
        )?,
        (Source::None, None) if target.iam == Some(IamKind::Gcp) => Source::Iam(IamKind::Gcp),
        (source, _) => source.clone(),
    };

    Ok(ConnectPlan {
        kind: target.kind,
        hosts,
        dbname: target.params.get("dbname").map(str::to_string),
        user: target.params.get("user").map(str::to_string),
        user_source,
        password_source,
        sslmode,
        sslrootcert,
        rds_bundle: target.rds_bundle.clone(),
        tls: crate::sslmode::TlsPolicy {
            mode: tls,
            verify: tls_verify,
            negotiation,
            versions: tls_versions,
            sni,
            cert_mode: sslcertmode,
            client_cert: sslcert,
            client_key: sslkey,
            crl_file: sslcrl,
            crl_dirs: sslcrldir,
        },
        keepalives,
        connect_timeout,
        channel_binding,
        require_auth,
        target_session_attrs,
        load_balance_hosts,
        application_name,
        requirepeer: non_empty("requirepeer"),
        passfile: non_empty("passfile").or_else(|| home_path(env, ".pgpass")),
        region: target.region.clone(),
        instance_connection_name: target.instance_connection_name.clone(),
        aws_endpoint: target.aws_endpoint,
        params: target.params.clone(),
        password: target.password.clone(),
        sslpassword: target.sslpassword.clone(),
        credentials: credentials.cloned(),
        pool: config.pool,
        warnings: std::mem::take(&mut target.warnings),
        tainted: crate::text::Tainted::default(),
    })
}

/// The credentials block with the defaults that depend on the rest of the configuration
/// filled in: the GCP project (the catalog's `project`, or `connection_name`'s, else
/// `GOOGLE_CLOUD_PROJECT`) and the AWS region (the catalog's region, else `AWS_REGION`).
fn credentials_with_defaults(
    config: &CatalogConfig,
    region: Option<&str>,
    env: &dyn Environment,
) -> Option<CredentialsConfig> {
    let mut creds = config.credentials.clone()?;
    match creds.source {
        SecretSource::Gcp if creds.project_id.is_none() => {
            creds.project_id = config
                .project
                .clone()
                .or_else(|| {
                    config
                        .connection_name
                        .as_deref()
                        .and_then(gcp::split_connection_name)
                        .map(|(p, _, _)| p.to_string())
                })
                .or_else(|| env.var("GOOGLE_CLOUD_PROJECT").filter(|p| !p.is_empty()));
        }
        SecretSource::Aws if creds.region.is_none() => {
            creds.region = region
                .map(str::to_string)
                .or_else(|| env.var("AWS_REGION").filter(|r| !r.is_empty()));
        }
        _ => {}
    }
    Some(creds)
}

/// Where a credential is looked up, as the plan shows it. For `env` the first variable of the
/// lookup order that is set (else the first one, with a warning); for the cloud backends the
/// secret that will be read first.
fn secret_source(
    config: &CatalogConfig,
    creds: &CredentialsConfig,
    field: CredentialField,
    env: &dyn Environment,
    warnings: &mut Vec<Warning>,
) -> Result<Source, ConfigError> {
    let keys = creds.lookup_keys(field);
    let key = match field {
        CredentialField::Username => &creds.username_key,
        CredentialField::Password => &creds.password_key,
    };
    let origin = &config.origin;
    let (backend, key) = match creds.source {
        SecretSource::Env => {
            // Empty counts as unset, as when the credentials are resolved.
            return Ok(
                match keys
                    .iter()
                    .find(|k| env.var(k).is_some_and(|v| !v.is_empty()))
                {
                    Some(name) => Source::Env(name.clone()),
                    None => {
                        warnings.push(Warning {
                            code: WarningCode::CredentialsEnvUnset,
                            path: origin.path("credentials"),
                            location: origin.location("credentials"),
                            message: format!("none of {} is set here", keys.join(", ")),
                        });
                        Source::Env(keys[0].clone())
                    }
                },
            );
        }
        SecretSource::Gcp => {
            let project = creds.project_id.as_deref().ok_or_else(|| {
                origin.error(
                    "credentials.project_id",
                    ConfigErrorKind::Missing,
                    "credentials.source gcp needs project_id (or the catalog's project, or GOOGLE_CLOUD_PROJECT)",
                )
            })?;
            let version = creds.version.as_deref().unwrap_or("latest");
            let resource = match &creds.secret_name {
                Some(name) => format!("projects/{project}/secrets/{name}/versions/{version}#{key}"),
                None => format!(
                    "projects/{project}/secrets/{}{key}/versions/{version}",
                    creds.secret_prefix.as_deref().unwrap_or("")
                ),
            };
            ("gcp", resource)
        }
        SecretSource::Aws => {
            let name = match (&creds.secret_name, &creds.secret_prefix) {
                (Some(name), _) => format!("{name}#{key}"),
                (None, Some(prefix)) => format!("{prefix}{key}"),
                (None, None) => {
                    return Err(origin.error(
                        "credentials",
                        ConfigErrorKind::Missing,
                        "credentials.source aws needs secret_name (one JSON secret) or secret_prefix (one secret per key)",
                    ));
                }
            };
            ("aws", name)
        }
        SecretSource::Azure => {
            let vault = creds
                .vault_url
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/');
            let name = crate::cloud::azure::key_vault_name(
                creds.secret_prefix.as_deref().unwrap_or(""),
                key,
            );
            // Validation has checked the name (`config::validate`).
            ("azure", format!("{vault}/secrets/{name}"))
        }
    };
    Ok(Source::Secret { backend, key })
}

/// The story's entry point, kept under the name other TEA ports use: the connection string
/// for a configuration and resolved credentials, password included (escaped by libpq's URI
/// rules). It is returned as a [`Secret`] so that it cannot be logged by accident.
///
/// `credentials` fills the user and password that the plan leaves to a secrets backend; a user
/// or password written in the configuration wins.
///
/// ```
/// use tea_pgcloud::config::load_str;
/// use tea_pgcloud::env::MapEnv;
/// use tea_pgcloud::provider::{build_provider_connection_string, ResolvedCredentials};
/// use tea_pgcloud::secret::Secret;
/// let env = MapEnv::new();
/// let config = load_str("provider: self-hosted\nhost: db\ndatabase: ltm\n", "c.yaml", &env).unwrap();
/// let creds = ResolvedCredentials { username: Some("app".into()), password: Some(Secret::new("p@ss/w:rd#1")) };
/// let dsn = build_provider_connection_string(config.provider, &creds, &config, &env).unwrap();
/// assert_eq!(dsn.expose(), "postgresql://app:p%40ss%2Fw%3Ard%231@db:5432/ltm?sslmode=prefer");
/// ```
pub fn build_provider_connection_string(
    provider: Provider,
    credentials: &ResolvedCredentials,
    config: &CatalogConfig,
    env: &dyn Environment,
) -> Result<Secret, ConfigError> {
    if provider != config.provider {
        return Err(config.origin.error(
            "provider",
            ConfigErrorKind::Conflict,
            format!(
                "asked to build for provider {provider}, but the configuration says {}",
                config.provider
            ),
        ));
    }
    let plan = plan(config, env)?;
    let mut params = plan.params.clone();
    if params.get("user").is_none()
        && let Some(user) = &credentials.username
    {
        params.set("user", user.clone()).map_err(|e| {
            config
                .origin
                .error("user", ConfigErrorKind::InvalidValue, e.to_string())
        })?;
    }
    if let Some(password) = plan.password.as_ref().or(credentials.password.as_ref()) {
        params.set("password", password.expose()).map_err(|e| {
            config
                .origin
                .error("credentials", ConfigErrorKind::InvalidValue, e.to_string())
        })?;
    }
    if let Some(passphrase) = &plan.sslpassword {
        params
            .set("sslpassword", passphrase.expose())
            .map_err(|e| {
                config.origin.error(
                    "connection_string",
                    ConfigErrorKind::InvalidValue,
                    e.to_string(),
                )
            })?;
    }
    Ok(Secret::new(params.to_uri()))
}

/// A user name and password obtained from a secrets backend or token provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedCredentials {
    /// The user name, when the backend gave one.
    pub username: Option<String>,
    /// The password or token.
    pub password: Option<Secret>,
}
