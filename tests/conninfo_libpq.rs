//! Differential and property tests of `tea_pgcloud::conninfo` against the system libpq (15
//! here), through the `libpq` crate: `Info::from` wraps `PQconninfoParse`, `Info::defaults`
//! wraps `PQconndefaults`.
//!
//! The property tests run 10,000 cases each; `PROPTEST_CASES` overrides that.

use std::collections::BTreeMap;

use libpq::connection::Info;
use libpq::errors::Error as LibpqError;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tea_pgcloud::conninfo::{ConnInfo, ConnInfoErrorKind, KEYWORDS, keyword};

/// The keyword -> value map of a parse, as both sides see it.
type Map = BTreeMap<String, String>;

/// What libpq made of a string.
#[derive(Debug, PartialEq)]
enum Libpq {
    /// Parsed: the keywords with a value.
    Parsed(Map),
    /// Refused, with this message.
    Refused(String),
    /// A value, or the message, is not UTF-8: the `libpq` crate cannot hand it over.
    NotUtf8,
}

fn libpq_parse(s: &str) -> Libpq {
    assert!(
        !s.contains('\0'),
        "the libpq crate would cut {s:?} at its NUL"
    );
    match Info::from(s) {
        Ok(options) => Libpq::Parsed(
            options
                .into_iter()
                .filter_map(|o| o.val.map(|v| (o.keyword, v)))
                .collect(),
        ),
        Err(LibpqError::Backend(message)) => Libpq::Refused(message),
        Err(LibpqError::Utf8(_)) => Libpq::NotUtf8,
        Err(other) => panic!("PQconninfoParse({s:?}): unexpected {other:?}"),
    }
}

fn map_of(info: &ConnInfo) -> Map {
    info.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The keywords this libpq knows (`PQconndefaults`), in its order.
fn libpq_keywords() -> Vec<Info> {
    match Info::defaults() {
        Ok(defaults) => defaults,
        Err(e) => panic!("PQconndefaults failed: {e}"),
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        // Do not write regression files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The keywords libpq 15 knows, from our table.
fn keywords_15() -> Vec<&'static str> {
    KEYWORDS
        .iter()
        .filter(|k| k.since <= 15)
        .map(|k| k.name)
        .collect()
}

// ---- 1. the keyword table ----

#[test]
fn keywords_agree_with_libpq_defaults() {
    let libpq = libpq_keywords();
    let ours: Vec<_> = KEYWORDS.iter().filter(|k| k.since <= 15).collect();
    let libpq_names: Vec<&str> = libpq.iter().map(|i| i.keyword.as_str()).collect();
    let our_names: Vec<&str> = ours.iter().map(|k| k.name).collect();
    // Same set, same order: no libpq-15 keyword is missing, none is extra.
    assert_eq!(our_names, libpq_names);
    for (k, info) in ours.iter().zip(&libpq) {
        assert_eq!(k.envvar, info.envvar.as_deref(), "envvar of {}", k.name);
        assert_eq!(k.secret, info.dispchar == "*", "secret of {}", k.name);
    }
    // The newer keywords libpq 15 does not know are all tagged as such.
    for k in KEYWORDS.iter().filter(|k| k.since > 15) {
        assert!(!libpq_names.contains(&k.name), "{} is in libpq", k.name);
    }
}

// ---- 2. rendering round-trips, through us and through libpq ----

const SPECIAL: &[char] = &[
    '\'', '\\', ' ', ' ', ' ', '\t', '\n', '\r', '\x0b', '\x0c', '@', ':', '/', '?', '#', '&', '=',
    '%', ',', '[', ']',
];

fn non_nul_char() -> impl Strategy<Value = char> {
    any::<char>().prop_filter("no NUL", |c| *c != '\0')
}

/// Arbitrary Unicode strings, biased towards the characters that need quoting or encoding.
fn value() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::sample::select(SPECIAL),
        3 => prop::char::range('a', 'z'),
        1 => prop::char::range('0', '9'),
        2 => non_nul_char(),
    ];
    prop::collection::vec(c, 0..16).prop_map(|v| v.into_iter().collect())
}

/// Host values: arbitrary, or lists of names, IPv6 literals and socket directories.
fn host() -> impl Strategy<Value = String> {
    let one = prop_oneof![
        Just("localhost".to_owned()),
        Just("db.example.com".to_owned()),
        Just("::1".to_owned()),
        Just("fe80::1%eth0".to_owned()),
        Just("/var/run/postgresql".to_owned()),
        Just(String::new()),
        value(),
    ];
    prop_oneof![
        1 => value(),
        2 => prop::collection::vec(one, 1..4).prop_map(|v| v.join(",")),
    ]
}

/// Port values: arbitrary, or lists of numbers and blanks.
fn port() -> impl Strategy<Value = String> {
    let one = prop_oneof![Just("5432".to_owned()), Just(String::new()), value()];
    prop_oneof![
        1 => value(),
        2 => prop::collection::vec(one, 1..4).prop_map(|v| v.join(",")),
    ]
}

/// These are always set in [`full_conninfo`].
const ALWAYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "host",
    "port",
    "options",
    "application_name",
];

/// A map over the libpq-15 keywords, with `presence` the chance of each keyword not in
/// `always` being set.
fn conninfo(always: &'static [&'static str], presence: f64) -> impl Strategy<Value = ConnInfo> {
    let keys = keywords_15();
    let values: Vec<_> = keys
        .iter()
        .map(|k| {
            let v = match *k {
                "host" => host().boxed(),
                "port" => port().boxed(),
                _ => value().boxed(),
            };
            if always.contains(k) {
                v.prop_map(Some).boxed()
            } else {
                proptest::option::weighted(presence, v).boxed()
            }
        })
        .collect();
    values.prop_map(move |values| {
        let mut info = ConnInfo::new();
        for (k, v) in keys.iter().zip(values) {
            if let Some(v) = v {
                info.set(k, v).expect("libpq-15 keyword, value without NUL");
            }
        }
        info
    })
}

fn check_roundtrip(m: &ConnInfo) -> Result<(), TestCaseError> {
    let kv = m.to_keyword_value();
    let uri = m.to_uri();
    prop_assert_eq!(ConnInfo::parse(&kv), Ok(m.clone()), "key=value {:?}", kv);
    prop_assert_eq!(ConnInfo::parse(&uri), Ok(m.clone()), "URI {:?}", uri);
    let expected = Libpq::Parsed(map_of(m));
    prop_assert_eq!(libpq_parse(&kv), expected, "libpq, key=value {:?}", kv);
    let expected = Libpq::Parsed(map_of(m));
    prop_assert_eq!(libpq_parse(&uri), expected, "libpq, URI {:?}", uri);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The seven usual keywords always set, the others now and then.
    #[test]
    fn renderings_roundtrip_through_us_and_libpq(m in conninfo(ALWAYS, 0.2)) {
        check_roundtrip(&m)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: config().cases / 5, ..config() })]

    /// Any keyword may be missing (a port without a host, no user, ...).
    #[test]
    fn sparse_renderings_roundtrip_through_us_and_libpq(m in conninfo(&[], 0.3)) {
        check_roundtrip(&m)?;
    }
}

// ---- 3. the parser, against libpq's ----

/// Fragments the differential strings are made of. Only libpq-15 keywords: libpq 15 refuses
/// the newer ones, which we accept (see `newer_keywords_are_accepted`).
const FRAGMENTS: &[&str] = &[
    "host=",
    "port=",
    "user=",
    "password=",
    "dbname=",
    "options=",
    "sslmode=",
    "sslpassword=",
    "application_name=",
    "requiressl=",
    "ssl=",
    "true",
    "1",
    "host",
    "foo=",
    "'",
    "'",
    "\\",
    "\\",
    "=",
    "=",
    " ",
    " ",
    "\t",
    "\n",
    "\x0b",
    "\r",
    "postgresql://",
    "postgres://",
    "@",
    ":",
    ":",
    "/",
    "/",
    "?",
    "&",
    "&",
    "%",
    "%2",
    "%41",
    "%2C",
    "%2F",
    "%20",
    "%00",
    "%FF",
    "%C3%A9",
    "%zz",
    "[",
    "]",
    ",",
    ",",
    "::1",
    "[::1]",
    "]:",
    "[a,b]",
    "a",
    "b",
    "xyz",
    "5432",
    "é",
    "日本",
    "\u{1F600}",
    "'a b'",
    "ssl=true",
];

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => non_nul_char().prop_map(String::from),
    ]
}

/// Free-form strings, key=value or URI, made of [`FRAGMENTS`].
fn free_form() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        2 => Just(""),
        2 => Just("postgresql://"),
        1 => Just("postgres://"),
    ];
    (prefix, prop::collection::vec(fragment(), 0..20))
        .prop_map(|(prefix, fragments)| format!("{prefix}{}", fragments.concat()))
}

/// key=value strings that are mostly well-formed: libpq-15 keywords (and `requiressl`, and
/// now and then an unknown one), values made of fragments.
fn keyword_value_form() -> impl Strategy<Value = String> {
    let mut names = keywords_15();
    names.extend(["requiressl", "foo"]);
    let pair = (
        prop::sample::select(names),
        prop::sample::select(&["=", "=", " = ", "	="][..]),
        prop::collection::vec(fragment(), 0..4),
        prop::sample::select(&[" ", " ", "\n", ""][..]),
    )
        .prop_map(|(name, equals, value, sep)| format!("{name}{equals}{}{sep}", value.concat()));
    prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.concat())
}

fn input() -> impl Strategy<Value = String> {
    prop_oneof![3 => free_form(), 1 => keyword_value_form()]
}

/// The start of libpq's message for each kind of error.
fn libpq_wording(kind: ConnInfoErrorKind) -> &'static str {
    use ConnInfoErrorKind as K;
    match kind {
        K::MissingEquals => "missing \"=\" after ",
        K::InvalidOption => "invalid connection option ",
        K::UnterminatedQuote => "unterminated quoted string in connection info string",
        K::InvalidPercentEncoding => "invalid percent-encoded token",
        K::ForbiddenPercentNul => "forbidden value %00 in percent-encoded value",
        K::UnterminatedIpv6 => "end of string reached when looking for matching \"]\"",
        K::EmptyIpv6 => "IPv6 host address may not be empty in URI",
        K::UnexpectedCharacter => "unexpected character ",
        K::ExtraSeparator => "extra key/value separator \"=\" in URI query parameter",
        K::MissingSeparator => "missing key/value separator \"=\" in URI query parameter",
        K::InvalidQueryParameter => "invalid URI query parameter",
        other => panic!("{other:?} has no libpq message"),
    }
}

fn check_against_libpq(s: &str) -> Result<(), TestCaseError> {
    let ours = ConnInfo::parse(s);
    match (&ours, libpq_parse(s)) {
        (Ok(m), Libpq::Parsed(map)) => prop_assert_eq!(map_of(m), map, "{:?}", s),
        (Err(e), Libpq::Refused(message)) => {
            // Same reason as libpq; the same words, too, where we quote what libpq quotes.
            let message = message.trim_end();
            prop_assert!(
                message.starts_with(libpq_wording(e.kind())),
                "{:?}: we say {:?}, libpq {:?}",
                s,
                e.message(),
                message
            );
            let withheld = ["not shown", " in the ", " in a ", "\\x"]
                .iter()
                .any(|w| e.message().contains(w));
            if !withheld {
                prop_assert!(
                    message.starts_with(e.message()),
                    "{:?}: we say {:?}, libpq {:?}",
                    s,
                    e.message(),
                    message
                );
            }
        }
        // libpq took bytes that are not UTF-8 (we refuse those), or said so in a message
        // that is not UTF-8: either way we must refuse.
        (Err(_), Libpq::NotUtf8) => {}
        (ours, libpq) => prop_assert!(false, "{:?}: we say {:?}, libpq {:?}", s, ours, libpq),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Strings made of connection-string fragments: we accept exactly what libpq accepts.
    #[test]
    fn parser_agrees_with_libpq(s in input()) {
        check_against_libpq(&s)?;
    }
}

#[test]
fn parser_agrees_with_libpq_on_known_cases() {
    let cases = [
        "",
        "host=a port=1",
        "host= port=5",
        "host='a'port=1",
        r"host=a\ b",
        "host=a\x0bport=1",
        "requiressl=1",
        "requiressl=0 sslmode=verify-full",
        "host",
        "'",
        "=x",
        "host='a",
        "postgresql://",
        "postgresql://u:p@h:1,[::1]:2,/db?sslmode=require&ssl=true",
        "postgresql://h?x=a:b@c",
        "postgresql://[::1]@",
        "postgresql://a,b:5",
        "postgresql://,",
        "postgresql://h?dbname=%FF",
        "postgresql://h?dbname=%FF&dbname=x",
        "postgresql://h?%FF=x",
        "postgresql://h?requiressl=%31",
        "postgresql://[::1]x",
        "postgresql://[]",
        "postgres://[::1",
        "postgresql://h/a b",
        "postgresql://h?a=b=c",
        "postgresql://h?&",
        "postgresql://h?=x",
        "postgresql://%zz",
        "postgresql://h/%00",
    ];
    for s in cases {
        if let Err(e) = check_against_libpq(s) {
            panic!("{e}");
        }
    }
}

// ---- 4. keywords newer than libpq 15 ----

#[test]
fn newer_keywords_are_accepted() {
    let libpq_names: Vec<String> = libpq_keywords().into_iter().map(|i| i.keyword).collect();
    let newer = [
        ("sslnegotiation", "direct"),
        ("sslcertmode", "require"),
        ("require_auth", "scram-sha-256"),
        ("gssdelegation", "1"),
        ("load_balance_hosts", "random"),
    ];
    for (name, value) in newer {
        let k = keyword(name).expect("in our table");
        assert!(k.since >= 16, "{name} since {}", k.since);

        let kv = format!("host=h {name}={value}");
        let uri = format!("postgresql://h?{name}={value}");
        for s in [&kv, &uri] {
            let parsed = ConnInfo::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.get(name), Some(value), "{s}");
            assert_eq!(parsed.get("host"), Some("h"), "{s}");
            assert_eq!(
                ConnInfo::parse(&parsed.to_keyword_value()).as_ref(),
                Ok(&parsed)
            );
            assert_eq!(ConnInfo::parse(&parsed.to_uri()).as_ref(), Ok(&parsed));
        }

        // libpq 15 refuses them ("invalid connection option", "invalid URI query parameter");
        // a newer system libpq would take them.
        if !libpq_names.iter().any(|n| n == name) {
            assert_eq!(
                libpq_parse(&kv),
                Libpq::Refused(format!("invalid connection option \"{name}\"\n"))
            );
            assert_eq!(
                libpq_parse(&uri),
                Libpq::Refused(format!("invalid URI query parameter: \"{name}\"\n"))
            );
        }
    }
}

// ---- 5. the connection-string vectors, judged by libpq itself ----

/// The runner compares a `connection-string` reply by this crate's parser; here libpq parses
/// this crate's output for every such vector, and must read exactly the expected map.
#[test]
fn connection_string_vectors_are_what_libpq_reads() {
    use tea_pgcloud::vectors::{self, Answer};
    let files = vectors::embedded().expect("the vectors load");
    let mut checked = 0;
    for file in files.iter().filter(|f| f.kind == "connection-string") {
        for case in &file.cases {
            let Some(want) = case.expect.get("map") else {
                continue;
            };
            let want: Map = serde_json::from_value(want.clone()).expect("a map of strings");
            let answer =
                vectors::run_case(&file.kind, &case.env_strings(), &case.files, &case.input);
            let Answer::Result(reply) = answer else {
                panic!("{}: unsupported", file.id(case));
            };
            let dsn = reply["connection_string"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no connection_string: {reply}", file.id(case)));
            assert_eq!(
                libpq_parse(dsn),
                Libpq::Parsed(want),
                "{}: {dsn}",
                file.id(case)
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} cases");
}
