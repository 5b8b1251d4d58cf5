//! Entry ids and content hashes, byte for byte as TEA's Python catalog computes them, so that
//! the Python and Rust ports can share one database.
//!
//! - `entry_id(key)` = hex SHA-256 of the key's UTF-8 bytes.
//! - `content_hash(value)` = `"sha256:"` + hex SHA-256 of Python's
//!   `json.dumps(value, sort_keys=True, default=str)`.
//!
//! [`python_json_dumps`] reproduces that `json.dumps` call exactly: separators `", "` and
//! `": "`, keys sorted by code point, `ensure_ascii=True` (everything outside printable ASCII as
//! `\uXXXX` in lower-case hex, astral characters as surrogate pairs), Python's short escapes,
//! integers as written and floats as Python's `repr(float)`. The vectors in
//! `fixtures/vectors/content-hash.yaml` were computed by Python itself
//! (`fixtures/catalog/generate.py`).
//!
//! ```
//! use serde_json::json;
//! use tea_pgcloud::catalog::{content_hash, entry_id, python_json_dumps};
//! let value = json!({"b": 1e16, "a": ["café", 0.0001, 1e-05]});
//! assert_eq!(
//!     python_json_dumps(&value),
//!     r#"{"a": ["caf\u00e9", 0.0001, 1e-05], "b": 1e+16}"#
//! );
//! assert!(content_hash(&value).starts_with("sha256:"));
//! assert_eq!(entry_id("user:123").len(), 64);
//! ```
//!
//! Limits, all from `serde_json::Value` (this crate does not enable `arbitrary_precision`):
//! integers beyond the `i64` / `u64` range arrive as floats and so cannot hash as Python's
//! exact `int`; and a `Value` cannot hold NaN or an infinity, which Python would write as
//! `NaN` / `Infinity` ([`python_float_repr`] still renders them that way).

use std::fmt::Write as _;

use serde_json::Value;

/// The prefix of every content hash.
pub const CONTENT_HASH_PREFIX: &str = "sha256:";

/// `sha256(key utf-8)` in lower-case hex: the primary key of `ltm_entries` for `key`.
///
/// ```
/// assert_eq!(
///     tea_pgcloud::catalog::entry_id(""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn entry_id(key: &str) -> String {
    crate::shared::sha256_hex(key.as_bytes())
}

/// `"sha256:" + sha256(json.dumps(value, sort_keys=True, default=str))` in lower-case hex, as
/// TEA's Python catalog computes it.
pub fn content_hash(value: &Value) -> String {
    format!(
        "{CONTENT_HASH_PREFIX}{}",
        crate::shared::sha256_hex(python_json_dumps(value).as_bytes())
    )
}

/// Python's `json.dumps(value, sort_keys=True, default=str)`: always ASCII.
pub fn python_json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Python breaks a tie between two shortest digit strings (the double lies exactly halfway
/// between them, e.g. `1921342257676896.25` between `…896.2` and `…896.3`) by the even last
/// digit; Rust's shortest formatting may pick the other one. `digits` (no dot) times
/// `10^(exp - len + 1)` is Rust's choice; returns Python's.
fn half_even(f: f64, digits: String, exp: i32) -> (String, i32) {
    let n = digits.len();
    // Every double has a finite decimal expansion of at most 767 significant digits: this
    // precision prints it exactly.
    let exact = format!("{f:.800e}");
    let (mantissa, _) = exact.split_once('e').unwrap_or((&exact, "0"));
    let all: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    let tie = all.len() > n && all[n] == b'5' && all[n + 1..].iter().all(|d| *d == b'0');
    if !tie {
        return (digits, exp);
    }
    let truncated = &all[..n];
    if truncated[n - 1].is_multiple_of(2) {
        // The even candidate is the truncated expansion.
        return (String::from_utf8_lossy(truncated).into_owned(), exp);
    }
    // The even candidate is the truncated expansion plus one in the last place (with carry).
    let mut up = truncated.to_vec();
    let mut i = n;
    loop {
        if i == 0 {
            up.insert(0, b'1');
            up.pop();
            return (String::from_utf8_lossy(&up).into_owned(), exp + 1);
        }
        i -= 1;
        if up[i] == b'9' {
            up[i] = b'0';
        } else {
            up[i] += 1;
            break;
        }
    }
    // Trailing zeros are not significant digits.
    while up.len() > 1 && up.last() == Some(&b'0') {
        up.pop();
    }
    (String::from_utf8_lossy(&up).into_owned(), exp)
}

/// Python's `repr(float)` as `json.dumps` writes a float: the shortest text that reads back as
/// the same double, in fixed notation when the decimal exponent is in `-4..16` (`1e-05`,
/// `0.0001`, `1000000000000000.0`, `1e+16`), and `NaN`, `Infinity`, `-Infinity` for the values
/// JSON has no number for.
///
/// ```
/// use tea_pgcloud::catalog::python_float_repr;
/// assert_eq!(python_float_repr(1.0), "1.0");
/// assert_eq!(python_float_repr(1e16), "1e+16");
/// assert_eq!(python_float_repr(1.5e-7), "1.5e-07");
/// assert_eq!(python_float_repr(f64::INFINITY), "Infinity");
/// ```
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's `{:e}` without a precision prints the shortest digits that round-trip, as
    // Python's repr does (David Gay's mode 0): `d[.ddd]e[-]X`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let (digits, exp) = half_even(f.abs(), digits, exp);
    // Python's `decpt`: the value is 0.DIGITS * 10^decpt.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let mut out = String::from(sign);
    if !(-4 < decpt && decpt <= 16) {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exp_sign}{:02}", exp.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
        out.push_str(".0");
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts str keys by code point; UTF-8 byte order is code point order, so
            // `str`'s own ordering is the same.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// Python's `py_encode_basestring_ascii`.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_follow_python_repr() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (123456789.123, "123456789.123"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(*f), *want, "{f:e}");
        }
    }

    #[test]
    fn strings_keys_and_separators() {
        let v = json!({"b": [1, "\u{1F600}\t\"\\/\u{7f}\u{0}"], "a": {}, "B": [], "\u{e000}": null, "\u{1F600}": true});
        assert_eq!(
            python_json_dumps(&v),
            r#"{"B": [], "a": {}, "b": [1, "\ud83d\ude00\t\"\\/\u007f\u0000"], "\ue000": null, "\ud83d\ude00": true}"#
        );
    }

    #[test]
    fn extreme_integers_are_written_exactly() {
        let v = json!([i64::MIN, u64::MAX, 0]);
        assert_eq!(
            python_json_dumps(&v),
            "[-9223372036854775808, 18446744073709551615, 0]"
        );
    }

    /// Python's own `json.dumps` on a batch of values, one JSON line each; `None` when there is
    /// no python3.
    fn python_dumps(values: &[Value]) -> Option<Vec<(String, String)>> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        const SCRIPT: &str = "import sys, json, hashlib\n\
            for line in sys.stdin.buffer:\n\
            \x20   d = json.dumps(json.loads(line), sort_keys=True, default=str)\n\
            \x20   sys.stdout.write(d + '\\t' + hashlib.sha256(d.encode()).hexdigest() + '\\n')\n";
        let mut child = match Command::new("python3")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot run python3: {e}"),
        };
        let mut stdin = child.stdin.take().expect("stdin");
        let input: String = values.iter().map(|v| format!("{v}\n")).collect();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("python3 runs");
        writer.join().expect("writer").expect("writes");
        assert!(out.status.success(), "python3 failed: {:?}", out.status);
        let text = String::from_utf8(out.stdout).expect("json.dumps output is ASCII");
        Some(
            text.lines()
                .map(|l| {
                    let (d, h) = l.rsplit_once('\t').expect("dumps TAB hash");
                    (d.to_string(), h.to_string())
                })
                .collect(),
        )
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop::collection::vec(any::<char>(), 0..8)
            .prop_map(|chars| chars.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| {
                serde_json::Number::from_f64(f).map(Value::Number)
            }),
            // Around Python's switches of notation (1e-4, 1e16) and short decimals.
            (-22i32..24, 1u32..100_000, any::<bool>()).prop_map(|(e, m, neg)| {
                let f = f64::from(m) * 10f64.powi(e);
                Value::from(if neg { -f } else { f })
            }),
            // Exact ties between two shortest forms (ulp 0.25: k + 0.25 and k + 0.75 print
            // with 17 digits, the last one decided by round-half-even).
            ((1u64 << 50)..(1u64 << 51), any::<bool>())
                .prop_map(|(k, three)| { Value::from(k as f64 + if three { 0.75 } else { 0.25 }) }),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn exact_ties_take_the_even_digit_as_python_does() {
        // 1921342257676896.25 is a double, halfway between …896.2 and …896.3: Python prints
        // the even one (found by the differential below).
        let k = 1_921_342_257_676_896_f64;
        assert_eq!(python_float_repr(k + 0.25), "1921342257676896.2");
        assert_eq!(python_float_repr(k + 0.75), "1921342257676896.8");
        assert_eq!(python_float_repr(-(k + 0.25)), "-1921342257676896.2");
    }

    #[test]
    fn random_values_hash_as_python_hashes_them() {
        use proptest::strategy::{Strategy, ValueTree};
        use proptest::test_runner::TestRunner;
        const BATCH: usize = 3000;
        let mut runner = TestRunner::default();
        let strategy = arb_json();
        let values: Vec<Value> = (0..BATCH)
            .map(|_| strategy.new_tree(&mut runner).expect("a value").current())
            .collect();
        let Some(python) = python_dumps(&values) else {
            eprintln!("SKIPPED: python3 is not installed; the Python differential did not run");
            return;
        };
        assert_eq!(python.len(), BATCH, "python3 answered every value");
        for (value, (dumps, sha)) in values.iter().zip(&python) {
            assert_eq!(&python_json_dumps(value), dumps, "value: {value}");
            assert_eq!(
                content_hash(value),
                format!("sha256:{sha}"),
                "value: {value}"
            );
        }
    }
}
