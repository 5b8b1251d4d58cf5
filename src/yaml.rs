//! A small YAML tree that remembers where each node stands in the text.
//!
//! Built from yaml-rust2's event parser so that every error can name `FILE:LINE:COL`. Scalars
//! keep their text and whether they were quoted; what a plain scalar means (`5432`, `true`) is
//! decided by the code that reads it, after `${VAR}` expansion.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Error, ErrorKind, Location};

/// Line and column (both 1-based) of a node in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Mark {
    /// This mark as a [`Location`] in `file`.
    pub fn location(self, file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: self.line,
            col: self.col,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it starts.
    pub mark: Mark,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar: its text, and whether it was written plain (unquoted, not a block scalar).
    Scalar {
        /// The text after YAML unquoting.
        text: String,
        /// `true` for a plain scalar, whose text may mean null, a number or a boolean.
        plain: bool,
        /// `true` when `${VAR}` expansion produced the text: it may hold a secret, so error
        /// messages never quote it.
        expanded: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order. Keys are scalars (checked at parse time).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Whether `${VAR}` expansion produced this scalar's text.
    pub fn is_expanded(&self) -> bool {
        matches!(&self.value, Value::Scalar { expanded: true, .. })
    }

    /// The text of a scalar node.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether the node is YAML null (a plain `null`, `Null`, `NULL`, `~` or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true, .. } if is_null_text(text))
    }

    /// The entries of a mapping node.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON, resolving plain scalars by YAML 1.2's core schema (null, booleans,
    /// integers, floats; everything else a string).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Scalar {
                text, plain: false, ..
            } => serde_json::Value::String(text.clone()),
            Value::Scalar {
                text, plain: true, ..
            } => plain_scalar_json(text),
            Value::Seq(items) => items.iter().map(Node::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.as_scalar().unwrap_or_default().to_string(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn plain_scalar_json(text: &str) -> serde_json::Value {
    if is_null_text(text) {
        return serde_json::Value::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return true.into(),
        "false" | "False" | "FALSE" => return false.into(),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return i.into();
    }
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return n.into();
    }
    serde_json::Value::String(text.to_string())
}

/// Parses YAML text holding exactly one document into a [`Node`] tree.
///
/// `file` names the source in error messages. Anchors and aliases are resolved by copying;
/// duplicate keys and non-scalar keys are errors.
pub fn parse(text: &str, file: &str) -> Result<Node, Error> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        error: None,
        alias_nodes: 0,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let marker = e.marker();
        return Err(
            Error::new(ErrorKind::Syntax, format!("invalid YAML: {}", e.info()))
                .at_location(Some(from_marker(*marker).location(file))),
        );
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    let mut documents = builder.documents;
    match documents.len() {
        0 => Err(Error::new(ErrorKind::Syntax, "the YAML text is empty")
            .at_location(Some(Mark { line: 1, col: 1 }.location(file)))),
        1 => Ok(documents.remove(0)),
        _ => Err(Error::new(
            ErrorKind::Syntax,
            "expected one YAML document, found several (separated by ---)",
        )
        .at_location(Some(documents[1].mark.location(file)))),
    }
}

fn from_marker(marker: Marker) -> Mark {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Mark {
        line: marker.line(),
        col: marker.col() + 1,
    }
}

enum Frame {
    Seq(Mark, usize, Vec<Node>),
    Map(Mark, usize, Vec<(Node, Node)>, Option<Node>),
}

/// How many nodes aliases may copy in one document. Aliases are resolved by copying, so nested
/// aliases grow exponentially ("billion laughs"); a catalog needs a handful.
pub const MAX_ALIAS_NODES: usize = 10_000;

struct Builder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    documents: Vec<Node>,
    error: Option<Error>,
    alias_nodes: usize,
}

fn node_count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
    }
}

impl Builder<'_> {
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                None => {
                    if node.as_scalar().is_none() {
                        self.fail(node.mark, "mapping keys must be plain strings".to_string());
                        return;
                    }
                    if entries
                        .iter()
                        .any(|(k, _)| k.as_scalar() == node.as_scalar())
                    {
                        let key = node.as_scalar().unwrap_or_default().to_string();
                        let mark = node.mark;
                        self.fail(mark, format!("duplicate key `{key}`"));
                        return;
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }

    fn fail(&mut self, mark: Mark, message: String) {
        if self.error.is_none() {
            self.error = Some(
                Error::new(ErrorKind::Syntax, message).at_location(Some(mark.location(self.file))),
            );
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let mark = from_marker(marker);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, TScalarStyle::Plain);
                self.push_node(
                    Node {
                        value: Value::Scalar {
                            text,
                            plain,
                            expanded: false,
                        },
                        mark,
                    },
                    anchor,
                );
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((_, size)) if self.alias_nodes + size > MAX_ALIAS_NODES => self.fail(
                    mark,
                    format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                ),
                Some((node, size)) => {
                    self.alias_nodes += size;
                    let node = node.clone();
                    self.push_node(node, 0);
                }
                None => self.fail(mark, "alias to an unknown anchor".to_string()),
            },
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq(mark, anchor, Vec::new()))
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(mark, anchor, Vec::new(), None))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(mark, anchor, items)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            value: Value::Seq(items),
                            mark,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mark, anchor, entries, _)) = self.stack.pop() {
                    // A block mapping's start event stands after its first key: point at the key.
                    let mark = entries.first().map_or(mark, |(k, _)| k.mark.min(mark));
                    self.push_node(
                        Node {
                            value: Value::Map(entries),
                            mark,
                        },
                        anchor,
                    );
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_one_based() {
        let node = parse("a:\n  b: 'x'\n  c: 5\n", "f.yaml").expect("valid");
        let a = node.get("a").expect("a");
        let b = a.get("b").expect("b");
        assert_eq!(b.mark, Mark { line: 2, col: 6 });
        assert_eq!(b.as_scalar(), Some("x"));
        assert_eq!(a.get("c").map(Node::to_json), Some(serde_json::json!(5)));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n", "f.yaml").expect_err("duplicate");
        assert_eq!(err.to_string(), "f.yaml:2:1: duplicate key `a`");
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = parse("a: [1, 2\n", "f.yaml").expect_err("unterminated");
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert!(err.to_string().starts_with("f.yaml:"), "{err}");
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let node = parse("base: &b {x: 1}\nother: *b\n", "f.yaml").expect("valid");
        assert_eq!(
            node.get("other").map(Node::to_json),
            Some(serde_json::json!({"x": 1}))
        );
    }

    #[test]
    fn plain_scalars_resolve_by_the_core_schema() {
        let node = parse("[~, true, 'true', 12, 1.5, x, '', 0x1F]", "f.yaml").expect("valid");
        assert_eq!(
            node.to_json(),
            serde_json::json!([null, true, "true", 12, 1.5, "x", "", "0x1F"])
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = parse(&text, "bomb.yaml").expect_err("too many nodes");
        assert!(
            err.to_string().contains("aliases expand to more than"),
            "{err}"
        );
    }

    #[test]
    fn a_block_mapping_starts_at_its_first_key() {
        let node = parse("outer:\n  inner: 1\n", "f").expect("valid");
        assert_eq!(node.mark, Mark { line: 1, col: 1 });
        assert_eq!(
            node.get("outer").map(|n| n.mark),
            Some(Mark { line: 2, col: 3 })
        );
    }

    #[test]
    fn empty_text_and_several_documents_are_errors() {
        assert!(parse("", "f").is_err());
        assert!(parse("a: 1\n---\nb: 2\n", "f").is_err());
    }
}
