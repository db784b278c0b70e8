//! The body tree: nodes in one vector, linked to their parent and siblings, names in one arena
//! and strings in another; writes by dotted key, and the BSON encoder. A body reused for the
//! next event keeps the previous event's shape as a template ([`replay`]).

mod replay;

use std::collections::HashMap;

use bson::{Bson, Document};

use super::WriteOutcome;
use crate::element::{double, key, string, tag};

/// "No node": the end of a sibling list, or the root as a parent.
const NONE: u32 = u32::MAX;
/// From this many nodes on, children are found through a hash index instead of a list walk, so a
/// body with thousands of keys costs each write a lookup, not a scan.
const INDEX_FROM: usize = 32;
/// Past these a body takes no more writes (each refused write is counted as invalid): far beyond
/// the 16 MiB a daemon accepts per event, and within the `u32` offsets the tree uses.
const TEXT_LIMIT: usize = 64 << 20;
const NODE_LIMIT: usize = 4 << 20;
/// A key of more segments is refused: with the event and its body around it, the document would
/// nest deeper than a daemon accepts (100).
const MAX_KEY_SEGMENTS: usize = 64;
/// Garbage below this is never worth a compaction.
const COMPACT_FROM: usize = 4096;
/// A body whose buffers grew beyond these is freed after use rather than kept for the next event.
const KEEP_NODES: usize = 256;
const KEEP_TEXT: usize = 16 * 1024;

/// A value to write, as a writer has it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F64(f64),
    Str(&'a str),
    /// Anything else serde produced (documents, arrays, binary, ...).
    Bson(Bson),
}

impl From<Bson> for Value<'static> {
    fn from(value: Bson) -> Self {
        match value {
            Bson::Null => Value::Null,
            Bson::Boolean(b) => Value::Bool(b),
            Bson::Int32(n) => Value::I32(n),
            Bson::Int64(n) => Value::I64(n),
            Bson::Double(x) => Value::F64(x),
            other => Value::Bson(other),
        }
    }
}

impl Value<'_> {
    /// True for the values `add` accepts.
    pub(crate) fn is_number(&self) -> bool {
        matches!(self, Value::I32(_) | Value::I64(_) | Value::F64(_))
    }

    fn into_bson(self) -> Bson {
        match self {
            Value::Null => Bson::Null,
            Value::Bool(b) => Bson::Boolean(b),
            Value::I32(n) => Bson::Int32(n),
            Value::I64(n) => Bson::Int64(n),
            Value::F64(x) => Bson::Double(x),
            Value::Str(s) => Bson::String(s.to_owned()),
            Value::Bson(b) => b,
        }
    }
}

/// Which write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `body[key] = value`.
    Set,
    /// Push onto the array at `key`, creating it.
    Append,
    /// Add the number to the number at `key` (missing counts as 0).
    Add,
}

/// A range of the text arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// A node's value as stored.
#[derive(Debug, Clone)]
enum Stored {
    /// A document whose fields are the node's children.
    Doc,
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F64(f64),
    Str(Span),
    Bson(Box<Bson>),
}

#[derive(Debug, Clone)]
struct Node {
    name: Span,
    value: Stored,
    next: u32,
    first: u32,
    last: u32,
}

/// The body could not be encoded: a name holding a NUL (from a serde map key), or a value bson
/// refuses.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct EncodeError(String);

impl EncodeError {
    /// An error saying `why`.
    pub(crate) fn new(why: String) -> EncodeError {
        EncodeError(why)
    }
}

/// One context's body.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    nodes: Vec<Node>,
    /// This event's nodes are `nodes[..live]`; while a template is replayed, the ones past it are
    /// the previous event's, not yet repeated (links to them read as "none").
    live: u32,
    /// Node names, in the order the nodes were created.
    names: String,
    /// String values.
    text: String,
    /// The root document's first and last field.
    first: u32,
    last: u32,
    /// (parent, name) → node, once the body is large.
    index: Option<HashMap<(u32, Box<str>), u32>>,
    /// Bytes of `text` and slots of `nodes` no longer reachable (overwritten strings, dropped
    /// fields): when they outweigh the live part, the body is compacted.
    garbage_text: usize,
    garbage_nodes: usize,
    /// Some name came from a document set whole (a serde map key), not through the key rule, and
    /// may hold a NUL: the encoder checks names.
    foreign_names: bool,
    /// The template: see [`replay`].
    replay: replay::Replay,
}

impl Default for Body {
    fn default() -> Self {
        Body::new()
    }
}

impl Body {
    /// An empty body (no allocation until the first write).
    pub(crate) const fn new() -> Body {
        Body {
            nodes: Vec::new(),
            live: 0,
            names: String::new(),
            text: String::new(),
            first: NONE,
            last: NONE,
            index: None,
            garbage_text: 0,
            garbage_nodes: 0,
            foreign_names: false,
            replay: replay::Replay::new(),
        }
    }

    /// Empties the body for the next event, keeping its buffers unless they grew large (false:
    /// not worth keeping), and keeping its shape as the next event's template when it has one.
    pub(crate) fn reset(&mut self) -> bool {
        if !self.keep_as_template() {
            self.nodes.clear();
            self.live = 0;
            self.names.clear();
            self.first = NONE;
            self.last = NONE;
            self.index = None;
            self.foreign_names = false;
        }
        self.text.clear();
        self.garbage_text = 0;
        self.garbage_nodes = 0;
        self.nodes.capacity() <= KEEP_NODES
            && self.text.capacity() + self.names.capacity() + self.replay.key_capacity()
                <= KEEP_TEXT
    }

    /// True when nothing was written.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.live_or_none(self.first) == NONE
    }

    /// `at`, or "none" for a node past this event's (a template's, not yet repeated).
    #[inline]
    fn live_or_none(&self, at: u32) -> u32 {
        if at < self.live { at } else { NONE }
    }

    fn name_of(&self, span: Span) -> &str {
        &self.names[span.start as usize..(span.start + span.len) as usize]
    }

    fn text_of(&self, span: Span) -> &str {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    /// Compares bytes only: both sides are whole strings, no boundary check is needed.
    #[inline]
    fn name_is(&self, span: Span, name: &str) -> bool {
        span.len as usize == name.len()
            && &self.names.as_bytes()[span.start as usize..(span.start + span.len) as usize]
                == name.as_bytes()
    }

    fn intern_name(&mut self, s: &str) -> Span {
        let start = self.names.len() as u32;
        self.names.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    fn intern_text(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    fn head(&self, parent: u32) -> u32 {
        if parent == NONE {
            self.first
        } else {
            self.nodes[parent as usize].first
        }
    }

    #[inline]
    fn find_child(&self, parent: u32, name: &str) -> Option<u32> {
        if let Some(index) = &self.index {
            // A lookup by (u32, &str) needs an owned key in std's map; large bodies only.
            return index.get(&(parent, Box::from(name))).copied();
        }
        let mut at = self.head(parent);
        while at != NONE {
            let node = &self.nodes[at as usize];
            if self.name_is(node.name, name) {
                return Some(at);
            }
            at = node.next;
        }
        None
    }

    fn add_child(&mut self, parent: u32, name: &str, value: Stored) -> u32 {
        let id = self.nodes.len() as u32;
        let name_span = self.intern_name(name);
        self.nodes.push(Node {
            name: name_span,
            value,
            next: NONE,
            first: NONE,
            last: NONE,
        });
        self.live = id + 1;
        let tail = if parent == NONE {
            self.last
        } else {
            self.nodes[parent as usize].last
        };
        if tail == NONE {
            if parent == NONE {
                self.first = id;
            } else {
                self.nodes[parent as usize].first = id;
            }
        } else {
            self.nodes[tail as usize].next = id;
        }
        if parent == NONE {
            self.last = id;
        } else {
            self.nodes[parent as usize].last = id;
        }
        if let Some(index) = &mut self.index {
            index.insert((parent, Box::from(name)), id);
        } else if self.nodes.len() >= INDEX_FROM {
            self.build_index();
        }
        id
    }

    fn build_index(&mut self) {
        let mut index = HashMap::with_capacity(self.nodes.len() * 2);
        let mut stack = vec![NONE];
        while let Some(parent) = stack.pop() {
            let mut at = self.head(parent);
            while at != NONE {
                let node = &self.nodes[at as usize];
                index.insert((parent, Box::from(self.name_of(node.name))), at);
                stack.push(at);
                at = node.next;
            }
        }
        self.index = Some(index);
    }

    /// Detaches every descendant of `node`; their slots and text become garbage.
    fn drop_children(&mut self, node: u32) {
        let mut stack = vec![node];
        while let Some(parent) = stack.pop() {
            let mut at = self.nodes[parent as usize].first;
            while at != NONE {
                // The spans and link only: cloning the node would deep-copy a `Bson` value.
                let child = &self.nodes[at as usize];
                let (name, next) = (child.name, child.next);
                let text = match child.value {
                    Stored::Str(span) => span.len as usize,
                    _ => 0,
                };
                self.garbage_nodes += 1;
                self.garbage_text += name.len as usize + text;
                if self.index.is_some() {
                    let key: Box<str> = Box::from(self.name_of(name));
                    if let Some(index) = &mut self.index {
                        index.remove(&(parent, key));
                    }
                }
                stack.push(at);
                at = next;
            }
        }
        let n = &mut self.nodes[node as usize];
        n.first = NONE;
        n.last = NONE;
    }

    /// Rebuilds the body from its live fields, in order, dropping the garbage.
    fn compact(&mut self) {
        let mut fresh = Body::new();
        fresh.foreign_names = self.foreign_names;
        // Nodes are renumbered: this event's shape is no template for the next.
        fresh.replay.stop_recording();
        let live_text = (self.text.len() + self.names.len()).saturating_sub(self.garbage_text);
        fresh.text.reserve(live_text);
        fresh
            .nodes
            .reserve(self.nodes.len() - self.garbage_nodes.min(self.nodes.len()));
        self.copy_children(NONE, &mut fresh, NONE);
        *self = fresh;
    }

    fn copy_children(&self, from: u32, into: &mut Body, to: u32) {
        let mut at = self.head(from);
        while at != NONE {
            let node = &self.nodes[at as usize];
            let value = match &node.value {
                Stored::Str(span) => Stored::Str(into.intern_text(self.text_of(*span))),
                other => other.clone(),
            };
            let copy = into.add_child(to, self.name_of(node.name), value);
            if matches!(node.value, Stored::Doc) {
                self.copy_children(at, into, copy);
            }
            at = node.next;
        }
    }

    fn store(&mut self, value: Value<'_>) -> Stored {
        match value {
            Value::Null => Stored::Null,
            Value::Bool(b) => Stored::Bool(b),
            Value::I32(n) => Stored::I32(n),
            Value::I64(n) => Stored::I64(n),
            Value::F64(x) => Stored::F64(x),
            Value::Str(s) => Stored::Str(self.intern_text(s)),
            Value::Bson(b) => Stored::Bson(Box::new(b)),
        }
    }

    /// Replaces `node`'s value; a document in the way (its fields) is a conflict.
    fn replace(&mut self, node: u32, value: Stored, outcome: &mut WriteOutcome) {
        let old = std::mem::replace(&mut self.nodes[node as usize].value, value);
        match old {
            Stored::Str(span) => self.garbage_text += span.len as usize,
            Stored::Doc => {
                self.drop_children(node);
                *outcome = WriteOutcome::Replaced;
            }
            Stored::Bson(b) if matches!(*b, Bson::Document(_)) => *outcome = WriteOutcome::Replaced,
            _ => {}
        }
    }

    /// The document node for `name` under `parent`, creating it or replacing what is in the way.
    fn descend(&mut self, parent: u32, name: &str, outcome: &mut WriteOutcome) -> u32 {
        let Some(node) = self.find_child(parent, name) else {
            return self.add_child(parent, name, Stored::Doc);
        };
        match std::mem::replace(&mut self.nodes[node as usize].value, Stored::Doc) {
            Stored::Doc => {}
            // A document set whole (`set("user", &user)`) and now written into: its fields
            // become nodes, in their order.
            Stored::Bson(b) if matches!(*b, Bson::Document(_)) => {
                if let Bson::Document(doc) = *b {
                    self.adopt(node, doc);
                }
            }
            _ => *outcome = WriteOutcome::Replaced,
        }
        node
    }

    fn adopt(&mut self, node: u32, doc: Document) {
        self.foreign_names = true;
        for (name, value) in doc {
            let stored = match value {
                Bson::String(s) => self.store(Value::Str(&s)),
                other => self.store(Value::from(other)),
            };
            self.add_child(node, &name, stored);
        }
    }

    /// Applies one write; a key that is empty, holds a NUL or has too many segments is refused.
    #[inline]
    pub(crate) fn write(&mut self, key: &str, value: Value<'_>, op: Op) -> WriteOutcome {
        if self.replaying() && self.replay_write(key, &value, op) {
            return WriteOutcome::Clean;
        }
        self.write_and_record(key, value, op)
    }

    /// A write the template does not cover: applied by the ordinary path, and recorded.
    #[inline(never)]
    fn write_and_record(&mut self, key: &str, value: Value<'_>, op: Op) -> WriteOutcome {
        let scalar_set = op == Op::Set && !matches!(value, Value::Bson(_));
        let nodes_before = self.nodes.len();
        let (outcome, created_field) = self.write_tree(key, value, op);
        self.record(
            key,
            scalar_set
                && created_field
                && outcome == WriteOutcome::Clean
                && self.nodes.len() > nodes_before,
        );
        outcome
    }

    /// The ordinary write: splits the key, finds or creates each segment's node. Also says
    /// whether the write created the field it set.
    fn write_tree(&mut self, key: &str, value: Value<'_>, op: Op) -> (WriteOutcome, bool) {
        if !super::key_is_valid(key) {
            return (WriteOutcome::Refused, false);
        }
        // Only a key this long can have that many segments: short keys skip the count.
        if key.len() > 2 * MAX_KEY_SEGMENTS
            && key.bytes().filter(|&b| b == b'.').count() >= MAX_KEY_SEGMENTS
        {
            return (WriteOutcome::Refused, false);
        }
        let text = key.len()
            + if let Value::Str(s) = &value {
                s.len()
            } else {
                0
            };
        if self.garbage_text > COMPACT_FROM.max((self.text.len() + self.names.len()) / 2)
            || self.garbage_nodes > COMPACT_FROM.max(self.nodes.len() / 2)
        {
            self.compact();
        }
        if self.text.len() + self.names.len() + text > TEXT_LIMIT
            || self.nodes.len() + key.len() > NODE_LIMIT
        {
            return (WriteOutcome::Refused, false);
        }
        let mut outcome = WriteOutcome::Clean;
        let mut parent = NONE;
        let mut last = key;
        // A word-at-a-time search for the dots: `str::split` with a char pattern costs several
        // times more.
        while let Some(dot) = super::find_byte(last.as_bytes(), b'.') {
            parent = self.descend(parent, &last[..dot], &mut outcome);
            last = &last[dot + 1..];
        }
        let existing = self.find_child(parent, last);
        let created_field = existing.is_none();
        match op {
            Op::Set => {
                let stored = self.store(value);
                match existing {
                    Some(node) => self.replace(node, stored, &mut outcome),
                    None => {
                        self.add_child(parent, last, stored);
                    }
                }
            }
            Op::Append => match existing {
                Some(node) => {
                    if let Stored::Bson(b) = &mut self.nodes[node as usize].value
                        && let Bson::Array(items) = b.as_mut()
                    {
                        items.push(value.into_bson());
                    } else {
                        let array = Stored::Bson(Box::new(Bson::Array(vec![value.into_bson()])));
                        self.replace(node, array, &mut outcome);
                        outcome = WriteOutcome::Replaced;
                    }
                }
                None => {
                    let array = Stored::Bson(Box::new(Bson::Array(vec![value.into_bson()])));
                    self.add_child(parent, last, array);
                }
            },
            Op::Add => match existing {
                Some(node) => {
                    let sum = numeric_sum(&self.nodes[node as usize].value, &value);
                    let stored = match sum {
                        Some(sum) => sum,
                        None => {
                            outcome = WriteOutcome::Replaced;
                            self.store(value)
                        }
                    };
                    self.replace(node, stored, &mut outcome);
                }
                None => {
                    let stored = self.store(value);
                    self.add_child(parent, last, stored);
                }
            },
        }
        (outcome, created_field)
    }

    /// The value at a top-level key, as BSON (for tests and the error path).
    #[cfg(test)]
    pub(crate) fn to_document(&self) -> Document {
        let mut bytes = Vec::new();
        self.encode(&mut bytes).unwrap();
        Document::from_reader(&bytes[..]).unwrap()
    }

    /// Appends the body as one BSON document to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        // Names, strings and per-node tags and sizes: one reservation instead of many.
        out.reserve(self.text.len() + self.names.len() + self.live as usize * 16 + 8);
        self.encode_doc(NONE, out)
    }

    fn encode_doc(&self, parent: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut at = self.live_or_none(self.head(parent));
        while at != NONE {
            let node = &self.nodes[at as usize];
            let name = self.name_of(node.name);
            if self.foreign_names && name.as_bytes().contains(&0) {
                return Err(EncodeError(format!("key {name:?} contains a NUL byte")));
            }
            match &node.value {
                Stored::Doc => {
                    key(out, tag::DOCUMENT, name);
                    self.encode_doc(at, out)?;
                }
                Stored::Null => key(out, tag::NULL, name),
                Stored::Bool(b) => {
                    key(out, tag::BOOLEAN, name);
                    out.push(u8::from(*b));
                }
                Stored::I32(n) => {
                    key(out, tag::INT32, name);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Stored::I64(n) => {
                    key(out, tag::INT64, name);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Stored::F64(x) => double(out, name, *x),
                Stored::Str(span) => string(out, name, self.text_of(*span)),
                Stored::Bson(b) => encode_bson(name, b, out)?,
            }
            at = self.live_or_none(node.next);
        }
        out.push(0);
        let len = (out.len() - start) as i32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// One element of a value only bson knows how to encode: encoded as a one-field document, whose
/// element bytes are then spliced in.
fn encode_bson(name: &str, value: &Bson, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut one = Document::new();
    one.insert(name, value.clone());
    let mut bytes = Vec::new();
    one.to_writer(&mut bytes)
        .map_err(|e| EncodeError(e.to_string()))?;
    out.extend_from_slice(&bytes[4..bytes.len() - 1]);
    Ok(())
}

fn numeric_sum(current: &Stored, delta: &Value<'_>) -> Option<Stored> {
    use Stored::{F64, I32, I64};
    Some(match (current, delta) {
        (I32(x), Value::I32(y)) => x
            .checked_add(*y)
            .map(I32)
            .unwrap_or(I64(*x as i64 + *y as i64)),
        (I32(x), Value::I64(y)) => I64((*x as i64).wrapping_add(*y)),
        (I64(y), Value::I32(x)) => I64((*x as i64).wrapping_add(*y)),
        (I64(x), Value::I64(y)) => I64(x.wrapping_add(*y)),
        (F64(x), Value::F64(y)) => F64(x + y),
        (F64(x), Value::I32(y)) => F64(x + *y as f64),
        (I32(y), Value::F64(x)) => F64(x + *y as f64),
        (F64(x), Value::I64(y)) => F64(x + *y as f64),
        (I64(y), Value::F64(x)) => F64(x + *y as f64),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
