//! IAM database tokens: short-lived passwords issued by the cloud's identity service.
//!
//! Today: the AWS RDS / Aurora IAM auth token ([`aws::rds_auth_token`], feature `aws`), a SigV4
//! presigned `connect` request. The token providers, their cache and the pool that survives
//! rotation come with the IAM issue.

#[cfg(feature = "aws")]
pub mod aws;
