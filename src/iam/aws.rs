//! RDS / Aurora IAM authentication tokens.
//!
//! A token is a SigV4-presigned `GET https://HOST:PORT/?Action=connect&DBUser=USER` for the
//! service `rds-db`, valid 15 minutes, with only the `host` header signed; the token is that URL
//! without its scheme. [`rds_auth_token`] computes it locally: no network.
//!
//! [`RdsTokenProvider`] is the [`CredentialProvider`] for `iam:aws-rds`: at every
//! [`fetch`](CredentialProvider::fetch) it asks its AWS credentials provider for credentials
//! and signs a new token with them at the current time.
//!
//! # Where the AWS credentials come from
//!
//! [`RdsTokenProvider::from_plan`] uses aws-config's default chain ([`default_chain`]):
//! environment variables, the shared config and credentials files (profile), web identity
//! (`AssumeRoleWithWebIdentity` at STS, as on EKS with IRSA), the container credentials
//! endpoint (ECS task roles, EKS Pod Identity) and EC2 instance metadata (IMDSv2).
//!
//! aws-config reads that chain's environment through `ProviderConfig`, whose environment
//! override (`with_env`) is crate-private and whose `ConfigLoader::env` exists only under
//! aws-config's `test-util` feature. So the chain reads the **process environment** (and the
//! real `~/.aws` files); of the crate's [`Environment`] it sees only `AWS_PROFILE`, passed
//! through the public `profile_name` setting. Tests drive the real aws-config providers in a
//! child process that is given its own environment, never by changing this process's.
//!
//! # Caching
//!
//! The chain as built here has no identity cache (aws-config puts that cache in service
//! clients, not in the providers), and the environment, profile, web identity and container
//! providers keep nothing between calls: every fetch sends a new request to STS or the
//! container endpoint, and [`crate::iam::cache`] alone decides when to fetch. Two exceptions
//! inside aws-config that cannot be turned off from here: the EC2 instance-metadata provider
//! keeps the last credentials it got and returns them when IMDS fails, and extends credentials
//! that IMDS returns already expired by 15-20 minutes ("static stability"); its IMDSv2 session
//! token is cached for 6 hours. The signing itself never touches the network.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
// The smithy error types, by the re-exports of an SDK crate this build already has.
use aws_sdk_secretsmanager::error::{ConnectorError, DisplayErrorContext, ErrorMetadata};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use super::{CredentialProvider, Token, TokenError, TokenErrorKind, TokenFuture, humantime_utc};
use crate::env::Environment;
use crate::plan::{ConnectPlan, DEFAULT_PORT};
use crate::secret::Secret;

/// The provider's name, as the plan writes the password source.
pub const PROVIDER: &str = "iam:aws-rds";

/// How long an RDS token is valid: the service's fixed 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How long one fetch may wait for AWS credentials, retries included. The container provider
/// alone may take 3 attempts of up to 2 s (connect) + 5 s (read); 10 s bounds a connect
/// attempt that waits on a hung endpoint, and [`crate::iam::cache`] keeps using a still-valid
/// token meanwhile.
pub const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    /// The RDS endpoint (instance, cluster or proxy), as dialled.
    pub host: &'a str,
    /// Its port.
    pub port: u16,
    /// The database user the token logs in as.
    pub user: &'a str,
    /// The region the endpoint is in (it scopes the signature).
    pub region: &'a str,
}

fn error(kind: TokenErrorKind, message: impl Into<String>) -> TokenError {
    TokenError::new(PROVIDER, kind, message)
}

/// The RDS IAM auth token for `request`, signed with `credentials` at `time`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use aws_credential_types::Credentials;
/// use tea_pgcloud::iam::aws::{rds_auth_token, TokenRequest};
/// let request = TokenRequest { host: "db.abc.us-east-1.rds.amazonaws.com", port: 5432, user: "app", region: "us-east-1" };
/// let creds = Credentials::new("AKID", "SECRET", None, None, "example");
/// let token = rds_auth_token(&request, &creds, UNIX_EPOCH + Duration::from_secs(1_700_000_000)).unwrap();
/// assert!(token.expose().starts_with("db.abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app&"));
/// ```
pub fn rds_auth_token(
    request: &TokenRequest<'_>,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<Secret, TokenError> {
    let config = |what: &str, e: &dyn fmt::Display| {
        error(
            TokenErrorKind::Config,
            format!("RDS IAM token: {what}: {e}"),
        )
    };
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(TOKEN_LIFETIME);
    settings.signature_location = SignatureLocation::QueryParams;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| config("signing parameters", &e))?
        .into();
    let user: String = url_encode(request.user);
    let url = format!(
        "https://{}:{}/?Action=connect&DBUser={user}",
        request.host, request.port
    );
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| config("request", &e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| config("signing", &e))?
        .into_parts();
    let mut http_request = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|e| config("request", &e))?;
    instructions.apply_to_request_http1x(&mut http_request);
    let signed = http_request.uri().to_string();
    Ok(Secret::new(
        signed
            .strip_prefix("https://")
            .unwrap_or(&signed)
            .to_string(),
    ))
}

/// A token signed with `credentials` at `now` (to the whole second, as SigV4 dates are), which
/// expires [`TOKEN_LIFETIME`] later or when the credentials do, whichever comes first.
/// Credentials that have already expired are [`TokenErrorKind::Invalid`].
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use aws_credential_types::Credentials;
/// use tea_pgcloud::iam::aws::{token_at, TokenRequest};
/// let request = TokenRequest { host: "db.example", port: 5432, user: "app", region: "eu-west-1" };
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let creds = Credentials::new("AKID", "SECRET", Some("TOKEN".into()), Some(now + Duration::from_secs(60)), "example");
/// assert_eq!(token_at(&request, &creds, now).unwrap().expires_at, now + Duration::from_secs(60));
/// ```
pub fn token_at(
    request: &TokenRequest<'_>,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<Token, TokenError> {
    if let Some(expiry) = credentials.expiry()
        && expiry <= now
    {
        return Err(error(
            TokenErrorKind::Invalid,
            format!(
                "the AWS credentials (access key {}) expired at {}, before they could sign a token",
                credentials.access_key_id(),
                humantime_utc(expiry)
            ),
        ));
    }
    let signed_at = whole_seconds(now);
    let secret = rds_auth_token(request, credentials, signed_at)?;
    let lifetime_end = signed_at + TOKEN_LIFETIME;
    let expires_at = credentials
        .expiry()
        .map_or(lifetime_end, |expiry| expiry.min(lifetime_end));
    Ok(Token { secret, expires_at })
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    t.duration_since(UNIX_EPOCH)
        .map_or(t, |d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
}

/// RFC 3986 percent-encoding of everything but unreserved characters, as SigV4 expects.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// aws-config's default credentials chain for `region`, over the crate's ring-only HTTPS
/// client. It reads the process environment (see the [module documentation](self)); of `env`
/// it takes `AWS_PROFILE`.
pub async fn default_chain(region: &str, env: &dyn Environment) -> SharedCredentialsProvider {
    let region = Region::new(region.to_string());
    let config = ProviderConfig::without_region()
        .with_http_client(crate::cloud::aws::sdk::http_client())
        .with_region(Some(region.clone()));
    let mut chain = DefaultCredentialsChain::builder()
        .configure(config)
        .region(region);
    if let Some(profile) = env.var("AWS_PROFILE").filter(|p| !p.is_empty()) {
        chain = chain.profile_name(&profile);
    }
    SharedCredentialsProvider::new(chain.build().await)
}

/// IAM auth tokens for one RDS / Aurora endpoint and database user (`iam:aws-rds`).
///
/// Every [`fetch`](CredentialProvider::fetch) gets AWS credentials from its credentials
/// provider (a new request to STS or the container endpoint with the default chain: see the
/// [module documentation](self) for what aws-config caches) and signs a new token at the
/// current time. The token expires 15 minutes after signing, or with the credentials if they
/// expire sooner. `Debug` shows the endpoint, never a credential.
pub struct RdsTokenProvider {
    host: String,
    port: u16,
    user: String,
    region: String,
    credentials: SharedCredentialsProvider,
    source: &'static str,
    timeout: Duration,
}

impl fmt::Debug for RdsTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsTokenProvider")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("region", &self.region)
            .field("credentials", &self.source)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RdsTokenProvider {
    /// For a plan's first host and port, `plan.user` and `plan.region`, with credentials from
    /// aws-config's default chain ([`default_chain`]). Config errors name what is missing.
    pub async fn from_plan(
        plan: &ConnectPlan,
        env: std::sync::Arc<dyn Environment>,
    ) -> Result<Self, TokenError> {
        let host = plan
            .hosts
            .first()
            .ok_or_else(|| error(TokenErrorKind::Config, "iam_auth needs host"))?;
        if host.is_socket() {
            return Err(error(
                TokenErrorKind::Config,
                format!(
                    "iam_auth needs a TCP host name to sign for, not the socket directory {}",
                    host.host
                ),
            ));
        }
        let user = plan
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                error(
                    TokenErrorKind::Config,
                    "iam_auth needs user (the database user the token is issued for)",
                )
            })?;
        let region = plan
            .region
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| error(TokenErrorKind::Config, "iam_auth needs region"))?;
        let credentials = default_chain(region, env.as_ref()).await;
        let mut builder = Self::builder()
            .host(host.host.clone())
            .port(host.port)
            .user(user)
            .region(region);
        builder.credentials = Some((credentials, "aws-config default chain"));
        builder.build()
    }

    /// A builder: endpoint, user, region and an explicit credentials provider (tests, or a
    /// caller with its own chain).
    pub fn builder() -> RdsTokenProviderBuilder {
        RdsTokenProviderBuilder::default()
    }

    /// What the tokens are signed for.
    pub fn request(&self) -> TokenRequest<'_> {
        TokenRequest {
            host: &self.host,
            port: self.port,
            user: &self.user,
            region: &self.region,
        }
    }

    /// How long a fetch waits for credentials ([`CREDENTIALS_TIMEOUT`] unless set).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same provider with another credentials timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn credentials(&self) -> Result<Credentials, TokenError> {
        match tokio::time::timeout(self.timeout, self.credentials.provide_credentials()).await {
            Ok(Ok(credentials)) => Ok(credentials),
            Ok(Err(e)) => Err(classify(&e, self.source)),
            Err(_) => Err(error(
                TokenErrorKind::Unavailable,
                format!(
                    "no AWS credentials from the {} within {} ms",
                    self.source,
                    self.timeout.as_millis()
                ),
            )),
        }
    }
}

impl CredentialProvider for RdsTokenProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn key(&self) -> String {
        format!("{}:{}:{}:{}", self.region, self.host, self.port, self.user)
    }

    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let credentials = self.credentials().await?;
            token_at(&self.request(), &credentials, SystemTime::now())
        })
    }
}

/// Builds an [`RdsTokenProvider`] from explicit parts.
///
/// ```
/// use aws_credential_types::Credentials;
/// use tea_pgcloud::iam::CredentialProvider;
/// use tea_pgcloud::iam::aws::RdsTokenProvider;
/// let provider = RdsTokenProvider::builder()
///     .host("db.abc.eu-west-1.rds.amazonaws.com")
///     .user("app")
///     .region("eu-west-1")
///     .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "example"))
///     .build()?;
/// assert_eq!(provider.key(), "eu-west-1:db.abc.eu-west-1.rds.amazonaws.com:5432:app");
/// # Ok::<(), tea_pgcloud::iam::TokenError>(())
/// ```
pub struct RdsTokenProviderBuilder {
    host: Option<String>,
    port: u16,
    user: Option<String>,
    region: Option<String>,
    credentials: Option<(SharedCredentialsProvider, &'static str)>,
    timeout: Duration,
}

impl Default for RdsTokenProviderBuilder {
    fn default() -> Self {
        Self {
            host: None,
            port: DEFAULT_PORT,
            user: None,
            region: None,
            credentials: None,
            timeout: CREDENTIALS_TIMEOUT,
        }
    }
}

impl fmt::Debug for RdsTokenProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsTokenProviderBuilder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("region", &self.region)
            .field("credentials", &self.credentials.as_ref().map(|c| c.1))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RdsTokenProviderBuilder {
    /// The RDS endpoint the token is for, as dialled.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Its port (default 5432).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The database user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The endpoint's region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Where AWS credentials come from: any aws-config provider (`EcsCredentialsProvider`,
    /// `WebIdentityTokenCredentialsProvider`, static [`Credentials`], ...).
    pub fn credentials_provider(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.credentials = Some((
            SharedCredentialsProvider::new(provider),
            "configured credentials provider",
        ));
        self
    }

    /// How long a fetch waits for credentials (default [`CREDENTIALS_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The provider; a Config error names the first missing part.
    pub fn build(self) -> Result<RdsTokenProvider, TokenError> {
        let missing = |what: &str| error(TokenErrorKind::Config, format!("iam_auth needs {what}"));
        let host = self
            .host
            .filter(|h| !h.is_empty())
            .ok_or_else(|| missing("host"))?;
        let user = self
            .user
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("user"))?;
        let region = self
            .region
            .filter(|r| !r.is_empty())
            .ok_or_else(|| missing("region"))?;
        let (credentials, source) = self
            .credentials
            .ok_or_else(|| missing("an AWS credentials provider"))?;
        Ok(RdsTokenProvider {
            host,
            port: self.port,
            user,
            region,
            credentials,
            source,
            timeout: self.timeout,
        })
    }
}

/// What the error chain of a failed credentials fetch says, gathered by type where aws-config
/// exposes one and by its fixed wording where it does not (the container provider keeps only
/// the status in its message).
#[derive(Debug, Default, PartialEq, Eq)]
struct Signals {
    /// No connection, or the request timed out.
    unreachable: Option<&'static str>,
    /// The HTTP status the container endpoint answered with.
    status: Option<u16>,
    /// The service's error code (STS, or the container endpoint's `code`).
    code: Option<String>,
    /// A response that could not be read.
    unreadable: bool,
    /// A local file could not be read (the web identity token file).
    file: bool,
}

fn signals(e: &CredentialsError) -> Signals {
    let mut out = Signals::default();
    let mut after_service_error = false;
    let chain = std::iter::successors(Some(e as &(dyn StdError + 'static)), |e| (*e).source());
    for err in chain {
        let text = err.to_string();
        if let Some(connector) = err.downcast_ref::<ConnectorError>() {
            out.unreachable = Some(if connector.is_timeout() {
                "timed out"
            } else {
                "could not be reached"
            });
        } else if let Some(meta) = err.downcast_ref::<ErrorMetadata>() {
            out.code = out.code.take().or(meta.code().map(str::to_string));
        } else if err.downcast_ref::<std::io::Error>().is_some() {
            out.file = true;
        }
        match text.as_str() {
            "request has timed out" => out.unreachable = Some("timed out"),
            "dispatch failure" => {
                out.unreachable = out.unreachable.or(Some("could not be reached"));
            }
            "response error" => out.unreadable = true,
            _ => {}
        }
        if let Some(rest) = text.strip_prefix("Non-success status from HTTP credential provider: ")
        {
            // `503` or `StatusCode(503)`, depending on the HTTP types' `Debug`.
            let digits: String = rest
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            out.status = digits.parse().ok();
        }
        if let Some(rest) = text.strip_prefix("failed to load credentials [") {
            out.code = rest.split(']').next().map(str::to_string);
        }
        // A modelled service error (`InvalidIdentityTokenException: ...`) is the error right
        // under the SDK's "service error"; its name is its code.
        if after_service_error && out.code.is_none() {
            let name = text.split(':').next().unwrap_or("");
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                out.code = Some(name.to_string());
            }
        }
        after_service_error = text == "service error";
    }
    out.code = out.code.map(|c| {
        // The code is the service's text: keep it short and plain.
        c.chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            .take(64)
            .collect()
    });
    out
}

/// The kind of an error code from STS or a credentials endpoint.
fn code_kind(code: &str) -> TokenErrorKind {
    let code = code.strip_suffix("Exception").unwrap_or(code);
    match code {
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "Throttling"
        | "TooManyRequests"
        | "RequestLimitExceeded"
        | "RequestTimeout"
        | "IDPCommunicationError"
        | "IdpCommunicationError" => TokenErrorKind::Unavailable,
        "MalformedPolicyDocument"
        | "PackedPolicyTooLarge"
        | "RegionDisabled"
        | "ValidationError"
        | "InvalidParameterValue"
        | "MissingParameter" => TokenErrorKind::Config,
        _ => TokenErrorKind::Denied,
    }
}

/// An aws-config error as a [`TokenError`]. The message names the error class, the HTTP status
/// or the service's error code; the SDK's own text only for set-up errors, which hold no
/// credential.
fn classify(e: &CredentialsError, source: &str) -> TokenError {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => {
            return error(
                TokenErrorKind::Config,
                format!("no AWS credentials found: {}", DisplayErrorContext(e)),
            );
        }
        CredentialsError::InvalidConfiguration(_) => {
            return error(
                TokenErrorKind::Config,
                format!(
                    "the AWS credentials provider is not set up right: {}",
                    DisplayErrorContext(e)
                ),
            );
        }
        CredentialsError::ProviderTimedOut(t) => {
            return error(
                TokenErrorKind::Unavailable,
                format!(
                    "the {source} timed out after {} ms",
                    t.timeout_duration().as_millis()
                ),
            );
        }
        _ => {}
    }
    let s = signals(e);
    let (kind, what) = if let Some(how) = s.unreachable {
        (TokenErrorKind::Unavailable, format!("the endpoint {how}"))
    } else if let Some(status) = s.status {
        let kind = match status {
            408 | 429 | 500..=599 => TokenErrorKind::Unavailable,
            _ => TokenErrorKind::Denied,
        };
        (kind, format!("HTTP {status}"))
    } else if let Some(code) = &s.code {
        (code_kind(code), code.clone())
    } else if s.unreadable {
        (
            TokenErrorKind::Invalid,
            "the answer is not credentials".to_string(),
        )
    } else if s.file {
        (
            TokenErrorKind::Config,
            "a credentials file could not be read".to_string(),
        )
    } else if matches!(e, CredentialsError::ProviderError(_)) {
        (TokenErrorKind::Denied, "the provider refused".to_string())
    } else {
        (
            TokenErrorKind::Invalid,
            "the answer is not credentials".to_string(),
        )
    };
    error(
        kind,
        format!("no AWS credentials from the {source}: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn the_aws_sdk_for_rust_vector() {
        // aws-sdk-rust `auth_token.rs`: creds akid/secret, 2024-08-26T22:00:00Z.
        let request = TokenRequest {
            host: "prod-instance.us-east-1.rds.amazonaws.com",
            port: 3306,
            user: "peccy",
            region: "us-east-1",
        };
        let creds = Credentials::new("akid", "secret", None, None, "test");
        let token = rds_auth_token(
            &request,
            &creds,
            UNIX_EPOCH + Duration::from_secs(1_724_709_600),
        )
        .expect("signs");
        assert_eq!(
            token.expose(),
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=peccy&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20240826%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20240826T220000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=dd0cba843009474347af724090233265628ace491ea17ce3eb3da098b983ad89"
        );
    }

    const REQUEST: TokenRequest<'static> = TokenRequest {
        host: "db.abc.us-east-1.rds.amazonaws.com",
        port: 5432,
        user: "app",
        region: "us-east-1",
    };

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_token_lives_900_s_from_the_whole_second_it_was_signed() {
        let creds = Credentials::new("AKID", "SECRET", None, None, "test");
        let now = at(1_800_000_000) + Duration::from_millis(750);
        let token = token_at(&REQUEST, &creds, now).expect("signs");
        assert_eq!(token.expires_at, at(1_800_000_900));
        assert!(
            token
                .secret
                .expose()
                .contains("X-Amz-Date=20270115T080000Z")
        );
    }

    #[test]
    fn credentials_that_expire_sooner_bound_the_token() {
        let soon = Credentials::new("AKID", "SECRET", None, Some(at(1_800_000_120)), "test");
        let token = token_at(&REQUEST, &soon, at(1_800_000_000)).expect("signs");
        assert_eq!(token.expires_at, at(1_800_000_120));
        let later = Credentials::new("AKID", "SECRET", None, Some(at(1_800_003_600)), "test");
        let token = token_at(&REQUEST, &later, at(1_800_000_000)).expect("signs");
        assert_eq!(token.expires_at, at(1_800_000_900));
    }

    #[test]
    fn expired_credentials_are_invalid_and_not_shown() {
        let creds = Credentials::new(
            "AKID",
            "SeCrEt-KeY",
            Some("SeSsIoN".into()),
            Some(at(1_800_000_000)),
            "test",
        );
        let err = token_at(&REQUEST, &creds, at(1_800_000_000)).expect_err("expired");
        assert_eq!(err.kind(), TokenErrorKind::Invalid);
        assert_eq!(err.provider(), PROVIDER);
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("2027-01-15T08:00:00Z"), "{shown}");
        assert!(
            !shown.contains("SeCrEt") && !shown.contains("SeSsIoN"),
            "{shown}"
        );
    }

    #[test]
    fn set_up_errors_are_config_and_timeouts_unavailable() {
        let kind = |e: CredentialsError| classify(&e, "test").kind();
        assert_eq!(
            kind(CredentialsError::not_loaded("nothing")),
            TokenErrorKind::Config
        );
        assert_eq!(
            kind(CredentialsError::invalid_configuration("bad uri")),
            TokenErrorKind::Config
        );
        assert_eq!(
            kind(CredentialsError::provider_timed_out(Duration::from_secs(5))),
            TokenErrorKind::Unavailable
        );
    }

    #[test]
    fn container_statuses_are_read_from_the_message() {
        let status = |n: u16| {
            classify(
                &CredentialsError::provider_error(format!(
                    "Non-success status from HTTP credential provider: {n}"
                )),
                "test",
            )
        };
        assert_eq!(status(503).kind(), TokenErrorKind::Unavailable);
        assert_eq!(status(403).kind(), TokenErrorKind::Denied);
        assert_eq!(status(401).kind(), TokenErrorKind::Denied);
        assert!(
            status(503).message().ends_with("HTTP 503"),
            "{}",
            status(503)
        );
        // aws-smithy-runtime-api's `StatusCode` prints itself this way.
        let wrapped = classify(
            &CredentialsError::provider_error(
                "Non-success status from HTTP credential provider: StatusCode(502)",
            ),
            "test",
        );
        assert_eq!(wrapped.kind(), TokenErrorKind::Unavailable);
        assert!(wrapped.message().ends_with("HTTP 502"), "{wrapped}");
    }

    #[test]
    fn service_codes_pick_the_kind() {
        let code = |c: &str| {
            classify(
                &CredentialsError::provider_error(ErrorMetadata::builder().code(c).build()),
                "test",
            )
            .kind()
        };
        assert_eq!(code("InvalidIdentityToken"), TokenErrorKind::Denied);
        assert_eq!(code("AccessDenied"), TokenErrorKind::Denied);
        assert_eq!(code("ServiceUnavailable"), TokenErrorKind::Unavailable);
        assert_eq!(code("InternalFailure"), TokenErrorKind::Unavailable);
        assert_eq!(code("IDPCommunicationError"), TokenErrorKind::Unavailable);
        assert_eq!(code("MalformedPolicyDocument"), TokenErrorKind::Config);
    }

    #[test]
    fn an_unreadable_answer_is_invalid_and_a_missing_token_file_config() {
        assert_eq!(
            classify(&CredentialsError::unhandled("expected field"), "test").kind(),
            TokenErrorKind::Invalid
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            classify(&CredentialsError::provider_error(io), "test").kind(),
            TokenErrorKind::Config
        );
    }

    #[test]
    fn the_builder_names_what_is_missing() {
        let err = RdsTokenProvider::builder()
            .host("db")
            .user("app")
            .credentials_provider(Credentials::new("A", "S", None, None, "t"))
            .build()
            .expect_err("no region");
        assert_eq!(err.kind(), TokenErrorKind::Config);
        assert_eq!(err.message(), "iam_auth needs region");
        let err = RdsTokenProvider::builder()
            .host("db")
            .user("app")
            .region("us-east-1")
            .build()
            .expect_err("no credentials");
        assert_eq!(err.message(), "iam_auth needs an AWS credentials provider");
    }
}
