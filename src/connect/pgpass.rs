//! libpq's password file (`passfile`, by default `~/.pgpass`): `passwordFromFile` and
//! `pwdfMatchesString` in `fe-connect.c`, rule for rule.
//!
//! A line is `host:port:database:user:password`; `#` starts a comment line; a field of just
//! `*` matches anything; `\` escapes `:` and `\`; trailing CR and LF are stripped. The first
//! line whose four fields match gives the password (read up to its first unescaped `:`). The
//! host is `localhost` for an empty host or libpq's default socket directory, the port 5432
//! when empty. A file that is not a regular file, or that the group or others may access, is
//! ignored with libpq's warning (logged here, as libpq prints it to stderr).

use std::os::unix::fs::PermissionsExt;

use crate::secret::Secret;

/// What a host is called in the file: libpq matches `localhost` for an empty host and for its
/// compiled-in socket directory.
fn host_key(host: &str) -> &str {
    if host.is_empty() || host == crate::plan::LIBPQ_DEFAULT_SOCKET_DIR {
        "localhost"
    } else {
        host
    }
}

/// `pwdfMatchesString`: the rest of `line` after the field that matches `token`, or `None`.
fn matches<'a>(line: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if line.starts_with(b"*:") {
        return Some(&line[2..]);
    }
    let (mut i, mut t) = (0, 0);
    while i < line.len() {
        let mut escaped = false;
        if line[i] == b'\\' {
            i += 1;
            escaped = true;
            if i >= line.len() {
                return None;
            }
        }
        if line[i] == b':' && t == token.len() && !escaped {
            return Some(&line[i + 1..]);
        }
        if t == token.len() || line[i] != token[t] {
            return None;
        }
        i += 1;
        t += 1;
    }
    None
}

/// The password up to the first unescaped `:`, with `\x` read as `x`.
fn unescape(rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rest.len());
    let mut i = 0;
    while i < rest.len() && rest[i] != b':' {
        if rest[i] == b'\\' && i + 1 < rest.len() {
            i += 1;
        }
        out.push(rest[i]);
        i += 1;
    }
    out
}

/// The password `path` holds for this host, port, database and user, by libpq's rules;
/// `None` when there is no usable file or no line matches.
pub(crate) fn password_from_file(
    path: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<Secret> {
    if dbname.is_empty() || user.is_empty() {
        return None;
    }
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        tracing::warn!(target: "tea_pgcloud::connect", path, "password file is not a plain file");
        return None;
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            target: "tea_pgcloud::connect",
            path,
            "password file has group or world access; permissions should be u=rw (0600) or less"
        );
        return None;
    }
    let text = std::fs::read(path).ok()?;
    let port = port.to_string();
    let host = host_key(host);
    for line in text.split(|&b| b == b'\n') {
        if line.first() == Some(&b'#') {
            continue;
        }
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        let line = &line[..end];
        if line.is_empty() {
            continue;
        }
        let found = matches(line, host.as_bytes())
            .and_then(|rest| matches(rest, port.as_bytes()))
            .and_then(|rest| matches(rest, dbname.as_bytes()))
            .and_then(|rest| matches(rest, user.as_bytes()));
        if let Some(rest) = found {
            return String::from_utf8(unescape(rest)).ok().map(Secret::new);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_as_libpq_matches_them() {
        assert_eq!(matches(b"db:5432:x", b"db"), Some(&b"5432:x"[..]));
        assert_eq!(matches(b"*:5432:x", b"anything"), Some(&b"5432:x"[..]));
        assert_eq!(matches(b"d\\:b:5432", b"d:b"), Some(&b"5432"[..]));
        assert_eq!(matches(b"d\\\\b:5432", b"d\\b"), Some(&b"5432"[..]));
        assert_eq!(matches(b"db:5432", b"d"), None);
        assert_eq!(matches(b"d:5432", b"db"), None);
        assert_eq!(
            matches(b"*x:5432", b"*x"),
            Some(&b"5432"[..]),
            "a star in a word is a star"
        );
        assert_eq!(unescape(b"a\\:b\\\\c:ignored"), b"a:b\\c".to_vec());
    }

    #[test]
    fn the_file_is_read_only_when_private() {
        let dir = tempfile::tempdir().expect("a dir");
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# a comment\n\nother:5432:*:*:no\r\n127.0.0.1:5433:ltm:app:p\\:w\\\\d\r\n",
        )
        .expect("written");
        let path_str = path.to_str().expect("UTF-8");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let got = password_from_file(path_str, "127.0.0.1", 5433, "ltm", "app");
        assert_eq!(got.as_ref().map(Secret::expose), Some("p:w\\d"));
        assert!(password_from_file(path_str, "127.0.0.1", 5432, "ltm", "app").is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(password_from_file(path_str, "127.0.0.1", 5433, "ltm", "app").is_none());
    }
}
