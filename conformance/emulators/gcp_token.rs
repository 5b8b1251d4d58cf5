//! Emulators of Google's two OAuth2 access-token issuers (wiremock), speaking the wire formats
//! `google-cloud-auth` and [`crate::iam::gcp`] use, with faults.
//!
//! - [`MetadataServerEmulator`]: the GCE metadata server.
//!   `GET /computeMetadata/v1/instance/service-accounts/{default|EMAIL}/token?scopes=A,B`
//!   with the `Metadata-Flavor: Google` header (without it: 403) answers
//!   `{"access_token", "expires_in", "token_type": "Bearer"}`; `.../{default|EMAIL}/email`
//!   answers the account's e-mail as text; `/computeMetadata/v1/universe/universe-domain`
//!   answers `googleapis.com`. Every answer carries `Metadata-Flavor: Google`, as the real
//!   server's do.
//! - [`OAuthTokenEmulator`]: `POST /token` (the `token_uri` of key files, normally
//!   `https://oauth2.googleapis.com/token`), form-encoded or JSON (`google-cloud-auth` posts
//!   JSON for refresh tokens), with the grants
//!   `urn:ietf:params:oauth:grant-type:jwt-bearer` (a service account's RS256-signed
//!   assertion: `iss`, `scope`, `aud` = the token URI, `iat`, `exp` at most an hour later; the
//!   signature is checked against the key registered with
//!   [`OAuthTokenEmulator::service_account_key`]) and `refresh_token` (`client_id`,
//!   `client_secret`, `refresh_token` registered with [`OAuthTokenEmulator::authorized_user`]).
//!   Success: `{"access_token", "expires_in", "token_type": "Bearer"}` (plus `scope` for a
//!   refresh); failures: Google's `{"error": "invalid_grant" | "invalid_client" |
//!   "invalid_scope" | "unsupported_grant_type", "error_description"}` with 400 or 401.
//!
//! Tokens are new for every request, `ya29.emu-<counter>-<random hex>`, valid for
//! [`DEFAULT_EXPIRES_IN`] seconds unless [`MetadataServerEmulator::set_expires_in`] says
//! otherwise. Both emulators have the same controls:
//!
//! - `on_issue(hook)`: called synchronously with each new token *before* the answer is sent
//!   (and before any delay), so a test can make it the database role's password in time;
//! - `set_delay(d)`: every token answer waits `d` (changeable while running);
//! - `fail_next(n)` / `fail_next_with(n, status)`: the next `n` token requests get 503 (or
//!   `status`), no token issued;
//! - `set_expired(true)`: tokens are issued with `expires_in` = [`EXPIRED_EXPIRES_IN`]
//!   (negative: the token ran out before it was sent). Real servers never do this; a negative
//!   value is what both clients notice: `google-cloud-auth` parses `expires_in` as an
//!   unsigned number and rejects the answer as undecodable (it would pass `0` through, with
//!   the expiry hidden from its caller), and [`crate::iam::gcp`] rejects any `expires_in`
//!   <= 0 it reads itself;
//! - `set_malformed(true)`: 200 answers whose body is cut-off JSON (quoting
//!   [`MALFORMED_CANARY`], which a client must not echo);
//! - `requests()`: token requests answered (faults and refusals included); `issued()`: tokens
//!   issued; `last_token()`, `last_scope()`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The `expires_in` of an issued token unless set otherwise (what Google answers).
pub const DEFAULT_EXPIRES_IN: i64 = 3599;

/// The `expires_in` of a token issued while `set_expired(true)`: five minutes ago.
pub const EXPIRED_EXPIRES_IN: i64 = -300;

/// What a malformed answer quotes (a client must never repeat it).
pub const MALFORMED_CANARY: &str = "ya29.MALFORMED-CaNaRy";

/// The metadata server's default service account's e-mail, unless set otherwise.
pub const DEFAULT_EMAIL: &str = "ltm-agent@emulator-project.iam.gserviceaccount.com";

/// The path prefix of the metadata server's service accounts.
pub const SERVICE_ACCOUNTS_PATH: &str = "/computeMetadata/v1/instance/service-accounts/";

/// The metadata server's universe-domain path.
pub const UNIVERSE_DOMAIN_PATH: &str = "/computeMetadata/v1/universe/universe-domain";

/// The JWT-bearer grant type (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Called with each new token before the answer carrying it is sent.
pub type IssueHook = Arc<dyn Fn(&str) + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a plain assignment: a panic elsewhere leaves consistent state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Controls {
    requests: usize,
    issued: usize,
    fail_next: usize,
    fail_status: u16,
    delay: Duration,
    expires_in: i64,
    expired: bool,
    malformed: bool,
    last_token: Option<String>,
    last_scope: Option<String>,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            requests: 0,
            issued: 0,
            fail_next: 0,
            fail_status: 503,
            delay: Duration::ZERO,
            expires_in: DEFAULT_EXPIRES_IN,
            expired: false,
            malformed: false,
            last_token: None,
            last_scope: None,
        }
    }
}

/// What both emulators share: the token mint and its faults.
#[derive(Default)]
struct Issuer {
    controls: Mutex<Controls>,
    hook: Mutex<Option<IssueHook>>,
    counter: AtomicU64,
}

/// What a token request turned out to be, before faults.
enum Verdict {
    /// Issue a token for this scope.
    Issue(Option<String>),
    /// Refuse with this answer (a 4xx).
    Refuse(ResponseTemplate),
}

impl Issuer {
    /// Answers one token request: counts it, applies the faults, issues (calling the hook)
    /// or refuses. `echo_scope` adds the granted `scope` to a success body (as Google's
    /// refresh answers have it).
    fn answer(&self, verdict: impl FnOnce() -> Verdict, echo_scope: bool) -> ResponseTemplate {
        let mut c = lock(&self.controls);
        c.requests += 1;
        let delay = c.delay;
        if c.fail_next > 0 {
            c.fail_next -= 1;
            let status = c.fail_status;
            drop(c);
            return server_error(status).set_delay(delay);
        }
        drop(c);
        let scope = match verdict() {
            Verdict::Refuse(answer) => return answer.set_delay(delay),
            Verdict::Issue(scope) => scope,
        };
        let token = self.mint();
        let mut c = lock(&self.controls);
        c.issued += 1;
        c.last_token = Some(token.clone());
        c.last_scope = scope.clone();
        let expires_in = if c.expired {
            EXPIRED_EXPIRES_IN
        } else {
            c.expires_in
        };
        let malformed = c.malformed;
        drop(c);
        // Outside the locks: the hook may call back into the emulator.
        let hook = lock(&self.hook).clone();
        if let Some(hook) = hook {
            hook(&token);
        }
        let answer = if malformed {
            ResponseTemplate::new(200).set_body_raw(
                format!("{{\"access_token\": \"{MALFORMED_CANARY}\", \"expires_in\": 35"),
                "application/json",
            )
        } else {
            let mut body = json!({
                "access_token": token,
                "expires_in": expires_in,
                "token_type": "Bearer",
            });
            if let (true, Some(scope)) = (echo_scope, scope) {
                body["scope"] = json!(scope);
            }
            ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/json")
        };
        answer.set_delay(delay)
    }

    fn mint(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut random = [0u8; 8];
        // SystemRandom only fails when the OS has no entropy source; the counter alone still
        // makes the token unique.
        let _ = SystemRandom::new().fill(&mut random);
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("ya29.emu-{n}-{hex}")
    }
}

fn server_error(status: u16) -> ResponseTemplate {
    let (error, description) = match status {
        401 => ("invalid_client", "Unauthorized"),
        403 => ("access_denied", "Forbidden"),
        400 => ("invalid_grant", "Bad Request"),
        _ => ("internal_failure", "The service is currently unavailable."),
    };
    oauth_error(status, error, description)
}

fn oauth_error(status: u16, error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({"error": error, "error_description": description}).to_string(),
        "application/json",
    )
}

/// The controls both emulators offer, delegating to their [`Issuer`].
macro_rules! issuer_controls {
    ($ty:ty) => {
        impl $ty {
            /// `http://127.0.0.1:PORT`.
            pub fn uri(&self) -> String {
                self.server.uri()
            }

            /// The wiremock server (for its recorded requests).
            pub fn server(&self) -> &MockServer {
                &self.server
            }

            /// Calls `hook` with every new token, synchronously, before the answer carrying it
            /// is sent (and before any delay). Replaces an earlier hook.
            pub fn on_issue(&self, hook: IssueHook) {
                *lock(&self.issuer.hook) = Some(hook);
            }

            /// Removes the hook.
            pub fn clear_on_issue(&self) {
                *lock(&self.issuer.hook) = None;
            }

            /// Every token answer (faults included) waits `delay` from now on; `ZERO` ends it.
            pub fn set_delay(&self, delay: Duration) {
                lock(&self.issuer.controls).delay = delay;
            }

            /// The next `n` token requests get 503 and no token.
            pub fn fail_next(&self, n: usize) {
                self.fail_next_with(n, 503);
            }

            /// The next `n` token requests get `status` (500, 503, 401, 403, ...) and no token.
            pub fn fail_next_with(&self, n: usize, status: u16) {
                let mut c = lock(&self.issuer.controls);
                c.fail_next = n;
                c.fail_status = status;
            }

            /// The `expires_in` of tokens issued from now on (seconds; default
            /// [`DEFAULT_EXPIRES_IN`]).
            pub fn set_expires_in(&self, seconds: i64) {
                lock(&self.issuer.controls).expires_in = seconds;
            }

            /// Tokens issued from now on carry `expires_in` = [`EXPIRED_EXPIRES_IN`].
            pub fn set_expired(&self, expired: bool) {
                lock(&self.issuer.controls).expired = expired;
            }

            /// Successful answers from now on are cut-off JSON quoting [`MALFORMED_CANARY`]
            /// (a token is still minted and handed to the hook).
            pub fn set_malformed(&self, malformed: bool) {
                lock(&self.issuer.controls).malformed = malformed;
            }

            /// Token requests answered so far, faults and refusals included.
            pub fn requests(&self) -> usize {
                lock(&self.issuer.controls).requests
            }

            /// Tokens issued so far.
            pub fn issued(&self) -> usize {
                lock(&self.issuer.controls).issued
            }

            /// The newest token issued.
            pub fn last_token(&self) -> Option<String> {
                lock(&self.issuer.controls).last_token.clone()
            }

            /// The scope(s) the newest token was issued for, as requested (the metadata
            /// server's comma-separated `scopes`, the OAuth `scope`).
            pub fn last_scope(&self) -> Option<String> {
                lock(&self.issuer.controls).last_scope.clone()
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("uri", &self.server.uri())
                    .field("requests", &self.requests())
                    .finish_non_exhaustive()
            }
        }
    };
}

/// The GCE metadata server's token, e-mail and universe-domain endpoints. Dropping it stops
/// the server.
pub struct MetadataServerEmulator {
    server: MockServer,
    issuer: Arc<Issuer>,
}

struct MetadataResponder {
    issuer: Arc<Issuer>,
    email: String,
}

fn text(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("Metadata-Flavor", "Google")
        .set_body_raw(body.to_string(), "text/plain")
}

impl Respond for MetadataResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let flavor = request
            .headers
            .get("metadata-flavor")
            .and_then(|v| v.to_str().ok());
        if flavor != Some("Google") {
            return text(403, "Missing required header: Metadata-Flavor");
        }
        if request.method.as_str() != "GET" {
            return text(405, "Method not allowed");
        }
        let path = request.url.path();
        if path == UNIVERSE_DOMAIN_PATH {
            return text(200, "googleapis.com");
        }
        if path == "/" || path == "/computeMetadata/v1/" {
            return text(200, "instance/\nproject/\nuniverse/\n");
        }
        let Some(rest) = path.strip_prefix(SERVICE_ACCOUNTS_PATH) else {
            return text(404, "Not Found");
        };
        let Some((account, what)) = rest.split_once('/') else {
            return text(404, "Not Found");
        };
        if account != "default" && account != self.email {
            return text(404, "Not Found");
        }
        match what {
            "email" => text(200, &self.email),
            "token" => {
                let scopes = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "scopes")
                    .map(|(_, v)| v.into_owned());
                self.issuer
                    .answer(|| Verdict::Issue(scopes), false)
                    .insert_header("Metadata-Flavor", "Google")
            }
            _ => text(404, "Not Found"),
        }
    }
}

impl MetadataServerEmulator {
    /// Starts the emulator on a free local port, its default account [`DEFAULT_EMAIL`].
    pub async fn start() -> Self {
        Self::start_with_email(DEFAULT_EMAIL).await
    }

    /// Starts the emulator with `email` as the default service account.
    pub async fn start_with_email(email: &str) -> Self {
        let server = MockServer::start().await;
        let issuer = Arc::new(Issuer::default());
        Mock::given(any())
            .respond_with(MetadataResponder {
                issuer: issuer.clone(),
                email: email.to_string(),
            })
            .mount(&server)
            .await;
        Self { server, issuer }
    }

    /// `127.0.0.1:PORT`, as `GCE_METADATA_HOST` holds it.
    pub fn host(&self) -> String {
        self.server.address().to_string()
    }
}

issuer_controls!(MetadataServerEmulator);

/// Registered clients of the OAuth emulator.
#[derive(Default)]
struct Accounts {
    /// client_email -> RSA public key (PKCS#1 DER).
    service_accounts: HashMap<String, Vec<u8>>,
    /// client_id -> (client_secret, refresh_token).
    users: HashMap<String, (String, String)>,
}

/// Google's OAuth2 token endpoint (`POST /token`). Dropping it stops the server.
pub struct OAuthTokenEmulator {
    server: MockServer,
    issuer: Arc<Issuer>,
    accounts: Arc<Mutex<Accounts>>,
}

struct OAuthResponder {
    issuer: Arc<Issuer>,
    accounts: Arc<Mutex<Accounts>>,
    token_uri: String,
}

/// The request's parameters: a form body or a JSON object of strings.
fn params(request: &Request) -> HashMap<String, String> {
    let json = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&request.body) else {
            return HashMap::new();
        };
        return map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect();
    }
    String::from_utf8_lossy(&request.body)
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

/// One `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl OAuthResponder {
    fn jwt_bearer(&self, assertion: &str) -> Verdict {
        let invalid =
            |description: &str| Verdict::Refuse(oauth_error(400, "invalid_grant", description));
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return invalid("Invalid JWT: not a JWS compact serialization.");
        };
        let decode_json =
            |s: &str| base64_decode(s).and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let (Some(header_json), Some(claims_json), Some(sig)) = (
            decode_json(header),
            decode_json(claims),
            base64_decode(signature),
        ) else {
            return invalid("Invalid JWT: cannot decode.");
        };
        if header_json["alg"] != "RS256" {
            return invalid("Invalid JWT: algorithm must be RS256.");
        }
        let iss = claims_json["iss"].as_str().unwrap_or_default();
        let public_key = lock(&self.accounts).service_accounts.get(iss).cloned();
        let Some(public_key) = public_key else {
            return invalid("Invalid grant: account not found");
        };
        let signed = format!("{header}.{claims}");
        let key =
            signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key);
        if key.verify(signed.as_bytes(), &sig).is_err() {
            return invalid("Invalid JWT Signature.");
        }
        if claims_json["aud"].as_str() != Some(self.token_uri.as_str()) {
            return invalid("Invalid JWT: Failed audience check.");
        }
        let now = unix_now();
        let (Some(iat), Some(exp)) = (claims_json["iat"].as_i64(), claims_json["exp"].as_i64())
        else {
            return invalid(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        };
        if exp <= now || iat > now + 60 || exp - iat > 3600 || exp <= iat {
            return invalid(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        match claims_json["scope"].as_str().filter(|s| !s.is_empty()) {
            Some(scope) => Verdict::Issue(Some(scope.to_string())),
            None => Verdict::Refuse(oauth_error(
                400,
                "invalid_scope",
                "Invalid OAuth scope or ID token audience provided.",
            )),
        }
    }

    fn refresh(&self, p: &HashMap<String, String>) -> Verdict {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
        let known = lock(&self.accounts).users.get(get("client_id")).cloned();
        match known {
            None => Verdict::Refuse(oauth_error(
                401,
                "invalid_client",
                "The OAuth client was not found.",
            )),
            Some((secret, _)) if secret != get("client_secret") => {
                Verdict::Refuse(oauth_error(401, "invalid_client", "Unauthorized"))
            }
            Some((_, refresh)) if refresh != get("refresh_token") => Verdict::Refuse(oauth_error(
                400,
                "invalid_grant",
                "Token has been expired or revoked.",
            )),
            Some(_) => Verdict::Issue(p.get("scope").cloned()),
        }
    }
}

impl Respond for OAuthResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path() != "/token" {
            return ResponseTemplate::new(404);
        }
        if request.method.as_str() != "POST" {
            return ResponseTemplate::new(405);
        }
        let p = params(request);
        let grant = p.get("grant_type").cloned().unwrap_or_default();
        self.issuer.answer(
            || match grant.as_str() {
                JWT_BEARER_GRANT => {
                    self.jwt_bearer(p.get("assertion").map(String::as_str).unwrap_or_default())
                }
                "refresh_token" => self.refresh(&p),
                _ => Verdict::Refuse(oauth_error(
                    400,
                    "unsupported_grant_type",
                    "Invalid grant_type: ",
                )),
            },
            grant == "refresh_token",
        )
    }
}

impl OAuthTokenEmulator {
    /// Starts the emulator on a free local port.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let issuer = Arc::new(Issuer::default());
        let accounts = Arc::new(Mutex::new(Accounts::default()));
        Mock::given(any())
            .respond_with(OAuthResponder {
                issuer: issuer.clone(),
                accounts: accounts.clone(),
                token_uri: format!("{}/token", server.uri()),
            })
            .mount(&server)
            .await;
        Self {
            server,
            issuer,
            accounts,
        }
    }

    /// `http://127.0.0.1:PORT/token`: the `token_uri` to put in key files.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.server.uri())
    }

    /// Registers service account `client_email` with its RSA key (PKCS#8 PEM, `-----BEGIN
    /// PRIVATE KEY-----`) and returns a complete key file (`type: service_account`) whose
    /// `token_uri` is this emulator. Panics when the key is not a PKCS#8 RSA key.
    pub fn service_account_key(&self, client_email: &str, private_key_pem: &str) -> Value {
        let der = pem_body(private_key_pem).expect("a PEM private key");
        let pair = RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key");
        lock(&self.accounts).service_accounts.insert(
            client_email.to_string(),
            pair.public_key().as_ref().to_vec(),
        );
        let project = client_email
            .split('@')
            .nth(1)
            .and_then(|d| d.split('.').next())
            .unwrap_or("emulator-project");
        json!({
            "type": "service_account",
            "project_id": project,
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": private_key_pem,
            "client_email": client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        })
    }

    /// Registers an OAuth client and one of its refresh tokens; returns the
    /// `authorized_user` file gcloud writes, with `token_uri` pointing here.
    pub fn authorized_user(
        &self,
        client_id: &str,
        client_secret: &str,
        refresh_token: &str,
    ) -> Value {
        lock(&self.accounts).users.insert(
            client_id.to_string(),
            (client_secret.to_string(), refresh_token.to_string()),
        );
        json!({
            "type": "authorized_user",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "token_uri": self.token_uri(),
            "universe_domain": "googleapis.com",
        })
    }
}

issuer_controls!(OAuthTokenEmulator);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body)
}

/// Base64, standard or URL-safe alphabet, padding and whitespace ignored.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_both_alphabets() {
        assert_eq!(base64_decode("Zm9vYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(base64_decode("Zm9vYg==").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64_decode("+/8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64_decode("a*b"), None);
    }

    #[test]
    fn form_components_decode() {
        assert_eq!(
            form_decode("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer").as_deref(),
            Some(JWT_BEARER_GRANT)
        );
        assert_eq!(form_decode("a+b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn minted_tokens_are_unique() {
        let issuer = Issuer::default();
        let (a, b) = (issuer.mint(), issuer.mint());
        assert_ne!(a, b);
        assert!(a.starts_with("ya29.emu-1-"), "{a}");
        assert!(b.starts_with("ya29.emu-2-"), "{b}");
    }
}
