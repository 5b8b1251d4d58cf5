//! A small YAML tree that remembers where each node stands in the text.
//!
//! Built from yaml-rust2's event parser so that every error can name `FILE:LINE:COL`. Scalars
//! keep their text and whether they were quoted; what a plain scalar means (`5432`, `true`) is
//! decided by the code that reads it, after `${VAR}` expansion.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

use crate::error::{ConfigError, ConfigErrorKind, Location};

/// Line and column (both 1-based) of a node in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Mark {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Mark {
    /// This mark as a [`Location`] in `file`.
    pub(crate) fn location(self, file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: self.line,
            col: self.col,
        }
    }
}

/// A YAML node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it starts.
    pub mark: Mark,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
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
    pub(crate) fn is_expanded(&self) -> bool {
        matches!(&self.value, Value::Scalar { expanded: true, .. })
    }

    /// The text of a scalar node.
    pub(crate) fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether the node is YAML null (a plain `null`, `Null`, `NULL`, `~` or nothing).
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true, .. } if is_null_text(text))
    }

    /// The entries of a mapping node.
    pub(crate) fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping node.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name for the node's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as JSON, resolving plain scalars by YAML 1.2's core schema (null, booleans,
    /// integers, floats; everything else a string).
    pub(crate) fn to_json(&self) -> serde_json::Value {
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

/// How deeply collections may nest: a sequence or mapping stands inside at most
/// `MAX_DEPTH - 1` others (the root collection is level 1).
///
/// The tree is built without recursion, but what reads it afterwards (cloning, dropping,
/// `${VAR}` expansion, `Node::to_json`) recurses once per level; bounding the depth where the
/// text is parsed bounds all of them. A TEA agent file rarely nests more than a dozen levels;
/// serde_json's parser stops at the same 128. An alias counts with what it copies: a copy that
/// would stand deeper is refused like text that deep. The error points at the collection (or
/// alias) past the limit, except past 255 levels of flow collections (`[[[...`), where it points
/// at the 256th, where yaml-rust2 stops. The limit is fixed.
pub const MAX_DEPTH: usize = 128;

// yaml-rust2 refuses flow collections nested more than 255 deep ("recursion limit exceeded")
// before it reports any event of them. Such text is past this limit too, and is reported so.
const _: () = assert!(MAX_DEPTH < 256);
const FLOW_LEVEL_ERROR: &str = "recursion limit exceeded";

/// How many nodes aliases may copy in one document. Aliases are resolved by copying, so nested
/// aliases grow exponentially ("billion laughs"); a catalog needs a handful.
pub const MAX_ALIAS_NODES: usize = 10_000;

/// Parses YAML text holding exactly one document into a [`Node`] tree.
///
/// `file` names the source in error messages. Aliases are resolved by copying (within
/// [`MAX_ALIAS_NODES`]); collections nest at most [`MAX_DEPTH`] levels; duplicate keys and
/// non-scalar keys are errors. Time and memory are linear in the text plus the nodes aliases
/// copy.
pub(crate) fn parse(text: &str, file: &str) -> Result<Node, ConfigError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::new(file);
    // Events one by one: yaml-rust2's `Parser::load` recurses once per nesting level, and
    // stopping at the first error also stops reading text past it.
    loop {
        let (event, marker) = parser.next_token().map_err(|e| scan_error(&e, file))?;
        if event == Event::StreamEnd {
            return builder.finish();
        }
        builder.event(event, from_marker(marker))?;
    }
}

fn scan_error(error: &ScanError, file: &str) -> ConfigError {
    let message = if error.info() == FLOW_LEVEL_ERROR {
        too_deep()
    } else {
        format!("invalid YAML: {}", error.info())
    };
    ConfigError::new(ConfigErrorKind::Syntax, message)
        .at_location(Some(from_marker(*error.marker()).location(file)))
}

fn too_deep() -> String {
    format!("collections nested deeper than {MAX_DEPTH} levels")
}

fn located(file: &str, mark: Mark, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::Syntax, message).at_location(Some(mark.location(file)))
}

fn from_marker(marker: Marker) -> Mark {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Mark {
        line: marker.line(),
        col: marker.col() + 1,
    }
}

/// A collection being built.
struct Frame {
    mark: Mark,
    anchor: usize,
    /// Its index in [`Builder::places`].
    place: usize,
    /// Nodes in its subtree so far, itself included.
    size: usize,
    /// Levels of collections in its subtree so far, its own included.
    height: usize,
    items: Items,
}

enum Items {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        /// The hashes of the keys of `entries` (see [`is_duplicate`]).
        keys: HashSet<u64>,
        /// A key whose value is still to come.
        key: Option<Node>,
    },
}

impl Frame {
    /// The index the next value will have among the items (or the mapping's entries).
    fn next_index(&self) -> usize {
        match &self.items {
            Items::Seq(items) => items.len(),
            Items::Map { entries, .. } => entries.len(),
        }
    }
}

/// Where a collection stands in the document: the index of its parent's place (none for the
/// root) and its index among the parent's items or entries.
#[derive(Clone, Copy)]
struct Place {
    parent: Option<usize>,
    index: usize,
}

/// What an alias needs of an anchored node. A collection is not copied when it is anchored
/// (most anchors are never aliased, and nested anchors would copy their text once per level):
/// its place is kept, and aliases of it are copied from the finished tree.
struct Anchor {
    size: usize,
    height: usize,
    body: AnchorBody,
}

enum AnchorBody {
    /// Scalars are copied at once: an alias may be a mapping key, checked as it comes.
    Scalar(Node),
    /// The place of the collection.
    Collection(usize),
}

/// An alias of a collection, filled in when the document is complete: the placeholder at
/// `index` in the collection at place `parent` becomes a copy of the collection at `source`.
struct PendingCopy {
    parent: usize,
    index: usize,
    source: usize,
}

struct Builder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    /// Every collection's [`Place`], in the order they open.
    places: Vec<Place>,
    anchors: HashMap<usize, Anchor>,
    /// In document order: a copy's source holds only aliases that come before it.
    copies: Vec<PendingCopy>,
    alias_nodes: usize,
    document: Option<Node>,
    /// Hashes mapping keys for [`is_duplicate`].
    hasher: RandomState,
}

impl<'a> Builder<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            stack: Vec::new(),
            places: Vec::new(),
            anchors: HashMap::new(),
            copies: Vec::new(),
            alias_nodes: 0,
            document: None,
            hasher: RandomState::new(),
        }
    }

    fn event(&mut self, event: Event, mark: Mark) -> Result<(), ConfigError> {
        match event {
            Event::DocumentStart if self.document.is_some() => Err(located(
                self.file,
                mark,
                "expected one YAML document, found several (separated by ---)",
            )),
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    value: Value::Scalar {
                        text,
                        plain: matches!(style, TScalarStyle::Plain),
                        expanded: false,
                    },
                    mark,
                };
                if anchor > 0 {
                    let body = AnchorBody::Scalar(node.clone());
                    let anchor_info = Anchor {
                        size: 1,
                        height: 0,
                        body,
                    };
                    self.anchors.insert(anchor, anchor_info);
                }
                self.push(node, 1, 0, mark)
            }
            Event::Alias(id) => self.alias(id, mark),
            Event::SequenceStart(anchor, _) => self.open(mark, anchor, Items::Seq(Vec::new())),
            Event::MappingStart(anchor, _) => {
                let items = Items::Map {
                    entries: Vec::new(),
                    keys: HashSet::new(),
                    key: None,
                };
                self.open(mark, anchor, items)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => Ok(()),
        }
    }

    fn open(&mut self, mark: Mark, anchor: usize, items: Items) -> Result<(), ConfigError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(located(self.file, mark, too_deep()));
        }
        let place = Place {
            parent: self.stack.last().map(|f| f.place),
            index: self.stack.last().map_or(0, Frame::next_index),
        };
        self.places.push(place);
        self.stack.push(Frame {
            mark,
            anchor,
            place: self.places.len() - 1,
            size: 1,
            height: 1,
            items,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConfigError> {
        // yaml-rust2 pairs every end with its start.
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (value, mark) = match frame.items {
            Items::Seq(items) => (Value::Seq(items), frame.mark),
            Items::Map { entries, .. } => {
                // A block mapping's start event stands after its first key: point at the key.
                let mark = entries
                    .first()
                    .map_or(frame.mark, |(k, _)| k.mark.min(frame.mark));
                (Value::Map(entries), mark)
            }
        };
        if frame.anchor > 0 {
            let anchor = Anchor {
                size: frame.size,
                height: frame.height,
                body: AnchorBody::Collection(frame.place),
            };
            self.anchors.insert(frame.anchor, anchor);
        }
        self.push(Node { value, mark }, frame.size, frame.height, mark)
    }

    fn alias(&mut self, id: usize, mark: Mark) -> Result<(), ConfigError> {
        // yaml-rust2 refuses a name never anchored; what is left is an alias inside its own
        // anchor's node.
        let Some(anchor) = self.anchors.get(&id) else {
            return Err(located(
                self.file,
                mark,
                "alias to an anchor whose node is not complete (a node cannot hold an alias of itself)",
            ));
        };
        if self.stack.len() + anchor.height > MAX_DEPTH {
            return Err(located(self.file, mark, too_deep()));
        }
        if self.alias_nodes + anchor.size > MAX_ALIAS_NODES {
            return Err(located(
                self.file,
                mark,
                format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
            ));
        }
        self.alias_nodes += anchor.size;
        let (size, height) = (anchor.size, anchor.height);
        let node = match &anchor.body {
            AnchorBody::Scalar(node) => node.clone(),
            AnchorBody::Collection(source) => {
                // The root of a document cannot be an alias: its anchor would stand in an
                // earlier document, and a second document is refused as it starts.
                let Some(parent) = self.stack.last() else {
                    return Err(located(self.file, mark, "an alias cannot be the document"));
                };
                self.copies.push(PendingCopy {
                    parent: parent.place,
                    index: parent.next_index(),
                    source: *source,
                });
                // A placeholder, replaced by the copy in `finish`; not a scalar, so that it
                // is refused as a mapping key.
                Node {
                    value: Value::Seq(Vec::new()),
                    mark,
                }
            }
        };
        self.push(node, size, height, mark)
    }

    /// Adds a finished node, of `size` nodes and `height` levels, to the open collection;
    /// `at` is where errors about it point.
    fn push(
        &mut self,
        node: Node,
        size: usize,
        height: usize,
        at: Mark,
    ) -> Result<(), ConfigError> {
        let (file, hasher) = (self.file, &self.hasher);
        let Some(frame) = self.stack.last_mut() else {
            self.document = Some(node);
            return Ok(());
        };
        frame.size += size;
        frame.height = frame.height.max(height + 1);
        match &mut frame.items {
            Items::Seq(items) => items.push(node),
            Items::Map { entries, keys, key } => match key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let Some(text) = node.as_scalar() else {
                        return Err(located(file, at, "mapping keys must be plain strings"));
                    };
                    if is_duplicate(entries, keys, hasher, text) {
                        return Err(located(file, at, format!("duplicate key `{text}`")));
                    }
                    *key = Some(node);
                }
            },
        }
        Ok(())
    }

    /// The document, with every alias of a collection replaced by its copy.
    fn finish(mut self) -> Result<Node, ConfigError> {
        let Some(mut root) = self.document.take() else {
            return Err(located(
                self.file,
                Mark { line: 1, col: 1 },
                "the YAML text is empty",
            ));
        };
        for copy in &self.copies {
            let source = path(&self.places, copy.source)
                .iter()
                .try_fold(&root, |node, &i| child(node, i))
                .cloned();
            let slot = path(&self.places, copy.parent)
                .iter()
                .chain([&copy.index])
                .try_fold(&mut root, |node, &i| child_mut(node, i));
            match (source, slot) {
                (Some(source), Some(slot)) => *slot = source,
                // Every place was recorded from the tree being built; this cannot happen.
                _ => return Err(located(self.file, root.mark, "an alias lost its place")),
            }
        }
        Ok(root)
    }
}

/// How many entries a mapping holds before its keys are indexed: below, a scan is as quick and
/// spares most mappings a hash set.
const INDEXED_FROM: usize = 8;

/// Whether `key` is already a key of `entries`; `hashes` holds their hashes once there are
/// [`INDEXED_FROM`] of them.
///
/// A set of hashes needs no copy of the keys. A new hash means a new key; a known one is
/// confirmed against the keys themselves, so a collision of the (randomly keyed) 64-bit hash
/// costs one scan, never a wrong answer.
fn is_duplicate(
    entries: &[(Node, Node)],
    hashes: &mut HashSet<u64>,
    hasher: &RandomState,
    key: &str,
) -> bool {
    let scan = || entries.iter().any(|(k, _)| k.as_scalar() == Some(key));
    if entries.len() < INDEXED_FROM {
        return scan();
    }
    if hashes.is_empty() {
        let written = entries.iter().filter_map(|(k, _)| k.as_scalar());
        hashes.extend(written.map(|k| hasher.hash_one(k)));
    }
    !hashes.insert(hasher.hash_one(key)) && scan()
}

/// The indices that lead from the root to the collection at `place`.
fn path(places: &[Place], place: usize) -> Vec<usize> {
    let mut path = Vec::new();
    let mut at = places.get(place);
    while let Some(Place {
        parent: Some(parent),
        index,
    }) = at
    {
        path.push(*index);
        at = places.get(*parent);
    }
    path.reverse();
    path
}

fn child(node: &Node, index: usize) -> Option<&Node> {
    match &node.value {
        Value::Seq(items) => items.get(index),
        Value::Map(entries) => entries.get(index).map(|(_, v)| v),
        Value::Scalar { .. } => None,
    }
}

fn child_mut(node: &mut Node, index: usize) -> Option<&mut Node> {
    match &mut node.value {
        Value::Seq(items) => items.get_mut(index),
        Value::Map(entries) => entries.get_mut(index).map(|(_, v)| v),
        Value::Scalar { .. } => None,
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
        assert_eq!(err.kind(), ConfigErrorKind::Syntax);
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

    /// Text holding `depth` nested collections of one form.
    fn nested(form: &str, depth: usize) -> String {
        match form {
            "block sequences" => format!("{}v\n", "- ".repeat(depth)),
            "block mappings" => {
                let mut text = String::new();
                for level in 0..depth {
                    text.push_str(&" ".repeat(level));
                    text.push_str("k:\n");
                }
                text + &" ".repeat(depth) + "v\n"
            }
            "flow sequences" => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            "flow mappings" => format!("{}x{}", "{a: ".repeat(depth), "}".repeat(depth)),
            "block then flow" => format!(
                "{}{}x{}",
                "- ".repeat(depth / 2),
                "{a: ".repeat(depth - depth / 2),
                "}".repeat(depth - depth / 2)
            ),
            _ => unreachable!("unknown form {form}"),
        }
    }

    const FORMS: [&str; 5] = [
        "block sequences",
        "block mappings",
        "flow sequences",
        "flow mappings",
        "block then flow",
    ];

    fn assert_too_deep(result: Result<Node, ConfigError>, what: &str) -> Location {
        // Not `expect_err`: the tree's `Debug` would be megabytes.
        let Err(err) = result else {
            panic!("{what}: loaded");
        };
        assert_eq!(err.kind(), ConfigErrorKind::Syntax, "{what}: {err}");
        assert!(
            err.message()
                .contains(&format!("nested deeper than {MAX_DEPTH} levels")),
            "{what}: {err}"
        );
        err.location().cloned().expect("a location")
    }

    #[test]
    fn every_nesting_form_loads_at_the_limit_and_not_past_it() {
        for form in FORMS {
            let at_limit = parse(&nested(form, MAX_DEPTH), "f.yaml");
            assert!(at_limit.is_ok(), "{form}: {:?}", at_limit.err());
            assert_too_deep(parse(&nested(form, MAX_DEPTH + 1), "f.yaml"), form);
        }
    }

    #[test]
    fn the_first_collection_past_the_limit_is_named() {
        let at = assert_too_deep(parse(&nested("block sequences", 500), "f"), "seq");
        assert_eq!((at.line, at.col), (1, 2 * MAX_DEPTH + 1));
        let at = assert_too_deep(parse(&nested("flow mappings", MAX_DEPTH + 1), "f"), "map");
        assert_eq!((at.line, at.col), (1, 4 * MAX_DEPTH + 1));
        let at = assert_too_deep(parse(&nested("block mappings", 300), "f"), "block map");
        assert_eq!(at.line, MAX_DEPTH + 1);
    }

    #[test]
    fn very_deep_nesting_is_refused_without_exhausting_the_stack() {
        for form in ["block sequences", "flow sequences", "block then flow"] {
            assert_too_deep(parse(&nested(form, 100_000), "f.yaml"), form);
        }
    }

    #[test]
    fn an_alias_cannot_nest_its_copy_past_the_limit() {
        let half = MAX_DEPTH / 2;
        let deep = |inner: &str| format!("{}{inner}{}", "[".repeat(half), "]".repeat(half));
        // The root mapping is one level, the anchor `half`, the alias's place `half` more.
        let fits = format!(
            "a: &d {}\nb: {}\n",
            deep("x"),
            "[".repeat(half - 1) + "*d" + &"]".repeat(half - 1)
        );
        assert!(parse(&fits, "f").is_ok(), "{fits}");
        let text = format!("a: &d {}\nb: {}\n", deep("x"), deep("*d"));
        let at = assert_too_deep(parse(&text, "f"), "alias");
        assert_eq!(at.line, 2);
    }

    #[test]
    fn aliases_copy_nested_anchors_and_the_aliases_inside_them() {
        let node = parse(
            "a: &a {x: 1}\nb: &b [*a, {y: *a}, &s s]\nc: *b\nd: *s\n",
            "f",
        )
        .expect("valid");
        let b = serde_json::json!([{"x": 1}, {"y": {"x": 1}}, "s"]);
        assert_eq!(node.get("b").map(Node::to_json), Some(b.clone()));
        assert_eq!(node.get("c").map(Node::to_json), Some(b));
        assert_eq!(node.get("d").and_then(Node::as_scalar), Some("s"));
        // A copy keeps the marks of what it copies.
        assert_eq!(node.get("c").map(|n| n.mark), node.get("b").map(|n| n.mark));
    }

    #[test]
    fn the_alias_budget_counts_every_copied_node() {
        // The anchor is 10 nodes: the sequence and its 9 items.
        let anchor = "base: &b [x, x, x, x, x, x, x, x, x]\n";
        let text = |aliases: usize| {
            let mut text = format!("{anchor}copies:\n");
            for _ in 0..aliases {
                text.push_str("  - *b\n");
            }
            text
        };
        let fits = MAX_ALIAS_NODES / 10;
        assert!(parse(&text(fits), "f").is_ok());
        let err = parse(&text(fits + 1), "f").expect_err("one alias too many");
        assert!(
            err.message().contains("aliases expand to more than"),
            "{err}"
        );
        assert_eq!(err.location().map(|l| l.line), Some(fits + 3));
    }

    #[test]
    fn an_alias_inside_its_own_anchor_is_refused() {
        assert!(parse("a: &a [*a]\n", "f").is_err());
    }

    #[test]
    fn anchored_keys_are_checked_for_duplicates() {
        let err = parse("&k a: 1\n*k : 2\n", "f").expect_err("duplicate");
        assert_eq!(err.to_string(), "f:2:1: duplicate key `a`");
        let err = parse("a: &m {x: 1}\n*m : 2\n", "f").expect_err("mapping key");
        assert!(
            err.message().contains("mapping keys must be plain strings"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_are_found_before_and_after_the_keys_are_indexed() {
        for len in 1..=2 * INDEXED_FROM {
            for dup in 0..len {
                let mut text: String = (0..len).map(|i| format!("k{i}: v\n")).collect();
                text.push_str(&format!("k{dup}: again\n"));
                let err = parse(&text, "f").expect_err("duplicate");
                assert_eq!(
                    err.to_string(),
                    format!("f:{}:1: duplicate key `k{dup}`", len + 1)
                );
            }
            let text: String = (0..len).map(|i| format!("k{i}: v\n")).collect();
            assert!(parse(&text, "f").is_ok());
        }
    }

    #[test]
    fn a_duplicate_among_many_keys_is_found() {
        let mut text: String = (0..5000).map(|i| format!("k{i}: v\n")).collect();
        text.push_str("k4321: again\n");
        let err = parse(&text, "f").expect_err("duplicate");
        assert_eq!(err.to_string(), "f:5001:1: duplicate key `k4321`");
    }

    #[test]
    fn empty_text_and_several_documents_are_errors() {
        assert!(parse("", "f").is_err());
        assert!(parse("a: 1\n---\nb: 2\n", "f").is_err());
    }
}
