//! A GCP Secret Manager emulator (wiremock) speaking the REST wire format of
//! `GET /v1/projects/{project}/secrets/{id}/versions/{version}:access`.
//!
//! Success: `{"name": "projects/P/secrets/ID/versions/N", "payload": {"data": "<base64>",
//! "dataCrc32c": "<decimal string>"}}` (an int64 is a JSON string in Google's REST mapping).
//! Errors: Google's error shape `{"error": {"code": 404, "message": "...", "status":
//! "NOT_FOUND"}}`. Versions are numbered from 1 per secret; `latest` is the newest.
//!
//! Faults are set per secret id (any project): a fixed error status, a slow answer, a body that
//! is not JSON, a wrong CRC32C, or a number of error answers before the normal one. Every
//! request is counted per secret id.
//!
//! ```no_run
//! # async fn demo() {
//! use tea_pgcloud::conformance::emulators::gcp::GcpSecretManager;
//! let sm = GcpSecretManager::start().await;
//! sm.put("my-project", "ltm-postgres-password", "s3cret").await;
//! sm.throttle_then_succeed("ltm-postgres-password", 2).await;
//! // point the client at sm.uri() with anonymous credentials
//! assert_eq!(sm.requests_for("ltm-postgres-password").await, 0);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::secrets::gcp::crc32c;

/// A fault injected for one secret id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// Always this HTTP status and Google status.
    Status(u16, String),
    /// This status for the next `remaining` requests, then the normal answer.
    StatusTimes(u16, String, usize),
    /// The normal answer, after a delay.
    Slow(Duration),
    /// A 200 whose body is not JSON (and holds the raw value, to catch echoes).
    Malformed,
    /// The normal answer with a wrong `dataCrc32c`.
    BadCrc,
}

#[derive(Debug, Default)]
struct State {
    /// (project, id) -> versions, oldest first.
    secrets: HashMap<(String, String), Vec<Vec<u8>>>,
    faults: HashMap<String, Fault>,
    requests: HashMap<String, usize>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while the lock was held leaves consistent maps (every update is one insert).
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct GcpSecretManager {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

/// The wiremock responder holding the emulator's state.
struct Responder(Arc<Mutex<State>>);

/// `projects/P/secrets/ID/versions/V` from `/v1/projects/P/secrets/ID/versions/V:access`.
fn parse_path(path: &str) -> Option<(String, String, String)> {
    let rest = path
        .strip_prefix("/v1/projects/")?
        .strip_suffix(":access")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [project, "secrets", id, "versions", version]
            if !project.is_empty() && !id.is_empty() && !version.is_empty() =>
        {
            Some((project.to_string(), id.to_string(), version.to_string()))
        }
        _ => None,
    }
}

/// A Google-shaped error answer.
fn error(code: u16, status: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_raw(
        serde_json::json!({"error": {"code": code, "message": message, "status": status}})
            .to_string(),
        "application/json",
    )
}

fn default_message(status: &str, resource: &str) -> String {
    match status {
        "NOT_FOUND" => format!("Secret [{resource}] not found or has no versions."),
        "PERMISSION_DENIED" => format!(
            "Permission 'secretmanager.versions.access' denied for resource '{resource}' (or it may not exist)."
        ),
        "UNAUTHENTICATED" => "Request had invalid authentication credentials.".to_string(),
        "RESOURCE_EXHAUSTED" => {
            "Quota exceeded for quota metric 'Access requests' of service 'secretmanager.googleapis.com'.".to_string()
        }
        "UNAVAILABLE" => "The service is currently unavailable.".to_string(),
        "DEADLINE_EXCEEDED" => "Deadline exceeded.".to_string(),
        "FAILED_PRECONDITION" => format!("Secret Version [{resource}] is in DISABLED state."),
        _ => format!("{status} (emulated)"),
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Some((project, id, version)) = parse_path(request.url.path()) else {
            return error(
                404,
                "NOT_FOUND",
                &format!("The requested URL {} was not found.", request.url.path()),
            );
        };
        if request.method.as_str() != "GET" {
            return error(405, "UNIMPLEMENTED", "Method not allowed.");
        }
        let resource = format!("projects/{project}/secrets/{id}/versions/{version}");
        let mut state = lock(&self.0);
        *state.requests.entry(id.clone()).or_default() += 1;
        let mut delay = None;
        let mut fault = state.faults.get(&id).cloned();
        match &mut fault {
            Some(Fault::Status(code, status)) => {
                return error(*code, status, &default_message(status, &resource));
            }
            Some(Fault::StatusTimes(code, status, remaining)) => {
                let answer = error(*code, status, &default_message(status, &resource));
                *remaining -= 1;
                if *remaining == 0 {
                    state.faults.remove(&id);
                } else {
                    let left = Fault::StatusTimes(*code, status.clone(), *remaining);
                    state.faults.insert(id.clone(), left);
                }
                return answer;
            }
            Some(Fault::Slow(d)) => delay = Some(*d),
            _ => {}
        }
        let versions = state.secrets.get(&(project.clone(), id.clone()));
        let found = versions.and_then(|versions| {
            let n = if version == "latest" {
                versions.len()
            } else {
                version.parse::<usize>().ok()?
            };
            versions
                .get(n.checked_sub(1)?)
                .map(|data| (n, data.clone()))
        });
        let Some((n, data)) = found else {
            return error(404, "NOT_FOUND", &default_message("NOT_FOUND", &resource));
        };
        let name = format!("projects/{project}/secrets/{id}/versions/{n}");
        let answer = match fault {
            Some(Fault::Malformed) => ResponseTemplate::new(200).set_body_raw(
                format!(
                    "{{\"name\": \"{name}\", \"payload\": {{\"data\": {}",
                    String::from_utf8_lossy(&data)
                ),
                "application/json",
            ),
            other => {
                let mut crc = crc32c(&data);
                if other == Some(Fault::BadCrc) {
                    crc ^= 0x0000_0001;
                }
                ResponseTemplate::new(200).set_body_raw(
                    serde_json::json!({
                        "name": name,
                        "payload": {"data": crate::shared::base64(&data), "dataCrc32c": crc.to_string()},
                    })
                    .to_string(),
                    "application/json",
                )
            }
        };
        match delay {
            Some(d) => answer.set_delay(d),
            None => answer,
        }
    }
}

impl GcpSecretManager {
    /// Starts the emulator on a free local port.
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        Self { server, state }
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the client.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The wiremock server (for its recorded requests).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Adds a version holding `value` to secret `id` of `project` (creating the secret).
    pub async fn put(&self, project: &str, id: &str, value: &str) {
        self.put_bytes(project, id, value.as_bytes()).await;
    }

    /// Adds a version holding raw bytes (not necessarily UTF-8).
    pub async fn put_bytes(&self, project: &str, id: &str, value: &[u8]) {
        lock(&self.state)
            .secrets
            .entry((project.to_string(), id.to_string()))
            .or_default()
            .push(value.to_vec());
    }

    /// Adds a version holding a JSON document (an object for the `secret_name` layout).
    pub async fn put_json(&self, project: &str, id: &str, value: serde_json::Value) {
        self.put(project, id, &value.to_string()).await;
    }

    /// Removes secret `id` of `project` with all its versions.
    pub async fn delete(&self, project: &str, id: &str) {
        lock(&self.state)
            .secrets
            .remove(&(project.to_string(), id.to_string()));
    }

    fn set_fault(&self, id: &str, fault: Fault) {
        lock(&self.state).faults.insert(id.to_string(), fault);
    }

    /// Every request for `id` fails with this HTTP status and Google status
    /// (`404, "NOT_FOUND"`, `403, "PERMISSION_DENIED"`, `429, "RESOURCE_EXHAUSTED"`,
    /// `503, "UNAVAILABLE"`, ...).
    pub async fn fail_with(&self, id: &str, status_code: u16, google_status: &str) {
        self.set_fault(id, Fault::Status(status_code, google_status.to_string()));
    }

    /// The next `times` requests for `id` fail with this status, then it answers normally.
    pub async fn fail_then_succeed(
        &self,
        id: &str,
        times: usize,
        status_code: u16,
        google_status: &str,
    ) {
        if times > 0 {
            let fault = Fault::StatusTimes(status_code, google_status.to_string(), times);
            self.set_fault(id, fault);
        }
    }

    /// The next `times` requests for `id` get 429 `RESOURCE_EXHAUSTED`, then the value.
    pub async fn throttle_then_succeed(&self, id: &str, times: usize) {
        self.fail_then_succeed(id, times, 429, "RESOURCE_EXHAUSTED")
            .await;
    }

    /// Answers for `id` come after `delay`.
    pub async fn slow(&self, id: &str, delay: Duration) {
        self.set_fault(id, Fault::Slow(delay));
    }

    /// Answers for an existing `id` are a 200 whose body is cut-off JSON quoting the raw
    /// value (a client must not echo it).
    pub async fn malformed(&self, id: &str) {
        self.set_fault(id, Fault::Malformed);
    }

    /// Answers for an existing `id` carry a wrong `dataCrc32c`.
    pub async fn bad_crc(&self, id: &str) {
        self.set_fault(id, Fault::BadCrc);
    }

    /// Removes the fault of `id`.
    pub async fn clear_fault(&self, id: &str) {
        lock(&self.state).faults.remove(id);
    }

    /// How many requests named secret `id` (any project, any version).
    pub async fn requests_for(&self, id: &str) -> usize {
        lock(&self.state).requests.get(id).copied().unwrap_or(0)
    }

    /// Requests per secret id so far.
    pub async fn request_counts(&self) -> HashMap<String, usize> {
        lock(&self.state).requests.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/v1/projects/p/secrets/s/versions/latest:access"),
            Some(("p".into(), "s".into(), "latest".into()))
        );
        assert_eq!(parse_path("/v1/projects/p/secrets/s/versions/1"), None);
        assert_eq!(parse_path("/v1/projects/p/secrets/s:access"), None);
    }
}
