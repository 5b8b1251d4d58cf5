//! AWS RDS and Aurora, including RDS Proxy endpoints.

use super::Target;
use crate::config::{CatalogConfig, Provider, SSL_BUNDLE_AUTO};
use crate::env::Environment;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::plan::{IamKind, PlanKind, RdsBundle, Source};
use crate::sslmode::SslMode;

pub use crate::cloud::aws::{
    RDS_BUNDLE_FILE, RDS_GLOBAL_BUNDLE_URL, RdsHost, parse_rds_host, rds_bundle_cache_path,
};

pub(crate) fn target(config: &CatalogConfig, env: &dyn Environment) -> Result<Target, ConfigError> {
    let origin = &config.origin;
    let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
    let host = config
        .host
        .clone()
        .or_else(|| var("RDS_HOSTNAME"))
        .ok_or_else(|| {
            origin.error(
                "host",
                ConfigErrorKind::Missing,
                "provider aws needs host (or the RDS_HOSTNAME environment variable)",
            )
        })?;
    let port = super::port_from(config, env, "RDS_PORT")?;
    let mut target = Target::new(PlanKind::Provider(Provider::Aws), SslMode::Require);
    let rds = parse_rds_host(&host);
    target.aws_endpoint = rds.as_ref().map(|h| h.endpoint);
    target.region = config
        .region
        .clone()
        .or_else(|| rds.map(|h| h.region))
        .or_else(|| var("AWS_REGION"));
    target.set("host", host.clone());
    target.set("port", port.to_string());
    if let Some(db) = config.database.clone().or_else(|| var("RDS_DB_NAME")) {
        target.set("dbname", db);
    }
    if let Some(user) = &config.user {
        target.set("user", user.clone());
        target.user_source = Source::Literal;
    }
    if let Some(bundle) = &config.ssl_bundle {
        let path = if bundle == SSL_BUNDLE_AUTO {
            let path = rds_bundle_cache_path(env).ok_or_else(|| {
                origin.error(
                    "ssl_bundle",
                    ConfigErrorKind::Missing,
                    "ssl_bundle: auto caches the downloaded bundle under $XDG_CACHE_HOME/tea-pgcloud (else $HOME/.cache/tea-pgcloud), and neither XDG_CACHE_HOME (an absolute path) nor HOME is set",
                )
            })?;
            target.rds_bundle = Some(RdsBundle {
                url: config
                    .ssl_bundle_url
                    .clone()
                    .unwrap_or_else(|| RDS_GLOBAL_BUNDLE_URL.to_string()),
                sha256: config.ssl_bundle_sha256.clone(),
                path: path.clone(),
            });
            path
        } else {
            bundle.clone()
        };
        target.root_cert = Some(("ssl_bundle", path));
    }
    if config.sslrootcert.is_some() || config.ssl_bundle.is_some() {
        target.default_sslmode = SslMode::VerifyFull;
    }
    if config.iam_auth {
        if config.user.is_none() && config.credentials.is_none() {
            return Err(origin.error(
                "user",
                ConfigErrorKind::Missing,
                "iam_auth needs the database user the token is issued for (user)",
            ));
        }
        if target.region.is_none() {
            return Err(origin.error(
                "region",
                ConfigErrorKind::Missing,
                "iam_auth signs a token for a region: set region (or use an *.rds.amazonaws.com host, or AWS_REGION)",
            ));
        }
        target.iam = Some(IamKind::AwsRds);
    }
    Ok(target)
}
