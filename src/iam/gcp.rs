//! Google Cloud SQL IAM database tokens (to be written).
