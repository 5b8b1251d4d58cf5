//! `${VAR}` and `${VAR:-default}` expansion in string values.
//!
//! The rules, chosen to fail loudly rather than connect somewhere unintended:
//!
//! | text | result |
//! |---|---|
//! | `${NAME}` | the variable's value; an error naming `NAME` and the YAML path when it is unset |
//! | `${NAME:-default}` | the value when set and non-empty, else `default` (taken literally, up to the first `}`) |
//! | `$$` | a literal `$` |
//! | `$` followed by anything else | kept as written (passwords may hold `$`) |
//! | `${` without a closing `}`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*` | an error |
//!
//! Only values are expanded, never keys, and only inside the catalog mapping. An expanded
//! value is never quoted in an error message: it may be a password.

use std::fmt::Write;

use crate::env::Environment;
use crate::yaml::{Node, Value};

/// Why a value could not be expanded. The message names the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpandError {
    /// What went wrong.
    pub message: String,
}

/// Expands `${VAR}`, `${VAR:-default}` and `$$` in `text` (`${DB_HOST}:${DB_PORT:-5432}` with
/// `DB_HOST=db.internal` and no `DB_PORT` is `db.internal:5432`; `pa$$word` is `pa$word`; an
/// unset `${MISSING}` is an error).
pub(crate) fn expand_str(text: &str, env: &dyn Environment) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                return Err(ExpandError {
                    message: "unterminated `${`: a reference is written ${NAME} or ${NAME:-default} (write $$ for a literal $)".into(),
                });
            };
            out.push_str(&expand_reference(&body[..close], env)?);
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_reference(reference: &str, env: &dyn Environment) -> Result<String, ExpandError> {
    let (name, default) = match reference.find(":-") {
        Some(i) => (&reference[..i], Some(&reference[i + 2..])),
        None => (reference, None),
    };
    if !is_variable_name(name) {
        // Not quoted: a password with `${` in it lands here, and must not reach a log.
        return Err(ExpandError {
            message: "invalid `${...}` reference: names are letters, digits and _ (not starting with a digit), a default is written ${NAME:-default}, and $$ is a literal $".to_string(),
        });
    }
    match (env.var(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(ExpandError {
            message: format!(
                "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
            ),
        }),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Expands every scalar value under `node`, in place. On failure returns the node's mark and
/// its dotted path (below `path`) with the error.
pub(crate) fn expand_tree(
    node: &mut Node,
    path: &str,
    env: &dyn Environment,
) -> Result<(), (crate::yaml::Mark, String, ExpandError)> {
    let mut path = path.to_string();
    expand_below(node, &mut path, env)
}

/// [`expand_tree`] with the path in one buffer that each level extends and truncates again:
/// a path is rendered once, for the error, not once per node (a long key above many nodes
/// would make that quadratic).
fn expand_below(
    node: &mut Node,
    path: &mut String,
    env: &dyn Environment,
) -> Result<(), (crate::yaml::Mark, String, ExpandError)> {
    let mark = node.mark;
    match &mut node.value {
        Value::Scalar {
            text,
            plain,
            expanded,
        } => {
            if text.contains('$') {
                let new = expand_str(text, env).map_err(|e| (mark, path.clone(), e))?;
                if new != *text {
                    *text = new;
                    // What an expansion yields is a string (an empty one is not YAML null), and
                    // it may be a secret.
                    *plain = false;
                    *expanded = true;
                }
            }
            Ok(())
        }
        Value::Seq(items) => {
            let len = path.len();
            for (i, item) in items.iter_mut().enumerate() {
                path.truncate(len);
                // Writing to a String cannot fail.
                let _ = write!(path, "[{i}]");
                expand_below(item, path, env)?;
            }
            path.truncate(len);
            Ok(())
        }
        Value::Map(entries) => {
            let len = path.len();
            for (key, value) in entries.iter_mut() {
                path.truncate(len);
                if len > 0 {
                    path.push('.');
                }
                path.push_str(key.as_scalar().unwrap_or_default());
                expand_below(value, path, env)?;
            }
            path.truncate(len);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn check(input: &str, expected: Result<&str, &str>) {
        let env = MapEnv::new()
            .with_var("SET", "value")
            .with_var("EMPTY", "")
            .with_var("DOLLAR", "a$b");
        match (expand_str(input, &env), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(got), Err(want)) => assert!(got.message.contains(want), "{input}: {got:?}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn the_documented_forms_expand() {
        let env = crate::env::MapEnv::new().with_var("DB_HOST", "db.internal");
        assert_eq!(
            expand_str("${DB_HOST}:${DB_PORT:-5432}", &env).expect("expands"),
            "db.internal:5432"
        );
        assert_eq!(expand_str("pa$$word", &env).expect("expands"), "pa$word");
        assert!(expand_str("${MISSING}", &env).is_err());
    }

    #[test]
    fn expansion_rules() {
        check("plain", Ok("plain"));
        check("${SET}", Ok("value"));
        check("x${SET}y${SET}", Ok("xvalueyvalue"));
        check("${EMPTY}", Ok(""));
        check("${EMPTY:-fallback}", Ok("fallback"));
        check("${UNSET:-fallback}", Ok("fallback"));
        check("${UNSET:-}", Ok(""));
        check("${SET:-fallback}", Ok("value"));
        check("${UNSET:-a:-b}", Ok("a:-b"));
        check("$$", Ok("$"));
        check("$$${SET}", Ok("$value"));
        check("$${SET}", Ok("${SET}"));
        check("pa$word", Ok("pa$word"));
        check("trailing$", Ok("trailing$"));
        check("${DOLLAR}", Ok("a$b"));
        check("${UNSET}", Err("environment variable UNSET is not set"));
        check("${SET", Err("unterminated"));
        check("${}", Err("invalid `${...}` reference"));
        check("${1X}", Err("invalid `${...}` reference"));
        check("${A-B}", Err("invalid `${...}` reference"));
        let env = MapEnv::new();
        let err = expand_str("Tr0ub${4dor&3}x", &env).expect_err("invalid name");
        assert!(!err.message.contains("4dor"), "{}", err.message);
    }

    #[test]
    fn tree_errors_name_the_nested_path() {
        let mut tree =
            crate::yaml::parse("a:\n  b: [x, {c: \"${UNSET}\"}]\nd: ok\n", "f").expect("valid");
        let (mark, path, err) =
            expand_tree(&mut tree, "settings.ltm.catalog", &MapEnv::new()).expect_err("unset");
        assert_eq!(path, "settings.ltm.catalog.a.b[1].c");
        assert_eq!((mark.line, mark.col), (2, 14));
        assert!(err.message.contains("UNSET"), "{}", err.message);
        let mut tree = crate::yaml::parse("- a\n- - b\n  - $${X}\n  - ${Y}\n", "f").expect("valid");
        let (_, path, _) = expand_tree(&mut tree, "", &MapEnv::new()).expect_err("unset");
        assert_eq!(path, "[1][2]");
    }

    #[test]
    fn values_are_never_re_expanded() {
        let env = MapEnv::new().with_var("A", "${B}").with_var("B", "secret");
        assert_eq!(expand_str("${A}", &env).expect("set"), "${B}");
    }
}
