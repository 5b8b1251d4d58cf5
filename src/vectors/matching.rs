//! The matching rules of `fixtures/vectors/SPEC.md` section 3: `expect` is a subset of the
//! reply, with `contains` (contract), `wording` (informative), `not_contains`, `{like: ...}`,
//! `warnings` by code, and the exact keyword map of `connection-string` cases.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::conninfo::ConnInfo;

/// What comparing one reply with its case's `expect` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// `Ok` when the reply matches; otherwise where and how it differs.
    pub result: Result<(), String>,
    /// Informative differences (`wording` not found): shown, never failing.
    pub notes: Vec<String>,
}

/// Compares `reply` (its `id` already taken out) with `expect` for a case of `kind`.
///
/// For `connection-string` the reply's `connection_string` is parsed by libpq's rules and its
/// keyword map, put in the reply as `map`, must equal the expected `map` exactly.
pub fn judge(kind: &str, expect: &Value, reply: &Value) -> Judgement {
    let mut notes = Vec::new();
    let result = if kind == "connection-string" {
        with_parsed_map(reply).and_then(|actual| {
            matches_at(expect, &actual, "", &mut notes)?;
            exact_map(expect, &actual)
        })
    } else {
        matches_at(expect, reply, "", &mut notes)
    };
    Judgement { result, notes }
}

/// Checks that `expect` is a subset of `actual`; on mismatch says where. Informative
/// differences are ignored here; [`judge`] reports them.
pub fn matches(expect: &Value, actual: &Value) -> Result<(), String> {
    matches_at(expect, actual, "", &mut Vec::new())
}

/// The reply with `map` set to the libpq keyword map of its `connection_string` (a reply
/// without one, an error for instance, is left as it is).
fn with_parsed_map(reply: &Value) -> Result<Value, String> {
    let Some(text) = reply.get("connection_string") else {
        return Ok(reply.clone());
    };
    let Some(text) = text.as_str() else {
        return Err(format!("connection_string: not a string: {text}"));
    };
    let map = ConnInfo::parse(text)
        .map_err(|e| format!("connection_string: libpq would refuse it ({e}): {text:?}"))?;
    let pairs: serde_json::Map<String, Value> = map
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut actual = reply.clone();
    actual["map"] = Value::Object(pairs);
    Ok(actual)
}

/// No keyword beyond the expected ones (the subset match has checked the others).
fn exact_map(expect: &Value, actual: &Value) -> Result<(), String> {
    let (Some(want), Some(got)) = (
        expect.get("map").and_then(Value::as_object),
        actual.get("map").and_then(Value::as_object),
    ) else {
        return Ok(());
    };
    let extra: Vec<String> = got
        .iter()
        .filter(|(k, _)| !want.contains_key(*k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "map: libpq reads keywords that are not expected: {} (from {})",
            extra.join(", "),
            actual.get("connection_string").unwrap_or(&Value::Null)
        ))
    }
}

fn matches_at(
    expect: &Value,
    actual: &Value,
    at: &str,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    if let Some(pattern) = like_pattern(expect) {
        return match actual.as_str() {
            Some(text) if glob(pattern, text, |c| c != '/') => Ok(()),
            _ => Err(format!(
                "{at}: expected a string like {pattern:?}, got {actual}"
            )),
        };
    }
    match (expect, actual) {
        (Value::Object(want), Value::Object(got)) => {
            for (key, want_value) in want {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                let message = got
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match key.as_str() {
                    "not_contains" => {
                        let needle = want_value.as_str().unwrap_or_default();
                        if mentions(actual, needle) {
                            return Err(format!("{here}: {needle:?} appears in the result"));
                        }
                    }
                    "contains" => {
                        let needle = want_value.as_str().unwrap_or_default();
                        if !message.contains(needle) {
                            return Err(format!(
                                "{here}: message {message:?} does not contain {needle:?}"
                            ));
                        }
                    }
                    "wording" => {
                        let needle = want_value.as_str().unwrap_or_default();
                        if !message.contains(needle) {
                            notes.push(format!(
                                "{here}: message {message:?} does not say {needle:?} (informative)"
                            ));
                        }
                    }
                    "warnings" if want_value.is_array() => match got.get(key) {
                        Some(got_value) => warnings_match(want_value, got_value, &here, notes)?,
                        None => return Err(format!("{here}: missing from the result")),
                    },
                    _ => match got.get(key) {
                        Some(got_value) => matches_at(want_value, got_value, &here, notes)?,
                        None => return Err(format!("{here}: missing from the result")),
                    },
                }
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(got)) => {
            if want.len() != got.len() {
                return Err(format!(
                    "{at}: expected {} items, got {}: {}",
                    want.len(),
                    got.len(),
                    actual
                ));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                matches_at(w, g, &format!("{at}[{i}]"), notes)?;
            }
            Ok(())
        }
        (want, got) if want == got => Ok(()),
        (want, got) => Err(format!("{at}: expected {want}, got {got}")),
    }
}

/// `{like: PATTERN}`: the pattern, when `expect` is exactly that.
fn like_pattern(expect: &Value) -> Option<&str> {
    let object = expect.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("like")?.as_str()
}

/// The code of one expected warning: the item itself, or its `code`.
pub(crate) fn warning_code(item: &Value) -> Option<&str> {
    item.as_str()
        .or_else(|| item.get("code").and_then(Value::as_str))
}

/// Warnings match as a set of codes; an expected `{code, path, ...}` must be matched by one
/// warning of that code.
fn warnings_match(
    want: &Value,
    got: &Value,
    at: &str,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let (Some(want), Some(got)) = (want.as_array(), got.as_array()) else {
        return Err(format!("{at}: expected a list of warnings, got {got}"));
    };
    let mut got_codes = BTreeSet::new();
    for warning in got {
        match warning.get("code").and_then(Value::as_str) {
            Some(code) => {
                got_codes.insert(code);
            }
            None => return Err(format!("{at}: a warning without a `code`: {warning}")),
        }
    }
    let mut want_codes = BTreeSet::new();
    for item in want {
        let Some(code) = warning_code(item) else {
            return Err(format!("{at}: an expected warning without a code: {item}"));
        };
        want_codes.insert(code);
        if item.is_object() {
            let found = got.iter().any(|w| {
                w.get("code").and_then(Value::as_str) == Some(code)
                    && matches_at(item, w, at, &mut Vec::new()).is_ok()
            });
            if !found {
                let mut why = Vec::new();
                for w in got
                    .iter()
                    .filter(|w| w.get("code").and_then(Value::as_str) == Some(code))
                {
                    if let Err(e) = matches_at(item, w, at, notes) {
                        why.push(e);
                    }
                }
                return Err(format!(
                    "{at}: no warning matches {item}{}; got {}",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    },
                    Value::Array(got.clone())
                ));
            }
        }
    }
    if want_codes == got_codes {
        return Ok(());
    }
    let missing: Vec<&str> = want_codes.difference(&got_codes).copied().collect();
    let extra: Vec<&str> = got_codes.difference(&want_codes).copied().collect();
    Err(format!(
        "{at}: warning codes differ: missing [{}], not expected [{}]",
        missing.join(", "),
        extra.join(", ")
    ))
}

/// Whether any key or string value anywhere in `value` contains `needle`.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains(needle) || mentions(v, needle)),
        other => other.to_string().contains(needle),
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters for which
/// `star_takes` says yes (and every other character stands for itself).
pub fn glob(pattern: &str, text: &str, star_takes: impl Fn(char) -> bool + Copy) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Dynamic programming over (pattern position, text position): linear memory, no
    // backtracking blow-up on long patterns.
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        if pc == '*' {
            next[0] = row[0];
            for j in 1..=t.len() {
                next[j] = row[j] || (next[j - 1] && star_takes(t[j - 1]));
            }
        } else {
            for j in 1..=t.len() {
                next[j] = row[j - 1] && t[j - 1] == pc;
            }
        }
        row = next;
    }
    row[t.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subset_matching() {
        let actual = json!({"plan": {"a": 1, "b": [1, 2], "c": {"d": "x"}}, "error": null});
        assert!(matches(&json!({"plan": {"a": 1}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"b": [1, 2]}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"b": [1]}}), &actual).is_err());
        assert!(matches(&json!({"plan": {"a": 2}}), &actual).is_err());
        assert!(matches(&json!({"plan": {"z": 2}}), &actual).is_err());
        assert!(matches(&json!({"error": null}), &actual).is_ok());
    }

    #[test]
    fn not_contains_searches_the_whole_object() {
        let actual = json!({"plan": {"uri": "postgresql://h/db", "hosts": [{"host": "h"}]}});
        assert!(matches(&json!({"plan": {"not_contains": "secret"}}), &actual).is_ok());
        assert!(matches(&json!({"plan": {"not_contains": "db"}}), &actual).is_err());
        assert!(matches(&json!({"not_contains": "host"}), &actual).is_err());
        let quoted = json!({"error": {"message": "bad value \"pa\\ss\""}});
        assert!(matches(&json!({"error": {"not_contains": "\"pa\\ss\""}}), &quoted).is_err());
    }

    #[test]
    fn contains_fails_and_wording_only_notes() {
        let actual = json!({"error": {"message": "unknown key `sslmdoe`", "path": "sslmdoe"}});
        let want = json!({"error": {"contains": "sslmdoe", "path": "sslmdoe"}});
        assert_eq!(judge("error", &want, &actual).result, Ok(()));
        assert!(matches(&json!({"error": {"contains": "nope"}}), &actual).is_err());
        let worded = judge(
            "error",
            &json!({"error": {"wording": "did you mean", "path": "sslmdoe"}}),
            &actual,
        );
        assert_eq!(worded.result, Ok(()));
        assert_eq!(worded.notes.len(), 1, "{:?}", worded.notes);
        assert!(worded.notes[0].contains("did you mean"));
    }

    #[test]
    fn like_stands_for_a_name_without_slashes() {
        let want = json!({"path": {"like": "/home/a/.cache/*/bundle.pem"}});
        let ok = json!({"path": "/home/a/.cache/tea-python/bundle.pem"});
        let deeper = json!({"path": "/home/a/.cache/x/y/bundle.pem"});
        assert!(matches(&want, &ok).is_ok());
        assert!(matches(&want, &deeper).is_err());
        assert!(matches(&want, &json!({"path": 3})).is_err());
        assert!(glob("a*c", "abbbc", |_| true));
        assert!(!glob("a*c", "abbbd", |_| true));
        assert!(glob("*", "", |_| true));
        assert!(glob(
            "plan-*::*iam*",
            "plan-aws::aws-iam-verify-full",
            |_| true
        ));
    }

    #[test]
    fn warnings_match_by_code_as_a_set() {
        let got = json!({"warnings": [
            {"code": "weak-tls", "path": "sslmode", "message": "m"},
            {"code": "weak-tls", "path": "sslmode", "message": "again"},
            {"code": "root-cert-missing", "path": "sslrootcert", "message": "m"},
        ]});
        let ok = json!({"warnings": ["root-cert-missing", "weak-tls"]});
        assert!(matches(&ok, &got).is_ok());
        let with_path =
            json!({"warnings": [{"code": "weak-tls", "path": "sslmode"}, "root-cert-missing"]});
        assert!(matches(&with_path, &got).is_ok());
        let wrong_path =
            json!({"warnings": [{"code": "weak-tls", "path": "host"}, "root-cert-missing"]});
        assert!(matches(&wrong_path, &got).is_err());
        let missing = json!({"warnings": ["weak-tls"]});
        let err = matches(&missing, &got).expect_err("one code too many");
        assert!(err.contains("not expected [root-cert-missing]"), "{err}");
        assert!(matches(&json!({"warnings": []}), &got).is_err());
        assert!(matches(&json!({"warnings": []}), &json!({"warnings": []})).is_ok());
        let uncoded = json!({"warnings": [{"path": "x", "message": "m"}]});
        assert!(matches(&json!({"warnings": []}), &uncoded).is_err());
    }

    #[test]
    fn connection_strings_are_compared_by_their_keyword_map() {
        let want = json!({"map": {"host": "db", "user": "app", "password": "p@ss/w:rd#1", "dbname": "ltm"}});
        let right = json!({"connection_string": "postgresql://app:p%40ss%2Fw%3Ard%231@db/ltm"});
        assert_eq!(judge("connection-string", &want, &right).result, Ok(()));
        // The unescaped URI: libpq reads host `ss`... or refuses it; either way it fails.
        let naive = json!({"connection_string": "postgresql://app:p@ss/w:rd#1@db/ltm"});
        assert!(judge("connection-string", &want, &naive).result.is_err());
        // A keyword too many fails even though the expected ones are all there.
        let extra = json!({"connection_string": "postgresql://app:p%40ss%2Fw%3Ard%231@db/ltm?sslmode=disable"});
        let err = judge("connection-string", &want, &extra)
            .result
            .expect_err("sslmode is not expected");
        assert!(err.contains("sslmode"), "{err}");
        let garbage = json!({"connection_string": "host='db"});
        assert!(judge("connection-string", &want, &garbage).result.is_err());
    }
}
