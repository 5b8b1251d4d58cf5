//! Azure Key Vault backend tests (not written yet).
