//! An AWS Secrets Manager emulator: the JSON 1.1 protocol of `GetSecretValue`
//! (`POST /`, `X-Amz-Target: secretsmanager.GetSecretValue`), real-shaped bodies and errors,
//! and faults. Every answer requires a SigV4 `Authorization` header, so the SDK's signing runs.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TARGET: &str = "secretsmanager.GetSecretValue";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A running emulator.
pub struct AwsSecretsManager {
    server: MockServer,
}

fn get_secret(id: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/"))
        .and(header("x-amz-target", TARGET))
        .and(header_regex(
            "authorization",
            "^AWS4-HMAC-SHA256 Credential=",
        ))
        .and(body_partial_json(json!({ "SecretId": id })))
}

fn success(id: &str, value: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", CONTENT_TYPE)
        .set_body_json(json!({
            "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf"),
            "Name": id,
            "VersionId": "0c1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8",
            "SecretString": value,
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1_767_225_600.0,
        }))
}

fn error(status: u16, aws_type: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", CONTENT_TYPE)
        .insert_header("x-amzn-errortype", aws_type)
        .set_body_json(json!({ "__type": aws_type, "message": message }))
}

impl AwsSecretsManager {
    /// Starts an emulator that knows no secret yet (every unknown id is
    /// `ResourceNotFoundException`, as the service answers).
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/"))
            .and(header("x-amz-target", TARGET))
            .respond_with(error(
                400,
                "ResourceNotFoundException",
                "Secrets Manager can't find the specified secret.",
            ))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Self { server }
    }

    /// The endpoint URL to give the SDK.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Stores a string secret.
    pub async fn put(&self, id: &str, value: &str) {
        get_secret(id)
            .respond_with(success(id, value))
            .mount(&self.server)
            .await;
    }

    /// Stores a JSON secret (as RDS-managed secrets are).
    pub async fn put_json(&self, id: &str, value: Value) {
        self.put(id, &value.to_string()).await;
    }

    /// Stores a binary secret (no `SecretString`).
    pub async fn put_binary(&self, id: &str) {
        get_secret(id)
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", CONTENT_TYPE)
                    .set_body_json(json!({"Name": id, "SecretBinary": "AAEC", "VersionId": "v1"})),
            )
            .mount(&self.server)
            .await;
    }

    /// Answers `id` with an error: `status` and the AWS error type (`AccessDeniedException`,
    /// `ThrottlingException`, `InternalServiceError`, ...).
    pub async fn fail_with(&self, id: &str, status: u16, aws_type: &str) {
        get_secret(id)
            .respond_with(error(status, aws_type, "injected fault"))
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Answers `id` with an error `times` times, then with `value`.
    pub async fn fail_then_succeed(
        &self,
        id: &str,
        times: u64,
        status: u16,
        aws_type: &str,
        value: &str,
    ) {
        get_secret(id)
            .respond_with(error(status, aws_type, "injected fault"))
            .up_to_n_times(times)
            .with_priority(1)
            .mount(&self.server)
            .await;
        self.put(id, value).await;
    }

    /// Answers `id` after `delay`.
    pub async fn slow(&self, id: &str, value: &str, delay: Duration) {
        get_secret(id)
            .respond_with(success(id, value).set_delay(delay))
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// Answers `id` with a body that is not JSON.
    pub async fn malformed(&self, id: &str) {
        get_secret(id)
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", CONTENT_TYPE)
                    .set_body_string("{\"SecretString\": "),
            )
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// How many `GetSecretValue` requests asked for `id`.
    pub async fn requests_for(&self, id: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b.get("SecretId").and_then(Value::as_str).map(|s| s == id))
                    .unwrap_or(false)
            })
            .count()
    }
}
