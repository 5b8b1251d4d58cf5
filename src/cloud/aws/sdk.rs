//! What the AWS SDK clients share (feature `aws`): the HTTPS client that Secrets Manager and
//! the default credentials chain of the RDS token provider both send their requests through.

use aws_smithy_http_client::tls;

/// An HTTPS client for the SDK that uses ring, the crate's one TLS stack.
pub fn http_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}
