//! Google Cloud SQL IAM database authentication: the password is an OAuth2 access token with
//! the [`SQLSERVICE_LOGIN_SCOPE`] scope, of the principal the database user names (a service
//! account's user is its e-mail without `.gserviceaccount.com`).
//!
//! # Where tokens come from
//!
//! Application Default Credentials, read through the [`Environment`] the provider is given
//! (never the process environment behind its back), in the order of AIP-4110:
//!
//! | source | how the token is had |
//! |---|---|
//! | `GOOGLE_APPLICATION_CREDENTIALS` names a file, or else `$HOME/.config/gcloud/application_default_credentials.json` exists | by the file's `type`, below |
//! | neither | the metadata server at `GCE_METADATA_HOST` (default `metadata.google.internal`), through `google-cloud-auth`'s `mds` credentials |
//!
//! | file `type` | how |
//! |---|---|
//! | `service_account` | an OAuth2 JWT-bearer grant (RFC 7523) to the key's `token_uri`: an assertion signed with the key by `google-cloud-auth`'s signer, posted by this module |
//! | `authorized_user` (gcloud's ADC file) | `google-cloud-auth`'s `user_account` credentials: a `refresh_token` grant to `token_uri` |
//! | `impersonated_service_account` | `google-cloud-auth`'s `impersonated` credentials (IAM Credentials `generateAccessToken`) |
//! | `external_account` (workload identity federation) | `google-cloud-auth`'s `external_account` credentials (STS) |
//!
//! Why service accounts do not go through `google-cloud-auth`: its `service_account`
//! credentials (1.x) never call the token endpoint. With scopes or without, they mint a
//! *self-signed JWT* locally (`iss` = `sub` = the account, the scopes as a claim, an hour of
//! life) and send that as the bearer token; no builder option turns that off. Google APIs accept
//! such JWTs, Cloud SQL's IAM login needs a real OAuth2 access token. So this module signs a
//! JWT-bearer assertion with the SDK's [`Signer`] and exchanges it at `token_uri` itself.
//!
//! The builder takes each source explicitly too ([`CloudSqlTokenProviderBuilder`]), which is
//! how tests point it at the emulators.
//!
//! # Caching and expiry
//!
//! Every [`CredentialProvider::fetch`] asks the issuer anew: [`crate::iam::cache`] decides when
//! to ask. `google-cloud-auth` caches: each credentials object owns a token cache with a
//! background task that fetches at once and refreshes four minutes before expiry, and
//! `access_token()` answers from it. This module builds fresh credentials for every fetch
//! (cheap: no I/O) and drops them afterwards, which stops the task, so each fetch is exactly one
//! token request.
//!
//! `google-cloud-auth`'s `AccessToken` holds the token string only: its expiry stays inside the
//! SDK. So for tokens had through the SDK the expiry is an assumption, counted from when the
//! request was sent:
//!
//! - the metadata server hands out its own cached token until four to five minutes before it
//!   expires (four on serverless platforms; the SDK refreshes at four minutes for that reason):
//!   [`METADATA_SERVER_TOKEN_LIFETIME`];
//! - a token service (refresh token, impersonation, STS) mints a new token of an hour:
//!   [`MINTED_TOKEN_LIFETIME`], half of that.
//!
//! The JWT-bearer path reads `expires_in` itself and uses the issuer's word.
//!
//! # Errors
//!
//! | what happened | [`TokenErrorKind`] |
//! |---|---|
//! | no user known, an unreadable or unsupported credentials file, a bad private key, 404 | `Config` |
//! | 400 (`invalid_grant`: a revoked refresh token, a bad signature), 401, 403 | `Denied` |
//! | 408, 429, 5xx, connection failures, no answer within [`ATTEMPT_TIMEOUT`], after [`ATTEMPTS`] attempts | `Unavailable` |
//! | a body that is not a token answer, an empty token, `expires_in` <= 0 | `Invalid` |
//!
//! Messages name the source (endpoint, account e-mail, client id) and the HTTP status, never a
//! token, a key, a client secret or a refresh token, and never the SDK's or the server's own
//! text (which may quote a response body).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use google_cloud_auth::credentials::{
    AccessTokenCredentials, external_account, impersonated, mds, user_account,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_auth::signer::Signer;
// google-cloud-gax's error type, as the Secret Manager crate re-exports it: the metadata
// server's HTTP status is inside one.
use google_cloud_secretmanager_v1::Error as GaxError;
use serde_json::{Value, json};

use super::{CredentialProvider, Token, TokenError, TokenErrorKind, TokenFuture};
use crate::cloud::gcp::iam_user;
use crate::env::Environment;
use crate::plan::ConnectPlan;
use crate::secret::Secret;
use crate::shared::base64url;

/// The provider's name, as plans write the password source.
pub const PROVIDER: &str = "iam:gcp";

/// The scope Cloud SQL IAM database login needs.
pub const SQLSERVICE_LOGIN_SCOPE: &str = "https://www.googleapis.com/auth/sqlservice.login";

/// The longest one token request may take before it counts as `Unavailable`.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at most for one token while the issuer is `Unavailable`.
pub const ATTEMPTS: u32 = 3;

/// The wait before the second attempt; doubled for each further one (with jitter).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long a metadata-server token is assumed to stay valid (the SDK hides its expiry).
pub const METADATA_SERVER_TOKEN_LIFETIME: Duration = Duration::from_secs(240);

/// How long a token minted by a token service through the SDK is assumed to stay valid (the
/// SDK hides its expiry; they live an hour).
pub const MINTED_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);

/// How long a JWT-bearer assertion is valid (Google's maximum).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);

/// The metadata server unless `GCE_METADATA_HOST` says otherwise.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://metadata.google.internal";

/// Google's OAuth2 token endpoint, for key files without `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The variable naming a credentials file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// The variable naming the metadata server's `host[:port]`.
pub const METADATA_HOST_VAR: &str = "GCE_METADATA_HOST";

/// gcloud's ADC file, under `$HOME`.
pub const WELL_KNOWN_ADC_FILE: &str = ".config/gcloud/application_default_credentials.json";

const JWT_BEARER_FORM_GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
const SERVICE_ACCOUNT_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default";

/// Timeouts and retries of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcpTokenPolicy {
    /// Bound of one token request ([`ATTEMPT_TIMEOUT`]).
    pub attempt_timeout: Duration,
    /// Attempts at most while `Unavailable` ([`ATTEMPTS`]; 1 retries nothing).
    pub attempts: u32,
    /// First wait between attempts ([`INITIAL_BACKOFF`]).
    pub initial_backoff: Duration,
    /// Longest wait between attempts ([`MAX_BACKOFF`]).
    pub max_backoff: Duration,
}

impl Default for GcpTokenPolicy {
    fn default() -> Self {
        Self {
            attempt_timeout: ATTEMPT_TIMEOUT,
            attempts: ATTEMPTS,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }
}

/// A service account key, as the JWT-bearer grant needs it.
#[derive(Clone)]
struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    signer: Signer,
}

/// Where tokens come from.
#[derive(Clone)]
enum Source {
    MetadataServer {
        endpoint: String,
    },
    ServiceAccount(ServiceAccount),
    AuthorizedUser {
        json: Value,
        client_id: String,
        token_uri: String,
    },
    Impersonated {
        json: Value,
    },
    ExternalAccount {
        json: Value,
    },
}

impl fmt::Debug for Source {
    // Names and endpoints only: the JSON holds keys, secrets and refresh tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MetadataServer { endpoint } => f
                .debug_struct("MetadataServer")
                .field("endpoint", endpoint)
                .finish(),
            Self::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("client_email", &sa.client_email)
                .field("token_uri", &sa.token_uri)
                .finish_non_exhaustive(),
            Self::AuthorizedUser {
                client_id,
                token_uri,
                ..
            } => f
                .debug_struct("AuthorizedUser")
                .field("client_id", client_id)
                .field("token_uri", token_uri)
                .finish_non_exhaustive(),
            Self::Impersonated { .. } => f.debug_struct("Impersonated").finish_non_exhaustive(),
            Self::ExternalAccount { .. } => {
                f.debug_struct("ExternalAccount").finish_non_exhaustive()
            }
        }
    }
}

impl Source {
    /// What the messages call it.
    fn describe(&self) -> String {
        match self {
            Self::MetadataServer { endpoint } => format!("the metadata server at {endpoint}"),
            Self::ServiceAccount(sa) => format!(
                "the token endpoint {} (service account {})",
                sa.token_uri, sa.client_email
            ),
            Self::AuthorizedUser {
                client_id,
                token_uri,
                ..
            } => format!("the token endpoint {token_uri} (authorized user of client {client_id})"),
            Self::Impersonated { .. } => {
                "the IAM Credentials API (impersonated service account)".to_string()
            }
            Self::ExternalAccount { .. } => {
                "the Security Token Service (external account)".to_string()
            }
        }
    }

    /// The principal's e-mail, when the credentials name it.
    fn principal(&self) -> Option<String> {
        match self {
            Self::ServiceAccount(sa) => Some(sa.client_email.clone()),
            Self::Impersonated { json } | Self::ExternalAccount { json } => {
                json["service_account_impersonation_url"]
                    .as_str()
                    .and_then(impersonated_email)
            }
            Self::MetadataServer { .. } | Self::AuthorizedUser { .. } => None,
        }
    }
}

/// `EMAIL` from `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`.
fn impersonated_email(url: &str) -> Option<String> {
    let rest = url.split("/serviceAccounts/").nth(1)?;
    let email = rest.split(':').next()?;
    email.contains('@').then(|| email.to_string())
}

/// An OAuth2 access token for Cloud SQL IAM database login, fresh from the issuer at every
/// [`CredentialProvider::fetch`]. `Debug` shows the key, the source's kind, endpoint and
/// principal, never a credential.
#[derive(Clone)]
pub struct CloudSqlTokenProvider {
    target: String,
    user: String,
    source: Source,
    policy: GcpTokenPolicy,
    http: reqwest::Client,
}

impl fmt::Debug for CloudSqlTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudSqlTokenProvider")
            .field("key", &self.key())
            .field("source", &self.source)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Settings of a [`CloudSqlTokenProvider`] before it is built.
#[derive(Debug, Clone)]
pub struct CloudSqlTokenProviderBuilder {
    target: String,
    user: Option<String>,
    source: Option<Source>,
    policy: GcpTokenPolicy,
}

fn error(kind: TokenErrorKind, message: impl Into<String>) -> TokenError {
    TokenError::new(PROVIDER, kind, message)
}

fn config(message: impl Into<String>) -> TokenError {
    error(TokenErrorKind::Config, message)
}

impl CloudSqlTokenProviderBuilder {
    /// The database user the tokens log in as. Without one, the credentials' principal is used
    /// (a service account's e-mail without `.gserviceaccount.com`, or the metadata server's
    /// account, asked at [`CloudSqlTokenProviderBuilder::build`]).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Tokens from the metadata server at `endpoint` (`http://HOST[:PORT]`).
    pub fn metadata_server(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint: String = endpoint.into();
        self.source = Some(Source::MetadataServer {
            endpoint: endpoint.trim_end_matches('/').to_string(),
        });
        self
    }

    /// Tokens from a credentials file's JSON (`service_account`, `authorized_user`,
    /// `impersonated_service_account`, `external_account`): `Config` when it is none of those
    /// or lacks a field.
    pub fn credentials_json(mut self, json: Value) -> Result<Self, TokenError> {
        self.source = Some(source_of_json(json)?);
        Ok(self)
    }

    /// Timeouts and retries (default [`GcpTokenPolicy::default`]).
    pub fn policy(mut self, policy: GcpTokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the provider. Without a user it asks the metadata server for its account's
    /// e-mail (bounded by the policy); `Config` when no user can be known.
    pub async fn build(self) -> Result<CloudSqlTokenProvider, TokenError> {
        crate::shared::install_ring_provider();
        if self.policy.attempts == 0 {
            return Err(config(
                "the retry policy allows no attempt at all (attempts 0)",
            ));
        }
        let Some(source) = self.source else {
            return Err(config("no credentials source was given"));
        };
        // No request timeout of its own: every attempt runs under `attempt_timeout` as a whole.
        let http = reqwest::Client::builder()
            .build()
            .map_err(|_| config("cannot build the HTTP client"))?;
        let user = match (self.user.filter(|u| !u.is_empty()), &source) {
            (Some(user), _) => user,
            (None, Source::MetadataServer { endpoint }) => {
                iam_user(&metadata_email(&http, endpoint, &self.policy).await?).to_string()
            }
            (None, source) => match source.principal() {
                Some(email) => iam_user(&email).to_string(),
                None => {
                    return Err(config(format!(
                        "no database user: {} does not name its principal; set `user` to the IAM user's e-mail",
                        source.describe()
                    )));
                }
            },
        };
        Ok(CloudSqlTokenProvider {
            target: self.target,
            user,
            source,
            policy: self.policy,
            http,
        })
    }
}

/// The metadata server's default account's e-mail.
async fn metadata_email(
    http: &reqwest::Client,
    endpoint: &str,
    policy: &GcpTokenPolicy,
) -> Result<String, TokenError> {
    let url = format!("{endpoint}{SERVICE_ACCOUNT_PATH}/email");
    let what = format!("the metadata server at {endpoint}");
    let ask = async {
        let response = http
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| transport_error(&what, &e))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(status_error(&what, status, None));
        }
        let body = response
            .text()
            .await
            .map_err(|e| transport_error(&what, &e))?;
        let email = body.trim();
        if email.contains('@') && !email.contains(char::is_whitespace) {
            Ok(email.to_string())
        } else {
            Err(error(
                TokenErrorKind::Invalid,
                format!("{what} answered its account's e-mail with something that is not one"),
            ))
        }
    };
    match tokio::time::timeout(policy.attempt_timeout, ask).await {
        Ok(result) => result.map_err(|e| {
            TokenError::new(
                PROVIDER,
                e.kind(),
                format!(
                    "{} (asking which account it serves, to name the database user)",
                    e.message()
                ),
            )
        }),
        Err(_) => Err(error(
            TokenErrorKind::Unavailable,
            format!(
                "{what} did not say which account it serves within {:?}",
                policy.attempt_timeout
            ),
        )),
    }
}

fn string_field(json: &Value, field: &str, kind: &str) -> Result<String, TokenError> {
    json[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| config(format!("the {kind} credentials have no `{field}`")))
}

fn source_of_json(json: Value) -> Result<Source, TokenError> {
    let kind = json["type"]
        .as_str()
        .ok_or_else(|| config("the credentials JSON has no `type`"))?
        .to_string();
    match kind.as_str() {
        "service_account" => {
            let client_email = string_field(&json, "client_email", &kind)?;
            string_field(&json, "private_key", &kind)?;
            let token_uri = json["token_uri"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_string();
            let private_key_id = json["private_key_id"].as_str().map(str::to_string);
            let signer = google_cloud_auth::credentials::service_account::Builder::new(json)
                .build_signer()
                .map_err(|_| {
                    config(format!(
                        "the service account key of {client_email} is incomplete (it needs client_email, private_key_id, private_key and project_id)"
                    ))
                })?;
            Ok(Source::ServiceAccount(ServiceAccount {
                client_email,
                private_key_id,
                token_uri,
                signer,
            }))
        }
        "authorized_user" => {
            let client_id = string_field(&json, "client_id", &kind)?;
            string_field(&json, "client_secret", &kind)?;
            string_field(&json, "refresh_token", &kind)?;
            let token_uri = json["token_uri"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_TOKEN_URI)
                .to_string();
            Ok(Source::AuthorizedUser {
                json,
                client_id,
                token_uri,
            })
        }
        "impersonated_service_account" => Ok(Source::Impersonated { json }),
        "external_account" => Ok(Source::ExternalAccount { json }),
        other => Err(config(format!(
            "credentials of type `{}` cannot log in to Cloud SQL (service_account, authorized_user, impersonated_service_account or external_account)",
            other.escape_debug()
        ))),
    }
}

impl CloudSqlTokenProvider {
    /// A builder for tokens that log in to `target` (the instance connection name, or the
    /// host), with the default [`GcpTokenPolicy`] and no source yet.
    pub fn builder(target: impl Into<String>) -> CloudSqlTokenProviderBuilder {
        CloudSqlTokenProviderBuilder {
            target: target.into(),
            user: None,
            source: None,
            policy: GcpTokenPolicy::default(),
        }
    }

    /// The builder a plan describes: the target is `plan.instance_connection_name` or the
    /// first host, the user `plan.user` (when the plan has none, the credentials' principal),
    /// and the source Application Default Credentials as `env` sets them up (module docs).
    pub fn builder_from_plan(
        plan: &ConnectPlan,
        env: &dyn Environment,
    ) -> Result<CloudSqlTokenProviderBuilder, TokenError> {
        let target = plan
            .instance_connection_name
            .clone()
            .or_else(|| plan.hosts.first().map(|h| h.host.clone()))
            .ok_or_else(|| config("the plan names neither an instance nor a host"))?;
        let mut builder = Self::builder(target);
        if let Some(user) = &plan.user {
            builder = builder.user(user.clone());
        }
        match adc_file(env)? {
            Some(json) => builder.credentials_json(json),
            None => {
                let endpoint = env
                    .var(METADATA_HOST_VAR)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("http://{h}"))
                    .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_string());
                Ok(builder.metadata_server(endpoint))
            }
        }
    }

    /// The provider a plan describes ([`CloudSqlTokenProvider::builder_from_plan`]), with the
    /// default policy.
    pub async fn from_plan(
        plan: &ConnectPlan,
        env: Arc<dyn Environment>,
    ) -> Result<Self, TokenError> {
        Self::builder_from_plan(plan, env.as_ref())?.build().await
    }

    /// The database user the tokens log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// One attempt.
    async fn fetch_once(&self) -> Result<Token, TokenError> {
        let started = SystemTime::now();
        let (credentials, lifetime) = match &self.source {
            Source::ServiceAccount(sa) => return self.jwt_bearer(sa, started).await,
            Source::MetadataServer { endpoint } => (
                mds::Builder::default()
                    .with_endpoint(endpoint.clone())
                    .with_scopes([SQLSERVICE_LOGIN_SCOPE])
                    .build_access_token_credentials(),
                METADATA_SERVER_TOKEN_LIFETIME,
            ),
            Source::AuthorizedUser { json, .. } => (
                user_account::Builder::new(json.clone())
                    .with_scopes([SQLSERVICE_LOGIN_SCOPE])
                    .build_access_token_credentials(),
                MINTED_TOKEN_LIFETIME,
            ),
            Source::Impersonated { json } => (
                impersonated::Builder::new(json.clone())
                    .with_scopes([SQLSERVICE_LOGIN_SCOPE])
                    .build_access_token_credentials(),
                MINTED_TOKEN_LIFETIME,
            ),
            Source::ExternalAccount { json } => (
                external_account::Builder::new(json.clone())
                    .with_scopes([SQLSERVICE_LOGIN_SCOPE])
                    .build_access_token_credentials(),
                MINTED_TOKEN_LIFETIME,
            ),
        };
        // The builder's error text may quote the credentials file: report its kind only.
        let credentials: AccessTokenCredentials = credentials.map_err(|_| {
            config(format!(
                "cannot set up credentials for {}: the credentials JSON is incomplete or unsupported",
                self.source.describe()
            ))
        })?;
        // Fresh credentials, dropped at the end of this call: one request, no SDK cache.
        let token = credentials
            .access_token()
            .await
            .map_err(|e| sdk_error(&self.source.describe(), &e))?;
        if token.token.is_empty() {
            return Err(error(
                TokenErrorKind::Invalid,
                format!("{} answered an empty token", self.source.describe()),
            ));
        }
        Ok(Token {
            secret: Secret::new(token.token),
            expires_at: started + lifetime,
        })
    }

    /// The JWT-bearer grant of a service account key.
    async fn jwt_bearer(
        &self,
        sa: &ServiceAccount,
        started: SystemTime,
    ) -> Result<Token, TokenError> {
        let what = self.source.describe();
        let now = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &sa.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": sa.client_email,
            "scope": SQLSERVICE_LOGIN_SCOPE,
            "aud": sa.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let signature = sa.signer.sign(signing_input.as_bytes()).await.map_err(|_| {
            config(format!(
                "cannot sign with the service account key of {}: its private_key is not a PKCS#8 RSA key",
                sa.client_email
            ))
        })?;
        let body = format!(
            "grant_type={JWT_BEARER_FORM_GRANT}&assertion={signing_input}.{}",
            base64url(&signature)
        );
        let response = self
            .http
            .post(&sa.token_uri)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&what, &e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&what, &e))?;
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !(200..300).contains(&status) {
            let code = answer
                .as_ref()
                .and_then(|a| a["error"].as_str())
                .filter(|c| {
                    c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                });
            return Err(status_error(&what, status, code));
        }
        let invalid = |why: &str| error(TokenErrorKind::Invalid, format!("{what} answered {why}"));
        let answer = answer.ok_or_else(|| invalid("a body that is not JSON"))?;
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("without an access_token"))?;
        if let Some(kind) = answer["token_type"].as_str()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(invalid("a token that is not a bearer token"));
        }
        let expires_at = match &answer["expires_in"] {
            Value::Null => started + MINTED_TOKEN_LIFETIME,
            value => match value.as_i64() {
                Some(secs) if secs > 0 => started + Duration::from_secs(secs.unsigned_abs()),
                Some(secs) => {
                    return Err(invalid(&format!(
                        "a token that has already expired (expires_in {secs})"
                    )));
                }
                None => return Err(invalid("an expires_in that is not a number of seconds")),
            },
        };
        if expires_at <= SystemTime::now() {
            return Err(invalid("a token that expired before it arrived"));
        }
        Ok(Token {
            secret: Secret::new(token.to_string()),
            expires_at,
        })
    }

    async fn fetch_with_retries(&self) -> Result<Token, TokenError> {
        let mut backoff = self.policy.initial_backoff;
        let mut attempt = 1;
        loop {
            let result =
                match tokio::time::timeout(self.policy.attempt_timeout, self.fetch_once()).await {
                    Ok(result) => result,
                    Err(_) => Err(error(
                        TokenErrorKind::Unavailable,
                        format!(
                            "{} did not answer within {:?}",
                            self.source.describe(),
                            self.policy.attempt_timeout
                        ),
                    )),
                };
            match result {
                Err(e)
                    if e.kind() == TokenErrorKind::Unavailable
                        && attempt < self.policy.attempts =>
                {
                    tokio::time::sleep(crate::shared::jitter(backoff)).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                    attempt += 1;
                }
                Err(e) if attempt > 1 => {
                    return Err(TokenError::new(
                        PROVIDER,
                        e.kind(),
                        format!(
                            "{} (attempt {attempt} of {})",
                            e.message(),
                            self.policy.attempts
                        ),
                    ));
                }
                other => return other,
            }
        }
    }
}

impl CredentialProvider for CloudSqlTokenProvider {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    /// `gcp:TARGET:USER` (the instance connection name, or the host).
    fn key(&self) -> String {
        format!("gcp:{}:{}", self.target, self.user)
    }

    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch_with_retries())
    }
}

/// What an HTTP status means for a token request.
fn status_kind(status: u16) -> TokenErrorKind {
    match status {
        400 | 401 | 403 => TokenErrorKind::Denied,
        408 | 429 | 500..=599 => TokenErrorKind::Unavailable,
        _ => TokenErrorKind::Config,
    }
}

fn status_error(what: &str, status: u16, oauth_code: Option<&str>) -> TokenError {
    let code = oauth_code.map(|c| format!(" ({c})")).unwrap_or_default();
    error(
        status_kind(status),
        format!("{what} answered HTTP {status}{code}"),
    )
}

fn transport_error(what: &str, e: &reqwest::Error) -> TokenError {
    if e.is_decode() {
        return error(
            TokenErrorKind::Invalid,
            format!("{what} answered a body that cannot be read"),
        );
    }
    let how = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot be reached"
    } else {
        "failed in transit"
    };
    error(TokenErrorKind::Unavailable, format!("{what} {how}"))
}

/// Classifies an SDK error by what is in its source chain: an HTTP status, a transport or
/// decoding failure; else by whether the SDK calls it transient.
fn sdk_error(what: &str, err: &CredentialsError) -> TokenError {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if let Some(status) = r.status() {
                return status_error(what, status.as_u16(), None);
            }
            return transport_error(what, r);
        }
        if let Some(g) = e.downcast_ref::<GaxError>() {
            if let Some(status) = g.http_status_code() {
                return status_error(what, status, None);
            }
            if g.is_io() || g.is_connect() || g.is_timeout() || g.is_transport() {
                return error(
                    TokenErrorKind::Unavailable,
                    format!("{what} cannot be reached"),
                );
            }
            if g.is_deserialization() {
                return error(
                    TokenErrorKind::Invalid,
                    format!("{what} answered a body that is not a token"),
                );
            }
        }
        cause = e.source();
    }
    if err.is_transient() {
        error(
            TokenErrorKind::Unavailable,
            format!("{what} failed (transient)"),
        )
    } else {
        config(format!(
            "{what} cannot issue a token with these credentials"
        ))
    }
}

/// The credentials file ADC finds, parsed: `GOOGLE_APPLICATION_CREDENTIALS` (which must
/// exist), else gcloud's well-known file when it exists.
fn adc_file(env: &dyn Environment) -> Result<Option<Value>, TokenError> {
    let (path, required) = match env.var(CREDENTIALS_VAR).filter(|p| !p.is_empty()) {
        Some(path) => (path, true),
        None => match env.var("HOME").filter(|h| !h.is_empty()) {
            Some(home) => {
                let path = format!("{}/{WELL_KNOWN_ADC_FILE}", home.trim_end_matches('/'));
                if !env.is_file(&path) {
                    return Ok(None);
                }
                (path, false)
            }
            None => return Ok(None),
        },
    };
    let origin = if required {
        format!("{CREDENTIALS_VAR} ({path})")
    } else {
        format!("gcloud's ADC file {path}")
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| config(format!("cannot read {origin}: {}", e.kind())))?;
    // serde's messages may quote what they read: report the fact only.
    let json: Value =
        serde_json::from_str(&text).map_err(|_| config(format!("{origin} is not JSON")))?;
    Ok(Some(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    #[test]
    fn statuses_map_to_kinds() {
        use TokenErrorKind::*;
        for (status, kind) in [
            (400, Denied),
            (401, Denied),
            (403, Denied),
            (404, Config),
            (408, Unavailable),
            (429, Unavailable),
            (500, Unavailable),
            (503, Unavailable),
        ] {
            assert_eq!(status_kind(status), kind, "{status}");
        }
    }

    #[test]
    fn impersonation_urls_name_the_account() {
        assert_eq!(
            impersonated_email(
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
            )
            .as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        assert_eq!(impersonated_email("https://example.com/token"), None);
    }

    #[test]
    fn without_a_credentials_file_adc_is_the_metadata_server() {
        let env = MapEnv::new().with_var("HOME", "/nonexistent-home");
        assert_eq!(adc_file(&env), Ok(None));
        let missing = MapEnv::new().with_var(CREDENTIALS_VAR, "/nonexistent/key.json");
        let err = adc_file(&missing).expect_err("a named file must exist");
        assert_eq!(err.kind(), TokenErrorKind::Config);
        assert!(err.message().contains("/nonexistent/key.json"), "{err}");
    }

    #[test]
    fn unsupported_credential_types_are_config_errors() {
        let err = source_of_json(json!({"type": "gdch_service_account"})).expect_err("unsupported");
        assert_eq!(err.kind(), TokenErrorKind::Config);
        let err = source_of_json(json!({"client_id": "x"})).expect_err("no type");
        assert_eq!(err.kind(), TokenErrorKind::Config);
        let err = source_of_json(
            json!({"type": "authorized_user", "client_id": "c", "client_secret": "hunter2"}),
        )
        .expect_err("no refresh token");
        assert!(
            err.message().contains("refresh_token") && !err.message().contains("hunter2"),
            "{err}"
        );
    }
}
