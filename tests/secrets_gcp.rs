//! GCP Secret Manager backend tests (not written yet).
