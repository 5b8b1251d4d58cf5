//! Azure Database for PostgreSQL, Flexible Server. The service enforces TLS.

use super::Target;
use crate::config::{CatalogConfig, Provider};
use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::plan::{IamKind, PlanKind, Source, Warning, WarningCode};
use crate::sslmode::SslMode;

/// The environment variables consulted when the YAML leaves a key out.
pub const ENV_HOST: &str = "AZURE_POSTGRESQL_HOST";
/// See [`ENV_HOST`].
pub const ENV_PORT: &str = "AZURE_POSTGRESQL_PORT";
/// See [`ENV_HOST`].
pub const ENV_DATABASE: &str = "AZURE_POSTGRESQL_DATABASE";
/// See [`ENV_HOST`].
pub const ENV_USER: &str = "AZURE_POSTGRESQL_USER";

pub(crate) fn target(config: &CatalogConfig, env: &dyn Environment) -> Result<Target, ConfigError> {
    let origin = &config.origin;
    let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
    if let Some(mode @ (SslMode::Disable | SslMode::Allow)) = config.sslmode {
        return Err(origin.value_error(
            "sslmode",
            ConfigErrorKind::InvalidValue,
            format!(
                "Azure Database for PostgreSQL enforces TLS, so sslmode {mode} cannot connect: use require or stronger (verify-full with the server's root certificates is best)"
            ),
        ));
    }
    let host = config
        .host
        .clone()
        .or_else(|| var(ENV_HOST))
        .ok_or_else(|| {
            origin.error(
                "host",
                ConfigErrorKind::Missing,
                format!("provider azure needs host (or the {ENV_HOST} environment variable)"),
            )
        })?;
    let port = super::port_from(config, env, ENV_PORT)?;
    let mut target = Target::new(PlanKind::Provider(Provider::Azure), SslMode::Require);
    if config.sslrootcert.is_some() {
        target.default_sslmode = SslMode::VerifyFull;
    }
    target.set("host", host.clone());
    target.set("port", port.to_string());
    if let Some(db) = config.database.clone().or_else(|| var(ENV_DATABASE)) {
        target.set("dbname", db);
    }
    let user = match (&config.user, var(ENV_USER)) {
        (Some(user), _) => Some((user.clone(), Source::Literal)),
        (None, Some(user)) => Some((user, Source::Env(ENV_USER.to_string()))),
        (None, None) => None,
    };
    if let Some((user, source)) = user {
        // Flexible Server takes plain user names; Single Server's `user@server` (retired)
        // would be read as a different user.
        let server = host.split('.').next().unwrap_or_default();
        if let Some((_, suffix)) = user.rsplit_once('@')
            && !server.is_empty()
            && suffix.eq_ignore_ascii_case(server)
        {
            target.warnings.push(Warning {
                code: WarningCode::AzureSingleServerUser,
                    path: origin.path("user"),
                    location: origin.location("user"),
                    message: format!(
                        "user ends in @{suffix}, Single Server's user@server form; Flexible Server takes the plain user name"
                    ),
                });
        }
        target.set("user", user);
        target.user_source = source;
    }
    if config.iam_auth {
        if target.params.get("user").is_none() && config.credentials.is_none() {
            return Err(origin.error(
                "user",
                ConfigErrorKind::Missing,
                format!(
                    "iam_auth needs the Entra principal's database user name (user, or {ENV_USER})"
                ),
            ));
        }
        target.iam = Some(IamKind::Azure);
    }
    Ok(target)
}
