//! Merged requests for a model's merged twin (`heinfer compile --merged`, a config with
//! `max_batch_size` B): what Triton's dynamic batcher and heinfer's batching strategy do
//! for the Triton backend, done here. Requests under one key id, each one sample in its
//! own layout-M block, wait together for a short window (and for a free instance); the
//! group's ciphertexts are then added and answered by one evaluation
//! (`runtime::Service::infer_merged`). Different key ids never share a group, and a block
//! appears at most once in a group.
//!
//! This module only keeps the groups; `infer` runs them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use runtime::Response;
use tokio::sync::oneshot;

use crate::error::RequestError;

/// One request waiting in a group: its block, its ciphertexts, where its answer goes.
pub struct Member {
    pub block: usize,
    pub ciphertexts: Vec<Bytes>,
    pub answer: oneshot::Sender<Result<Response, RequestError>>,
}

struct Group {
    id: u64,
    key_id: Vec<u8>,
    members: Vec<Member>,
}

/// The open groups of one merged model.
pub struct Merger {
    blocks: usize,
    delay: Duration,
    next: AtomicU64,
    open: Mutex<Vec<Group>>,
}

impl Merger {
    /// `blocks`: layout M's B; `delay`: how long a group stays open once it has an instance
    /// (Triton's `max_queue_delay_microseconds`).
    pub fn new(blocks: usize, delay: Duration) -> Self {
        Self { blocks, delay, next: AtomicU64::new(0), open: Mutex::new(Vec::new()) }
    }

    pub fn blocks(&self) -> usize {
        self.blocks
    }

    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Adds a request to an open group of its key id that does not hold its block yet, or
    /// opens one: then its id is returned, and the caller must run the group.
    pub fn join(&self, key_id: &[u8], member: Member) -> Option<u64> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let fits = |g: &Group| {
            g.key_id == key_id && g.members.len() < self.blocks && g.members.iter().all(|m| m.block != member.block)
        };
        if let Some(g) = open.iter_mut().find(|g| fits(g)) {
            g.members.push(member);
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        open.push(Group { id, key_id: key_id.to_vec(), members: vec![member] });
        Some(id)
    }

    /// Closes group `id` (no request joins it after this) and hands over its key id and members.
    pub fn take(&self, id: u64) -> Option<(Vec<u8>, Vec<Member>)> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let i = open.iter().position(|g| g.id == id)?;
        let g = open.swap_remove(i);
        Some((g.key_id, g.members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(block: usize) -> (Member, oneshot::Receiver<Result<Response, RequestError>>) {
        let (tx, rx) = oneshot::channel();
        (Member { block, ciphertexts: vec![], answer: tx }, rx)
    }

    #[test]
    fn groups_hold_one_key_and_distinct_blocks() {
        let m = Merger::new(2, Duration::from_millis(2));
        let a = m.join(b"k1", member(0).0).expect("opens a group");
        assert_eq!(m.join(b"k1", member(1).0), None, "joins: same key, new block");
        let full = m.join(b"k1", member(0).0).expect("block 0 taken: a second group");
        let other = m.join(b"k2", member(1).0).expect("another key: its own group");
        assert!(a != full && full != other);
        let (key, members) = m.take(a).unwrap();
        assert_eq!((key.as_slice(), members.iter().map(|x| x.block).collect::<Vec<_>>()), (&b"k1"[..], vec![0, 1]));
        assert!(m.take(a).is_none(), "taken once");
        // A closed group takes no one: the next request of k1 on block 1 joins the second.
        assert_eq!(m.join(b"k1", member(1).0), None);
        assert_eq!(m.take(full).unwrap().1.len(), 2);
        // Full (B members): a new group.
        assert!(m.join(b"k2", member(0).0).is_none());
        assert!(m.join(b"k2", member(1).0).is_some(), "group of B = 2 full");
    }
}
