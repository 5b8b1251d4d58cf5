//! GCP Cloud SQL: the Auth Proxy's unix socket by default, or the instance's IP over TLS.

use super::Target;
use crate::config::{CatalogConfig, IpType, Provider};
use crate::env::Environment;
use crate::error::{Error, ErrorKind};
use crate::plan::{DEFAULT_PORT, IamKind, PlanKind, Source, Warning, WarningCode};
use crate::sslmode::SslMode;

/// The Auth Proxy's default socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/cloudsql";

/// The environment variable that names the instance (`PROJECT:REGION:INSTANCE`).
pub const CONNECTION_NAME_VAR: &str = "CLOUDSQL_CONNECTION_NAME";

/// The suffix Cloud SQL drops from a service account's IAM database user name.
pub const SERVICE_ACCOUNT_SUFFIX: &str = ".gserviceaccount.com";

/// Splits `PROJECT:REGION:INSTANCE` (the project may be domain-scoped, `example.com:proj`).
///
/// ```
/// use tea_pgcloud::provider::gcp::split_connection_name;
/// assert_eq!(split_connection_name("p:us-central1:db"), Some(("p", "us-central1", "db")));
/// assert_eq!(split_connection_name("example.com:p:europe-west1:db"), Some(("example.com:p", "europe-west1", "db")));
/// assert_eq!(split_connection_name("p:db"), None);
/// ```
pub fn split_connection_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.rsplitn(3, ':');
    let instance = parts.next()?;
    let region = parts.next()?;
    let project = parts.next()?;
    let ok = |s: &str| !s.is_empty() && !s.contains(['/', ' ', '\t']);
    (ok(project) && ok(region) && ok(instance) && project.matches(':').count() <= 1)
        .then_some((project, region, instance))
}

/// The IAM database user for a principal: a service account's e-mail loses
/// `.gserviceaccount.com`; a user's e-mail stays as it is.
///
/// ```
/// use tea_pgcloud::provider::gcp::iam_user;
/// assert_eq!(iam_user("ltm@my-project.iam.gserviceaccount.com"), "ltm@my-project.iam");
/// assert_eq!(iam_user("dev@example.com"), "dev@example.com");
/// ```
pub fn iam_user(principal: &str) -> &str {
    principal
        .strip_suffix(SERVICE_ACCOUNT_SUFFIX)
        .unwrap_or(principal)
}

/// The instance connection name: written, or from [`CONNECTION_NAME_VAR`]. The variable is
/// only required (and a malformed one only an error) when the socket path needs it; for a
/// direct IP it is informational and a malformed one is ignored.
fn connection_name(
    config: &CatalogConfig,
    env: &dyn Environment,
    needed: bool,
) -> Result<Option<String>, Error> {
    let origin = &config.origin;
    if let Some(name) = &config.connection_name {
        return Ok(Some(name.clone()));
    }
    let parts = [
        ("project", &config.project),
        ("region", &config.region),
        ("instance", &config.instance),
    ];
    if parts.iter().any(|(_, v)| v.is_some()) {
        if let Some((missing, _)) = parts.iter().find(|(_, v)| v.is_none()) {
            return Err(origin.error(
                missing,
                ErrorKind::Missing,
                format!("provider gcp needs project, region and instance together (or connection_name); `{missing}` is missing"),
            ));
        }
        let [p, r, i] = parts.map(|(_, v)| v.clone().unwrap_or_default());
        let name = format!("{p}:{r}:{i}");
        if split_connection_name(&name).is_none() {
            return Err(origin.error(
                "instance",
                ErrorKind::InvalidValue,
                "project, region and instance must not hold `/`, spaces or (region, instance) `:`",
            ));
        }
        return Ok(Some(name));
    }
    match env.var(CONNECTION_NAME_VAR).filter(|v| !v.is_empty()) {
        Some(name) if split_connection_name(&name).is_some() => Ok(Some(name)),
        Some(_) if !needed => Ok(None),
        Some(name) => Err(origin.error(
            "connection_name",
            ErrorKind::InvalidValue,
            format!(
                "{CONNECTION_NAME_VAR} `{}` is not PROJECT:REGION:INSTANCE",
                name.chars().take(80).collect::<String>()
            ),
        )),
        None => Ok(None),
    }
}

pub(crate) fn target(config: &CatalogConfig, env: &dyn Environment) -> Result<Target, Error> {
    let origin = &config.origin;
    let ip_type = config.ip_type.unwrap_or(if config.host.is_some() {
        IpType::Public
    } else {
        IpType::Socket
    });
    let name = connection_name(config, env, ip_type == IpType::Socket)?;
    let mut target = Target::new(PlanKind::Provider(Provider::Gcp), SslMode::Require);
    target.region = name
        .as_deref()
        .and_then(split_connection_name)
        .map(|(_, region, _)| region.to_string());
    match ip_type {
        IpType::Socket => {
            let Some(name) = &name else {
                return Err(origin.error(
                    "connection_name",
                    ErrorKind::Missing,
                    format!("provider gcp over the Auth Proxy socket needs connection_name, or project, region and instance, or {CONNECTION_NAME_VAR}"),
                ));
            };
            let dir = config.socket_dir.as_deref().unwrap_or(DEFAULT_SOCKET_DIR);
            target.set("host", format!("{}/{name}", dir.trim_end_matches('/')));
            // The proxy encrypts to the instance; libpq never uses TLS on a socket.
            target.default_sslmode = SslMode::Disable;
            if let Some(mode) = config.sslmode.filter(|m| *m != SslMode::Disable) {
                target.warnings.push(Warning {
                    code: WarningCode::SocketSslmode,
                    path: origin.path("sslmode"),
                    location: origin.location("sslmode"),
                    message: format!(
                        "sslmode {mode} has no effect over the Auth Proxy's unix socket (libpq never uses TLS on a socket; the proxy encrypts)"
                    ),
                });
            }
        }
        IpType::Public | IpType::Private => {
            let Some(host) = &config.host else {
                return Err(origin.error(
                    "host",
                    ErrorKind::Missing,
                    format!(
                        "provider gcp with ip_type {} needs host: the instance's IP address",
                        ip_type.as_str()
                    ),
                ));
            };
            target.set("host", host.clone());
            // The per-instance server certificate names `project:instance`, no host: verify-ca
            // is the strongest check it passes. Instances on a shared or customer-managed CA can
            // ask for verify-full explicitly.
            if config.sslrootcert.is_some() {
                target.default_sslmode = SslMode::VerifyCa;
            }
        }
    }
    target.instance_connection_name = name;
    target.set("port", config.port.unwrap_or(DEFAULT_PORT).to_string());
    if let Some(db) = &config.database {
        target.set("dbname", db.clone());
    }
    if let Some(user) = &config.user {
        let user = if config.iam_auth {
            iam_user(user)
        } else {
            user
        };
        target.set("user", user);
        target.user_source = Source::Literal;
    }
    if config.iam_auth {
        target.iam = Some(IamKind::Gcp);
    }
    Ok(target)
}
