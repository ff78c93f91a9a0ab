//! Connection slots of the relay's event loop, and the [`Token`] layout that names a slot and
//! an operation in every io request it submits.
//!
//! A token is `slot << 32 | generation << 8 | op`: the slot index, the low 24 bits of the
//! slot's generation, and the [`Op`] tag saying which operation it is. Releasing a slot bumps
//! its generation, so an event that arrives for a connection after its slot was reused carries
//! an old generation and is recognised as stale ([`Slots::is_current`]). Operations of a
//! listener (accept, its back-off timer, its close) carry the pipe's id in the slot field and
//! the accept epoch in the generation field.

use crate::io::Token;

use super::conn::Side;

/// The generation bits a [`Token`] carries.
const GENERATION_MASK: u32 = 0xff_ffff;

/// The tag bits a [`Token`] carries.
const TAG_MASK: u64 = 0xff;

/// Which operation a [`Token`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// A pipe's repeating accept (slot field: the pipe; generation field: the accept epoch).
    Accept,
    /// A pipe's accept back-off timer (slot field: the pipe).
    Backoff,
    /// The close of a pipe's listener after [`Relay::stop_pipe`](super::Relay::stop_pipe).
    ListenerClose,
    /// A connection's target connect.
    Connect,
    /// A connection's setup deadline.
    Deadline,
    /// A receive on one side of a connection.
    Recv(Side),
    /// A send on one side of a connection.
    Send(Side),
    /// A `shutdown(SHUT_WR)` on one side of a connection.
    Shutdown(Side),
    /// The close of one side of a connection, counted by its teardown.
    Close(Side),
    /// The close of a target socket whose connect failed while the next address is tried
    /// (not counted by a teardown).
    DiscardTarget,
}

impl Op {
    /// The 8-bit tag of this operation.
    fn tag(self) -> u64 {
        let side = |s: Side| match s {
            Side::Plain => 0,
            Side::Crypt => 1,
        };
        match self {
            Op::Accept => 1,
            Op::Backoff => 2,
            Op::ListenerClose => 3,
            Op::Connect => 4,
            Op::Deadline => 5,
            Op::DiscardTarget => 6,
            Op::Recv(s) => 8 + side(s),
            Op::Send(s) => 10 + side(s),
            Op::Shutdown(s) => 12 + side(s),
            Op::Close(s) => 14 + side(s),
        }
    }

    /// The operation of an 8-bit tag; `None` for a tag no [`Op`] has.
    fn from_tag(tag: u64) -> Option<Op> {
        let side = |t: u64| if t & 1 == 0 { Side::Plain } else { Side::Crypt };
        Some(match tag {
            1 => Op::Accept,
            2 => Op::Backoff,
            3 => Op::ListenerClose,
            4 => Op::Connect,
            5 => Op::Deadline,
            6 => Op::DiscardTarget,
            8 | 9 => Op::Recv(side(tag)),
            10 | 11 => Op::Send(side(tag)),
            12 | 13 => Op::Shutdown(side(tag)),
            14 | 15 => Op::Close(side(tag)),
            _ => return None,
        })
    }
}

/// The token for `op` of the connection (or pipe) in `slot` at `generation` (its low 24 bits
/// are kept).
pub(crate) fn token(slot: u32, generation: u32, op: Op) -> Token {
    raw_token(slot, generation, op.tag())
}

fn raw_token(slot: u32, generation: u32, tag: u64) -> Token {
    (u64::from(slot) << 32) | (u64::from(generation & GENERATION_MASK) << 8) | (tag & TAG_MASK)
}

/// Splits a token made by [`token`] into (slot, generation, operation); the operation is
/// `None` for a token no [`token`] call made.
pub(crate) fn split(t: Token) -> (u32, u32, Option<Op>) {
    let (slot, generation, tag) = split_raw(t);
    (slot, generation, Op::from_tag(tag))
}

/// Splits a token into (slot, generation, raw 8-bit tag).
pub(crate) fn split_raw(t: Token) -> (u32, u32, u64) {
    (
        (t >> 32) as u32,
        ((t >> 8) as u32) & GENERATION_MASK,
        t & TAG_MASK,
    )
}

/// Connections of type `C` by slot index, with a free list and a generation per slot.
#[derive(Debug)]
pub(crate) struct Slots<C> {
    conns: Vec<Option<C>>,
    generations: Vec<u32>,
    free: Vec<u32>,
}

impl<C> Default for Slots<C> {
    fn default() -> Self {
        Slots {
            conns: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<C> Slots<C> {
    /// No connections.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Puts `conn` in a free slot (the most recently released one, else a new one) and
    /// returns the slot index.
    pub(crate) fn insert(&mut self, conn: C) -> u32 {
        if let Some(slot) = self.free.pop()
            && let Some(entry) = self.conns.get_mut(slot as usize)
        {
            *entry = Some(conn);
            return slot;
        }
        // One slot per connection: far fewer than 2^32 (each holds descriptors).
        let slot = self.conns.len() as u32;
        self.conns.push(Some(conn));
        self.generations.push(0);
        slot
    }

    /// The connection in `slot`, if the slot is in use.
    pub(crate) fn get(&self, slot: u32) -> Option<&C> {
        self.conns.get(slot as usize)?.as_ref()
    }

    /// Like [`Slots::get`], mutably.
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut C> {
        self.conns.get_mut(slot as usize)?.as_mut()
    }

    /// True if `slot` is in use and `generation` (as a [`Token`] carries it) is its current
    /// generation, i.e. an event with that slot and generation is for the connection there.
    pub(crate) fn is_current(&self, slot: u32, generation: u32) -> bool {
        self.get(slot).is_some() && self.generation(slot) == generation
    }

    /// The current generation of `slot` as a [`Token`] carries it (0 for an unknown slot).
    pub(crate) fn generation(&self, slot: u32) -> u32 {
        self.generations.get(slot as usize).copied().unwrap_or(0) & GENERATION_MASK
    }

    /// The token for `op` of the connection now in `slot`.
    pub(crate) fn token(&self, slot: u32, op: Op) -> Token {
        token(slot, self.generation(slot), op)
    }

    /// The token for an operation with raw 8-bit `tag` of the connection now in `slot` (for
    /// event loops with their own tags, such as the bench forwarder).
    pub(crate) fn raw_token(&self, slot: u32, tag: u64) -> Token {
        raw_token(slot, self.generation(slot), tag)
    }

    /// Takes the connection out of `slot` and frees the slot, bumping its generation so that
    /// tokens made so far for it become stale. `None` (and no change) if the slot is not in
    /// use.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<C> {
        let conn = self.conns.get_mut(slot as usize)?.take()?;
        if let Some(g) = self.generations.get_mut(slot as usize) {
            *g = g.wrapping_add(1);
        }
        self.free.push(slot);
        Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_keep_24_generation_bits() {
        let ops = [
            Op::Accept,
            Op::Backoff,
            Op::ListenerClose,
            Op::Connect,
            Op::Deadline,
            Op::DiscardTarget,
            Op::Recv(Side::Plain),
            Op::Recv(Side::Crypt),
            Op::Send(Side::Plain),
            Op::Send(Side::Crypt),
            Op::Shutdown(Side::Plain),
            Op::Shutdown(Side::Crypt),
            Op::Close(Side::Plain),
            Op::Close(Side::Crypt),
        ];
        let mut tags = std::collections::HashSet::new();
        for op in ops {
            assert!(tags.insert(op.tag()), "{op:?} shares its tag");
            assert_eq!(split(token(7, 0x0123_4567, op)), (7, 0x23_4567, Some(op)));
            assert_eq!(
                split(token(u32::MAX, u32::MAX, op)),
                (u32::MAX, 0xff_ffff, Some(op))
            );
        }
        assert_eq!(
            split(raw_token(1, 2, 0x1ff)),
            (1, 2, None),
            "no op has tag 0xff"
        );
        assert_eq!(
            split_raw(raw_token(1, 2, 0x1ff)),
            (1, 2, 0xff),
            "bits beyond 8 drop"
        );
    }

    #[test]
    fn a_released_slot_is_reused_under_a_new_generation() {
        let mut s = Slots::new();
        let a = s.insert("a");
        let b = s.insert("b");
        let ta = s.token(a, Op::Connect);
        let (slot, generation, op) = split(ta);
        assert_eq!((slot, op), (a, Some(Op::Connect)));
        assert!(s.is_current(slot, generation));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert!(!s.is_current(slot, generation), "released");
        let c = s.insert("c");
        assert_eq!(c, a, "the freed slot is reused");
        assert!(!s.is_current(slot, generation), "old tokens stay stale");
        assert!(s.is_current(c, split(s.token(c, Op::Deadline)).1));
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.get_mut(c).map(|x| *x), Some("c"));
        assert!(!s.is_current(99, 0));
        assert_eq!(s.get(99), None);
        assert_eq!(s.remove(99), None);
        assert_eq!(s.generation(99), 0);
    }
}
