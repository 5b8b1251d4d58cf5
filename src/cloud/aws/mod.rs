//! AWS: the RDS host names, the RDS CA bundle's URL policy and cache path. Always compiled;
//! `sdk` (feature `aws`) holds what the SDK clients of Secrets Manager and the RDS token
//! provider share.

#[cfg(feature = "aws")]
pub mod sdk;

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::env::Environment;

/// AWS's documented URL of the RDS global CA bundle (every region's root and intermediate
/// certificates in one PEM file), the default of `ssl_bundle_url`.
pub const RDS_GLOBAL_BUNDLE_URL: &str =
    "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem";

/// The name of the bundle's cache file in the `tea-pgcloud` cache directory.
pub const RDS_BUNDLE_FILE: &str = "rds-global-bundle.pem";

/// Where `ssl_bundle: auto` caches the bundle: `$XDG_CACHE_HOME/tea-pgcloud/rds-global-bundle.pem`,
/// else `$HOME/.cache/tea-pgcloud/rds-global-bundle.pem`; `None` when neither is set. As the XDG
/// base directory specification says, an empty or relative `XDG_CACHE_HOME` is ignored.
///
/// ```
/// use tea_pgcloud::env::MapEnv;
/// use tea_pgcloud::cloud::aws::rds_bundle_cache_path;
/// let env = MapEnv::new().with_var("HOME", "/home/agent");
/// assert_eq!(
///     rds_bundle_cache_path(&env).as_deref(),
///     Some("/home/agent/.cache/tea-pgcloud/rds-global-bundle.pem")
/// );
/// let env = env.with_var("XDG_CACHE_HOME", "/var/cache/agent/");
/// assert_eq!(
///     rds_bundle_cache_path(&env).as_deref(),
///     Some("/var/cache/agent/tea-pgcloud/rds-global-bundle.pem")
/// );
/// assert_eq!(rds_bundle_cache_path(&MapEnv::new().with_var("XDG_CACHE_HOME", "cache")), None);
/// ```
pub fn rds_bundle_cache_path(env: &dyn Environment) -> Option<String> {
    let dir = match env.var("XDG_CACHE_HOME").filter(|d| d.starts_with('/')) {
        Some(cache) => cache.trim_end_matches('/').to_string(),
        None => {
            let home = env.var("HOME").filter(|h| !h.is_empty())?;
            format!("{}/.cache", home.trim_end_matches('/'))
        }
    };
    Some(format!("{dir}/tea-pgcloud/{RDS_BUNDLE_FILE}"))
}

/// Why a bundle URL is refused (a phrase that follows the value in a message), or `None` when
/// it is acceptable: `https`, or `http` to a loopback address (`127.0.0.0/8`, `[::1]`,
/// `localhost`), which tests use; never with a user name or password. The bundle decides whom
/// every connection trusts, so it must not cross a network in clear.
///
/// This reads the text ([`BundleUrl::from_text`]); the downloader applies the same rule
/// ([`BundleUrl::problem`]) to the URL as its HTTP client parsed it.
pub(crate) fn bundle_url_problem(url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    BundleUrl::from_text(&lower).problem()
}

/// A bundle URL as the policy sees it, read either from the configured text
/// ([`BundleUrl::from_text`]) or from a parsed URL, so that one rule ([`BundleUrl::problem`])
/// judges both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BundleUrl<'a> {
    /// The scheme, lower-case; empty when there is none.
    pub(crate) scheme: &'a str,
    /// Whether the URL names a user or a password.
    pub(crate) credentials: bool,
    /// The host, or why none can be read (a phrase for messages).
    pub(crate) host: Result<BundleUrlHost<'a>, &'static str>,
}

/// The host of a [`BundleUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BundleUrlHost<'a> {
    /// The host, an IPv6 address without its brackets.
    pub(crate) name: &'a str,
    /// Whether it was written in brackets (an IPv6 address).
    pub(crate) bracketed: bool,
}

impl BundleUrlHost<'_> {
    /// `localhost`, an address in `127.0.0.0/8`, or `[::1]`.
    pub(crate) fn is_loopback(&self) -> bool {
        self.name.eq_ignore_ascii_case("localhost")
            || self
                .name
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
            || (self.bracketed
                && self
                    .name
                    .parse::<Ipv6Addr>()
                    .is_ok_and(|ip| ip.is_loopback()))
    }
}

impl<'a> BundleUrl<'a> {
    /// Reads `url` (lower-case) as text: the scheme before `://`, the authority up to the first
    /// `/`, `?` or `#`, the host and port of the authority (a bad port or an unterminated
    /// `[IPv6]` host is a problem of the host).
    pub(crate) fn from_text(url: &'a str) -> Self {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        Self {
            scheme,
            credentials: authority.contains('@'),
            host: text_host(authority),
        }
    }

    /// Why the policy refuses this URL (see [`bundle_url_problem`]), or `None`.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        let https = match self.scheme {
            "https" => true,
            "http" => false,
            _ => return Some("is not an https URL (the bundle is downloaded over https)"),
        };
        if self.credentials {
            return Some(
                "holds a user name or password: the bundle is public, download it without credentials",
            );
        }
        let host = match self.host {
            Ok(host) => host,
            Err(problem) => return Some(problem),
        };
        if !https && !host.is_loopback() {
            return Some(
                "is plain http to a host that is not a loopback address: the bundle decides whom connections trust, so it is downloaded over https (http only to 127.0.0.0/8, [::1] or localhost, for tests)",
            );
        }
        None
    }
}

/// The host of an authority written as text (`host`, `host:port`, `[v6]`, `[v6]:port`).
fn text_host(authority: &str) -> Result<BundleUrlHost<'_>, &'static str> {
    let (name, port, bracketed) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, "")) => (host, None, true),
            Some((host, port)) => match port.strip_prefix(':') {
                Some(port) => (host, Some(port), true),
                None => return Err("is not a valid URL (text after the [IPv6] host)"),
            },
            None => return Err("is not a valid URL (an unterminated [IPv6] host)"),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port), false),
            None => (authority, None, false),
        },
    };
    if name.is_empty() {
        return Err("is not a valid URL (no host)");
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err("is not a valid URL (a bad port)");
    }
    Ok(BundleUrlHost { name, bracketed })
}

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
/// use tea_pgcloud::cloud::aws::parse_rds_host;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_urls_must_be_https_or_loopback_http() {
        for ok in [
            RDS_GLOBAL_BUNDLE_URL,
            "HTTPS://truststore.pki.rds.amazonaws.com/us-east-1/us-east-1-bundle.pem",
            "https://mirror.internal:8443/rds.pem?versionId=3",
            "http://127.0.0.1:8080/global-bundle.pem",
            "http://127.9.9.9/b.pem",
            "http://localhost:1/b.pem",
            "http://[::1]:9/b.pem",
        ] {
            assert_eq!(bundle_url_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("ftp://example.com/b.pem", "not an https URL"),
            (
                "truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
                "not an https URL",
            ),
            (
                "http://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
                "plain http",
            ),
            ("http://10.0.0.1/b.pem", "plain http"),
            ("http://127.0.0.1.attacker.example/b.pem", "plain http"),
            ("http://localhost.attacker.example/b.pem", "plain http"),
            ("http://[::2]/b.pem", "plain http"),
            (
                "http://127.0.0.1@attacker.example/b.pem",
                "user name or password",
            ),
            (
                "https://user:pw@mirror.internal/b.pem",
                "user name or password",
            ),
            ("https:///b.pem", "no host"),
            ("https://mirror.internal:0/b.pem", "bad port"),
            ("https://mirror.internal:https/b.pem", "bad port"),
            ("https://[::1/b.pem", "unterminated"),
        ] {
            let problem = bundle_url_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem:?}");
        }
    }
}
