//! libpq's connection service file (`service=NAME`), read as `parseServiceInfo` and
//! `parseServiceFile` in `fe-connect.c` read it.
//!
//! The user's file, `~/.pg_service.conf` under `HOME`, is read first when it exists; the
//! system file ([`SYSTEM_SERVICE_FILE`], where packaged libpq builds look) only when the
//! service is not in the user's file. In the file, after white space is trimmed from both ends
//! of each line, empty lines and `#` comments are skipped; `[NAME]` starts a section (what
//! follows `]` is ignored) and the next section ends it; in the service's section each line is
//! `keyword=value`, split at the first `=` with nothing trimmed around it, the keyword one of
//! libpq's (not `service` itself). A value fills a keyword only when the connection string
//! did not set it (an empty value counts as set). A name that is in neither file is libpq's
//! `definition of service "NAME" not found` (an empty name too, as in libpq).
//!
//! Not read, by design: the `PGSERVICE`, `PGSERVICEFILE` and `PGSYSCONFDIR` environment
//! variables (this crate reads no `PG*` variable). LDAP lines (`ldap://...`, which a libpq
//! built with LDAP looks up) are refused.

use super::{ConnInfo, keyword};
use crate::env::Environment;

/// The system service file of packaged libpq builds (Debian and Ubuntu configure libpq with
/// `--sysconfdir=/etc/postgresql-common`; upstream builds use `PREFIX/etc`).
pub const SYSTEM_SERVICE_FILE: &str = "/etc/postgresql-common/pg_service.conf";

/// Why a service could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// In neither file (libpq's `definition of service "NAME" not found`).
    NotFound,
    /// A line of the section is not `keyword=value` with a libpq keyword.
    Syntax {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// A `service=` line inside a section.
    Nested {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
    },
    /// The file exists but cannot be read.
    Unreadable {
        /// The file.
        file: String,
    },
    /// An LDAP lookup line, which this crate does not make.
    Ldap {
        /// The file.
        file: String,
        /// The line, from 1.
        line: usize,
    },
}

impl ServiceError {
    /// libpq's words; `name` is the service name, or `None` to leave it out (a name that came
    /// from the environment is not quoted).
    pub fn message(&self, name: Option<&str>) -> String {
        match self {
            Self::NotFound => match name {
                Some(name) => format!("definition of service \"{name}\" not found"),
                None => "definition of the service not found".to_string(),
            },
            Self::Syntax { file, line } => {
                format!("syntax error in service file \"{file}\", line {line}")
            }
            Self::Nested { file, line } => format!(
                "nested service specifications not supported in service file \"{file}\", line {line}"
            ),
            Self::Unreadable { file } => format!("service file \"{file}\" not found"),
            Self::Ldap { file, line } => format!(
                "LDAP service lookups are not supported (service file \"{file}\", line {line})"
            ),
        }
    }
}

/// Fills the keywords of `params` that its `service` names and it does not set itself.
/// Nothing happens without a `service` keyword.
pub fn apply(params: &mut ConnInfo, env: &dyn Environment) -> Result<(), ServiceError> {
    let Some(service) = params.get("service").map(str::to_string) else {
        return Ok(());
    };
    let mut found = false;
    if let Some(home) = env.var("HOME").filter(|h| !h.is_empty()) {
        let file = format!("{home}/.pg_service.conf");
        if env.file_exists(&file).unwrap_or(false) {
            parse(&file, &service, params, env, &mut found)?;
            if found {
                return Ok(());
            }
        }
    }
    if env.file_exists(SYSTEM_SERVICE_FILE).unwrap_or(false) {
        parse(SYSTEM_SERVICE_FILE, &service, params, env, &mut found)?;
    }
    if found {
        Ok(())
    } else {
        Err(ServiceError::NotFound)
    }
}

/// C's `isspace` in the C locale.
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

fn parse(
    file: &str,
    service: &str,
    params: &mut ConnInfo,
    env: &dyn Environment,
    found: &mut bool,
) -> Result<(), ServiceError> {
    let bytes = env.read_file(file).map_err(|_| ServiceError::Unreadable {
        file: file.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(c_space);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || (file.to_string(), index + 1);
        if let Some(rest) = line.strip_prefix('[') {
            if *found {
                return Ok(());
            }
            *found = rest.starts_with(service) && rest[service.len()..].starts_with(']');
            continue;
        }
        if !*found {
            continue;
        }
        if line.starts_with("ldap") {
            let (file, line) = at();
            return Err(ServiceError::Ldap { file, line });
        }
        let Some((key, value)) = line.split_once('=') else {
            let (file, line) = at();
            return Err(ServiceError::Syntax { file, line });
        };
        if key == "service" {
            let (file, line) = at();
            return Err(ServiceError::Nested { file, line });
        }
        if keyword(key).is_none() {
            let (file, line) = at();
            return Err(ServiceError::Syntax { file, line });
        }
        if params.get(key).is_none() {
            params.set(key, value).map_err(|_| {
                let (file, line) = at();
                ServiceError::Syntax { file, line }
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn applied(conninfo: &str, env: &MapEnv) -> Result<String, ServiceError> {
        let mut params = ConnInfo::parse_keyword_value(conninfo).expect("parses");
        apply(&mut params, env)?;
        Ok(params.to_keyword_value())
    }

    #[test]
    fn the_users_file_then_the_systems() {
        let user = "# mine\n[ltm]\nhost=user-db\nport=6432\n\n[other]\nhost=x\n";
        let system = "[ltm]\nhost=system-db\ndbname=sys\n[sys-only]\n  dbname=s  \n";
        let env = MapEnv::new()
            .with_var("HOME", "/h")
            .with_file_text("/h/.pg_service.conf", user)
            .with_file_text(SYSTEM_SERVICE_FILE, system);
        // Found in the user's file: the system file is not read at all.
        assert_eq!(
            applied("service=ltm", &env).expect("applies"),
            "service=ltm host=user-db port=6432"
        );
        assert_eq!(
            applied("service=sys-only", &env).expect("applies"),
            "service=sys-only dbname=s"
        );
        // The connection string wins, an empty value included.
        assert_eq!(
            applied("service=ltm host='' port=1", &env).expect("applies"),
            "service=ltm host='' port=1"
        );
        assert_eq!(applied("service=nope", &env), Err(ServiceError::NotFound));
        assert_eq!(applied("service=''", &env), Err(ServiceError::NotFound));
        assert_eq!(applied("host=db", &env).expect("no service"), "host=db");
    }

    #[test]
    fn libpqs_line_rules() {
        let env = |text: &str| {
            MapEnv::new()
                .with_var("HOME", "/h")
                .with_file_text("/h/.pg_service.conf", text)
        };
        // `[name]` with anything after the bracket; keys and values are not trimmed.
        assert_eq!(
            applied("service=a", &env("[a] trailing\n\thost=db \r\n")).expect("applies"),
            "service=a host=db"
        );
        assert_eq!(
            applied("service=a", &env("[a]\nhost = db\n")),
            Err(ServiceError::Syntax {
                file: "/h/.pg_service.conf".into(),
                line: 2
            })
        );
        assert!(matches!(
            applied("service=a", &env("[a]\nservice=b\n")),
            Err(ServiceError::Nested { line: 2, .. })
        ));
        assert!(matches!(
            applied("service=a", &env("[a]\nnot-a-keyword=1\n")),
            Err(ServiceError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            applied("service=a", &env("[a]\nhost\n")),
            Err(ServiceError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            applied("service=a", &env("[a]\nldap://ldap.example/dc=x\n")),
            Err(ServiceError::Ldap { line: 2, .. })
        ));
        // Errors in other sections are not read; a prefix of the name is not the name.
        assert_eq!(
            applied(
                "service=a",
                &env("[b]\ngarbage\n[ab]\nhost=x\n[a]\nport=7\n")
            )
            .expect("applies"),
            "service=a port=7"
        );
        // The first section of the name ends at the next section, even of the same name.
        assert_eq!(
            applied("service=a", &env("[a]\nport=7\n[a]\nhost=x\n")).expect("applies"),
            "service=a port=7"
        );
    }
}
