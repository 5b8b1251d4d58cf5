//! RDS / Aurora IAM authentication tokens.
//!
//! A token is a SigV4-presigned `GET https://HOST:PORT/?Action=connect&DBUser=USER` for the
//! service `rds-db`, valid 15 minutes, with only the `host` header signed; the token is that URL
//! without its scheme. It is computed locally: no network.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::secret::Secret;

/// How long an RDS token is valid: the service's fixed 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

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

/// Why a token could not be made. Never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(String);

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RDS IAM token: {}", self.0)
    }
}

impl std::error::Error for TokenError {}

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
        .map_err(|e| TokenError(format!("signing parameters: {e}")))?
        .into();
    let user: String = url_encode(request.user);
    let url = format!(
        "https://{}:{}/?Action=connect&DBUser={user}",
        request.host, request.port
    );
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| TokenError(format!("request: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| TokenError(format!("signing: {e}")))?
        .into_parts();
    let mut http_request = http::Request::builder()
        .uri(&url)
        .body(())
        .map_err(|e| TokenError(format!("request: {e}")))?;
    instructions.apply_to_request_http1x(&mut http_request);
    let signed = http_request.uri().to_string();
    Ok(Secret::new(
        signed
            .strip_prefix("https://")
            .unwrap_or(&signed)
            .to_string(),
    ))
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
}
