//! emit/yaml_tree.rs: a YAML document as a tree of nodes, each with its byte range in the text,
//! built from `saphyr-parser`'s events (whose markers count chars; converted to bytes here). The
//! template splice uses it to find the values it replaces; nothing here edits text.

use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

/// Nesting deeper than this is refused (a template is a small config).
const MAX_DEPTH: usize = 64;

/// One node and where it is in the text.
#[derive(Debug)]
pub struct Node {
    /// The node's bytes: a scalar's text (quotes included), a flow collection from its opening
    /// to its closing bracket, a block collection from its first indicator or key to the end of
    /// its last value (comments after it are not the node's).
    pub bytes: Range<usize>,
    /// An anchor (`&a`) or a tag (`!t`) stands on this node.
    pub decorated: bool,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Scalar {
        value: String,
        style: ScalarStyle,
    },
    Sequence {
        flow: bool,
        items: Vec<Node>,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
    },
    /// `*a`: the anchored node again.
    Alias,
}

impl Node {
    /// Whether this node or anything inside it carries an anchor, a tag or an alias.
    pub fn has_references(&self) -> bool {
        self.decorated
            || match &self.kind {
                Kind::Scalar { .. } => false,
                Kind::Alias => true,
                Kind::Sequence { items, .. } => items.iter().any(Node::has_references),
                Kind::Mapping { entries, .. } => entries
                    .iter()
                    .any(|(k, v)| k.has_references() || v.has_references()),
            }
    }

    /// An anchor, a tag or an alias on this very node (not inside it).
    pub fn has_references_on_itself(&self) -> bool {
        self.decorated || matches!(self.kind, Kind::Alias)
    }

    /// The values under plain-string key `key` of a mapping (more than one when the key repeats).
    pub fn get<'a>(&'a self, key: &str) -> Vec<(&'a Node, &'a Node)> {
        match &self.kind {
            Kind::Mapping { entries, .. } => entries
                .iter()
                .filter(|(k, _)| matches!(&k.kind, Kind::Scalar { value, .. } if value == key))
                .map(|(k, v)| (k, v))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A mapping's keys as written (non-scalar keys as `?`).
    pub fn keys(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Mapping { entries, .. } => entries
                .iter()
                .map(|(k, _)| match &k.kind {
                    Kind::Scalar { value, .. } => value.as_str(),
                    _ => "?",
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("not valid YAML")]
    Syntax(#[source] ScanError),
    #[error("holds {0} YAML documents; expected one")]
    Documents(usize),
    #[error("nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("ends inside a node")]
    Truncated,
}

/// Parses `text` (one document) into its root node; `None` for an empty document.
pub fn parse(text: &str) -> Result<Option<Node>, TreeError> {
    let offsets: Vec<usize> = (text.char_indices().map(|(i, _)| i))
        .chain([text.len()])
        .collect();
    let byte = |char_index: usize| offsets.get(char_index).copied().unwrap_or(text.len());
    let mut events = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(TreeError::Syntax)?;
        events.push((event, byte(span.start.index())..byte(span.end.index())));
    }
    let documents = (events.iter())
        .filter(|(e, _)| matches!(e, Event::DocumentStart(_)))
        .count();
    if documents > 1 {
        return Err(TreeError::Documents(documents));
    }
    let mut at = (events.iter())
        .position(|(e, _)| matches!(e, Event::DocumentStart(_)))
        .map_or(events.len(), |i| i + 1);
    if at >= events.len() || matches!(events[at].0, Event::DocumentEnd | Event::StreamEnd) {
        return Ok(None);
    }
    Builder {
        text,
        events: &events,
    }
    .node(&mut at, 0)
    .map(Some)
}

struct Builder<'a> {
    text: &'a str,
    events: &'a [(Event<'a>, Range<usize>)],
}

impl Builder<'_> {
    /// The node starting at event `at`; leaves `at` after its last event.
    fn node(&self, at: &mut usize, depth: usize) -> Result<Node, TreeError> {
        if depth > MAX_DEPTH {
            return Err(TreeError::TooDeep);
        }
        let Some((event, span)) = self.events.get(*at) else {
            return Err(TreeError::Truncated);
        };
        *at += 1;
        let span = span.clone();
        Ok(match event {
            Event::Scalar(value, style, anchor, tag) => Node {
                bytes: span.start..self.scalar_end(&span, *style),
                decorated: *anchor != 0 || tag.is_some(),
                kind: Kind::Scalar {
                    value: value.to_string(),
                    style: *style,
                },
            },
            Event::Alias(_) => Node {
                bytes: span,
                decorated: false,
                kind: Kind::Alias,
            },
            Event::SequenceStart(anchor, tag) => {
                let flow = self.opens_flow(&span, '[');
                let mut items = Vec::new();
                while !matches!(self.events.get(*at), Some((Event::SequenceEnd, _)) | None) {
                    items.push(self.node(at, depth + 1)?);
                }
                let end = self.close(at, flow, ']', items.last().map(|n| n.bytes.end));
                Node {
                    bytes: self.open(&span, flow)..end,
                    decorated: *anchor != 0 || tag.is_some(),
                    kind: Kind::Sequence { flow, items },
                }
            }
            Event::MappingStart(anchor, tag) => {
                let flow = self.opens_flow(&span, '{');
                let mut entries = Vec::new();
                while !matches!(self.events.get(*at), Some((Event::MappingEnd, _)) | None) {
                    let key = self.node(at, depth + 1)?;
                    let value = self.node(at, depth + 1)?;
                    entries.push((key, value));
                }
                let end = self.close(at, flow, '}', entries.last().map(|(_, v)| v.bytes.end));
                Node {
                    bytes: self.open(&span, flow)..end,
                    decorated: *anchor != 0 || tag.is_some(),
                    kind: Kind::Mapping { entries },
                }
            }
            _ => return Err(TreeError::Truncated),
        })
    }

    /// Where a scalar's own text ends: the parser's span may run on over the spaces and the
    /// comment after a quoted scalar, so quotes are matched here; a plain scalar ends before
    /// ` #` and trailing spaces.
    fn scalar_end(&self, span: &Range<usize>, style: ScalarStyle) -> usize {
        let Some(text) = self.text.get(span.clone()) else {
            return span.end;
        };
        let mut chars = text.char_indices().skip(1).peekable();
        let quoted_end = match style {
            ScalarStyle::SingleQuoted if text.starts_with('\'') => loop {
                match chars.next() {
                    Some((_, '\'')) if chars.peek().is_some_and(|(_, c)| *c == '\'') => {
                        chars.next();
                    }
                    Some((i, '\'')) => break Some(i + 1),
                    Some(_) => {}
                    None => break None,
                }
            },
            ScalarStyle::DoubleQuoted if text.starts_with('"') => loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some((i, '"')) => break Some(i + 1),
                    Some(_) => {}
                    None => break None,
                }
            },
            ScalarStyle::Plain => {
                let cut = (text.char_indices())
                    .find(|&(i, c)| c == '#' && text[..i].ends_with([' ', '\t', '\n', '\r']))
                    .map_or(text.len(), |(i, _)| i);
                Some(text[..cut].trim_end_matches([' ', '\t', '\n', '\r']).len())
            }
            _ => None,
        };
        quoted_end.map_or(span.end, |len| span.start + len)
    }

    /// A flow collection's start event ends with its bracket (after any anchor or tag).
    fn opens_flow(&self, span: &Range<usize>, bracket: char) -> bool {
        self.text
            .get(span.clone())
            .is_some_and(|s| s.ends_with(bracket))
    }

    /// Where the node begins: a flow collection at its bracket, a block one where its event is.
    fn open(&self, span: &Range<usize>, flow: bool) -> usize {
        if flow { span.end - 1 } else { span.start }
    }

    /// Consumes the end event; returns the node's end: after the closing bracket of a flow
    /// collection (the event's own span runs on over spaces and a comment), after the last
    /// value of a block one.
    fn close(&self, at: &mut usize, flow: bool, bracket: char, last: Option<usize>) -> usize {
        let span = self.events.get(*at).map(|(_, s)| s.clone());
        *at += 1;
        match span {
            Some(s) if flow && self.text[s.start..].starts_with(bracket) => s.start + 1,
            Some(s) => last.unwrap_or(s.start),
            None => last.unwrap_or(self.text.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of<'a>(text: &'a str, node: &Node) -> &'a str {
        &text[node.bytes.clone()]
    }

    #[test]
    fn block_and_flow_nodes_have_their_exact_bytes() {
        let text = "a: Zoë  # c\nl:\n  # first\n  - x # one\n  - 'y''s'   # last\nf: [1, {k: v}]   # after\nm: &n {p: 1}\nd: \"q \\\" # r\"  # s\n";
        let root = parse(text).unwrap().unwrap();
        assert_eq!(text_of(text, root.get("a")[0].1), "Zoë");
        assert_eq!(text_of(text, root.get("l")[0].1), "- x # one\n  - 'y''s'");
        assert_eq!(text_of(text, root.get("d")[0].1), "\"q \\\" # r\"");
        assert_eq!(text_of(text, root.get("f")[0].1), "[1, {k: v}]");
        assert!(root.get("m")[0].1.has_references());
        assert!(!root.get("f")[0].1.has_references());
        assert_eq!(root.keys(), ["a", "l", "f", "m", "d"]);
    }

    #[test]
    fn more_than_one_document_is_refused() {
        assert!(matches!(
            parse("a: 1\n---\nb: 2\n"),
            Err(TreeError::Documents(2))
        ));
        assert!(parse("# only a comment\n").unwrap().is_none());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(100) + &"]".repeat(100);
        assert!(matches!(parse(&text), Err(TreeError::TooDeep)));
    }
}
