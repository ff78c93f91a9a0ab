//! The table of sockets a backend owns, addressed by [`Handle`]: a slot vector with a free
//! list and a generation per slot, shared by the io_uring and epoll backends.
//!
//! A handle names a slot *and* the generation the slot had when the socket was put there.
//! Removing a socket bumps the slot's generation before the slot is reused, so a handle kept
//! after its socket was closed never finds the next socket in that slot: every lookup with it
//! returns `None`, which the backends report as [`super::SubmitError::StaleHandle`].

use super::Handle;

/// One slot: the generation its current (or next) occupant's handle carries, and the entry.
struct Slot<E> {
    generation: u32,
    entry: Option<E>,
}

/// Sockets' entries by [`Handle`]; `E` is the backend's per-socket record.
pub(crate) struct FdTable<E> {
    slots: Vec<Slot<E>>,
    free: Vec<u32>,
}

impl<E> FdTable<E> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        FdTable {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `entry` in a free slot (reusing the most recently freed one) and returns its
    /// handle.
    pub(crate) fn insert(&mut self, entry: E) -> Handle {
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            slot.entry = Some(entry);
            return Handle {
                index,
                generation: slot.generation,
            };
        }
        // More than 2^32 sockets cannot be open (the descriptor limit is far lower).
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        Handle {
            index,
            generation: 0,
        }
    }

    /// The entry `h` names, or `None` if it was removed (or never existed).
    pub(crate) fn get(&self, h: Handle) -> Option<&E> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_ref()
    }

    /// Like [`FdTable::get`], mutably.
    pub(crate) fn get_mut(&mut self, h: Handle) -> Option<&mut E> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.entry.as_mut()
    }

    /// Takes the entry `h` names out of the table and frees its slot; from now on `h` (and
    /// every other handle to that slot so far) is stale. `None` if `h` is already stale.
    pub(crate) fn remove(&mut self, h: Handle) -> Option<E> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.index);
        Some(entry)
    }

    /// How many entries the table holds.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// The entries, in slot order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter_map(|s| s.entry.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_handle_is_stale_even_after_its_slot_is_reused() {
        let mut t = FdTable::new();
        let a = t.insert("a");
        let b = t.insert("b");
        assert_eq!((t.get(a), t.get(b), t.len()), (Some(&"a"), Some(&"b"), 2));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.remove(a), None, "removing twice finds nothing");
        assert_eq!(t.get(a), None);
        let c = t.insert("c");
        assert_eq!(c.index, a.index, "the freed slot is reused");
        assert_ne!(c.generation, a.generation);
        assert_eq!(t.get(a), None, "the old handle does not see the new entry");
        assert_eq!(t.get_mut(a), None);
        assert_eq!(t.remove(a), None, "nor can it remove it");
        assert_eq!(t.get(c), Some(&"c"));
        *t.get_mut(c).expect("live") = "c2";
        assert_eq!(t.entries().copied().collect::<Vec<_>>(), ["c2", "b"]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn unknown_handles_find_nothing() {
        let mut t: FdTable<u8> = FdTable::new();
        let h = Handle {
            index: 7,
            generation: 0,
        };
        assert_eq!(t.get(h), None);
        assert_eq!(t.remove(h), None);
        assert_eq!(t.len(), 0);
    }
}
