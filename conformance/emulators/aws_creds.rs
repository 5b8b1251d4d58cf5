//! Emulators of the endpoints AWS credentials come from, for the RDS IAM token provider:
//!
//! - [`ContainerCredentialsEmulator`]: the container credentials endpoint of ECS task roles and
//!   EKS Pod Identity (`GET`, optional `Authorization` token, a JSON body with `AccessKeyId`,
//!   `SecretAccessKey`, `Token`, `Expiration`), as aws-config's `EcsCredentialsProvider` reads
//!   it from `AWS_CONTAINER_CREDENTIALS_FULL_URI`;
//! - [`StsEmulator`]: STS `AssumeRoleWithWebIdentity` in the Query protocol (`POST /`, a form
//!   body, an XML `AssumeRoleWithWebIdentityResponse`, XML `ErrorResponse` errors), as
//!   aws-config's `WebIdentityTokenCredentialsProvider` calls it.
//!
//! Each answer issues new credentials (access key id, secret key, session token) that expire
//! after a set lifetime. Faults: a delay, a 5xx for the next N requests, credentials that have
//! already expired, a body that is not credentials. Both count the requests they answered and
//! keep the credentials they issued, so that a test can find them in a signed token.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::iam::humantime_utc;

/// The path the container credentials emulator serves (as EKS Pod Identity's agent does).
pub const CONTAINER_CREDENTIALS_PATH: &str = "/v1/credentials";

/// The role the emulators say the credentials are for.
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ltm-catalog";

/// How long issued credentials live unless set otherwise: one hour, STS's default.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Credentials an emulator issued. `Debug` shows the access key id and expiry only.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    /// The access key id (`ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token.
    pub session_token: String,
    /// When they expire, to the second (as the wire carries it).
    pub expiration: SystemTime,
}

impl fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &humantime_utc(self.expiration))
            .finish_non_exhaustive()
    }
}

/// New credentials, unique within the process run and across runs.
fn fresh_credentials(expiration: SystemTime) -> IssuedCredentials {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    static NONCE: OnceLock<u64> = OnceLock::new();
    let nonce = *NONCE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
            .unwrap_or(0)
    });
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed) + 1;
    IssuedCredentials {
        access_key_id: format!("ASIA{:016X}", nonce.rotate_left(17) ^ n),
        // 40 characters, as real secret keys; `+` and `/` as in real ones.
        secret_access_key: format!("{:016x}/EmuSecret+{n:013}", nonce),
        // `+`, `/` and `=` make the token's URL encoding matter.
        session_token: format!("IQoJb3JpZ2luX2VtdQ/{nonce:016x}/{n}+SessionToken=="),
        expiration,
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    t.duration_since(UNIX_EPOCH)
        .map_or(t, |d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
}

/// What an emulator does next, and what it did.
struct IssuerState {
    lifetime: Duration,
    delay: Duration,
    fail_next: u64,
    fail_status: u16,
    expired: bool,
    malformed: bool,
    requests: usize,
    issued: Vec<IssuedCredentials>,
}

/// What to answer one request with.
enum Answer {
    /// Credentials.
    Issue(IssuedCredentials),
    /// A server error with this status.
    Fail(u16),
    /// A 200 whose body is not credentials.
    Malformed,
}

/// The state both emulators share the logic of: lifetimes, faults, counters.
#[derive(Clone)]
struct Issuer(Arc<Mutex<IssuerState>>);

impl Issuer {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(IssuerState {
            lifetime: DEFAULT_LIFETIME,
            delay: Duration::ZERO,
            fail_next: 0,
            fail_status: 503,
            expired: false,
            malformed: false,
            requests: 0,
            issued: Vec::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, IssuerState> {
        // Every update is a plain assignment: a poisoned lock holds consistent state.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request that passed the endpoint's own checks and decides its answer.
    fn answer(&self) -> (Duration, Answer) {
        let mut s = self.lock();
        s.requests += 1;
        let delay = s.delay;
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return (delay, Answer::Fail(s.fail_status));
        }
        if s.malformed {
            return (delay, Answer::Malformed);
        }
        let now = SystemTime::now();
        let expiration = if s.expired {
            whole_seconds(now) - Duration::from_secs(60)
        } else {
            whole_seconds(now + s.lifetime)
        };
        let credentials = fresh_credentials(expiration);
        s.issued.push(credentials.clone());
        (delay, Answer::Issue(credentials))
    }

    /// Counts a request refused before the issuing logic (bad auth, bad parameters).
    fn count_refused(&self) -> Duration {
        let mut s = self.lock();
        s.requests += 1;
        s.delay
    }
}

/// The fault and inspection methods both emulators have.
macro_rules! issuer_methods {
    () => {
        /// How long the credentials issued from now on live (default [`DEFAULT_LIFETIME`]).
        pub fn set_lifetime(&self, lifetime: Duration) {
            self.issuer.lock().lifetime = lifetime;
        }

        /// Answers every request after `delay` (zero: at once).
        pub fn set_delay(&self, delay: Duration) {
            self.issuer.lock().delay = delay;
        }

        /// Answers the next `n` requests with HTTP `status` (a 5xx) and the service's error body.
        pub fn fail_next(&self, n: u64, status: u16) {
            let mut s = self.issuer.lock();
            s.fail_next = n;
            s.fail_status = status;
        }

        /// Issues credentials that expired a minute ago (`true`) or live credentials (`false`).
        pub fn return_expired(&self, expired: bool) {
            self.issuer.lock().expired = expired;
        }

        /// Answers 200 with a body that is not credentials (`true`), or normally (`false`).
        pub fn return_malformed(&self, malformed: bool) {
            self.issuer.lock().malformed = malformed;
        }

        /// How many credential requests it answered (issued, failed or refused).
        pub fn requests(&self) -> usize {
            self.issuer.lock().requests
        }

        /// Every set of credentials it issued, oldest first.
        pub fn issued(&self) -> Vec<IssuedCredentials> {
            self.issuer.lock().issued.clone()
        }

        /// The credentials it issued last.
        pub fn last_issued(&self) -> Option<IssuedCredentials> {
            self.issuer.lock().issued.last().cloned()
        }
    };
}

/// The ECS / EKS Pod Identity container credentials endpoint.
pub struct ContainerCredentialsEmulator {
    server: MockServer,
    issuer: Issuer,
    auth_token: Arc<Mutex<Option<String>>>,
}

struct ContainerResponder {
    issuer: Issuer,
    auth_token: Arc<Mutex<Option<String>>>,
}

impl Respond for ContainerResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let expected = self
            .auth_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(expected) = expected {
            let given = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                let delay = self.issuer.count_refused();
                return ResponseTemplate::new(401)
                    .set_delay(delay)
                    .set_body_json(json!({
                        "code": "AccessDenied",
                        "message": "the authorization token is missing or wrong",
                    }));
            }
        }
        let (delay, answer) = self.issuer.answer();
        let response = match answer {
            Answer::Issue(c) => ResponseTemplate::new(200).set_body_json(json!({
                "RoleArn": ROLE_ARN,
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.session_token,
                "Expiration": humantime_utc(c.expiration),
            })),
            Answer::Fail(status) => ResponseTemplate::new(status).set_body_json(json!({
                "code": "InternalError",
                "message": "injected fault",
            })),
            Answer::Malformed => ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .set_body_string("{\"AccessKeyId\": "),
        };
        response.set_delay(delay)
    }
}

impl ContainerCredentialsEmulator {
    /// Starts an emulator on 127.0.0.1 that requires no authorization token.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let issuer = Issuer::new();
        let auth_token = Arc::new(Mutex::new(None));
        Mock::given(method("GET"))
            .and(path(CONTAINER_CREDENTIALS_PATH))
            .respond_with(ContainerResponder {
                issuer: issuer.clone(),
                auth_token: Arc::clone(&auth_token),
            })
            .mount(&server)
            .await;
        Self {
            server,
            issuer,
            auth_token,
        }
    }

    /// The value for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn full_uri(&self) -> String {
        format!("{}{CONTAINER_CREDENTIALS_PATH}", self.server.uri())
    }

    /// Requires this `Authorization` header value (`AWS_CONTAINER_AUTHORIZATION_TOKEN`, or the
    /// content of `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`); other requests get a 401.
    pub fn require_auth_token(&self, token: &str) {
        *self
            .auth_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.to_string());
    }

    issuer_methods!();
}

/// STS, answering `AssumeRoleWithWebIdentity`.
pub struct StsEmulator {
    server: MockServer,
    issuer: Issuer,
    web_identity_token: Arc<Mutex<Option<String>>>,
    last_params: Arc<Mutex<Option<BTreeMap<String, String>>>>,
}

struct StsResponder {
    issuer: Issuer,
    web_identity_token: Arc<Mutex<Option<String>>>,
    last_params: Arc<Mutex<Option<BTreeMap<String, String>>>>,
}

const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const REQUEST_ID: &str = "c6104cbe-af31-11e0-8154-cbc7ccf896c7";

fn sts_error(status: u16, kind: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "text/xml")
        .insert_header("x-amzn-requestid", REQUEST_ID)
        .set_body_string(format!(
            "<ErrorResponse xmlns=\"{STS_NS}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
             <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  \
             <RequestId>{REQUEST_ID}</RequestId>\n</ErrorResponse>\n"
        ))
}

fn sts_success(params: &BTreeMap<String, String>, c: &IssuedCredentials) -> ResponseTemplate {
    let role = params.get("RoleArn").map_or("", String::as_str);
    let session = params.get("RoleSessionName").map_or("", String::as_str);
    let role_name = role.rsplit('/').next().unwrap_or(role);
    let body = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"{STS_NS}\">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ltm:agent</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/{role_name}/{session}</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:{session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{expiration}</Expiration>
      <AccessKeyId>{akid}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>{REQUEST_ID}</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
",
        token = c.session_token,
        secret = c.secret_access_key,
        expiration = humantime_utc(c.expiration),
        akid = c.access_key_id,
    );
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/xml")
        .insert_header("x-amzn-requestid", REQUEST_ID)
        .set_body_string(body)
}

/// `application/x-www-form-urlencoded` to pairs.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'+', _) => out.push(b' '),
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 2;
                }
                (b, _) => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

impl Respond for StsResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params = form(&request.body);
        *self
            .last_params
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(params.clone());
        let refused = |status, kind, code, message| {
            sts_error(status, kind, code, message).set_delay(self.issuer.count_refused())
        };
        if params.get("Action").map(String::as_str) != Some("AssumeRoleWithWebIdentity") {
            return refused(
                400,
                "Sender",
                "InvalidAction",
                "Could not find operation for this emulator",
            );
        }
        for required in ["RoleArn", "RoleSessionName", "WebIdentityToken"] {
            if params.get(required).is_none_or(String::is_empty) {
                return refused(
                    400,
                    "Sender",
                    "MissingParameter",
                    "A required parameter is missing",
                );
            }
        }
        let expected = self
            .web_identity_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(expected) = expected
            && params.get("WebIdentityToken") != Some(&expected)
        {
            return refused(
                400,
                "Sender",
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider",
            );
        }
        let (delay, answer) = self.issuer.answer();
        let response = match answer {
            Answer::Issue(c) => sts_success(&params, &c),
            Answer::Fail(status) => sts_error(
                status,
                "Receiver",
                if status == 503 {
                    "ServiceUnavailable"
                } else {
                    "InternalFailure"
                },
                "injected fault",
            ),
            Answer::Malformed => ResponseTemplate::new(200)
                .insert_header("content-type", "text/xml")
                .set_body_string(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>",
                ),
        };
        response.set_delay(delay)
    }
}

impl StsEmulator {
    /// Starts an emulator on 127.0.0.1 that accepts any web identity token.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let issuer = Issuer::new();
        let web_identity_token = Arc::new(Mutex::new(None));
        let last_params = Arc::new(Mutex::new(None));
        Mock::given(method("POST"))
            .and(path("/"))
            .respond_with(StsResponder {
                issuer: issuer.clone(),
                web_identity_token: Arc::clone(&web_identity_token),
                last_params: Arc::clone(&last_params),
            })
            .mount(&server)
            .await;
        Self {
            server,
            issuer,
            web_identity_token,
            last_params,
        }
    }

    /// The endpoint URL (`AWS_ENDPOINT_URL_STS`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Accepts only this web identity token; others get `InvalidIdentityToken` (400), as STS
    /// answers a token it cannot verify.
    pub fn require_web_identity_token(&self, token: &str) {
        *self
            .web_identity_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.to_string());
    }

    /// The form parameters of the last request (`Action`, `RoleArn`, `RoleSessionName`,
    /// `WebIdentityToken`, ...).
    pub fn last_params(&self) -> Option<BTreeMap<String, String>> {
        self.last_params
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    issuer_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let params = form(
            b"Action=AssumeRoleWithWebIdentity&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&X=a+b&E=",
        );
        assert_eq!(params["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(params["RoleArn"], "arn:aws:iam::1:role/r");
        assert_eq!(params["X"], "a b");
        assert_eq!(params["E"], "");
    }

    #[test]
    fn issued_credentials_are_new_each_time_and_hidden_in_debug() {
        let a = fresh_credentials(UNIX_EPOCH);
        let b = fresh_credentials(UNIX_EPOCH);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
        assert_ne!(a.session_token, b.session_token);
        assert_eq!(a.access_key_id.len(), 20);
        assert_eq!(a.secret_access_key.len(), 40);
        let shown = format!("{a:?}");
        assert!(shown.contains(&a.access_key_id), "{shown}");
        assert!(!shown.contains(&a.secret_access_key), "{shown}");
        assert!(!shown.contains(&a.session_token), "{shown}");
    }
}
