//! Each cloud's names and rules, with no SDK: RDS host names and the CA bundle's policy, Cloud
//! SQL connection names, Secret Manager ids, Key Vault secret names. Always compiled, so that
//! configuration checks and plans need no cloud feature; the SDK halves (`secrets`, `iam`) use
//! the same rules.

pub mod aws;
pub mod azure;
pub mod gcp;
