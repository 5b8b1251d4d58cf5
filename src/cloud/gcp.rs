//! GCP: Cloud SQL instance connection names, IAM database user names, Secret Manager ids.

/// The environment variable that names the instance (`PROJECT:REGION:INSTANCE`).
pub const CONNECTION_NAME_VAR: &str = "CLOUDSQL_CONNECTION_NAME";

/// The suffix Cloud SQL drops from a service account's IAM database user name.
pub const SERVICE_ACCOUNT_SUFFIX: &str = ".gserviceaccount.com";

/// Splits `PROJECT:REGION:INSTANCE` (the project may be domain-scoped, `example.com:proj`).
///
/// ```
/// use tea_pgcloud::cloud::gcp::split_connection_name;
/// assert_eq!(split_connection_name("p:us-central1:db"), Some(("p", "us-central1", "db")));
/// assert_eq!(split_connection_name("example.com:p:europe-west1:db"), Some(("example.com:p", "europe-west1", "db")));
/// assert_eq!(split_connection_name("p:db"), None);
/// ```
pub fn split_connection_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.rsplitn(3, ':');
    let instance = parts.next()?;
    let region = parts.next()?;
    let project = parts.next()?;
    let ok = |s: &str| !s.is_empty() && !s.contains(['/', ' ', '\t']);
    (ok(project) && ok(region) && ok(instance) && project.matches(':').count() <= 1)
        .then_some((project, region, instance))
}

/// The IAM database user for a principal: a service account's e-mail loses
/// `.gserviceaccount.com`; a user's e-mail stays as it is.
///
/// ```
/// use tea_pgcloud::cloud::gcp::iam_user;
/// assert_eq!(iam_user("ltm@my-project.iam.gserviceaccount.com"), "ltm@my-project.iam");
/// assert_eq!(iam_user("dev@example.com"), "dev@example.com");
/// ```
pub fn iam_user(principal: &str) -> &str {
    principal
        .strip_suffix(SERVICE_ACCOUNT_SUFFIX)
        .unwrap_or(principal)
}

/// The longest Secret Manager secret id.
pub const MAX_SECRET_ID_LEN: usize = 255;

/// Whether `c` may stand in a Secret Manager secret id: a letter, a digit, `-` or `_`.
pub fn is_secret_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `id` is a valid Secret Manager secret id: 1 to [`MAX_SECRET_ID_LEN`] letters,
/// digits, `-` and `_`.
///
/// ```
/// use tea_pgcloud::cloud::gcp::is_valid_secret_id;
/// assert!(is_valid_secret_id("ltm-postgres-POSTGRES_USER"));
/// assert!(!is_valid_secret_id("ltm/postgres/username"));
/// assert!(!is_valid_secret_id(""));
/// ```
pub fn is_valid_secret_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_SECRET_ID_LEN && id.chars().all(is_secret_id_char)
}
