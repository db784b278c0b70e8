//! Replaying the previous event's shape.
//!
//! A handler writes the same keys in the same order event after event. When every write of an
//! event created its field with a `set` of a scalar (the common shape: distinct keys, no `add`
//! or `append`, no overwrite), the body keeps that event's nodes and names when it is reset, with
//! the list of those writes (the steps). The next event's writes are then compared with the steps
//! in order: a write with the key of the step at its position builds exactly the nodes that step
//! built (the tree before it is the same, and a scalar never changes the tree's shape), so it
//! only stores its value in the step's field and moves `live` on. No key is split, searched or
//! interned. The first write that differs, or the event's end, settles the body: the nodes not
//! repeated are dropped and the links to them cut, and the ordinary path goes on from there. The
//! property test in `body/reference.rs` checks events on one reused body against the document
//! rules.

use super::{Body, NODE_LIMIT, NONE, Op, Stored, TEXT_LIMIT, Value};

/// A write of the template: its key ends at `key_end` in `Replay::keys`, and the body had
/// `nodes_after` nodes after it (the field it set is the last of them).
#[derive(Debug, Clone, Copy)]
struct Step {
    key_end: u32,
    nodes_after: u32,
}

/// The template and how far this event follows it.
#[derive(Debug, Clone)]
pub(super) struct Replay {
    steps: Vec<Step>,
    keys: String,
    /// This event's writes that are steps (replayed, or recorded).
    cursor: usize,
    /// This event has followed the template so far.
    replaying: bool,
    /// Every write of this event so far is a step: the event can be the next one's template.
    recording: bool,
}

/// A template's steps are bounded by its nodes (each step creates one at least), and a body
/// large enough for the hash index is never a template.
impl Replay {
    pub(super) const fn new() -> Replay {
        Replay {
            steps: Vec::new(),
            keys: String::new(),
            cursor: 0,
            replaying: false,
            recording: true,
        }
    }

    /// Bytes held for the template's keys (a body holding many is not kept for reuse).
    pub(super) fn key_capacity(&self) -> usize {
        self.keys.capacity() + self.steps.capacity() * std::mem::size_of::<Step>()
    }

    /// This event's shape will not be a template (nodes renumbered, or a write that is no step).
    pub(super) fn stop_recording(&mut self) {
        self.recording = false;
    }

    fn key(&self, at: usize) -> &[u8] {
        let start = if at == 0 {
            0
        } else {
            self.steps[at - 1].key_end as usize
        };
        &self.keys.as_bytes()[start..self.steps[at].key_end as usize]
    }
}

impl Body {
    /// True while this event repeats the template.
    #[inline]
    pub(super) fn replaying(&self) -> bool {
        self.replay.replaying
    }

    /// Applies a write that repeats the template's next step; false, with the body settled, when
    /// it does not.
    #[inline]
    pub(super) fn replay_write(&mut self, key: &str, value: &Value<'_>, op: Op) -> bool {
        let at = self.replay.cursor;
        let repeats =
            op == Op::Set && at < self.replay.steps.len() && self.replay.key(at) == key.as_bytes();
        if repeats && let Some(stored) = self.store_scalar(key, value) {
            let nodes_after = self.replay.steps[at].nodes_after;
            let slot = &mut self.nodes[nodes_after as usize - 1].value;
            // Only a `Bson` value owns memory: the common old scalar needs no drop call.
            if let Stored::Bson(old) = std::mem::replace(slot, stored) {
                drop(old);
            }
            self.live = nodes_after;
            self.replay.cursor = at + 1;
            return true;
        }
        self.settle();
        false
    }

    /// A scalar as stored; `None` for a value that is not one, or a write past the limits (the
    /// ordinary path decides it: these checks are at least as strict as its own).
    fn store_scalar(&mut self, key: &str, value: &Value<'_>) -> Option<Stored> {
        if self.nodes.len() + key.len() > NODE_LIMIT {
            return None;
        }
        let room = TEXT_LIMIT.saturating_sub(self.text.len() + self.names.len() + key.len());
        Some(match value {
            Value::Null => Stored::Null,
            Value::Bool(b) => Stored::Bool(*b),
            Value::I32(n) => Stored::I32(*n),
            Value::I64(n) => Stored::I64(*n),
            Value::F64(x) => Stored::F64(*x),
            Value::Str(s) if s.len() <= room => Stored::Str(self.intern_text(s)),
            Value::Str(_) | Value::Bson(_) => return None,
        })
    }

    /// Ends the replay: the body is this event's nodes (the ones repeated so far), the links to
    /// the template's other nodes cut, and the steps are this event's.
    #[cold]
    #[inline(never)]
    pub(super) fn settle(&mut self) {
        self.replay.replaying = false;
        self.replay.steps.truncate(self.replay.cursor);
        let keys_end = self.replay.steps.last().map_or(0, |s| s.key_end as usize);
        self.replay.keys.truncate(keys_end);
        let live = self.live;
        if live as usize == self.nodes.len() {
            return;
        }
        self.nodes.truncate(live as usize);
        // Names were interned in the order the nodes were created.
        let names_end = self
            .nodes
            .last()
            .map_or(0, |n| (n.name.start + n.name.len) as usize);
        self.names.truncate(names_end);
        let cut = |at: u32| if at < live { at } else { NONE };
        self.first = cut(self.first);
        for node in &mut self.nodes {
            node.next = cut(node.next);
            node.first = cut(node.first);
        }
        // A list's last node is past `live` when the template appended to it later: walk it.
        if self.last >= live {
            self.last = self.tail(self.first);
        }
        for at in 0..self.nodes.len() {
            if self.nodes[at].last >= live {
                self.nodes[at].last = self.tail(self.nodes[at].first);
            }
        }
    }

    fn tail(&self, first: u32) -> u32 {
        let mut last = first;
        while last != NONE && self.nodes[last as usize].next != NONE {
            last = self.nodes[last as usize].next;
        }
        last
    }

    /// Notes the write just applied by the ordinary path: a step if `created_field` (a `set` of a
    /// scalar that created its field, nothing replaced), else this event is no template.
    pub(super) fn record(&mut self, key: &str, created_field: bool) {
        if !self.replay.recording {
            return;
        }
        if !created_field || self.index.is_some() {
            self.replay.stop_recording();
            return;
        }
        self.replay.keys.push_str(key);
        self.replay.steps.push(Step {
            key_end: self.replay.keys.len() as u32,
            nodes_after: self.nodes.len() as u32,
        });
        self.replay.cursor = self.replay.steps.len();
    }

    /// At the event's end: true when its shape is kept for the next event to replay (the caller
    /// then keeps nodes and names), false when the body is to be emptied.
    pub(super) fn keep_as_template(&mut self) -> bool {
        if self.replay.replaying {
            self.settle();
        }
        let keep = self.replay.recording
            && !self.replay.steps.is_empty()
            && self.index.is_none()
            && !self.foreign_names;
        let replay = &mut self.replay;
        if keep {
            replay.replaying = true;
            self.live = 0;
        } else {
            replay.steps.clear();
            replay.keys.clear();
            replay.replaying = false;
        }
        replay.cursor = 0;
        replay.recording = true;
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Body, Op, Value};

    fn handler(body: &mut Body, status: i32) {
        body.write("user_agent", Value::Str("curl/8"), Op::Set);
        body.write("response.status", Value::I32(status), Op::Set);
        body.write("response.size", Value::I64(1234), Op::Set);
        body.write("cached", Value::Bool(true), Op::Set);
    }

    #[test]
    fn an_event_of_the_same_shape_is_replayed_and_encodes_the_same() {
        let mut body = Body::new();
        handler(&mut body, 200);
        let first = body.to_document();
        assert!(body.reset());
        assert!(body.replaying());
        handler(&mut body, 404);
        assert!(body.replaying(), "every write repeated a step");
        assert_eq!(body.replay.cursor, 4);
        let mut want = first.clone();
        want.get_document_mut("response")
            .unwrap()
            .insert("status", 404);
        assert_eq!(body.to_document(), want);
        // The same again after a shorter event: only its fields, then a full one.
        body.reset();
        body.write("user_agent", Value::Str("x"), Op::Set);
        assert_eq!(body.to_document(), bson::doc! { "user_agent": "x" });
        body.reset();
        handler(&mut body, 200);
        assert_eq!(body.to_document(), first);
    }

    #[test]
    fn a_replayed_write_is_refused_where_a_fresh_body_refuses_it() {
        let huge = "x".repeat(super::TEXT_LIMIT - 2);
        let mut fresh = Body::new();
        let refused = fresh.write("a.b", Value::Str(&huge), Op::Set);
        assert_eq!(refused, crate::body::WriteOutcome::Refused);
        let mut recycled = Body::new();
        recycled.write("a.b", Value::Str("small"), Op::Set);
        recycled.reset();
        assert!(recycled.replaying());
        assert_eq!(recycled.write("a.b", Value::Str(&huge), Op::Set), refused);
        assert!(recycled.is_empty());
    }

    #[test]
    fn a_body_whose_template_holds_long_keys_is_not_kept() {
        let parent = "p".repeat(7_000);
        let mut body = Body::new();
        for i in 0..30 {
            body.write(&format!("{parent}.k{i}"), Value::I32(i), Op::Set);
        }
        assert!(!body.reset(), "about 210 KB of template keys");
        let mut small = Body::new();
        small.write("a.b", Value::I32(1), Op::Set);
        assert!(small.reset());
    }

    #[test]
    fn a_different_write_settles_the_body_and_goes_on_by_the_rules() {
        let mut body = Body::new();
        handler(&mut body, 200);
        body.reset();
        body.write("user_agent", Value::Str("curl/8"), Op::Set);
        body.write("response.status", Value::I32(500), Op::Set);
        // Not the template's third write: settled, and `response` takes a new field.
        body.write("response.error", Value::Str("boom"), Op::Set);
        assert!(!body.replaying());
        body.write("cached", Value::Bool(false), Op::Set);
        assert_eq!(
            body.to_document(),
            bson::doc! {
                "user_agent": "curl/8",
                "response": { "status": 500, "error": "boom" },
                "cached": false,
            }
        );
        // `add` is no step: the event after it is not replayed.
        body.reset();
        body.write("n", Value::I32(1), Op::Add);
        body.reset();
        assert!(!body.replaying());
    }
}
