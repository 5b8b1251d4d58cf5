//! Text that reaches a terminal or a log: control characters escaped, foreign text bounded.
//!
//! A configuration file, an environment variable or a server can put any character into a
//! value that ends up in a message: a newline that forges a second `FILE:LINE:COL: ok` line,
//! an ESC sequence that rewrites the terminal, a right-to-left override that reorders what is
//! shown. Every text output of this crate (errors, warnings, the `plan`, `ping` and `resolve`
//! reports) passes its values through [`escape_controls`], so that one message is one line and
//! shows what it holds. JSON output needs none of this: JSON escapes control characters itself.
//!
//! Text this crate did not write (a server's error message, an SDK's error chain) is also cut
//! to a bounded length with [`bounded`] before it becomes part of a message.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How many characters of a server's or a service's text a message keeps.
pub const MAX_FOREIGN_TEXT: usize = 1000;

/// Whether `c` must not reach a terminal as is: C0 and C1 control characters, DEL, and the
/// Unicode bidirectional overrides and isolates (which reorder the text around them).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character written as an escape: `\n`, `\r`, `\t`, `\x1b`,
/// `\u{9b}`. Nothing is allocated when there is nothing to escape.
///
/// ```
/// use tea_pgcloud::text::escape_controls;
/// assert_eq!(escape_controls("sslmode"), "sslmode");
/// assert_eq!(escape_controls("a\nFAKE.yaml:9:9: ok"), "a\\nFAKE.yaml:9:9: ok");
/// assert_eq!(escape_controls("\u{1b}[2J"), "\\x1b[2J");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` cut to `max` characters, saying how much was left out.
///
/// ```
/// use tea_pgcloud::text::bounded;
/// assert_eq!(bounded("short", 10), "short");
/// assert_eq!(bounded("abcdefghij", 4), "abcd... (6 more characters)");
/// ```
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => {
            let rest = text[at..].chars().count();
            Cow::Owned(format!("{}... ({rest} more characters)", &text[..at]))
        }
    }
}

/// Foreign text (a server's message, an SDK's error) made fit for a message: trimmed, bounded
/// to [`MAX_FOREIGN_TEXT`] characters, with control characters escaped (so it stays one line).
pub fn foreign(text: &str) -> String {
    let first = text.trim();
    escape_controls(&bounded(first, MAX_FOREIGN_TEXT)).into_owned()
}

/// A `Display` adapter that escapes control characters of what it wraps.
///
/// ```
/// use tea_pgcloud::text::Escaped;
/// assert_eq!(Escaped("a\u{7}b").to_string(), "a\\x07b");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&escape_controls(self.0))
    }
}

/// Values that came from the environment (`${VAR}` expansion, a provider's environment
/// fallback, or a connection string that came from either): the README promises that no error
/// or warning ever quotes one, since any of them may be a secret.
///
/// Messages are built by code that does not know where a value came from; the boundary that
/// returns them (loading, planning, connecting, resolving credentials) passes them through
/// [`Tainted::scrub`], which replaces every quoted occurrence of such a value, and every bare
/// occurrence of one of at least [`Tainted::BARE_MIN`] characters.
///
/// ```
/// use tea_pgcloud::text::Tainted;
/// let mut tainted = Tainted::default();
/// tainted.add("hunter2-secret");
/// tainted.add("db");
/// assert_eq!(
///     tainted.scrub(r#"invalid sslmode value: "hunter2-secret""#),
///     "invalid sslmode value: <a value from the environment>"
/// );
/// assert_eq!(tainted.scrub("could not translate host name \"db\""), "could not translate host name <a value from the environment>");
/// assert_eq!(tainted.scrub("no db here"), "no db here");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tainted {
    /// Longest first, so that a value containing another is replaced whole.
    values: Vec<String>,
    /// Parts of a marked value (the keyword values of a connection string from the
    /// environment): replaced where quoted only, since they are often ordinary words
    /// (`verify-full`) that a message also uses as such.
    fragments: Vec<String>,
    /// Names built from marked values (lookup keys), replaced wherever they stand as a word.
    names: Vec<String>,
}

impl std::fmt::Debug for Tainted {
    // The values may be secrets: only their number is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tainted({} values)",
            self.values.len() + self.fragments.len() + self.names.len()
        )
    }
}

fn insert_longest_first(list: &mut Vec<String>, value: &str) {
    let at = list
        .iter()
        .position(|v| v.len() < value.len())
        .unwrap_or(list.len());
    list.insert(at, value.to_string());
}

/// What a scrubbed value is replaced by.
const SCRUBBED: &str = "<a value from the environment>";

impl Tainted {
    /// A bare (unquoted) occurrence is replaced only for values at least this long: shorter
    /// ones (`5432`, `db`) stand in ordinary words too, and messages quote values anyway.
    pub const BARE_MIN: usize = 8;

    /// Marks `value` as never to be quoted, and its trimmed form too (parsers trim what they
    /// quote). Empty values are ignored.
    pub fn add(&mut self, value: &str) {
        let trimmed = value.trim();
        if trimmed != value {
            self.add(trimmed);
        }
        if value.is_empty() || self.values.iter().any(|v| v == value) {
            return;
        }
        insert_longest_first(&mut self.values, value);
    }

    /// Marks a part of a marked value: replaced where it is quoted, whatever its length.
    pub fn add_fragment(&mut self, fragment: &str) {
        let trimmed = fragment.trim();
        if trimmed != fragment {
            self.add_fragment(trimmed);
        }
        if !fragment.is_empty() && !self.fragments.iter().any(|v| v == fragment) {
            insert_longest_first(&mut self.fragments, fragment);
        }
    }

    /// Marks a name built from a marked value (`PREFIXpassword` from a `prefix`): it is
    /// replaced wherever it stands as a whole word, whatever its length.
    pub fn add_name(&mut self, name: &str) {
        if !name.is_empty() && !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_string());
        }
    }

    /// Adds every value and name of `other`.
    pub fn extend(&mut self, other: &Tainted) {
        for value in &other.values {
            self.add(value);
        }
        for fragment in &other.fragments {
            self.add_fragment(fragment);
        }
        for name in &other.names {
            self.add_name(name);
        }
    }

    /// Whether `value` is marked.
    pub fn contains(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether some marked value stands within `text`.
    pub fn any_within(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }

    /// Whether nothing is marked.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.fragments.is_empty() && self.names.is_empty()
    }

    /// `message` with every marked value replaced: quoted (`"v"`, `` `v` ``, `'v'`) always,
    /// bare when the value is at least [`Tainted::BARE_MIN`] characters long.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.to_string();
        let quoted_forms = |out: &mut String, value: &str| {
            for quote in ['"', '`', '\''] {
                let quoted = format!("{quote}{value}{quote}");
                if out.contains(&quoted) {
                    *out = out.replace(&quoted, SCRUBBED);
                }
            }
        };
        for value in &self.values {
            quoted_forms(&mut out, value);
            if value.chars().count() >= Self::BARE_MIN && out.contains(value.as_str()) {
                out = out.replace(value.as_str(), SCRUBBED);
            }
        }
        for fragment in &self.fragments {
            quoted_forms(&mut out, fragment);
        }
        if !self.names.is_empty() {
            out = self.scrub_names(&out);
        }
        out
    }

    /// `text` with every marked name replaced where it stands as a word: not inside a longer
    /// run of letters, digits, `_`, `-`, `/`, `.` and `:` (the characters of variable and
    /// secret names).
    fn scrub_names(&self, text: &str) -> String {
        let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | ':');
        let mut names: Vec<&String> = self.names.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = text.to_string();
        for name in names {
            let mut result = String::with_capacity(out.len());
            let mut last = 0;
            for (at, _) in out.match_indices(name.as_str()) {
                if at < last {
                    continue;
                }
                let before = out[..at].chars().next_back();
                let after = out[at + name.len()..].chars().next();
                if before.is_some_and(word) || after.is_some_and(word) {
                    continue;
                }
                result.push_str(&out[last..at]);
                result.push_str(SCRUBBED);
                last = at + name.len();
            }
            result.push_str(&out[last..]);
            out = result;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_character_is_escaped() {
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            let shown = escape_controls(&format!("a{c}b")).into_owned();
            assert!(!shown.chars().any(char::is_control), "{c:?} -> {shown:?}");
            assert!(shown.starts_with('a') && shown.ends_with('b'), "{shown:?}");
        }
        assert_eq!(escape_controls("\u{9b}"), "\\u{9b}");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_controls("\0"), "\\x00");
        assert_eq!(escape_controls("\u{7f}"), "\\x7f");
    }

    #[test]
    fn text_without_controls_is_borrowed() {
        assert!(matches!(escape_controls("héllo wörld"), Cow::Borrowed(_)));
    }

    #[test]
    fn bounded_counts_characters_not_bytes() {
        assert_eq!(bounded("ééééé", 2), "éé... (3 more characters)");
        assert_eq!(bounded("ééééé", 5), "ééééé");
    }

    #[test]
    fn tainted_values_are_replaced_longest_first() {
        let mut t = Tainted::default();
        t.add("abc");
        t.add("abcdefghijk");
        assert_eq!(
            t.scrub("x \"abcdefghijk\" y `abc` z abc"),
            format!("x {SCRUBBED} y {SCRUBBED} z abc")
        );
        assert_eq!(format!("{t:?}"), "Tainted(2 values)");
        t.add_name("k9USER");
        assert_eq!(
            t.scrub("none of k9USER, k9USERS exists"),
            format!("none of {SCRUBBED}, k9USERS exists")
        );
    }

    #[test]
    fn foreign_text_is_one_bounded_line() {
        let long = format!("FATAL: {}\nsecond line", "x".repeat(5000));
        let shown = foreign(&long);
        assert!(
            shown.chars().count() < MAX_FOREIGN_TEXT + 40,
            "{}",
            shown.len()
        );
        assert!(!shown.contains('\n'));
    }
}
