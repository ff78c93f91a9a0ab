//! Connection slots for an event loop on a [`Driver`](super::Driver), and the [`Token`]
//! layout that names a slot in every operation it submits.
//!
//! A token is `slot << 32 | generation << 8 | tag`: the slot index, the low 24 bits of the
//! slot's generation, and an 8-bit tag saying which operation it is. Releasing a slot bumps its
//! generation, so an event that arrives for a connection after its slot was reused carries
//! an old generation and is recognised as stale ([`Slots::is_current`]).

use super::Token;

/// The generation bits a [`Token`] carries.
const GENERATION_MASK: u32 = 0xff_ffff;

/// The tag bits a [`Token`] carries.
const TAG_MASK: u64 = 0xff;

/// The token for operation `tag` (0..=255; higher bits are dropped) of the connection in
/// `slot` at `generation` (its low 24 bits are kept).
pub fn token(slot: u32, generation: u32, tag: u64) -> Token {
    (u64::from(slot) << 32) | (u64::from(generation & GENERATION_MASK) << 8) | (tag & TAG_MASK)
}

/// Splits a token made by [`token`] into (slot, generation, tag).
pub fn split(t: Token) -> (u32, u32, u64) {
    (
        (t >> 32) as u32,
        ((t >> 8) as u32) & GENERATION_MASK,
        t & TAG_MASK,
    )
}

/// Connections of type `C` by slot index, with a free list and a generation per slot.
#[derive(Debug)]
pub struct Slots<C> {
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `conn` in a free slot (the most recently released one, else a new one) and
    /// returns the slot index.
    pub fn insert(&mut self, conn: C) -> u32 {
        if let Some(slot) = self.free.pop() {
            if let Some(entry) = self.conns.get_mut(slot as usize) {
                *entry = Some(conn);
                return slot;
            }
        }
        // One slot per connection: far fewer than 2^32 (each holds descriptors).
        let slot = self.conns.len() as u32;
        self.conns.push(Some(conn));
        self.generations.push(0);
        slot
    }

    /// The connection in `slot`, if the slot is in use.
    pub fn get(&self, slot: u32) -> Option<&C> {
        self.conns.get(slot as usize)?.as_ref()
    }

    /// Like [`Slots::get`], mutably.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut C> {
        self.conns.get_mut(slot as usize)?.as_mut()
    }

    /// True if `slot` is in use and `generation` (as a [`Token`] carries it) is its current
    /// generation, i.e. an event with that slot and generation is for the connection there.
    pub fn is_current(&self, slot: u32, generation: u32) -> bool {
        self.get(slot).is_some() && self.generation(slot) == generation
    }

    /// The current generation of `slot` as a [`Token`] carries it (0 for an unknown slot).
    pub fn generation(&self, slot: u32) -> u32 {
        self.generations.get(slot as usize).copied().unwrap_or(0) & GENERATION_MASK
    }

    /// The token for operation `tag` of the connection now in `slot`.
    pub fn token(&self, slot: u32, tag: u64) -> Token {
        token(slot, self.generation(slot), tag)
    }

    /// Takes the connection out of `slot` and frees the slot, bumping its generation so that
    /// tokens made so far for it become stale. `None` (and no change) if the slot is not in
    /// use.
    pub fn remove(&mut self, slot: u32) -> Option<C> {
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
        assert_eq!(split(token(7, 0x0123_4567, 0x42)), (7, 0x23_4567, 0x42));
        assert_eq!(
            split(token(u32::MAX, u32::MAX, 0xff)),
            (u32::MAX, 0xff_ffff, 0xff)
        );
        assert_eq!(
            split(token(1, 2, 0x1ff)),
            (1, 2, 0xff),
            "tag bits beyond 8 are dropped"
        );
    }

    #[test]
    fn a_released_slot_is_reused_under_a_new_generation() {
        let mut s = Slots::new();
        let a = s.insert("a");
        let b = s.insert("b");
        let ta = s.token(a, 3);
        let (slot, generation, tag) = split(ta);
        assert_eq!((slot, tag), (a, 3));
        assert!(s.is_current(slot, generation));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        assert!(!s.is_current(slot, generation), "released");
        let c = s.insert("c");
        assert_eq!(c, a, "the freed slot is reused");
        assert!(!s.is_current(slot, generation), "old tokens stay stale");
        assert!(s.is_current(c, split(s.token(c, 0)).1));
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.get_mut(c).map(|x| *x), Some("c"));
        assert!(!s.is_current(99, 0));
        assert_eq!(s.get(99), None);
        assert_eq!(s.remove(99), None);
        assert_eq!(s.generation(99), 0);
    }
}
