//! The expanded catalog mapping to a typed [`CatalogConfig`], strictly.

use std::collections::BTreeMap;

use super::keys::{self, CATALOG_KEYS, CREDENTIAL_KEYS};
use super::{
    CatalogConfig, CredentialsConfig, IpType, Origin, PoolConfig, Provider, SSL_BUNDLE_AUTO,
    SecretSource, TokenRefresh,
};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::secret::Secret;
use crate::sslmode::SslMode;
use crate::yaml::{Mark, Node};

/// Keys that say where and how to connect; a `connection_string` already says all of that.
/// (The provider keys are refused before: a connection string means provider self-hosted.)
const EXCLUDED_BY_CONNECTION_STRING: &[&str] = &[
    "host",
    "port",
    "database",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
];

/// Reads one mapping's scalars by key, remembering where each was written.
struct Reader<'a> {
    origin: &'a mut Origin,
    file: &'a str,
}

impl Reader<'_> {
    fn err(
        &self,
        key: &str,
        mark: Mark,
        kind: ConfigErrorKind,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::new(kind, message)
            .at_path(self.origin.path(key))
            .at_location(Some(mark.location(self.file)))
    }

    fn text<'n>(&self, key: &str, node: &'n Node) -> Result<&'n str, ConfigError> {
        match node.as_scalar() {
            Some(text) if !node.is_null() => Ok(text),
            // An empty value has no position of its own: point at its key.
            _ if node.is_null() => Err(self.err(
                key,
                self.origin
                    .marks
                    .get(key)
                    .map(|(k, _)| *k)
                    .unwrap_or(node.mark),
                ConfigErrorKind::InvalidValue,
                "has no value (write one, or leave the key out)",
            )),
            _ => Err(self.err(
                key,
                node.mark,
                ConfigErrorKind::InvalidValue,
                format!("expected a string, found {}", node.type_name()),
            )),
        }
    }

    fn string(&self, key: &str, node: &Node) -> Result<String, ConfigError> {
        let text = self.text(key, node)?;
        if text.trim().is_empty() {
            let message = if node.is_expanded() {
                "must not be empty (the ${...} reference gave an empty value)"
            } else {
                "must not be empty"
            };
            return Err(self.err(key, node.mark, ConfigErrorKind::InvalidValue, message));
        }
        Ok(text.to_string())
    }

    fn integer<T: TryFrom<u64>>(
        &self,
        key: &str,
        node: &Node,
        min: u64,
        max: u64,
    ) -> Result<T, ConfigError> {
        let text = self.text(key, node)?;
        let bad = || {
            self.err(
                key,
                node.mark,
                ConfigErrorKind::InvalidValue,
                format!(
                    "expected an integer from {min} to {max}, found {}",
                    shown(node)
                ),
            )
        };
        let value: u64 = text.trim().parse().map_err(|_| bad())?;
        if !(min..=max).contains(&value) {
            return Err(bad());
        }
        T::try_from(value).map_err(|_| bad())
    }

    fn boolean(&self, key: &str, node: &Node) -> Result<bool, ConfigError> {
        match self.text(key, node)?.trim() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            _ => Err(self.err(
                key,
                node.mark,
                ConfigErrorKind::InvalidValue,
                format!("expected true or false, found {}", shown(node)),
            )),
        }
    }

    fn choice<T: Copy>(
        &self,
        key: &str,
        node: &Node,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let text = self.text(key, node)?;
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Ok(*value);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let alias = keys::VALUE_ALIASES
            .iter()
            .find(|(alias, meant)| *alias == text && names.contains(meant))
            .map(|(_, meant)| *meant);
        let hint = alias
            .or_else(|| keys::did_you_mean(text, names.iter().copied()))
            .filter(|_| !node.is_expanded())
            .map(|m| format!("; did you mean `{m}`?"))
            .unwrap_or_default();
        Err(self.err(
            key,
            node.mark,
            ConfigErrorKind::InvalidValue,
            format!("{} is not one of {}{hint}", shown(node), names.join(", ")),
        ))
    }
}

/// How an error message shows a value: quoted when it is a short word written in the YAML (a
/// typo worth showing, like `verify_full`); never when `${VAR}` expansion produced it (a
/// misplaced `${DB_PASSWORD}`), and never when it is long or holds spaces, newlines, `=` or `@`
/// (a connection string or a block of YAML swallowed by a mis-indented key may hold a
/// password, and errors reach logs).
fn shown(node: &Node) -> String {
    let text = node.as_scalar().unwrap_or_default();
    if node.is_expanded() {
        "the value ${...} expanded to".to_string()
    } else if text.chars().count() > 40
        || text
            .chars()
            .any(|c| c.is_whitespace() || c == '=' || c == '@')
    {
        format!("a {}-character value", text.chars().count())
    } else {
        format!("`{text}`")
    }
}

/// A value shortened for an error message.
fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

fn unknown_key(key: &str, candidates: &[&'static str], bare_root: bool) -> String {
    if let Some((_, hint)) = keys::HINTS.iter().find(|(k, _)| *k == key) {
        return format!("unknown key `{key}`; {hint}");
    }
    if let Some(m) = keys::did_you_mean(key, candidates.iter().copied()) {
        return format!("unknown key `{key}`; did you mean `{m}`?");
    }
    let mut message = format!("unknown key `{key}`");
    if bare_root {
        message.push_str(" (a TEA agent file keeps the catalog under settings.ltm.catalog)");
    }
    message
}

/// Refuses unknown keys in the catalog and its `credentials`. Runs before `${VAR}` expansion,
/// so that a typo is reported as a typo even when its value names an unset variable.
pub(super) fn check_keys(catalog: &Node, file: &str, prefix: &str) -> Result<(), ConfigError> {
    let at = |key: &str| super::join_path(prefix, key);
    let names: Vec<&'static str> = CATALOG_KEYS.iter().map(|k| k.name).collect();
    for (key, _) in catalog.as_map().unwrap_or_default() {
        let name = key.as_scalar().unwrap_or_default();
        if !names.contains(&name) {
            return Err(ConfigError::new(
                ConfigErrorKind::UnknownKey,
                unknown_key(name, &names, prefix.is_empty()),
            )
            .at_path(at(name))
            .at_location(Some(key.mark.location(file))));
        }
    }
    let names: Vec<&'static str> = CREDENTIAL_KEYS.iter().map(|k| k.name).collect();
    let credentials = catalog.get("credentials").and_then(Node::as_map);
    for (key, _) in credentials.unwrap_or_default() {
        let name = key.as_scalar().unwrap_or_default();
        if !names.contains(&name) {
            let message = match name {
                "password" | "username" => format!(
                    "unknown key `{name}`: credentials name where secrets live, never the secrets themselves; did you mean `{name}_key`?"
                ),
                _ => unknown_key(name, &names, false),
            };
            return Err(ConfigError::new(ConfigErrorKind::UnknownKey, message)
                .at_path(at(&format!("credentials.{name}")))
                .at_location(Some(key.mark.location(file))));
        }
    }
    Ok(())
}

pub(super) fn validate(
    catalog: &Node,
    file: &str,
    prefix: &str,
    anchor: Mark,
) -> Result<CatalogConfig, ConfigError> {
    let mut origin = Origin {
        file: file.to_string(),
        prefix: prefix.to_string(),
        catalog: anchor,
        marks: BTreeMap::new(),
    };
    let entries = catalog.as_map().unwrap_or_default();
    // Unknown keys were refused by `check_keys` before expansion.
    for (key, value) in entries {
        let name = key.as_scalar().unwrap_or_default();
        origin
            .marks
            .insert(name.to_string(), (key.mark, value.mark));
    }
    // A key written without a value is an error (in `Reader::text`), not an absent key.
    let get = |key: &str| catalog.get(key);

    let mut reader = Reader {
        origin: &mut origin,
        file,
    };
    let provider = match get("provider") {
        Some(node) => reader.choice("provider", node, &Provider::ALL.map(|p| (p.as_str(), p)))?,
        None => Provider::SelfHosted,
    };
    if let Some(node) = get("type") {
        let kind = reader.text("type", node)?;
        if kind != "postgres" {
            return Err(reader.err(
                "type",
                node.mark,
                ConfigErrorKind::InvalidValue,
                format!(
                    "{} is not served by tea-pgcloud, which handles type `postgres`",
                    shown(node)
                ),
            ));
        }
    }

    // Provider-specific keys under another provider.
    for (key, _) in entries {
        let name = key.as_scalar().unwrap_or_default();
        let spec = CATALOG_KEYS.iter().find(|k| k.name == name);
        if let Some(spec) = spec.filter(|s| !s.providers.is_empty())
            && !spec.providers.contains(&provider)
        {
            let list: Vec<&str> = spec.providers.iter().map(|p| p.as_str()).collect();
            return Err(reader.err(
                name,
                key.mark,
                ConfigErrorKind::Conflict,
                format!(
                    "`{name}` applies to provider {} only, and provider is {provider}",
                    list.join(" or ")
                ),
            ));
        }
    }

    let conflict = |reader: &Reader, a: &str, b: &str, why: &str| reader.origin.conflict(a, b, why);

    if get("connection_string").is_some() {
        if provider.is_cloud() {
            return Err(conflict(
                &reader,
                "connection_string",
                "provider",
                "a connection string is used as is, so use either connection_string or a cloud provider's preset",
            ));
        }
        for key in EXCLUDED_BY_CONNECTION_STRING {
            if get(key).is_some() {
                return Err(conflict(
                    &reader,
                    "connection_string",
                    key,
                    "the connection string already says where and how to connect (write it there)",
                ));
            }
        }
    }
    if get("connection_name").is_some() {
        for key in ["project", "region", "instance"] {
            if get(key).is_some() {
                return Err(conflict(
                    &reader,
                    "connection_name",
                    key,
                    "connection_name already names PROJECT:REGION:INSTANCE",
                ));
            }
        }
    }
    if get("ssl_bundle").is_some() && get("sslrootcert").is_some() {
        return Err(conflict(
            &reader,
            "sslrootcert",
            "ssl_bundle",
            "both name the root certificate file; keep one",
        ));
    }
    // The download settings mean nothing for a bundle that is a file already there.
    let bundle_auto = get("ssl_bundle").and_then(Node::as_scalar) == Some(SSL_BUNDLE_AUTO);
    for key in ["ssl_bundle_url", "ssl_bundle_sha256"] {
        if get(key).is_some() && !bundle_auto {
            let why = if get("ssl_bundle").is_some_and(|n| !n.is_null()) {
                "here ssl_bundle names a file"
            } else {
                "ssl_bundle is not set"
            };
            return Err(reader.origin.error(
                key,
                ConfigErrorKind::Conflict,
                format!(
                    "`{key}` applies only with `ssl_bundle: {SSL_BUNDLE_AUTO}` (the RDS bundle downloaded), and {why}"
                ),
            ));
        }
    }

    let opt_string = |reader: &Reader, key: &str| -> Result<Option<String>, ConfigError> {
        get(key).map(|n| reader.string(key, n)).transpose()
    };
    let connection_string = match get("connection_string") {
        Some(node) => Some(Secret::new(reader.string("connection_string", node)?)),
        None => None,
    };
    let host = opt_string(&reader, "host")?;
    let port = get("port")
        .map(|n| reader.integer::<u16>("port", n, 1, 65535))
        .transpose()?;
    let sslmode = get("sslmode")
        .map(|n| reader.choice("sslmode", n, &SslMode::ALL.map(|m| (m.as_str(), m))))
        .transpose()?;
    let ip_type = get("ip_type")
        .map(|n| {
            reader.choice(
                "ip_type",
                n,
                &[
                    ("socket", IpType::Socket),
                    ("public", IpType::Public),
                    ("private", IpType::Private),
                ],
            )
        })
        .transpose()?;
    let socket_dir = opt_string(&reader, "socket_dir")?;
    if let (Some(dir), Some(node)) = (&socket_dir, get("socket_dir"))
        && !dir.starts_with('/')
    {
        return Err(reader.err(
            "socket_dir",
            node.mark,
            ConfigErrorKind::InvalidValue,
            "must be an absolute path (the Auth Proxy's --unix-socket directory)",
        ));
    }
    if provider == Provider::Gcp {
        match ip_type {
            Some(IpType::Socket) if host.is_some() => {
                return Err(conflict(
                    &reader,
                    "ip_type",
                    "host",
                    "with ip_type socket the host is the Auth Proxy's socket; give the instance IP with ip_type public or private",
                ));
            }
            Some(IpType::Public | IpType::Private) if socket_dir.is_some() => {
                return Err(conflict(
                    &reader,
                    "ip_type",
                    "socket_dir",
                    "socket_dir is for ip_type socket",
                ));
            }
            _ => {}
        }
        if host.is_some() && socket_dir.is_some() {
            return Err(conflict(
                &reader,
                "host",
                "socket_dir",
                "a host means a direct IP connection; socket_dir is for the Auth Proxy socket",
            ));
        }
    }
    let connection_name = opt_string(&reader, "connection_name")?;
    if let (Some(name), Some(node)) = (&connection_name, get("connection_name"))
        && crate::cloud::gcp::split_connection_name(name).is_none()
    {
        return Err(reader.err(
            "connection_name",
            node.mark,
            ConfigErrorKind::InvalidValue,
            format!("{} is not PROJECT:REGION:INSTANCE", shown(node)),
        ));
    }

    let ssl_bundle_url = opt_string(&reader, "ssl_bundle_url")?;
    if let (Some(url), Some(node)) = (&ssl_bundle_url, get("ssl_bundle_url"))
        && let Some(problem) = crate::cloud::aws::bundle_url_problem(url)
    {
        return Err(reader.err(
            "ssl_bundle_url",
            node.mark,
            ConfigErrorKind::InvalidValue,
            format!("{} {problem}", shown(node)),
        ));
    }
    let ssl_bundle_sha256 = opt_string(&reader, "ssl_bundle_sha256")?;
    if let (Some(pin), Some(node)) = (&ssl_bundle_sha256, get("ssl_bundle_sha256"))
        && !(pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(reader.err(
            "ssl_bundle_sha256",
            node.mark,
            ConfigErrorKind::InvalidValue,
            format!(
                "{} is not a SHA-256: expected 64 hex digits (as `sha256sum global-bundle.pem` prints)",
                shown(node)
            ),
        ));
    }

    let mut pool = PoolConfig::default();
    if let Some(n) = get("min_size") {
        pool.min_size = reader.integer("min_size", n, 0, 10_000)?;
    }
    if let Some(n) = get("max_size") {
        pool.max_size = reader.integer("max_size", n, 1, 10_000)?;
    }
    if pool.min_size > pool.max_size {
        let error = if get("max_size").is_some() {
            reader.origin.conflict(
                "min_size",
                "max_size",
                &format!(
                    "min_size ({}) is larger than max_size ({})",
                    pool.min_size, pool.max_size
                ),
            )
        } else {
            reader.origin.value_error(
                "min_size",
                ConfigErrorKind::InvalidValue,
                format!(
                    "min_size ({}) is larger than max_size's default ({}): lower it or set max_size",
                    pool.min_size, pool.max_size
                ),
            )
        };
        return Err(error);
    }
    if let Some(n) = get("auto_migrate") {
        pool.auto_migrate = reader.boolean("auto_migrate", n)?;
    }
    if let Some(n) = get("lazy") {
        pool.lazy = reader.boolean("lazy", n)?;
    }
    if let Some(n) = get("max_lifetime") {
        pool.max_lifetime = reader.integer("max_lifetime", n, 0, 31_536_000)?;
    }
    if let Some(n) = get("token_refresh") {
        let iam = match get("iam_auth") {
            Some(node) => reader.boolean("iam_auth", node)?,
            None => false,
        };
        if !iam {
            return Err(reader.origin.error(
                "token_refresh",
                ConfigErrorKind::Conflict,
                "token_refresh applies to IAM tokens: set `iam_auth: true`, or remove it",
            ));
        }
        pool.token_refresh = reader.choice(
            "token_refresh",
            n,
            &[("ahead", TokenRefresh::Ahead), ("lazy", TokenRefresh::Lazy)],
        )?;
    }

    let credentials = match catalog.get("credentials") {
        Some(node) => Some(credentials(&mut reader, node)?),
        None => None,
    };

    let config = CatalogConfig {
        connection_string,
        connection_string_expanded: get("connection_string").is_some_and(Node::is_expanded),
        provider,
        host,
        port,
        database: opt_string(&reader, "database")?,
        user: opt_string(&reader, "user")?,
        sslmode,
        sslrootcert: opt_string(&reader, "sslrootcert")?,
        sslcert: opt_string(&reader, "sslcert")?,
        sslkey: opt_string(&reader, "sslkey")?,
        connect_timeout: get("connect_timeout")
            .map(|n| reader.integer("connect_timeout", n, 0, u64::from(u32::MAX)))
            .transpose()?,
        application_name: opt_string(&reader, "application_name")?,
        target_session_attrs: get("target_session_attrs")
            .map(|n| {
                reader.choice(
                    "target_session_attrs",
                    n,
                    &crate::plan::TargetSessionAttrs::ALL.map(|t| (t.as_str(), t)),
                )
            })
            .transpose()?,
        pool,
        project: opt_string(&reader, "project")?,
        region: opt_string(&reader, "region")?,
        instance: opt_string(&reader, "instance")?,
        connection_name,
        ip_type,
        socket_dir,
        iam_auth: get("iam_auth")
            .map(|n| reader.boolean("iam_auth", n))
            .transpose()?
            .unwrap_or(false),
        ssl_bundle: opt_string(&reader, "ssl_bundle")?,
        ssl_bundle_url,
        ssl_bundle_sha256: ssl_bundle_sha256.map(|pin| pin.to_ascii_lowercase()),
        credentials,
        origin: Origin::default(),
        tainted: crate::text::Tainted::default(),
    };
    Ok(CatalogConfig { origin, ..config })
}

fn credentials(reader: &mut Reader, node: &Node) -> Result<CredentialsConfig, ConfigError> {
    let Some(entries) = node.as_map() else {
        return Err(reader.err(
            "credentials",
            node.mark,
            ConfigErrorKind::InvalidValue,
            format!("expected a mapping, found {}", node.type_name()),
        ));
    };
    for (key, value) in entries {
        let name = key.as_scalar().unwrap_or_default();
        reader
            .origin
            .marks
            .insert(format!("credentials.{name}"), (key.mark, value.mark));
    }
    let get = |key: &str| node.get(key);
    let path = |key: &str| format!("credentials.{key}");

    let source = match get("source") {
        Some(n) => reader.choice(
            &path("source"),
            n,
            &[
                ("env", SecretSource::Env),
                ("gcp", SecretSource::Gcp),
                ("aws", SecretSource::Aws),
                ("azure", SecretSource::Azure),
            ],
        )?,
        None => SecretSource::Env,
    };
    for (key, _) in entries {
        let name = key.as_scalar().unwrap_or_default();
        let spec = CREDENTIAL_KEYS.iter().find(|k| k.name == name);
        if let Some(spec) = spec.filter(|s| !s.sources.is_empty())
            && !spec.sources.contains(&source)
        {
            let list: Vec<&str> = spec.sources.iter().map(|s| s.as_str()).collect();
            return Err(reader.err(
                &path(name),
                key.mark,
                ConfigErrorKind::Conflict,
                format!(
                    "`{name}` applies to source {} only, and credentials.source is {}",
                    list.join(" or "),
                    source.as_str()
                ),
            ));
        }
    }
    if get("secret_prefix").is_some() && get("secret_name").is_some() {
        return Err(reader.origin.conflict(
            "credentials.secret_prefix",
            "credentials.secret_name",
            "one secret per key, or one JSON secret for all",
        ));
    }
    let opt = |reader: &Reader, key: &str| -> Result<Option<String>, ConfigError> {
        get(key).map(|n| reader.string(&path(key), n)).transpose()
    };
    let config = CredentialsConfig {
        source,
        username_key: opt(reader, "username_key")?.unwrap_or_else(|| "username".into()),
        password_key: opt(reader, "password_key")?.unwrap_or_else(|| "password".into()),
        prefix: opt(reader, "prefix")?,
        project_id: opt(reader, "project_id")?,
        secret_prefix: opt(reader, "secret_prefix")?,
        secret_name: opt(reader, "secret_name")?,
        region: opt(reader, "region")?,
        vault_url: opt(reader, "vault_url")?,
        version: opt(reader, "version")?,
        endpoint: opt(reader, "endpoint")?,
        endpoint_url: opt(reader, "endpoint_url")?,
    };
    check_secret_names(reader, node, &config)?;
    Ok(config)
}

/// Secret names each service accepts: GCP ids are letters, digits, `-` and `_` (at most 255);
/// Key Vault names are letters, digits and `-` (at most 127), and `_` in a key maps to `-`.
fn check_secret_names(
    reader: &Reader,
    node: &Node,
    config: &CredentialsConfig,
) -> Result<(), ConfigError> {
    let mark = |key: &str| node.get(key).map(|n| n.mark).unwrap_or(node.mark);
    match config.source {
        SecretSource::Gcp => {
            use crate::cloud::gcp::is_secret_id_char as valid;
            for key in ["secret_prefix", "secret_name"] {
                let value = match key {
                    "secret_prefix" => &config.secret_prefix,
                    _ => &config.secret_name,
                };
                if let Some(value) = value
                    && value.chars().any(|c| !valid(c))
                {
                    return Err(reader.err(
                        &format!("credentials.{key}"),
                        mark(key),
                        ConfigErrorKind::InvalidValue,
                        format!(
                            "{} is not a valid Secret Manager secret id: ids hold letters, digits, - and _ only; e.g. write `ltm-postgres-` for `ltm/postgres/`",
                            node.get(key).map(shown).unwrap_or_default()
                        ),
                    ));
                }
            }
            if config.secret_name.is_none() {
                check_built_names(
                    reader,
                    node,
                    config,
                    |prefix, key| format!("{prefix}{key}"),
                    crate::cloud::gcp::is_valid_secret_id,
                    "secret id",
                    "is not valid for Secret Manager: at most 255 letters, digits, - and _",
                )?;
            }
        }
        SecretSource::Azure => {
            if let Some(prefix) = &config.secret_prefix
                && prefix
                    .chars()
                    .any(|c| !(crate::cloud::azure::is_secret_name_char(c) || c == '_'))
            {
                return Err(reader.err(
                    "credentials.secret_prefix",
                    mark("secret_prefix"),
                    ConfigErrorKind::InvalidValue,
                    format!(
                        "{} is not a valid Key Vault secret name prefix: names hold letters, digits and - only (`_` maps to `-`)",
                        node.get("secret_prefix").map(shown).unwrap_or_default()
                    ),
                ));
            }
            check_built_names(
                reader,
                node,
                config,
                crate::cloud::azure::key_vault_name,
                crate::cloud::azure::is_valid_secret_name,
                "Key Vault secret name",
                "is not valid: at most 127 letters, digits and - (`_` maps to `-`)",
            )?;
            match &config.vault_url {
                None => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::Missing,
                        "credentials.source azure needs vault_url (https://NAME.vault.azure.net)",
                    )
                    .at_path(reader.origin.path("credentials.vault_url"))
                    .at_location(Some(reader.origin.location("credentials"))));
                }
                Some(url) if !url.starts_with("https://") || url.len() <= "https://".len() => {
                    return Err(reader.err(
                        "credentials.vault_url",
                        mark("vault_url"),
                        ConfigErrorKind::InvalidValue,
                        format!(
                            "{} is not an https URL: Key Vault is reached over https (https://NAME.vault.azure.net)",
                            node.get("vault_url").map(shown).unwrap_or_default()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        SecretSource::Aws | SecretSource::Env => {}
    }
    Ok(())
}

/// Checks the secret names built from the prefix and each lookup key (`build(prefix, key)`)
/// against a service's rule. The error points at the key that makes the name: the field when
/// written, else the prefix; a name with a part expanded from the environment is not quoted.
fn check_built_names(
    reader: &Reader,
    node: &Node,
    config: &CredentialsConfig,
    build: impl Fn(&str, &str) -> String,
    valid: impl Fn(&str) -> bool,
    what: &str,
    rule: &str,
) -> Result<(), ConfigError> {
    for (field, key) in [
        ("username_key", &config.username_key),
        ("password_key", &config.password_key),
    ] {
        let name = build(config.secret_prefix.as_deref().unwrap_or(""), key);
        if valid(&name) {
            continue;
        }
        let at = [field, "secret_prefix"]
            .into_iter()
            .find(|k| node.get(k).is_some())
            .unwrap_or("source");
        let expanded = ["secret_prefix", field]
            .iter()
            .any(|k| node.get(k).is_some_and(Node::is_expanded));
        let shown = if expanded {
            String::new()
        } else {
            format!(" `{}`", short(&name))
        };
        return Err(reader.origin.value_error(
            &format!("credentials.{at}"),
            ConfigErrorKind::InvalidValue,
            format!("{what}{shown} {rule}"),
        ));
    }
    Ok(())
}
