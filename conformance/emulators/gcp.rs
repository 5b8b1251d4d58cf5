//! GCP Secret Manager emulator (not written yet).
