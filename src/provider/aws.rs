//! AWS RDS and Aurora, including RDS Proxy endpoints.

use super::Target;
use crate::config::{CatalogConfig, Provider};
use crate::env::Environment;
use crate::error::{Error, ErrorKind};
use crate::plan::{IamKind, PlanKind, Source};
use crate::sslmode::SslMode;

/// What an RDS host name says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsHost {
    /// The region label, lower-cased (`us-east-1`): it scopes IAM token signatures.
    pub region: String,
    /// `instance`, `cluster` (Aurora writer), `cluster-ro` (readers), `cluster-custom`,
    /// `proxy` (RDS Proxy), or `proxy-endpoint` (an RDS Proxy's additional endpoint).
    pub endpoint: &'static str,
}

/// Recognises `*.REGION.rds.amazonaws.com` (and `.com.cn`) host names.
///
/// ```
/// use tea_pgcloud::provider::aws::parse_rds_host;
/// let h = parse_rds_host("ltm.cluster-ro-abc123.eu-west-1.rds.amazonaws.com").unwrap();
/// assert_eq!((h.region.as_str(), h.endpoint), ("eu-west-1", "cluster-ro"));
/// assert_eq!(parse_rds_host("DB.X.US-EAST-1.RDS.AMAZONAWS.COM").unwrap().region, "us-east-1");
/// let p = parse_rds_host("ltm-proxy.proxy-abc123.us-east-1.rds.amazonaws.com").unwrap();
/// assert_eq!(p.endpoint, "proxy");
/// assert!(parse_rds_host("db.example.com").is_none());
/// ```
pub fn parse_rds_host(host: &str) -> Option<RdsHost> {
    let host = host.trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    let lower = host.to_ascii_lowercase();
    let suffix = if lower.ends_with(".rds.amazonaws.com.cn") {
        4
    } else if lower.ends_with(".rds.amazonaws.com") {
        3
    } else {
        return None;
    };
    if labels.len() < suffix + 3 {
        return None;
    }
    let region = labels[labels.len() - suffix - 1];
    let id = labels[labels.len() - suffix - 2].to_ascii_lowercase();
    let endpoint = if id.starts_with("proxy-") {
        if labels.len() >= suffix + 4
            && labels[labels.len() - suffix - 3].eq_ignore_ascii_case("endpoint")
        {
            "proxy-endpoint"
        } else {
            "proxy"
        }
    } else if id.starts_with("cluster-ro-") {
        "cluster-ro"
    } else if id.starts_with("cluster-custom-") {
        "cluster-custom"
    } else if id.starts_with("cluster-") {
        "cluster"
    } else {
        "instance"
    };
    (!region.is_empty()).then(|| RdsHost {
        region: region.to_ascii_lowercase(),
        endpoint,
    })
}

pub(crate) fn target(config: &CatalogConfig, env: &dyn Environment) -> Result<Target, Error> {
    let origin = &config.origin;
    let var = |name: &str| env.var(name).filter(|v| !v.is_empty());
    let host = config
        .host
        .clone()
        .or_else(|| var("RDS_HOSTNAME"))
        .ok_or_else(|| {
            origin.error(
                "host",
                ErrorKind::Missing,
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
        target.root_cert = Some(("ssl_bundle", bundle.clone()));
    }
    if config.sslrootcert.is_some() || config.ssl_bundle.is_some() {
        target.default_sslmode = SslMode::VerifyFull;
    }
    if config.iam_auth {
        if config.user.is_none() && config.credentials.is_none() {
            return Err(origin.error(
                "user",
                ErrorKind::Missing,
                "iam_auth needs the database user the token is issued for (user)",
            ));
        }
        if target.region.is_none() {
            return Err(origin.error(
                "region",
                ErrorKind::Missing,
                "iam_auth signs a token for a region: set region (or use an *.rds.amazonaws.com host, or AWS_REGION)",
            ));
        }
        target.iam = Some(IamKind::AwsRds);
    }
    Ok(target)
}
