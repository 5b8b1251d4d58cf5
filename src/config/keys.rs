//! The catalog's YAML keys: one table that validation, "did you mean" hints and the README's
//! reference all read.

use super::{Provider, SecretSource};

/// One key of the catalog mapping.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The YAML key.
    pub name: &'static str,
    /// The providers it applies to; empty means every provider.
    pub providers: &'static [Provider],
    /// The value's type, as the reference shows it.
    pub kind: &'static str,
    /// The default, as the reference shows it.
    pub default: &'static str,
    /// The environment variables consulted when the key is not written.
    pub env: &'static str,
    /// What else a user must know.
    pub notes: &'static str,
}

/// One key of the `credentials` mapping.
#[derive(Debug, Clone, Copy)]
pub struct CredentialKeySpec {
    /// The YAML key.
    pub name: &'static str,
    /// The sources it applies to; empty means every source.
    pub sources: &'static [SecretSource],
    /// The value's type.
    pub kind: &'static str,
    /// The default.
    pub default: &'static str,
    /// What else a user must know.
    pub notes: &'static str,
}

use Provider::{Aws, Azure, Gcp};

/// Every key of the catalog mapping, in reference order.
pub const CATALOG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "type",
        providers: &[],
        kind: "string",
        default: "postgres",
        env: "",
        notes: "only `postgres` is served here",
    },
    KeySpec {
        name: "connection_string",
        providers: &[],
        kind: "string",
        default: "",
        env: "",
        notes: "libpq key=value or `postgresql://` URI, used as is; excludes the host, TLS and provider keys",
    },
    KeySpec {
        name: "provider",
        providers: &[],
        kind: "gcp \\| aws \\| azure \\| self-hosted",
        default: "self-hosted",
        env: "",
        notes: "selects the preset",
    },
    KeySpec {
        name: "host",
        providers: &[],
        kind: "string",
        default: "self-hosted: `localhost`",
        env: "aws: `RDS_HOSTNAME`; azure: `AZURE_POSTGRESQL_HOST`",
        notes: "name, IP, or a unix-socket directory (starts with `/`); gcp: the instance IP (implies `ip_type: public`)",
    },
    KeySpec {
        name: "port",
        providers: &[],
        kind: "integer",
        default: "5432",
        env: "aws: `RDS_PORT`; azure: `AZURE_POSTGRESQL_PORT`",
        notes: "",
    },
    KeySpec {
        name: "database",
        providers: &[],
        kind: "string",
        default: "libpq's: the user name",
        env: "aws: `RDS_DB_NAME`; azure: `AZURE_POSTGRESQL_DATABASE`",
        notes: "",
    },
    KeySpec {
        name: "user",
        providers: &[],
        kind: "string",
        default: "from `credentials`",
        env: "azure: `AZURE_POSTGRESQL_USER`",
        notes: "wins over the credentials' user name; gcp IAM: a service account's `.gserviceaccount.com` suffix is dropped",
    },
    KeySpec {
        name: "sslmode",
        providers: &[],
        kind: "disable \\| allow \\| prefer \\| require \\| verify-ca \\| verify-full",
        default: "self-hosted: `prefer`; cloud: `require`, or `verify-full` with a root certificate (gcp direct IP: `verify-ca`)",
        env: "",
        notes: "libpq's rules: `require` with a root certificate present verifies the chain; azure refuses `disable` and `allow`",
    },
    KeySpec {
        name: "sslrootcert",
        providers: &[],
        kind: "path \\| `system`",
        default: "`~/.postgresql/root.crt` when it exists",
        env: "",
        notes: "`system` (OS trust store) demands `verify-full`",
    },
    KeySpec {
        name: "sslcert",
        providers: &[],
        kind: "path",
        default: "",
        env: "",
        notes: "client certificate",
    },
    KeySpec {
        name: "sslkey",
        providers: &[],
        kind: "path",
        default: "",
        env: "",
        notes: "client key",
    },
    KeySpec {
        name: "connect_timeout",
        providers: &[],
        kind: "integer (seconds)",
        default: "none",
        env: "",
        notes: "0 waits forever",
    },
    KeySpec {
        name: "target_session_attrs",
        providers: &[],
        kind: "`any`, `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`",
        default: "`read-write` for a writer (gcp, azure; aws instance, proxy and Aurora cluster endpoints), `prefer-standby` for an Aurora reader endpoint (`cluster-ro`), else libpq's `any` (also for an aws name that is not RDS's)",
        env: "",
        notes: "which server of the host list is taken, by libpq's rules; written into the connection string",
    },
    KeySpec {
        name: "application_name",
        providers: &[],
        kind: "string",
        default: "",
        env: "",
        notes: "",
    },
    KeySpec {
        name: "min_size",
        providers: &[],
        kind: "integer",
        default: "1",
        env: "",
        notes: "pool",
    },
    KeySpec {
        name: "max_size",
        providers: &[],
        kind: "integer",
        default: "10",
        env: "",
        notes: "pool; at least `min_size` and 1",
    },
    KeySpec {
        name: "auto_migrate",
        providers: &[],
        kind: "boolean",
        default: "true",
        env: "",
        notes: "catalog schema",
    },
    KeySpec {
        name: "lazy",
        providers: &[],
        kind: "boolean",
        default: "false",
        env: "",
        notes: "open the pool on first use",
    },
    KeySpec {
        name: "max_lifetime",
        providers: &[],
        kind: "seconds",
        default: "1800",
        env: "",
        notes: "pool; a connection is replaced after it; 0 keeps it while it works",
    },
    KeySpec {
        name: "token_refresh",
        providers: &[Gcp, Aws, Azure],
        kind: "ahead \\| lazy",
        default: "`ahead`",
        env: "",
        notes: "with `iam_auth`: refresh tokens in the background before expiry, or only on connect (CPU-throttled serverless hosts)",
    },
    KeySpec {
        name: "project",
        providers: &[Gcp],
        kind: "string",
        default: "",
        env: "`CLOUDSQL_CONNECTION_NAME`",
        notes: "with `region` and `instance`",
    },
    KeySpec {
        name: "region",
        providers: &[Gcp, Aws],
        kind: "string",
        default: "aws: from an `*.rds.amazonaws.com` host",
        env: "aws: `AWS_REGION`",
        notes: "aws: signs IAM tokens",
    },
    KeySpec {
        name: "instance",
        providers: &[Gcp],
        kind: "string",
        default: "",
        env: "`CLOUDSQL_CONNECTION_NAME`",
        notes: "",
    },
    KeySpec {
        name: "connection_name",
        providers: &[Gcp],
        kind: "`PROJECT:REGION:INSTANCE`",
        default: "",
        env: "`CLOUDSQL_CONNECTION_NAME`",
        notes: "instead of `project`/`region`/`instance`",
    },
    KeySpec {
        name: "ip_type",
        providers: &[Gcp],
        kind: "socket \\| public \\| private",
        default: "`socket`, or `public` when `host` is set",
        env: "",
        notes: "a socket never uses TLS (the Auth Proxy encrypts)",
    },
    KeySpec {
        name: "socket_dir",
        providers: &[Gcp],
        kind: "absolute path",
        default: "`/cloudsql`",
        env: "",
        notes: "the Auth Proxy's `--unix-socket` directory",
    },
    KeySpec {
        name: "iam_auth",
        providers: &[Gcp, Aws, Azure],
        kind: "boolean",
        default: "false",
        env: "",
        notes: "log in with an IAM / Entra token instead of a password",
    },
    KeySpec {
        name: "ssl_bundle",
        providers: &[Aws],
        kind: "path \\| `auto`",
        default: "",
        env: "",
        notes: "the RDS CA bundle; a root certificate like `sslrootcert`; `auto`: AWS's global bundle, downloaded, verified and cached as `$XDG_CACHE_HOME/tea-pgcloud/rds-global-bundle.pem` (else under `$HOME/.cache`)",
    },
    KeySpec {
        name: "ssl_bundle_url",
        providers: &[Aws],
        kind: "https URL",
        default: "`https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem`",
        env: "",
        notes: "with `ssl_bundle: auto`: where the bundle is downloaded from; `http` only to a loopback address",
    },
    KeySpec {
        name: "ssl_bundle_sha256",
        providers: &[Aws],
        kind: "64 hex digits",
        default: "",
        env: "",
        notes: "with `ssl_bundle: auto`: the bundle file's SHA-256, checked on every download and cache hit",
    },
    KeySpec {
        name: "credentials",
        providers: &[],
        kind: "mapping",
        default: "",
        env: "",
        notes: "see the credentials keys",
    },
];

use SecretSource::{Aws as SAws, Azure as SAzure, Env as SEnv, Gcp as SGcp};

/// Every key of the `credentials` mapping, in reference order.
pub const CREDENTIAL_KEYS: &[CredentialKeySpec] = &[
    CredentialKeySpec {
        name: "source",
        sources: &[],
        kind: "env \\| gcp \\| aws \\| azure",
        default: "env",
        notes: "the secrets backend",
    },
    CredentialKeySpec {
        name: "username_key",
        sources: &[],
        kind: "string",
        default: "username",
        notes: "then `USER` under the prefix, then `POSTGRES_USER`",
    },
    CredentialKeySpec {
        name: "password_key",
        sources: &[],
        kind: "string",
        default: "password",
        notes: "then `PASSWORD` under the prefix, then `POSTGRES_PASSWORD`",
    },
    CredentialKeySpec {
        name: "prefix",
        sources: &[SEnv],
        kind: "string",
        default: "",
        notes: "prepended to every variable name; case-sensitive",
    },
    CredentialKeySpec {
        name: "project_id",
        sources: &[SGcp],
        kind: "string",
        default: "the catalog's `project` (or `connection_name`'s), else `GOOGLE_CLOUD_PROJECT`",
        notes: "",
    },
    CredentialKeySpec {
        name: "secret_prefix",
        sources: &[SGcp, SAws, SAzure],
        kind: "string",
        default: "",
        notes: "one secret per key, named prefix + key; gcp: letters, digits, `-`, `_`; azure: letters, digits, `-` (`_` in keys maps to `-`)",
    },
    CredentialKeySpec {
        name: "secret_name",
        sources: &[SGcp, SAws],
        kind: "string",
        default: "",
        notes: "one JSON secret holding every key (as RDS-managed secrets do)",
    },
    CredentialKeySpec {
        name: "region",
        sources: &[SAws],
        kind: "string",
        default: "the catalog's region, else `AWS_REGION`",
        notes: "",
    },
    CredentialKeySpec {
        name: "version",
        sources: &[SGcp],
        kind: "string",
        default: "latest",
        notes: "the secret version to read",
    },
    CredentialKeySpec {
        name: "endpoint",
        sources: &[SGcp],
        kind: "URL",
        default: "Google's",
        notes: "another Secret Manager endpoint (a private one, an emulator)",
    },
    CredentialKeySpec {
        name: "endpoint_url",
        sources: &[SAws],
        kind: "URL",
        default: "AWS's",
        notes: "another Secrets Manager endpoint (LocalStack, a VPC endpoint)",
    },
    CredentialKeySpec {
        name: "vault_url",
        sources: &[SAzure],
        kind: "`https://NAME.vault.azure.net`",
        default: "",
        notes: "required",
    },
];

/// Keys people write by habit, with the key they meant or why it does not exist.
pub(crate) const HINTS: &[(&str, &str)] = &[
    ("dbname", "did you mean `database`?"),
    ("db", "did you mean `database`?"),
    (
        "username",
        "did you mean `user`? (or `credentials.username_key`)",
    ),
    ("hostname", "did you mean `host`?"),
    (
        "password",
        "a password does not belong in YAML: use `credentials` (env, gcp, aws, azure) or `iam_auth`",
    ),
    ("ssl", "did you mean `sslmode`?"),
];

fn applies_to(names: &[&str]) -> String {
    if names.is_empty() {
        "all".to_string()
    } else {
        names.join(", ")
    }
}

/// Values people write for a choice, with the one they meant.
pub(crate) const VALUE_ALIASES: &[(&str, &str)] = &[
    ("google", "gcp"),
    ("cloudsql", "gcp"),
    ("cloud-sql", "gcp"),
    ("amazon", "aws"),
    ("rds", "aws"),
    ("aurora", "aws"),
    ("microsoft", "azure"),
    ("self_hosted", "self-hosted"),
    ("selfhosted", "self-hosted"),
    ("postgres", "self-hosted"),
];

/// The catalog key reference as a Markdown table (the README includes it verbatim; a test keeps
/// the two equal).
pub fn catalog_markdown() -> String {
    let mut out = String::from(
        "| key | type | default | env fallback | providers | notes |\n|---|---|---|---|---|---|\n",
    );
    for k in CATALOG_KEYS {
        let providers: Vec<&str> = k.providers.iter().map(|p| p.as_str()).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            k.name,
            k.kind,
            k.default,
            k.env,
            applies_to(&providers),
            k.notes
        ));
    }
    out
}

/// The credentials key reference as a Markdown table.
pub fn credentials_markdown() -> String {
    let mut out =
        String::from("| key | type | default | sources | notes |\n|---|---|---|---|---|\n");
    for k in CREDENTIAL_KEYS {
        let sources: Vec<&str> = k.sources.iter().map(|s| s.as_str()).collect();
        out.push_str(&format!(
            "| `credentials.{}` | {} | {} | {} | {} |\n",
            k.name,
            k.kind,
            k.default,
            applies_to(&sources),
            k.notes
        ));
    }
    out
}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = match len {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        // The distance is at least the difference in length: a long value (a whole file
        // pasted into `sslmode`) is compared with nothing, instead of at quadratic cost.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so that
/// `sslmdoe` is one edit from `sslmode`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let names = || CATALOG_KEYS.iter().map(|k| k.name);
        assert_eq!(did_you_mean("sslmdoe", names()), Some("sslmode"));
        assert_eq!(did_you_mean("ssl_mode", names()), Some("sslmode"));
        assert_eq!(did_you_mean("databse", names()), Some("database"));
        assert_eq!(did_you_mean("iamauth", names()), Some("iam_auth"));
        assert_eq!(did_you_mean("completely_else", names()), None);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = CATALOG_KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG_KEYS.len());
    }

    #[test]
    fn bundle_url_default_is_the_one_used() {
        let spec = CATALOG_KEYS
            .iter()
            .find(|k| k.name == "ssl_bundle_url")
            .expect("listed");
        assert_eq!(
            spec.default,
            format!("`{}`", crate::cloud::aws::RDS_GLOBAL_BUNDLE_URL)
        );
    }

    #[test]
    fn readme_reference_tables_are_current() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&catalog_markdown()),
            "README.md's catalog key table differs from config::keys::catalog_markdown(); paste the new one:\n{}",
            catalog_markdown()
        );
        assert!(
            readme.contains(&credentials_markdown()),
            "README.md's credentials key table differs from config::keys::credentials_markdown(); paste the new one:\n{}",
            credentials_markdown()
        );
    }
}
