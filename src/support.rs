//! What this crate does with each libpq connection keyword: honoured as libpq does, honoured
//! for some values only, refused, or not applicable. Nothing is silently ignored.
//!
//! The plan refuses what is not honoured ([`refusal`], called where the plan is made), so
//! `check`, `plan`, `ping` and the pool refuse the same options with the same words; `connect`
//! asks the same question of a plan built by hand. The README's keyword table is
//! [`markdown`], kept equal to this table by a unit test.
//!
//! ```
//! use tea_pgcloud::{ConfigError, MapEnv, load_str, plan};
//! let env = MapEnv::new();
//! let yaml = "connection_string: host=db sslmode=verify-full krbsrvname=pg\n";
//! let config = load_str(yaml, "agent.yaml", &env)?;
//! let err = plan(&config, &env).expect_err("refused when the plan is made");
//! assert_eq!(err.kind().as_str(), "unsupported");
//! assert!(err.to_string().contains("\"krbsrvname\""));
//! # Ok::<(), ConfigError>(())
//! ```

use crate::conninfo::ConnInfo;
use crate::conninfo::KEYWORDS;

/// How this crate treats one libpq keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Support {
    /// Honoured as libpq does; says how, and where that is proven.
    Honoured(&'static str),
    /// Some values honoured (compared as libpq compares them; an empty value is libpq's
    /// default and always honoured); any other value is refused with the reason.
    Values {
        /// The values honoured.
        honoured: &'static [&'static str],
        /// Whether values are compared without regard to ASCII case.
        ignore_case: bool,
        /// How the honoured values are honoured.
        how: &'static str,
        /// Why the other values are refused.
        refused: &'static str,
    },
    /// Refused whatever its value (an empty value, libpq's "unset", is accepted), with the
    /// reason.
    Refused(&'static str),
    /// Accepted with any value, and with no effect here, as the reason explains.
    NotApplicable(&'static str),
}

/// One keyword and how it is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeywordSupport {
    /// The libpq keyword.
    pub keyword: &'static str,
    /// How it is treated.
    pub support: Support,
}

const fn honoured(keyword: &'static str, how: &'static str) -> KeywordSupport {
    KeywordSupport {
        keyword,
        support: Support::Honoured(how),
    }
}

const fn values(
    keyword: &'static str,
    honoured: &'static [&'static str],
    how: &'static str,
    refused: &'static str,
) -> KeywordSupport {
    KeywordSupport {
        keyword,
        support: Support::Values {
            honoured,
            ignore_case: false,
            how,
            refused,
        },
    }
}

const fn refused(keyword: &'static str, why: &'static str) -> KeywordSupport {
    KeywordSupport {
        keyword,
        support: Support::Refused(why),
    }
}

const GSSAPI: &str = "GSSAPI / Kerberos is not offered by this crate";

/// Every libpq 17 keyword, in libpq's table order ([`KEYWORDS`]), and how it is treated.
pub const SUPPORT: &[KeywordSupport] = &[
    honoured(
        "service",
        "`~/.pg_service.conf` under HOME, then the packaged system file /etc/postgresql-common/pg_service.conf, by libpq's line rules, filling what the connection string does not set (PGSERVICE, PGSERVICEFILE and PGSYSCONFDIR are not read); against libpq 15 in tests/libpq_options.rs",
    ),
    honoured("user", "the login role; vectors and the TLS matrix"),
    honoured(
        "password",
        "sent only when the server asks; vectors, the TLS matrix and the client kit",
    ),
    honoured(
        "passfile",
        "read when no password is given, per host, by libpq's rules (matching, `*`, escapes, comments, the permission check); `~/.pgpass` from HOME by default; against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "channel_binding",
        "disable / prefer / require (libpq's value error when the plan is made), by tokio-postgres's SCRAM; the TLS matrix",
    ),
    honoured(
        "connect_timeout",
        "per address, at least 2 s, 0 or less for none, libpq's integer rules when the plan is made; the hostile-server tests",
    ),
    honoured("dbname", "vectors and every live test"),
    honoured(
        "host",
        "host names, addresses and socket directories, tried in order; vectors and the TLS matrix",
    ),
    honoured(
        "hostaddr",
        "the address dialled instead of resolving `host`; the TLS matrix",
    ),
    honoured("port", "vectors and every live test"),
    KeywordSupport {
        keyword: "client_encoding",
        support: Support::Values {
            honoured: &["UTF8", "UTF-8", "UNICODE"],
            ignore_case: true,
            how: "the client always speaks UTF8 (tokio-postgres sends client_encoding=UTF8), and libpq's `auto` where the locale (LC_ALL, LC_CTYPE, LANG) is UTF-8; the server's view against libpq 15 in tests/libpq_options.rs",
            refused: "this client speaks UTF8 only (`auto` is refused where the locale's encoding is another)",
        },
    },
    honoured("options", "sent in the startup packet; vectors"),
    honoured(
        "application_name",
        "sent in the startup packet; the server's view in tests/libpq_options.rs",
    ),
    honoured(
        "fallback_application_name",
        "sent when `application_name` is not set; the server's view in tests/libpq_options.rs",
    ),
    honoured(
        "keepalives",
        "SO_KEEPALIVE unless the integer 0, with libpq's integer rules and errors; against libpq 15 in tests/libpq_options.rs, read back from the socket in a unit test",
    ),
    honoured(
        "keepalives_idle",
        "TCP_KEEPIDLE in seconds when keepalives are on, libpq's integer rules (negative as 0; 0 fails as the kernel refuses it); against libpq 15, read back from the socket",
    ),
    honoured(
        "keepalives_interval",
        "TCP_KEEPINTVL in seconds, as keepalives_idle; against libpq 15, read back from the socket",
    ),
    honoured(
        "keepalives_count",
        "TCP_KEEPCNT, as keepalives_idle; against libpq 15, read back from the socket",
    ),
    honoured(
        "tcp_user_timeout",
        "TCP_USER_TIMEOUT in milliseconds, set only when keepalives are on (libpq's order); against libpq 15, read back from the socket",
    ),
    honoured(
        "sslmode",
        "libpq's eight-way policy, case by case against libpq; the TLS matrix",
    ),
    honoured(
        "sslnegotiation",
        "postgres, and direct (libpq 17) under require and stronger; the libpq 17 cases",
    ),
    KeywordSupport {
        keyword: "sslcompression",
        support: Support::NotApplicable(
            "TLS compression: rustls offers none, and the OpenSSL 3 builds libpq runs on have none either",
        ),
    },
    honoured(
        "sslcert",
        "the client certificate, sent when the server asks; the TLS matrix",
    ),
    honoured(
        "sslkey",
        "the client key (unencrypted; with libpq's permission check); the TLS matrix",
    ),
    honoured(
        "sslcertmode",
        "disable (the certificate files are not read), allow, require (the server must send a CertificateRequest, libpq's error otherwise), libpq's value error when the plan is made; against libpq 17 in the container suite",
    ),
    honoured(
        "sslpassword",
        "the passphrase of an encrypted client key: PKCS#8 PBES2 (PBKDF2 or scrypt; AES or 3DES) and OpenSSL's legacy PEM encryption (AES, DES-EDE3); never prompts; against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "sslrootcert",
        "a file, or `system` (the OS store, verify-full only); the TLS matrix",
    ),
    honoured(
        "sslcrl",
        "beside a root certificate file, as OpenSSL's CRL_CHECK_ALL: every certificate of the chain, the root's included, needs a current list from its issuer that does not name it; certificates in the file become roots; an unreadable file turns checks off; the default `~/.postgresql/root.crl` too; against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "sslcrldir",
        "OpenSSL's hashed directories (`HASH.r0`, `HASH.r1`, ... by X509_NAME_hash, `:`-separated), with the rules of `sslcrl`; against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "sslsni",
        "SNI when unset or the value starts with 1 (libpq's test), never for an IP address; the rule has unit tests, the server side is not observed",
    ),
    honoured(
        "requirepeer",
        "on unix sockets, the server process's user by its uid (SO_PEERCRED, /etc/passwd), libpq's error text; against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "require_auth",
        "libpq 16's lists (`password`, `md5`, `gss`, `sspi`, `scram-sha-256`, `none`, all or none negated with `!`) and errors when the plan is made; each authentication request of the server checked before tokio-postgres answers it, so nothing secret is sent to a server asking for a method not allowed; against libpq 17 in the container suite",
    ),
    honoured(
        "ssl_min_protocol_version",
        "TLSv1.2 (the default) and TLSv1.3, any case, with libpq's value and range errors; TLSv1 and TLSv1.1 refused (not offered); 60 cases against libpq 15 in tests/libpq_options.rs",
    ),
    honoured(
        "ssl_max_protocol_version",
        "TLSv1.2 and TLSv1.3, any case, with libpq's value and range errors; TLSv1 and TLSv1.1 refused (not offered); 60 cases against libpq 15 in tests/libpq_options.rs",
    ),
    values(
        "gssencmode",
        &["disable", "prefer"],
        "without GSSAPI credentials libpq's prefer goes on without GSS encryption, as here",
        GSSAPI,
    ),
    refused("krbsrvname", GSSAPI),
    refused("gsslib", GSSAPI),
    refused("gssdelegation", GSSAPI),
    refused(
        "replication",
        "replication connections are not what a catalog needs",
    ),
    honoured(
        "target_session_attrs",
        "libpq's six values and error; the server's reported in_hot_standby and default_transaction_read_only (else libpq's queries), the next host (not address) on a wrong kind or SQLSTATE 57P03, prefer-standby's second pass; against libpq 15 and 17 in tests/ha.rs",
    ),
    honoured(
        "load_balance_hosts",
        "libpq 16's disable and random: hosts shuffled per connection, then each host's addresses; against libpq 17 by the set and spread of outcomes in tests/ha.rs",
    ),
];

/// How `keyword` is treated; `None` for a word libpq 17 does not know.
pub fn support(keyword: &str) -> Option<&'static Support> {
    SUPPORT
        .iter()
        .find(|s| s.keyword == keyword)
        .map(|s| &s.support)
}

/// Why a plan cannot be honoured: the keyword and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The keyword at fault (`krbsrvname`).
    pub keyword: &'static str,
    /// The message: names the keyword, quotes the value only where it is one of a known set.
    pub message: String,
}

/// The first keyword of `params` this crate refuses, in [`SUPPORT`] order, with libpq's
/// `client_encoding=auto` taken as the encoding of a C locale (see [`refusal`] for the
/// process's own).
pub fn refused_keyword(params: &ConnInfo) -> Option<Refusal> {
    refused_keyword_in(params, None)
}

/// The encoding libpq's `client_encoding=auto` resolves to for `locale` (a `LC_CTYPE` value,
/// `lang_COUNTRY.codeset@modifier`): `UTF8` for a UTF-8 code set, else the code set itself
/// (`SQL_ASCII` for `C`, `POSIX` or nothing).
pub fn auto_encoding(locale: Option<&str>) -> String {
    let locale = locale.unwrap_or("C");
    let codeset = locale
        .split_once('.')
        .map(|(_, rest)| rest.split('@').next().unwrap_or(rest))
        .unwrap_or("");
    let normalized: String = codeset
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match normalized.as_str() {
        "utf8" => "UTF8".to_string(),
        "" => "SQL_ASCII".to_string(),
        _ => codeset.to_string(),
    }
}

/// The locale whose code set libpq's `client_encoding=auto` follows: `LC_ALL`, else
/// `LC_CTYPE`, else `LANG` (as `setlocale(LC_CTYPE, "")` reads them).
pub fn ctype_locale(env: &dyn crate::env::Environment) -> Option<String> {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|name| env.var(name).filter(|v| !v.is_empty()))
}

fn refused_keyword_in(params: &ConnInfo, locale: Option<&str>) -> Option<Refusal> {
    for (keyword, value) in params.iter() {
        if value.is_empty() {
            continue;
        }
        // libpq's `auto` (an exact match): the locale's encoding, honoured when it is UTF8.
        if keyword == "client_encoding" && value == "auto" {
            let encoding = auto_encoding(locale);
            if encoding == "UTF8" {
                continue;
            }
            return Some(Refusal {
                keyword,
                message: format!(
                    "connection option \"client_encoding\" is supported with \"UTF8\" only: \"auto\" follows the locale, whose encoding is {} here, and this client speaks UTF8 only",
                    if locale.is_some() {
                        "not UTF8"
                    } else {
                        "SQL_ASCII (no locale is set)"
                    }
                ),
            });
        }
        let refusal = |why: &str| Refusal {
            keyword,
            message: format!("connection option \"{keyword}\" is not supported: {why}"),
        };
        match support(keyword) {
            Some(Support::Refused(why)) => return Some(refusal(why)),
            Some(Support::Values {
                honoured,
                ignore_case,
                refused,
                ..
            }) => {
                let ok = honoured.iter().any(|h| {
                    if *ignore_case {
                        h.eq_ignore_ascii_case(value)
                    } else {
                        *h == value
                    }
                });
                if !ok {
                    let allowed = if honoured.is_empty() {
                        "no value".to_string()
                    } else {
                        honoured
                            .iter()
                            .map(|h| format!("\"{h}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    return Some(Refusal {
                        keyword,
                        message: format!(
                            "connection option \"{keyword}\" is supported with {allowed} only: {refused}"
                        ),
                    });
                }
            }
            Some(Support::Honoured(_) | Support::NotApplicable(_)) | None => {}
        }
    }
    None
}

/// Everything the plan refuses: the first refused keyword of `params`, with
/// `client_encoding=auto` resolved by the locale of `env` ([`ctype_locale`]).
pub fn refusal(params: &ConnInfo, env: &dyn crate::env::Environment) -> Option<Refusal> {
    refused_keyword_in(params, ctype_locale(env).as_deref())
}

/// The README's keyword table: every libpq 17 keyword, how it is treated and why.
pub fn markdown() -> String {
    let mut out =
        String::from("| keyword | since libpq | here | how, or why not |\n|---|---|---|---|\n");
    for (entry, keyword) in SUPPORT.iter().zip(KEYWORDS) {
        let since = if keyword.since <= 9 {
            "9.6 or older".to_string()
        } else {
            keyword.since.to_string()
        };
        let (here, why) = match entry.support {
            Support::Honoured(how) => ("honoured".to_string(), how.to_string()),
            Support::Values {
                honoured,
                how,
                refused,
                ..
            } => {
                let values = if honoured.is_empty() {
                    "unset".to_string()
                } else {
                    honoured
                        .iter()
                        .map(|h| format!("`{h}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                (
                    format!("honoured: {values}; other values refused"),
                    format!("{how}; refused: {refused}"),
                )
            }
            Support::Refused(why) => ("refused".to_string(), why.to_string()),
            Support::NotApplicable(why) => ("not applicable".to_string(), why.to_string()),
        };
        out.push_str(&format!(
            "| `{}` | {since} | {here} | {} |\n",
            entry.keyword,
            why.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_keyword_has_one_entry_in_libpqs_order() {
        let ours: Vec<_> = SUPPORT.iter().map(|s| s.keyword).collect();
        let libpq: Vec<_> = KEYWORDS.iter().map(|k| k.name).collect();
        assert_eq!(ours, libpq);
    }

    #[test]
    fn the_readme_table_is_the_table_in_code() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        assert!(
            readme.contains(&markdown()),
            "README.md's libpq keyword table differs from support::markdown(); paste the new one:\n{}",
            markdown()
        );
    }

    fn params(text: &str) -> ConnInfo {
        ConnInfo::parse_keyword_value(text).expect("parses")
    }

    #[test]
    fn auto_follows_the_locales_code_set() {
        assert_eq!(auto_encoding(Some("en_US.UTF-8")), "UTF8");
        assert_eq!(auto_encoding(Some("C.utf8")), "UTF8");
        assert_eq!(auto_encoding(Some("sr_RS.UTF-8@latin")), "UTF8");
        assert_eq!(auto_encoding(Some("C")), "SQL_ASCII");
        assert_eq!(auto_encoding(Some("POSIX")), "SQL_ASCII");
        assert_eq!(auto_encoding(None), "SQL_ASCII");
        assert_eq!(auto_encoding(Some("de_DE.ISO-8859-1")), "ISO-8859-1");
        let p = params("host=db client_encoding=auto");
        let utf8 = crate::env::MapEnv::new()
            .with_var("LANG", "C")
            .with_var("LC_CTYPE", "en_US.UTF-8");
        assert_eq!(refusal(&p, &utf8), None);
        // LC_ALL wins over LC_CTYPE.
        let c = utf8.clone().with_var("LC_ALL", "C");
        let r = refusal(&p, &c).expect("refused");
        assert_eq!(r.keyword, "client_encoding");
        assert!(
            r.message.contains("\"auto\" follows the locale"),
            "{}",
            r.message
        );
        assert!(refusal(&p, &crate::env::MapEnv::new()).is_some());
        // Only the exact word: libpq compares with strcmp.
        assert!(refusal(&params("host=db client_encoding=AUTO"), &utf8).is_some());
    }

    #[test]
    fn refused_values_name_the_keyword_and_the_honoured_values() {
        let r = refused_keyword(&params("host=db gssencmode=require")).expect("refused");
        assert_eq!(r.keyword, "gssencmode");
        assert!(
            r.message.starts_with(
                "connection option \"gssencmode\" is supported with \"disable\", \"prefer\" only"
            ),
            "{}",
            r.message
        );
        let r = refused_keyword(&params("host=db krbsrvname=/x.crl")).expect("refused");
        assert_eq!(r.keyword, "krbsrvname");
        // The refused value itself is not quoted: it may come from the environment.
        assert!(!r.message.contains("/x.crl"));
    }

    #[test]
    fn defaults_empty_values_and_case_rules_are_honoured() {
        for text in [
            "host=db target_session_attrs=standby load_balance_hosts=random gssencmode=prefer",
            "host=db sslcrl='' ssl_max_protocol_version=''",
            "host=db client_encoding=utf8 keepalives=1 keepalives_idle=0 sslsni=1",
            "host=db sslcompression=1 ssl_min_protocol_version=TLSv1.2 sslcertmode=allow",
        ] {
            assert_eq!(refused_keyword(&params(text)), None, "{text}");
        }
        for text in [
            "host=db client_encoding=LATIN1",
            "host=db krbsrvname=postgres",
            "host=db replication=database",
        ] {
            assert!(refused_keyword(&params(text)).is_some(), "{text}");
        }
    }

    /// A value of `keyword` this crate refuses, and one it honours (when there is one).
    fn samples(support: &Support) -> (Option<&'static str>, Option<&'static str>) {
        match support {
            Support::Refused(_) => (Some("x"), None),
            Support::Values { honoured, .. } => (Some("not-a-value"), honoured.first().copied()),
            Support::Honoured(_) | Support::NotApplicable(_) => (None, None),
        }
    }

    #[tokio::test]
    async fn check_and_connect_refuse_the_same_options_with_the_same_words() {
        let env = crate::env::MapEnv::new();
        let base = "host=db.invalid hostaddr=127.0.0.1 port=1 connect_timeout=2 sslmode=disable";
        let mut refused = 0;
        for entry in SUPPORT {
            let (bad, good) = samples(&entry.support);
            let Some(bad) = bad else { continue };
            let keyword = entry.keyword;
            // Through the plan, as `check` makes it.
            let yaml = format!("connection_string: \"{base} {keyword}={bad}\"\n");
            let config = crate::config::load_str(&yaml, "c.yaml", &env).expect("loads");
            let err = crate::provider::plan(&config, &env).expect_err(keyword);
            assert_eq!(
                err.kind(),
                crate::error::ConfigErrorKind::Unsupported,
                "{keyword}"
            );
            // Through `connect`, with the option put into a plan by hand.
            let config = crate::config::load_str(
                &format!("connection_string: \"{base}\"\n"),
                "c.yaml",
                &env,
            )
            .expect("loads");
            let mut plan = crate::provider::plan(&config, &env).expect("plans");
            if keyword == "sslpassword" {
                plan.sslpassword = Some(crate::secret::Secret::new(bad));
            } else {
                plan.params.set(keyword, bad).expect("a libpq keyword");
            }
            let login = crate::connect::Login::new(Some("u".into()), None);
            let connect_err = crate::connect::connect(&plan, &login, &env)
                .await
                .expect_err(keyword);
            assert_eq!(connect_err.class(), crate::error::ErrorClass::Config);
            assert_eq!(
                connect_err.to_string(),
                err.message(),
                "{keyword}: the same words"
            );
            refused += 1;
            // An honoured value passes the plan.
            if let Some(good) = good {
                let yaml = format!("connection_string: \"{base} {keyword}={good}\"\n");
                let config = crate::config::load_str(&yaml, "c.yaml", &env).expect("loads");
                crate::provider::plan(&config, &env).expect(keyword);
            }
        }
        assert_eq!(
            refused,
            SUPPORT
                .iter()
                .filter(|s| matches!(s.support, Support::Refused(_) | Support::Values { .. }))
                .count()
        );
    }
}
