//! Azure: Key Vault secret names. Always compiled; with the feature `azure`, `identity` (which
//! credential the environment selects, and building it) and `sdk` (timeouts, the HTTP client,
//! quoting SDK errors) serve both the Key Vault backend and the Entra token provider.

#[cfg(feature = "azure")]
pub(crate) mod identity;
#[cfg(feature = "azure")]
pub mod sdk;

/// The longest Key Vault secret name.
pub const MAX_SECRET_NAME_LEN: usize = 127;

/// Whether `c` may stand in a Key Vault secret name: a letter, a digit or `-`.
pub fn is_secret_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// The Key Vault secret name of `key` under `prefix`: `_` becomes `-` (Key Vault names hold no
/// `_`, while the lookup order's keys do).
///
/// ```
/// use tea_pgcloud::cloud::azure::{is_valid_secret_name, key_vault_name};
/// assert_eq!(key_vault_name("ltm-", "POSTGRES_USER"), "ltm-POSTGRES-USER");
/// assert!(is_valid_secret_name(&key_vault_name("ltm-", "POSTGRES_USER")));
/// assert!(!is_valid_secret_name("ltm/user"));
/// ```
pub fn key_vault_name(prefix: &str, key: &str) -> String {
    prefix
        .chars()
        .chain(key.chars())
        .map(|c| if c == '_' { '-' } else { c })
        .collect()
}

/// Whether `name` is a valid Key Vault secret name: 1 to [`MAX_SECRET_NAME_LEN`] letters,
/// digits and `-`.
pub fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_SECRET_NAME_LEN && name.chars().all(is_secret_name_char)
}
