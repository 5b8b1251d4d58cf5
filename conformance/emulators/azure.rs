//! Azure Key Vault emulator (not written yet).
