//! Layout-T batches sent in several requests. A batch of thousands of samples is one
//! ciphertext per input feature, hundreds of MB for a large input: more than one request
//! may carry (Triton's and `heinfer serve`'s request limits). The client then sends the
//! features in parts, each request tagged `BATCH_PART` = `"<batch id>:<k>/<n>"` (part k of
//! n, the features of part k following those of part k − 1); every part is checked as it
//! arrives, held, and the batch is evaluated once, when its last part arrives, whose
//! response carries the answer (the others answer an empty `ENCRYPTED_OUTPUT`).
//!
//! What is held is bounded twice, whatever clients send: in bytes (all pending batches
//! of a model together, and those of one key id, so that one client cannot lock the
//! others out; a part that would pass a bound is refused, nothing else changes) and in time (a batch whose parts stop coming is dropped `timeout` after its
//! first part, by a sweeper thread, so that an abandoned batch's memory comes back
//! without any later request). One batch is under one key id: a part naming another is
//! refused and the batch is left as it was.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::keystore::KeyId;

/// Longest batch id (ASCII letters, digits, `-`, `_`).
pub const MAX_BATCH_ID: usize = 64;
/// Expired batch ids remembered, to tell a late part why its batch is gone.
const REMEMBERED_EXPIRED: usize = 256;

/// The `BATCH_PART` tag of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTag {
    pub batch: String,
    pub index: u32,
    pub count: u32,
}

impl PartTag {
    /// Parses `"<batch id>:<k>/<n>"` (0 ≤ k < n).
    pub fn parse(raw: &[u8]) -> Result<Self, AssemblyError> {
        let bad = |why: &str| AssemblyError::BadTag(format!("{why}; got {:?}", String::from_utf8_lossy(raw)));
        let s = std::str::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
        let (batch, part) = s.rsplit_once(':').ok_or_else(|| bad("no ':' between the batch id and the part"))?;
        let (k, n) = part.split_once('/').ok_or_else(|| bad("the part is not k/n"))?;
        let ok_id = !batch.is_empty()
            && batch.len() <= MAX_BATCH_ID
            && batch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_id {
            return Err(bad(&format!("the batch id must be 1 to {MAX_BATCH_ID} of A-Z a-z 0-9 - _")));
        }
        let (index, count) = match (k.parse::<u32>(), n.parse::<u32>()) {
            (Ok(k), Ok(n)) => (k, n),
            _ => return Err(bad("k and n must be non-negative integers")),
        };
        if count == 0 || index >= count {
            return Err(bad("the part index k must be below the part count n (0 ≤ k < n)"));
        }
        Ok(Self { batch: batch.to_string(), index, count })
    }
}

/// A part that cannot be taken. The request fails; pending batches are as they were,
/// except where the message says the batch was dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssemblyError {
    #[error("BATCH_PART must be \"<batch id>:<k>/<n>\": {0}")]
    BadTag(String),
    #[error("BATCH_PART is for layout-T batches (one ciphertext per input feature, sent in parts): {0}")]
    NotLayoutT(&'static str),
    #[error("batch '{batch}' was started under KEY_ID {first}; this part names {this}: one batch is under one key")]
    OtherKey { batch: String, first: KeyId, this: KeyId },
    #[error("batch '{batch}' was started as {first} parts; this part says {this}")]
    OtherCount { batch: String, first: u32, this: u32 },
    #[error("batch '{batch}' already has part {index}; each part is sent once")]
    Duplicate { batch: String, index: u32 },
    #[error("batch '{batch}' would hold {got} ciphertexts with this part; the model's batch is one per input feature ({want}){dropped}")]
    TooMany { batch: String, got: usize, want: usize, dropped: &'static str },
    #[error("batch '{batch}' timed out: its first part came {waited_s:.0} s ago and {received} of {count} parts arrived within the limit of {timeout_s:.0} s; its parts were freed: send the whole batch again")]
    Expired { batch: String, received: u32, count: u32, waited_s: f64, timeout_s: f64 },
    #[error("pending batches would hold {would} bytes with this part, more than this model's limit of {limit} (parameter heinfer_pending_batches_mb): finish or abandon the open batches, or send the batch in one request")]
    Full { would: usize, limit: usize },
    #[error("the pending batches of KEY_ID {key} would hold {would} bytes with this part, more than one key id's limit of {limit} (parameter heinfer_pending_batches_per_key_mb): finish or abandon this key id's open batches first")]
    KeyFull { key: KeyId, would: usize, limit: usize },
    #[error("batch '{batch}' would hold {would} bytes with this part, more than one key id may hold pending ({limit}, parameter heinfer_pending_batches_per_key_mb){dropped}: send it in fewer, larger requests (the last part is never held), or raise the limit")]
    BatchTooLarge { batch: String, would: usize, limit: usize, dropped: &'static str },
}

/// Bounds of a model's pending batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub bytes: usize,
    /// What the batches of one key id may hold of `bytes`.
    pub bytes_per_key: usize,
    pub timeout: Duration,
}

impl Limits {
    /// The limits a model config sets (`heinfer_pending_batches_mb`,
    /// `heinfer_batch_timeout_s`, read through `param`), the defaults where it is silent.
    pub fn from_params(param: impl Fn(&str) -> Option<String>) -> Result<Self, crate::protocol::SettingError> {
        use crate::protocol::{
            megabytes, seconds, BATCH_TIMEOUT_S_PARAM, PENDING_BATCHES_MB_PARAM, PENDING_BATCHES_PER_KEY_MB_PARAM,
        };
        let d = Self::default();
        Ok(Self {
            bytes: param(PENDING_BATCHES_MB_PARAM)
                .map(|v| megabytes(PENDING_BATCHES_MB_PARAM, &v))
                .transpose()?
                .unwrap_or(d.bytes),
            bytes_per_key: param(PENDING_BATCHES_PER_KEY_MB_PARAM)
                .map(|v| megabytes(PENDING_BATCHES_PER_KEY_MB_PARAM, &v))
                .transpose()?
                .unwrap_or(d.bytes_per_key),
            timeout: param(BATCH_TIMEOUT_S_PARAM)
                .map(|v| seconds(BATCH_TIMEOUT_S_PARAM, &v))
                .transpose()?
                .unwrap_or(d.timeout),
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            bytes: crate::protocol::DEFAULT_PENDING_BATCHES_MB << 20,
            bytes_per_key: crate::protocol::DEFAULT_PENDING_BATCHES_PER_KEY_MB << 20,
            timeout: Duration::from_secs(crate::protocol::DEFAULT_BATCH_TIMEOUT_S),
        }
    }
}

/// What adding a part did.
#[derive(Debug)]
pub enum Added<T> {
    /// Held; the batch waits for more parts.
    Waiting { received: u32, count: u32 },
    /// The last part: the batch's items in part order, no longer held.
    Complete(Vec<T>),
}

struct Pending<T> {
    key: KeyId,
    parts: Vec<Option<Vec<T>>>,
    received: u32,
    items: usize,
    bytes: usize,
    started: Instant,
}

struct State<T> {
    pending: HashMap<String, Pending<T>>,
    bytes: usize,
    expired: VecDeque<(String, u32, u32, Instant)>,
}

/// The pending batches of one model.
pub struct Assembler<T> {
    limits: Limits,
    state: Mutex<State<T>>,
    /// Itself, for the sweeper thread; `None` for an assembler without one.
    me: Option<Weak<Self>>,
    /// Set once the sweeper runs: it starts with the first part, so that a model whose
    /// clients never split a batch (or whose limits are replaced at load) has no thread.
    sweeping: OnceLock<()>,
}

impl<T: Send + 'static> Assembler<T> {
    /// An assembler with `limits` and a sweeper thread, started by the first part, that
    /// drops timed-out batches (it ends when the assembler is dropped).
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new_cyclic(|me| Self { me: Some(me.clone()), ..Self::without_sweeper(limits) })
    }

    /// An assembler whose timed-out batches are dropped only when a part arrives (tests).
    pub fn without_sweeper(limits: Limits) -> Self {
        Self {
            limits,
            state: Mutex::new(State { pending: HashMap::new(), bytes: 0, expired: VecDeque::new() }),
            me: None,
            sweeping: OnceLock::new(),
        }
    }

    /// Whether the sweeper thread has started.
    pub fn is_sweeping(&self) -> bool {
        self.sweeping.get().is_some()
    }

    fn start_sweeper(&self) {
        let Some(weak) = self.me.clone() else { return };
        self.sweeping.get_or_init(|| {
            let period = (self.limits.timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
            let spawned = std::thread::Builder::new().name("heinfer-batch-sweeper".into()).spawn(move || loop {
                std::thread::sleep(period);
                match weak.upgrade() {
                    Some(a) => a.sweep(Instant::now()),
                    None => return,
                }
            });
            // Without the thread, batches still expire at the next part any client sends.
            drop(spawned);
        });
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the pending batches hold.
    pub fn pending_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Batches waiting for parts.
    pub fn pending_batches(&self) -> usize {
        self.lock().pending.len()
    }

    /// Drops every batch whose first part came more than `timeout` before `now`.
    pub fn sweep(&self, now: Instant) {
        let mut st = self.lock();
        let timeout = self.limits.timeout;
        let gone: Vec<String> = st
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.started) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            let p = st.pending.remove(&id).expect("listed above");
            st.bytes -= p.bytes;
            if st.expired.len() == REMEMBERED_EXPIRED {
                st.expired.pop_front();
            }
            st.expired.push_back((id, p.received, p.parts.len() as u32, p.started));
        }
    }

    /// Adds part `tag` of `items` (taking `bytes` of memory) under `key`; `want`: the
    /// items a whole batch holds (exactly).
    pub fn add(
        &self,
        tag: &PartTag,
        key: KeyId,
        items: Vec<T>,
        bytes: usize,
        want: usize,
        now: Instant,
    ) -> Result<Added<T>, AssemblyError> {
        self.start_sweeper();
        self.sweep(now);
        let mut st = self.lock();
        let batch = tag.batch.clone();
        if let Some(p) = st.pending.get(&tag.batch) {
            if p.key != key {
                return Err(AssemblyError::OtherKey { batch, first: p.key, this: key });
            }
            if p.parts.len() as u32 != tag.count {
                return Err(AssemblyError::OtherCount { batch, first: p.parts.len() as u32, this: tag.count });
            }
            if p.parts[tag.index as usize].is_some() {
                return Err(AssemblyError::Duplicate { batch, index: tag.index });
            }
        } else if let Some(&(_, received, count, started)) = st.expired.iter().rev().find(|e| e.0 == tag.batch) {
            // A late part of a batch the sweeper dropped: say so once, then forget it (a
            // new batch may reuse the id).
            st.expired.retain(|e| e.0 != tag.batch);
            return Err(AssemblyError::Expired {
                batch,
                received,
                count,
                waited_s: now.saturating_duration_since(started).as_secs_f64(),
                timeout_s: self.limits.timeout.as_secs_f64(),
            });
        }
        let (held_items, last) = match st.pending.get(&tag.batch) {
            Some(p) => (p.items, p.received + 1 == tag.count),
            None => (0, tag.count == 1),
        };
        let got = held_items + items.len();
        if got > want || (last && got != want) {
            // A batch that can no longer be whole is dropped now rather than held to its timeout.
            let dropped = match st.pending.remove(&tag.batch) {
                Some(p) => {
                    st.bytes -= p.bytes;
                    "; the batch was dropped: send it again"
                }
                None => "",
            };
            return Err(AssemblyError::TooMany { batch, got, want, dropped });
        }
        if last {
            let p = st.pending.remove(&tag.batch);
            let mut parts = match p {
                Some(p) => {
                    st.bytes -= p.bytes;
                    p.parts
                }
                None => vec![None],
            };
            parts[tag.index as usize] = Some(items);
            return Ok(Added::Complete(parts.into_iter().flatten().flatten().collect()));
        }
        if st.bytes + bytes > self.limits.bytes {
            return Err(AssemblyError::Full { would: st.bytes + bytes, limit: self.limits.bytes });
        }
        let per_key = self.limits.bytes_per_key.min(self.limits.bytes);
        let this_batch = st.pending.get(&tag.batch).map_or(0, |p| p.bytes);
        if this_batch + bytes > per_key {
            // This batch alone can never be held whole under one key id: no retry helps.
            let dropped = match st.pending.remove(&tag.batch) {
                Some(p) => {
                    st.bytes -= p.bytes;
                    "; the batch was dropped"
                }
                None => "",
            };
            return Err(AssemblyError::BatchTooLarge { batch, would: this_batch + bytes, limit: per_key, dropped });
        }
        let of_key: usize = st.pending.values().filter(|p| p.key == key).map(|p| p.bytes).sum();
        if of_key + bytes > per_key {
            return Err(AssemblyError::KeyFull { key, would: of_key + bytes, limit: per_key });
        }
        st.bytes += bytes;
        let p = st.pending.entry(tag.batch.clone()).or_insert_with(|| Pending {
            key,
            parts: (0..tag.count).map(|_| None).collect(),
            received: 0,
            items: 0,
            bytes: 0,
            started: now,
        });
        p.parts[tag.index as usize] = Some(items);
        p.received += 1;
        p.items += got - held_items;
        p.bytes += bytes;
        Ok(Added::Waiting { received: p.received, count: tag.count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> KeyId {
        KeyId::of_bundle(&[b])
    }

    fn tag(s: &str) -> PartTag {
        PartTag::parse(s.as_bytes()).unwrap()
    }

    fn limits(bytes: usize, secs: u64) -> Limits {
        Limits { bytes, bytes_per_key: bytes, timeout: Duration::from_secs(secs) }
    }

    #[test]
    fn tags_parse_and_refuse() {
        assert_eq!(tag("run-7_a:2/3"), PartTag { batch: "run-7_a".into(), index: 2, count: 3 });
        for bad in
            ["", "x", "x:1", "x:3/3", "x:0/0", ":0/1", "x y:0/1", "x:-1/2", "x:a/2", &format!("{}:0/1", "a".repeat(65))]
        {
            let e = PartTag::parse(bad.as_bytes()).unwrap_err();
            assert!(matches!(e, AssemblyError::BadTag(_)), "{bad}: {e}");
            assert!(e.to_string().contains("<batch id>:<k>/<n>"), "{e}");
        }
    }

    #[test]
    fn parts_in_any_order_make_the_batch_in_part_order() {
        let a = Assembler::without_sweeper(limits(1000, 60));
        let t0 = Instant::now();
        let r = a.add(&tag("b:2/3"), key(1), vec![5, 6], 20, 6, t0).unwrap();
        assert!(matches!(r, Added::Waiting { received: 1, count: 3 }));
        a.add(&tag("b:0/3"), key(1), vec![1, 2], 20, 6, t0).unwrap();
        assert_eq!(a.pending_bytes(), 40);
        match a.add(&tag("b:1/3"), key(1), vec![3, 4], 20, 6, t0).unwrap() {
            Added::Complete(v) => assert_eq!(v, vec![1, 2, 3, 4, 5, 6]),
            w => panic!("{w:?}"),
        }
        assert_eq!((a.pending_bytes(), a.pending_batches()), (0, 0));
        // A one-part batch is answered at once and holds nothing.
        assert!(matches!(a.add(&tag("c:0/1"), key(1), vec![1; 6], 60, 6, t0).unwrap(), Added::Complete(_)));
        assert_eq!(a.pending_bytes(), 0);
    }

    #[test]
    fn mismatches_are_refused_and_leave_the_batch() {
        let a = Assembler::without_sweeper(limits(1000, 60));
        let t0 = Instant::now();
        a.add(&tag("b:0/2"), key(1), vec![1, 2], 20, 4, t0).unwrap();
        let e = a.add(&tag("b:1/2"), key(2), vec![3, 4], 20, 4, t0).unwrap_err();
        assert!(
            matches!(e, AssemblyError::OtherKey { .. }) && e.to_string().contains("one batch is under one key"),
            "{e}"
        );
        assert!(matches!(
            a.add(&tag("b:1/3"), key(1), vec![3], 10, 4, t0).unwrap_err(),
            AssemblyError::OtherCount { .. }
        ));
        assert!(matches!(
            a.add(&tag("b:0/2"), key(1), vec![3], 10, 4, t0).unwrap_err(),
            AssemblyError::Duplicate { .. }
        ));
        assert_eq!(a.pending_bytes(), 20, "refused parts hold nothing");
        match a.add(&tag("b:1/2"), key(1), vec![3, 4], 20, 4, t0).unwrap() {
            Added::Complete(v) => assert_eq!(v, vec![1, 2, 3, 4]),
            w => panic!("{w:?}"),
        }
    }

    #[test]
    fn a_batch_that_cannot_be_whole_is_dropped() {
        let a = Assembler::without_sweeper(limits(1000, 60));
        let t0 = Instant::now();
        a.add(&tag("b:0/2"), key(1), vec![1, 2, 3], 30, 4, t0).unwrap();
        let e = a.add(&tag("b:1/2"), key(1), vec![4, 5], 20, 4, t0).unwrap_err();
        assert!(e.to_string().contains("would hold 5 ciphertexts") && e.to_string().contains("dropped"), "{e}");
        assert_eq!((a.pending_bytes(), a.pending_batches()), (0, 0));
        // Too few in the last part: also never whole.
        a.add(&tag("c:0/2"), key(1), vec![1], 10, 4, t0).unwrap();
        assert!(matches!(a.add(&tag("c:1/2"), key(1), vec![2], 10, 4, t0).unwrap_err(), AssemblyError::TooMany { .. }));
        assert_eq!(a.pending_bytes(), 0);
    }

    #[test]
    fn the_byte_bound_holds_whatever_clients_send() {
        let a = Assembler::without_sweeper(limits(100, 60));
        let t0 = Instant::now();
        for i in 0..5 {
            a.add(&tag(&format!("b{i}:0/2")), key(1), vec![0u8; 2], 20, 4, t0).unwrap();
        }
        let e = a.add(&tag("b9:0/2"), key(1), vec![0u8; 2], 20, 4, t0).unwrap_err();
        assert!(matches!(e, AssemblyError::Full { would: 120, limit: 100 }), "{e}");
        assert!(e.to_string().contains("heinfer_pending_batches_mb"), "{e}");
        assert_eq!(a.pending_bytes(), 100);
        // Completing a batch needs no room (its last part is evaluated, not held).
        assert!(matches!(a.add(&tag("b0:1/2"), key(1), vec![0u8; 2], 20, 4, t0).unwrap(), Added::Complete(_)));
        assert_eq!(a.pending_bytes(), 80);
    }

    #[test]
    fn one_key_id_cannot_take_the_whole_allowance() {
        let a = Assembler::without_sweeper(Limits { bytes_per_key: 40, ..limits(100, 60) });
        let t0 = Instant::now();
        for i in 0..2 {
            a.add(&tag(&format!("a{i}:0/2")), key(1), vec![0u8; 2], 20, 4, t0).unwrap();
        }
        let e = a.add(&tag("a2:0/2"), key(1), vec![0u8; 2], 20, 4, t0).unwrap_err();
        assert!(matches!(e, AssemblyError::KeyFull { would: 60, limit: 40, .. }), "{e}");
        assert!(e.to_string().contains("heinfer_pending_batches_per_key_mb"), "{e}");
        // A batch that alone passes one key id's bound can never be held whole: refused
        // for good (not "retry later"), and dropped.
        let e = a.add(&tag("big:0/3"), key(5), vec![0u8; 1], 30, 4, t0).unwrap();
        assert!(matches!(e, Added::Waiting { .. }));
        let e = a.add(&tag("big:1/3"), key(5), vec![0u8; 1], 30, 4, t0).unwrap_err();
        assert!(matches!(e, AssemblyError::BatchTooLarge { would: 60, limit: 40, .. }), "{e}");
        assert!(!crate::ServiceError::Batch(e).is_transient());
        assert_eq!(a.pending_bytes(), 40, "the big batch's part was freed");
        // Another key id still has room, up to the model's bound.
        a.add(&tag("b0:0/2"), key(2), vec![0u8; 2], 20, 4, t0).unwrap();
        a.add(&tag("b1:0/2"), key(2), vec![0u8; 2], 20, 4, t0).unwrap();
        a.add(&tag("c0:0/2"), key(3), vec![0u8; 2], 20, 4, t0).unwrap();
        assert_eq!(a.pending_bytes(), 100);
        // Finishing one of its batches gives the first key id room again.
        assert!(matches!(a.add(&tag("a0:1/2"), key(1), vec![0u8; 2], 20, 4, t0).unwrap(), Added::Complete(_)));
        a.add(&tag("a3:0/2"), key(1), vec![0u8; 2], 20, 4, t0).unwrap();
        // And the model's bound holds over all key ids.
        let e = a.add(&tag("d0:0/2"), key(4), vec![0u8; 2], 20, 4, t0).unwrap_err();
        assert!(matches!(e, AssemblyError::Full { would: 120, limit: 100 }), "{e}");
    }

    #[test]
    fn an_abandoned_batch_is_freed_at_its_timeout_and_a_late_part_told_why() {
        let a = Assembler::without_sweeper(limits(1000, 10));
        let t0 = Instant::now();
        a.add(&tag("b:0/3"), key(1), vec![1], 100, 3, t0).unwrap();
        a.add(&tag("b:1/3"), key(1), vec![2], 100, 3, t0 + Duration::from_secs(5)).unwrap();
        a.sweep(t0 + Duration::from_secs(9));
        assert_eq!(a.pending_bytes(), 200, "not yet timed out");
        a.sweep(t0 + Duration::from_secs(11));
        assert_eq!((a.pending_bytes(), a.pending_batches()), (0, 0));
        let e = a.add(&tag("b:2/3"), key(1), vec![3], 100, 3, t0 + Duration::from_secs(12)).unwrap_err();
        assert!(matches!(e, AssemblyError::Expired { received: 2, count: 3, .. }), "{e}");
        assert!(e.to_string().contains("send the whole batch again"), "{e}");
        // The id is free again.
        assert!(matches!(
            a.add(&tag("b:0/1"), key(1), vec![1, 2, 3], 300, 3, t0 + Duration::from_secs(13)).unwrap(),
            Added::Complete(_)
        ));
    }

    #[test]
    fn the_sweeper_frees_without_any_request() {
        let a = Assembler::new(Limits { bytes: 1000, bytes_per_key: 1000, timeout: Duration::from_millis(100) });
        assert!(!a.is_sweeping(), "no thread before the first part");
        a.add(&tag("b:0/2"), key(1), vec![1], 100, 2, Instant::now()).unwrap();
        assert!(a.is_sweeping());
        assert_eq!(a.pending_bytes(), 100);
        let start = Instant::now();
        while a.pending_bytes() != 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(a.pending_bytes(), 0, "the sweeper dropped the abandoned batch");
    }
}
