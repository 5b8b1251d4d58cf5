//! Unit tests of the parsers and renderers. Expected maps were checked against libpq 15's
//! `PQconninfoParse`; `tests/conninfo_libpq.rs` does that systematically.

use super::*;

/// Parses `input` and checks the result is exactly `expected`, in `KEYWORDS` order, and that
/// both renderings parse back to the same map.
#[track_caller]
fn check(input: &str, expected: &[(&str, &str)]) {
    let info = match ConnInfo::parse(input) {
        Ok(info) => info,
        Err(e) => panic!("{input:?}: unexpected error: {e}"),
    };
    let got: Vec<(&str, &str)> = info.iter().collect();
    assert_eq!(got, expected, "parsing {input:?}");
    let kv = info.to_keyword_value();
    assert_eq!(
        ConnInfo::parse(&kv).as_ref(),
        Ok(&info),
        "key=value form {kv:?}"
    );
    let uri = info.to_uri();
    assert_eq!(
        ConnInfo::parse(&uri).as_ref(),
        Ok(&info),
        "URI form {uri:?}"
    );
}

/// Parses `input`, expects an error of `kind` whose message is exactly `message`.
#[track_caller]
fn check_err(input: &str, kind: ConnInfoErrorKind, message: &str) {
    match ConnInfo::parse(input) {
        Ok(info) => panic!("{input:?}: expected an error, got {info:?}"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{input:?}: {e}");
            assert_eq!(e.message(), message, "{input:?}");
            assert_eq!(e.to_string(), message);
        }
    }
}

fn info(pairs: &[(&str, &str)]) -> ConnInfo {
    let mut info = ConnInfo::new();
    for (k, v) in pairs {
        info.set(k, *v).expect("known keyword");
    }
    info
}

// ---- key=value form ----

#[test]
fn plain_pairs_and_whitespace() {
    check("", &[]);
    check(" \t\n\x0b\x0c\r ", &[]);
    check(
        "host=localhost port=5432 dbname=app user=me",
        &[
            ("user", "me"),
            ("dbname", "app"),
            ("host", "localhost"),
            ("port", "5432"),
        ],
    );
    check(" host = 'x y' ", &[("host", "x y")]);
    check("host\t=\x0bdb", &[("host", "db")]);
    // Vertical tab and form feed are C-locale whitespace (Rust's is_ascii_whitespace misses \v).
    check("host=a\x0bport=1", &[("host", "a"), ("port", "1")]);
    // A no-break space is not.
    check("host=a\u{a0}b", &[("host", "a\u{a0}b")]);
}

#[test]
fn later_value_replaces_earlier() {
    check("host=a host=b", &[("host", "b")]);
    check("port=1 host=h port=2", &[("host", "h"), ("port", "2")]);
}

#[test]
fn empty_values_are_stored() {
    check("host=", &[("host", "")]);
    check("host='' port=''", &[("host", ""), ("port", "")]);
    // After "=", blanks are skipped: the value is the next word, even "port=5".
    check("host= port=5", &[("host", "port=5")]);
}

#[test]
fn unquoted_escapes() {
    check(r"host=a\ b", &[("host", "a b")]);
    check(r"password=a\'b\\c", &[("password", r"a'b\c")]);
    check(r"host=a\", &[("host", "a")]);
    check("host=it's", &[("host", "it's")]);
    check(
        "options=-c\\ search_path=x",
        &[("options", "-c search_path=x")],
    );
}

#[test]
fn quoting() {
    check(r"host='a b'", &[("host", "a b")]);
    check(r"password='it\'s'", &[("password", "it's")]);
    check(r"password='back\\slash'", &[("password", r"back\slash")]);
    check(r"host='\x'", &[("host", "x")]);
    check("host='tab\there'", &[("host", "tab\there")]);
    // Nothing needs to follow a closing quote.
    check("host='a'port=1", &[("host", "a"), ("port", "1")]);
    check("application_name='é ü'", &[("application_name", "é ü")]);
}

#[test]
fn socket_directories() {
    check(
        "host=/var/run/postgresql",
        &[("host", "/var/run/postgresql")],
    );
    check(
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
        &[("dbname", "db"), ("host", "/var/run/postgresql")],
    );
    assert_eq!(
        info(&[("host", "/var/run/postgresql"), ("dbname", "db")]).to_uri(),
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db"
    );
}

#[test]
fn requiressl_is_translated() {
    check("requiressl=1", &[("sslmode", "require")]);
    check("requiressl=10", &[("sslmode", "require")]);
    check("requiressl=0", &[("sslmode", "prefer")]);
    check("requiressl=", &[("sslmode", "prefer")]);
    check("sslmode=disable requiressl=1", &[("sslmode", "require")]);
    check(
        "postgresql://h?requiressl=%31",
        &[("host", "h"), ("sslmode", "require")],
    );
}

#[test]
fn newer_keywords_are_accepted() {
    check(
        "sslnegotiation=direct require_auth=scram-sha-256 load_balance_hosts=random \
         sslcertmode=require gssdelegation=1",
        &[
            ("sslnegotiation", "direct"),
            ("sslcertmode", "require"),
            ("require_auth", "scram-sha-256"),
            ("gssdelegation", "1"),
            ("load_balance_hosts", "random"),
        ],
    );
}

#[test]
fn passwords_with_special_characters() {
    let nasty = "p@:/?#&=%'\\ s  x";
    let expected = [("user", "u"), ("password", nasty)];
    check(r"password='p@:/?#&=%\'\\ s  x' user=u", &expected);
    check(
        "postgresql://u:p%40%3A%2F%3F%23%26%3D%25%27%5C%20s%20%20x@",
        &expected,
    );
    let m = info(&expected);
    assert_eq!(
        m.to_keyword_value(),
        r"user=u password='p@:/?#&=%\'\\ s  x'"
    );
    assert_eq!(
        m.to_uri(),
        "postgresql://u:p%40%3A%2F%3F%23%26%3D%25%27%5C%20s%20%20x@"
    );
    // A password with ":" in the URI: only the first ":" separates the user.
    check(
        "postgresql://u:a:b@h",
        &[("user", "u"), ("password", "a:b"), ("host", "h")],
    );
}

// ---- URI form ----

#[test]
fn uri_basics() {
    check("postgresql://", &[]);
    check("postgres://", &[]);
    check("postgresql://h", &[("host", "h")]);
    check(
        "postgres://u:p@h:5432/db?sslmode=require&host=z",
        &[
            ("user", "u"),
            ("password", "p"),
            ("dbname", "db"),
            ("host", "z"),
            ("port", "5432"),
            ("sslmode", "require"),
        ],
    );
    check("postgresql://h/a%20b", &[("dbname", "a b"), ("host", "h")]);
    // libpq 15 keeps raw spaces (libpq 18 trims them).
    check("postgresql://h/a b", &[("dbname", "a b"), ("host", "h")]);
    check(
        "postgresql://h?application_name=%20x%20",
        &[("host", "h"), ("application_name", " x ")],
    );
    // The path runs up to "?": slashes included.
    check("postgresql://h/a/b", &[("dbname", "a/b"), ("host", "h")]);
    check("postgresql://h?host=a&host=b", &[("host", "b")]);
    check("postgresql://h?host=", &[("host", "")]);
    check("postgresql://h?port=5&", &[("host", "h"), ("port", "5")]);
    check("postgresql://h?", &[("host", "h")]);
    // A port may hold anything but "/", "?" and ",".
    check(
        "postgresql://h:5432:6/d?port=7",
        &[("dbname", "d"), ("host", "h"), ("port", "7")],
    );
}

#[test]
fn uri_empty_parts_are_not_stored() {
    check("postgresql://@/", &[]);
    check("postgresql://:@:/", &[]);
    check("postgresql://u:@h", &[("user", "u"), ("host", "h")]);
    check("postgresql://:p@h", &[("password", "p"), ("host", "h")]);
    check("postgresql:///db", &[("dbname", "db")]);
    check("postgresql://h/", &[("host", "h")]);
    check("postgresql://h:/", &[("host", "h")]);
}

#[test]
fn uri_user_is_found_before_the_first_slash() {
    // The look-ahead for "@" stops at "/" only, not at "?".
    check(
        "postgresql://h?x=a:b@c",
        &[("user", "h?x=a"), ("password", "b"), ("host", "c")],
    );
    // No "@" before "/": no user part at all, the "@" ends up in the path.
    check(
        "postgresql://u:p/x@y",
        &[("dbname", "x@y"), ("host", "u"), ("port", "p")],
    );
    check("postgresql://[::1]@", &[("user", "["), ("password", ":1]")]);
}

#[test]
fn uri_ipv6() {
    check("postgresql://[::1]", &[("host", "::1")]);
    check(
        "postgresql://[::1]:5433/db",
        &[("dbname", "db"), ("host", "::1"), ("port", "5433")],
    );
    check("postgresql://[fe80::1%25eth0]", &[("host", "fe80::1%eth0")]);
    check(
        "postgresql://[2001:db8::7]?port=1",
        &[("host", "2001:db8::7"), ("port", "1")],
    );
    // Inside brackets anything but "]" goes, commas included.
    check("postgresql://[a,b]", &[("host", "a,b")]);
    assert_eq!(
        info(&[("host", "::1"), ("port", "5432")]).to_uri(),
        "postgresql://[::1]:5432"
    );
}

#[test]
fn uri_multiple_hosts() {
    check(
        "postgresql://a:5432,b:5433/db",
        &[("dbname", "db"), ("host", "a,b"), ("port", "5432,5433")],
    );
    check(
        "postgresql://[::1]:5433,[fe80::1%25eth0],h3:5/db",
        &[
            ("dbname", "db"),
            ("host", "::1,fe80::1%eth0,h3"),
            ("port", "5433,,5"),
        ],
    );
    // Ports accumulate with a comma per host, given or not.
    check("postgresql://a,b:5", &[("host", "a,b"), ("port", ",5")]);
    check("postgresql://a:1,b", &[("host", "a,b"), ("port", "1,")]);
    check("postgresql://a,b", &[("host", "a,b"), ("port", ",")]);
    check("postgresql://,", &[("host", ","), ("port", ",")]);
    assert_eq!(
        info(&[("host", "a,b"), ("port", "5432,5433")]).to_uri(),
        "postgresql://a:5432,b:5433"
    );
    assert_eq!(
        info(&[("host", "a,b"), ("port", ",5")]).to_uri(),
        "postgresql://a,b:5"
    );
}

#[test]
fn uri_query_ssl_true() {
    check(
        "postgresql://h?ssl=true",
        &[("host", "h"), ("sslmode", "require")],
    );
    check(
        "postgresql://h?ssl=%74rue",
        &[("host", "h"), ("sslmode", "require")],
    );
    check(
        "postgresql://h?sslmode=disable&ssl=true",
        &[("host", "h"), ("sslmode", "require")],
    );
}

#[test]
fn uri_non_utf8_values() {
    let e = ConnInfo::parse("postgresql://h?dbname=%FF").expect_err("not UTF-8");
    assert_eq!(e.kind(), ConnInfoErrorKind::InvalidUtf8);
    assert_eq!(
        e.message(),
        "the value of \"dbname\" is not valid UTF-8 after percent-decoding"
    );
    // A later value replaces the bad one, as in libpq.
    check(
        "postgresql://h?dbname=%FF&dbname=%C3%A9",
        &[("dbname", "é"), ("host", "h")],
    );
}

// ---- errors ----

#[test]
fn keyword_value_errors() {
    use ConnInfoErrorKind as K;
    check_err(
        "host",
        K::MissingEquals,
        r#"missing "=" after "host" in connection info string"#,
    );
    check_err(
        "host=a b",
        K::MissingEquals,
        r#"missing "=" after "b" in connection info string"#,
    );
    check_err(
        "'",
        K::MissingEquals,
        r#"missing "=" after "'" in connection info string"#,
    );
    check_err(
        "foo=bar",
        K::InvalidOption,
        r#"invalid connection option "foo""#,
    );
    check_err("=x", K::InvalidOption, r#"invalid connection option """#);
    check_err(
        "'host'=x",
        K::InvalidOption,
        r#"invalid connection option "'host'""#,
    );
    check_err(
        "host='a",
        K::UnterminatedQuote,
        "unterminated quoted string in connection info string",
    );
    check_err(
        r"host='a\'",
        K::UnterminatedQuote,
        "unterminated quoted string in connection info string",
    );
    check_err(
        "host=a\0 port=1",
        K::NulCharacter,
        "connection info string contains a NUL character",
    );
}

#[test]
fn uri_errors() {
    use ConnInfoErrorKind as K;
    check_err(
        "postgresql://%zz",
        K::InvalidPercentEncoding,
        r#"invalid percent-encoded token: "%zz""#,
    );
    check_err(
        "postgresql://h?port=5%",
        K::InvalidPercentEncoding,
        r#"invalid percent-encoded token: "5%""#,
    );
    check_err(
        "postgresql://h?port=%4",
        K::InvalidPercentEncoding,
        r#"invalid percent-encoded token: "%4""#,
    );
    check_err(
        "postgresql://h/%00",
        K::ForbiddenPercentNul,
        r#"forbidden value %00 in percent-encoded value: "%00""#,
    );
    check_err(
        "postgres://[::1",
        K::UnterminatedIpv6,
        r#"end of string reached when looking for matching "]" in IPv6 host address in URI"#,
    );
    check_err(
        "postgresql://[]",
        K::EmptyIpv6,
        "IPv6 host address may not be empty in URI",
    );
    check_err(
        "postgresql://[::1]x",
        K::UnexpectedCharacter,
        r#"unexpected character "x" at position 19 in URI (expected ":" or "/")"#,
    );
    check_err(
        "postgresql://h?a=b=c",
        K::ExtraSeparator,
        r#"extra key/value separator "=" in URI query parameter: "a""#,
    );
    check_err(
        "postgresql://h?&",
        K::MissingSeparator,
        r#"missing key/value separator "=" in URI query parameter: """#,
    );
    check_err(
        "postgresql://h/db/x?a",
        K::MissingSeparator,
        r#"missing key/value separator "=" in URI query parameter: "a""#,
    );
    check_err(
        "postgresql://h?=x",
        K::InvalidQueryParameter,
        r#"invalid URI query parameter: """#,
    );
    check_err(
        "postgresql://h?%41pplication_name=x",
        K::InvalidQueryParameter,
        r#"invalid URI query parameter: "Application_name""#,
    );
    check_err(
        "postgresql://h?ssl=false",
        K::InvalidQueryParameter,
        r#"invalid URI query parameter: "ssl""#,
    );
    check_err(
        "postgresql://h?a=%FF",
        K::InvalidQueryParameter,
        "invalid URI query parameter: \"a\"",
    );
    let e = ConnInfo::parse_uri("host=h").expect_err("not a URI");
    assert_eq!(e.kind(), K::NotUri);
    assert_eq!(
        e.message(),
        r#"connection URI must start with "postgresql://" or "postgres://""#
    );
    // parse_keyword_value reads a URI as a (bad) keyword.
    let e = ConnInfo::parse_keyword_value("postgresql://h").expect_err("no =");
    assert_eq!(e.kind(), K::MissingEquals);
}

#[test]
fn errors_never_show_secrets() {
    use ConnInfoErrorKind as K;
    let secret = "hunter2";
    let cases = [
        // An unquoted password with a space: what follows may be part of it.
        ("password=abc hunter2", K::MissingEquals),
        ("password=abc hunter2=x", K::InvalidOption),
        ("sslpassword=abc hunter2", K::MissingEquals),
        ("postgresql://u:hunter2%zz@h", K::InvalidPercentEncoding),
        ("postgresql://u:hunter2%00@h", K::ForbiddenPercentNul),
        (
            "postgresql://h?password=hunter2%zz",
            K::InvalidPercentEncoding,
        ),
        (
            "postgresql://h?sslpassword=hunter2%00",
            K::ForbiddenPercentNul,
        ),
        ("postgresql://h?password=a&hunter2", K::MissingSeparator),
        (
            "postgresql://h?password=a&hunter2=b",
            K::InvalidQueryParameter,
        ),
        ("postgresql://h?password=a&hunter2=b=c", K::ExtraSeparator),
        // A whole "user:password@host" passed without the scheme.
        ("me:hunter2@db.example.com/app", K::MissingEquals),
        // A password with "/" breaks the user part; the "@" fragment is not quoted.
        ("postgresql://u:pa/hunter2%zz@h", K::InvalidPercentEncoding),
        // A long fragment is described, not quoted.
        (
            "postgresql://h?application_name=hunter2hunter2hunter2hunter2hunter2hunter2hunter2%zz",
            K::InvalidPercentEncoding,
        ),
        ("postgresql://[hunter2", K::UnterminatedIpv6),
        ("postgresql://[hunter2]x", K::UnexpectedCharacter),
    ];
    for (input, kind) in cases {
        let e = ConnInfo::parse(input).expect_err(input);
        assert_eq!(e.kind(), kind, "{input}: {e}");
        assert!(!e.message().contains(secret), "{input}: {e}");
        assert!(!e.message().contains(input), "{input}: {e}");
    }
    let e = ConnInfo::parse("password=abc hunter2").expect_err("no =");
    assert_eq!(
        e.message(),
        r#"missing "=" after a fragment that follows the value of "password" (not shown) in connection info string"#
    );
    let e = ConnInfo::parse("postgresql://u:hunter2%zz@h").expect_err("bad %");
    assert_eq!(
        e.message(),
        "invalid percent-encoded token in the URI password"
    );
    let e = ConnInfo::parse("postgresql://h?sslpassword=x%zz").expect_err("bad %");
    assert_eq!(
        e.message(),
        r#"invalid percent-encoded token in the value of URI query parameter "sslpassword""#
    );
}

// ---- the map API ----

#[test]
fn map_api() {
    let mut m = ConnInfo::new();
    assert!(m.is_empty());
    m.set("port", "5432").expect("known");
    m.set("host", "h").expect("known");
    m.set("password", "hunter2").expect("known");
    assert_eq!(m.len(), 3);
    assert_eq!(m.get("host"), Some("h"));
    assert_eq!(m.get("nope"), None);
    assert_eq!(
        m.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["password", "host", "port"]
    );
    let e = m.set("nope", "x").expect_err("unknown");
    assert_eq!(e.kind(), ConnInfoErrorKind::InvalidOption);
    assert_eq!(e.message(), r#"invalid connection option "nope""#);
    let e = m.set("host", "a\0b").expect_err("NUL");
    assert_eq!(e.kind(), ConnInfoErrorKind::NulCharacter);
    assert_eq!(m.get("host"), Some("h"));

    let debug = format!("{m:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_eq!(
        debug,
        r#"ConnInfo {"password": "<redacted>", "host": "h", "port": "5432"}"#
    );
    let public = m.without_secrets();
    assert_eq!(public.get("password"), None);
    assert_eq!(public.len(), 2);

    assert_eq!(m.remove("password").as_deref(), Some("hunter2"));
    assert_eq!(m.remove("password"), None);
    assert_eq!(m.remove("nope"), None);
    assert_eq!("host=h port=5432".parse::<ConnInfo>(), Ok(m));
}

#[test]
fn keyword_table() {
    assert_eq!(KEYWORDS.len(), 41);
    let secrets: Vec<&str> = KEYWORDS
        .iter()
        .filter(|k| k.secret)
        .map(|k| k.name)
        .collect();
    assert_eq!(secrets, ["password", "sslpassword"]);
    assert_eq!(keyword("sslnegotiation").map(|k| k.since), Some(17));
    assert_eq!(keyword("host").and_then(|k| k.envvar), Some("PGHOST"));
    assert_eq!(keyword("requiressl"), None);
    assert_eq!(keyword("nope"), None);
    for (i, k) in KEYWORDS.iter().enumerate() {
        assert_eq!(keywords::index_of(k.name.as_bytes()), Some(i));
    }
}

// ---- rendering ----

#[test]
fn keyword_value_rendering() {
    let m = info(&[
        ("host", "h"),
        ("dbname", ""),
        ("options", "-c a=b"),
        ("application_name", r"it's\x"),
        ("user", "a=b"),
    ]);
    assert_eq!(
        m.to_keyword_value(),
        r"user=a=b dbname='' host=h options='-c a=b' application_name='it\'s\\x'"
    );
    assert_eq!(ConnInfo::new().to_keyword_value(), "");
}

#[test]
fn uri_rendering() {
    assert_eq!(ConnInfo::new().to_uri(), "postgresql://");
    assert_eq!(
        info(&[
            ("user", "me"),
            ("host", "db.example.com"),
            ("port", "5432"),
            ("dbname", "app"),
            ("sslmode", "verify-full"),
        ])
        .to_uri(),
        "postgresql://me@db.example.com:5432/app?sslmode=verify-full"
    );
    // An empty host, a port without a host, a port list that does not match, an empty dbname
    // or user: query parameters.
    assert_eq!(
        info(&[("host", ""), ("dbname", "")]).to_uri(),
        "postgresql:///?dbname=&host="
    );
    assert_eq!(info(&[("port", "5")]).to_uri(), "postgresql:///?port=5");
    assert_eq!(
        info(&[("host", "a,b"), ("port", "5")]).to_uri(),
        "postgresql:///?host=a%2Cb&port=5"
    );
    assert_eq!(
        info(&[("host", "a,b")]).to_uri(),
        "postgresql:///?host=a%2Cb"
    );
    assert_eq!(
        info(&[("user", ""), ("password", "p")]).to_uri(),
        "postgresql://:p@/?user="
    );
    assert_eq!(
        info(&[("host", "h"), ("port", "")]).to_uri(),
        "postgresql:///?host=h&port="
    );
    assert_eq!(
        info(&[("host", "[x]"), ("options", "-c x=y")]).to_uri(),
        "postgresql://%5Bx%5D/?options=-c%20x%3Dy"
    );
}

#[test]
fn roundtrip_odd_values() {
    let odd = [
        "",
        " ",
        "'",
        "\\",
        "a b",
        "=",
        "@",
        ":",
        "/",
        "?",
        "#",
        "&",
        "%",
        ",",
        "[",
        "]",
        "[::1]",
        "::1",
        ",,",
        "a,",
        ",a",
        "é",
        "\u{1F600}",
        "\t\n",
        "\x0b\x0c",
    ];
    for v in odd {
        for w in odd {
            let m = info(&[
                ("user", v),
                ("password", w),
                ("host", v),
                ("port", w),
                ("dbname", v),
                ("options", w),
            ]);
            assert_eq!(ConnInfo::parse(&m.to_keyword_value()), Ok(m.clone()));
            assert_eq!(
                ConnInfo::parse(&m.to_uri()),
                Ok(m.clone()),
                "{}",
                m.to_uri()
            );
        }
    }
}
