//! GCP Cloud SQL: the Auth Proxy's unix socket by default, or the instance's IP over TLS.

use super::Target;
use crate::config::{CatalogConfig, IpType, Provider};
use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::plan::{DEFAULT_PORT, IamKind, PlanKind, Source, Warning, WarningCode};
use crate::sslmode::SslMode;

/// The Auth Proxy's default socket directory.
pub const DEFAULT_SOCKET_DIR: &str = "/cloudsql";

pub use crate::cloud::gcp::{
    CONNECTION_NAME_VAR, SERVICE_ACCOUNT_SUFFIX, iam_user, split_connection_name,
};

/// The instance connection name: written, or from [`CONNECTION_NAME_VAR`]. The variable is
/// only required (and a malformed one only an error) when the socket path needs it; for a
/// direct IP it is informational and a malformed one is ignored.
fn connection_name(
    config: &CatalogConfig,
    env: &dyn Environment,
    needed: bool,
) -> Result<Option<String>, ConfigError> {
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
                ConfigErrorKind::Missing,
                format!("provider gcp needs project, region and instance together (or connection_name); `{missing}` is missing"),
            ));
        }
        let [p, r, i] = parts.map(|(_, v)| v.clone().unwrap_or_default());
        let name = format!("{p}:{r}:{i}");
        if split_connection_name(&name).is_none() {
            return Err(origin.error(
                "instance",
                ConfigErrorKind::InvalidValue,
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
            ConfigErrorKind::InvalidValue,
            format!(
                "{CONNECTION_NAME_VAR} `{}` is not PROJECT:REGION:INSTANCE",
                name.chars().take(80).collect::<String>()
            ),
        )),
        None => Ok(None),
    }
}

pub(crate) fn target(config: &CatalogConfig, env: &dyn Environment) -> Result<Target, ConfigError> {
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
                    ConfigErrorKind::Missing,
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
                    ConfigErrorKind::Missing,
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
