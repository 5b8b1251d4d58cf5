//! IAM token tests (to be written).
