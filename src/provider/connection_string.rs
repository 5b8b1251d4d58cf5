//! `connection_string`: a libpq string used as is, in meaning. Its keywords pass through
//! (including `verify-full`, `sslrootcert` and keywords newer than libpq 15), with what a
//! `service` adds from libpq's service files; only the secrets (`password`, `sslpassword`) are
//! taken out of the printable keywords.

use super::Target;
use crate::config::CatalogConfig;
use crate::conninfo::ConnInfo;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::plan::{PlanKind, Source};
use crate::secret::Secret;
use crate::sslmode::SslMode;

pub(crate) fn target(
    config: &CatalogConfig,
    env: &dyn crate::env::Environment,
) -> Result<Target, ConfigError> {
    let origin = &config.origin;
    let text = config
        .connection_string
        .as_ref()
        .map(Secret::expose)
        .unwrap_or_default();
    let mut params = ConnInfo::parse(text).map_err(|e| {
        // A string from ${VAR} may be a secret as a whole (a variable holding a bare password):
        // then no fragment of it is quoted.
        let message = if config.connection_string_expanded {
            format!(
                "{} (in the value ${{...}} expanded to)",
                e.unquoted_message()
            )
        } else {
            e.to_string()
        };
        origin.value_error("connection_string", ConfigErrorKind::ConnInfo, message)
    })?;
    // libpq's service file fills what the string does not set, before anything is read.
    crate::conninfo::service::apply(&mut params, env).map_err(|e| {
        let kind = match e {
            crate::conninfo::service::ServiceError::Ldap { .. } => ConfigErrorKind::Unsupported,
            _ => ConfigErrorKind::InvalidValue,
        };
        // A name that came from ${VAR} is not quoted.
        let name = params
            .get("service")
            .filter(|_| !config.connection_string_expanded);
        origin.value_error("connection_string", kind, e.message(name))
    })?;
    // libpq's default when the string says nothing.
    let mut target = Target::new(PlanKind::ConnectionString, SslMode::Prefer);
    target.host_key = "connection_string";
    target.write_sslmode = false;
    // Every secret keyword leaves the printable keywords (password, sslpassword).
    target.sslpassword = params.remove("sslpassword").map(Secret::new);
    if let Some(password) = params.remove("password") {
        if config.credentials.is_some() {
            return Err(origin.error(
                "credentials",
                ConfigErrorKind::Conflict,
                "`connection_string` holds a password and `credentials` supplies one: keep one",
            ));
        }
        target.password = Some(Secret::new(password));
    }
    if let Some(mode) = params.get("sslmode") {
        target.sslmode = Some(mode.parse().map_err(|()| {
            origin.value_error(
                "connection_string",
                ConfigErrorKind::InvalidValue,
                format!(
                    "invalid sslmode value: \"{}\" (one of {})",
                    mode.chars().take(40).collect::<String>(),
                    SslMode::allowed()
                ),
            )
        })?);
    }
    // libpq treats an empty sslrootcert as unset (and looks for ~/.postgresql/root.crt).
    if let Some(root) = params.get("sslrootcert").filter(|r| !r.is_empty()) {
        target.root_cert = Some(("connection_string", root.to_string()));
    }
    if params.get("user").is_some() {
        target.user_source = Source::Literal;
    }
    target.params = params;
    Ok(target)
}
