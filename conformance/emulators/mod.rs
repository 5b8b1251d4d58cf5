//! HTTP emulators of the cloud APIs (wiremock), speaking each service's wire format so that
//! the official SDKs run for real in tests, with faults injected.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_creds;
#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
pub mod azure_token;
#[cfg(feature = "azure")]
pub mod azure_transport;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "gcp")]
pub mod gcp_token;
#[cfg(feature = "aws")]
pub mod sigv4;
