//! `--group`: events sharing an id joined into one tree (a parent with its sub-contexts, in start
//! order).
//!
//! Memory stays bounded on inputs far larger than RAM: events of one id are close in time, so a
//! group is printed once no event of it has been seen within `window` seconds (of event `end`
//! times) of the newest event read, or when more than `max_open` groups are open (oldest first).
//! Groups still open at the end of input are printed too. A group is marked `partial` unless one of
//! its events is a top-level channel that is an ancestor (or the same channel) of all the others:
//! a group of `request.sql` events without their `request` is partial.

use std::collections::{HashMap, VecDeque};

use ziggy_proto::channel::is_self_or_ancestor;

use crate::record::Record;

/// One group of events with the same id.
#[derive(Debug)]
pub struct Group {
    /// The shared id.
    pub id: String,
    /// Its events, in start order.
    pub events: Vec<Record>,
    /// True when no event covers all the others (the parent is missing).
    pub partial: bool,
}

impl Group {
    /// The group of `events`, all with the id `id`: sorted by start, marked partial when no
    /// event covers the others.
    pub fn new(id: String, events: Vec<Record>) -> Group {
        finish(id, events)
    }

    /// Event indices as a forest: `(index, children)` nested by channel ancestry, in start order.
    /// At most [`MAX_DEPTH`](crate::record::MAX_DEPTH) levels deep: a deeper event becomes a
    /// sibling at the last level (so printing the tree never recurses further).
    pub fn tree(&self) -> Vec<Node> {
        let mut roots: Vec<Node> = Vec::new();
        // Stack of the path from a root to the last placed node, as (channel, path of indices).
        let mut stack: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            while let Some((channel, _)) = stack.last() {
                if is_proper_ancestor(channel, &e.channel) {
                    break;
                }
                stack.pop();
            }
            stack.truncate(crate::record::MAX_DEPTH - 1);
            let node = Node {
                index: i,
                children: Vec::new(),
            };
            let path = match stack.last() {
                Some((_, path)) => {
                    let parent = node_at(&mut roots, path);
                    parent.children.push(node);
                    let mut p = path.clone();
                    p.push(parent.children.len() - 1);
                    p
                }
                None => {
                    roots.push(node);
                    vec![roots.len() - 1]
                }
            };
            stack.push((e.channel.clone(), path));
        }
        roots
    }
}

/// A node of [`Group::tree`].
#[derive(Debug)]
pub struct Node {
    /// Index into [`Group::events`].
    pub index: usize,
    /// Sub-contexts.
    pub children: Vec<Node>,
}

fn node_at<'a>(roots: &'a mut [Node], path: &[usize]) -> &'a mut Node {
    let mut node = &mut roots[path[0]];
    for &i in &path[1..] {
        node = &mut node.children[i];
    }
    node
}

fn is_proper_ancestor(ancestor: &str, channel: &str) -> bool {
    channel.len() > ancestor.len() && is_self_or_ancestor(ancestor, channel)
}

/// Collects events into groups and releases the ones that are done.
pub struct Grouper {
    window: f64,
    max_open: usize,
    open: HashMap<String, (Vec<Record>, f64)>,
    order: VecDeque<String>,
    newest_end: f64,
}

impl Grouper {
    /// Groups closed after `window` seconds without a new event, at most `max_open` open at once.
    pub fn new(window: f64, max_open: usize) -> Self {
        Grouper {
            window,
            max_open: max_open.max(1),
            open: HashMap::new(),
            order: VecDeque::new(),
            newest_end: f64::MIN,
        }
    }

    /// Adds an event; returns the groups that are now done.
    pub fn push(&mut self, rec: Record) -> Vec<Group> {
        self.newest_end = self.newest_end.max(rec.end);
        match self.open.get_mut(&rec.id) {
            Some((events, last)) => {
                *last = last.max(rec.end);
                events.push(rec);
            }
            None => {
                self.order.push_back(rec.id.clone());
                let end = rec.end;
                self.open.insert(rec.id.clone(), (vec![rec], end));
            }
        }
        let mut done = Vec::new();
        while let Some(id) = self.order.front() {
            let (_, last) = &self.open[id];
            if *last < self.newest_end - self.window || self.open.len() > self.max_open {
                let id = self.order.pop_front().expect("front exists");
                let (events, _) = self.open.remove(&id).expect("open group");
                done.push(finish(id, events));
            } else {
                break;
            }
        }
        done
    }

    /// Every group still open, at the end of input.
    pub fn drain(&mut self) -> Vec<Group> {
        let mut done = Vec::new();
        while let Some(id) = self.order.pop_front() {
            if let Some((events, _)) = self.open.remove(&id) {
                done.push(finish(id, events));
            }
        }
        done
    }
}

fn finish(id: String, mut events: Vec<Record>) -> Group {
    events.sort_by(|a, b| a.start.total_cmp(&b.start));
    // Complete: one event covers all the others and is a top-level channel (a `request.sql` root
    // means its `request` parent is not in the input).
    let partial = !events.iter().any(|root| {
        !root.channel.contains('.')
            && events
                .iter()
                .all(|e| is_self_or_ancestor(&root.channel, &e.channel))
    });
    Group {
        id,
        events,
        partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_sub_contexts_is_capped_in_depth() {
        let mut channel = String::from("a");
        let events = (0..500)
            .map(|i| {
                let rec = Record::decode(
                    &bson::doc! { "id": "x", "type": channel.clone(), "start": f64::from(i) }
                        .to_vec()
                        .unwrap(),
                )
                .unwrap();
                channel.push_str(".a");
                rec
            })
            .collect();
        let tree = finish("x".into(), events).tree();
        let (mut depth, mut level) = (1, &tree);
        while let Some(last) = level.last() {
            assert!(level.len() <= 401);
            level = &last.children;
            depth += 1;
        }
        assert_eq!(depth - 1, crate::record::MAX_DEPTH);
    }
}
