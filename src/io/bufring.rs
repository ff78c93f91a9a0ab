//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): a pool of equal-sized receive
//! buffers that the kernel picks from only when data arrives, so an idle connection holds none.
//!
//! Ownership: a buffer is either *in the ring* (the kernel may write into it at any moment and
//! Rust code never forms a reference to it) or *lent* (the kernel reported it in a completion,
//! it will not touch it again, and the caller may read it) until it is recycled. Both the ring
//! array and the buffers live in anonymous mappings that are never moved or resized.

#![allow(unsafe_code)]

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::Submitter;
use io_uring::types::BufRingEntry;

use super::Errno;

/// Why a buffer ring could not be created or registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufRingError {
    /// The buffer count must be a power of two between 1 and 32768, and the size non-zero.
    BadGeometry,
    /// Mapping memory for the ring or the buffers failed.
    Map(Errno),
    /// The kernel refused `IORING_REGISTER_PBUF_RING` (`ENOMEM` often means RLIMIT_MEMLOCK).
    Register(Errno),
}

impl fmt::Display for BufRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BufRingError::BadGeometry => f.write_str(
                "receive buffer count must be a power of two up to 32768 and size non-zero",
            ),
            BufRingError::Map(e) => write!(f, "cannot allocate receive buffers: {e}"),
            BufRingError::Register(e) => {
                write!(
                    f,
                    "cannot register the receive buffer ring with io_uring: {e}"
                )
            }
        }
    }
}

impl std::error::Error for BufRingError {}

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Self, Errno> {
        // SAFETY: an anonymous private mapping with a null hint touches no existing memory; the
        // result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        match NonNull::new(p.cast::<u8>()) {
            Some(ptr) => Ok(Mapping { ptr, len }),
            None => Err(Errno(libc::ENOMEM)),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from a successful mmap and are unmapped exactly once. The owner of
        // the BufRing guarantees the kernel no longer references this memory (see BufRing docs).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A pool of `count` receive buffers of `size` bytes each, registered as buffer group `bgid`.
///
/// The owner must unregister it (or destroy the io_uring) and make sure no operation that may
/// select a buffer is still in flight before dropping it; the io_uring backend does this.
pub struct BufRing {
    ring: Mapping,
    bufs: Mapping,
    count: u16,
    size: u32,
    bgid: u16,
    tail: u16,
    lent: Vec<bool>,
    registered: bool,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes. `count` must be a power of two in 1..=32768.
    pub fn new(count: u16, size: u32, bgid: u16) -> Result<Self, BufRingError> {
        if count == 0 || !count.is_power_of_two() || count > 32768 || size == 0 {
            return Err(BufRingError::BadGeometry);
        }
        let ring_len = usize::from(count) * size_of::<BufRingEntry>();
        let bufs_len = usize::from(count)
            .checked_mul(size as usize)
            .ok_or(BufRingError::BadGeometry)?;
        let ring = Mapping::new(ring_len).map_err(BufRingError::Map)?;
        let bufs = Mapping::new(bufs_len).map_err(BufRingError::Map)?;
        Ok(BufRing {
            ring,
            bufs,
            count,
            size,
            bgid,
            tail: 0,
            lent: vec![true; usize::from(count)],
            registered: false,
        })
    }

    /// The buffer group id to put in receive SQEs.
    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The size of each buffer in bytes.
    pub fn buf_size(&self) -> u32 {
        self.size
    }

    /// Registers the ring with `submitter`'s io_uring and hands every buffer to the kernel.
    pub fn register(&mut self, submitter: &Submitter<'_>) -> Result<(), BufRingError> {
        // SAFETY: the ring mapping is page aligned (mmap), holds `count` entries, and stays
        // mapped until Drop, which the owner runs only after unregistering or destroying the
        // io_uring (struct docs).
        let r = unsafe {
            submitter.register_buf_ring_with_flags(
                self.ring.ptr.as_ptr() as u64,
                self.count,
                self.bgid,
                0,
            )
        };
        r.map_err(|e| BufRingError::Register(Errno(e.raw_os_error().unwrap_or(0))))?;
        self.registered = true;
        for id in 0..self.count {
            self.recycle(id);
        }
        Ok(())
    }

    /// Unregisters the ring. The caller must know that no operation can still select a buffer.
    pub fn unregister(&mut self, submitter: &Submitter<'_>) {
        if self.registered {
            // An error here means the group is already gone; either way the kernel no longer
            // holds the ring.
            let _ = submitter.unregister_buf_ring(self.bgid);
            self.registered = false;
        }
    }

    /// Returns the memory of every buffer to the kernel (`MADV_DONTNEED`): the pages the pool
    /// touched at its busiest stop counting in the resident set, and are faulted in again,
    /// zero-filled, when the kernel next writes a receive into them. The buffers stay in the
    /// ring, registered; their contents are meaningless while they are in it anyway.
    ///
    /// Returns the bytes released, or 0 without doing anything if a buffer is lent (its data
    /// is still to be read). The caller must know that no operation can select a buffer now
    /// or while this runs (no receive with buffer selection in flight), as for `unregister`.
    pub(crate) fn release_pages(&mut self) -> usize {
        if self.lent.iter().any(|&l| l) {
            return 0;
        }
        // SAFETY: ptr/len are the buffer mapping (page aligned, from mmap), which lives as long
        // as `self`. No buffer is lent, so Rust holds no reference into it, and the caller
        // guarantees that the kernel is not writing a receive into it; discarding the pages of
        // an anonymous private mapping only makes them read back as zeros.
        let r = unsafe {
            libc::madvise(
                self.bufs.ptr.as_ptr().cast(),
                self.bufs.len,
                libc::MADV_DONTNEED,
            )
        };
        if r == 0 { self.bufs.len } else { 0 }
    }

    /// How many bytes of the buffers are resident in memory now (`mincore`), or `None` if the
    /// kernel would not say. For tests and measurements.
    pub(crate) fn resident_bytes(&self) -> Option<usize> {
        let page = page_size()?;
        let pages = self.bufs.len.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: ptr/len are the buffer mapping (page aligned, from mmap), alive as long as
        // `self`; `vec` has one byte per page of it, as mincore writes. mincore reads no memory
        // of the mapping.
        let r = unsafe {
            libc::mincore(
                self.bufs.ptr.as_ptr().cast(),
                self.bufs.len,
                vec.as_mut_ptr(),
            )
        };
        (r == 0).then(|| vec.iter().filter(|&&b| b & 1 != 0).count() * page)
    }

    /// Marks buffer `id` as lent with `len` valid bytes, as reported by a completion.
    /// Returns `None` if `id` or `len` is out of range or the buffer was not in the ring.
    pub(crate) fn take(&mut self, id: u16, len: u32) -> Option<super::RecvBuf> {
        let slot = self.lent.get_mut(usize::from(id))?;
        if *slot || len > self.size {
            return None;
        }
        *slot = true;
        Some(super::RecvBuf { id, len })
    }

    /// The bytes of a lent buffer.
    pub(crate) fn data(&self, buf: &super::RecvBuf) -> &[u8] {
        let lent = self.lent.get(usize::from(buf.id)).copied().unwrap_or(false);
        if !lent || buf.id >= self.count || buf.len > self.size {
            return &[];
        }
        let offset = usize::from(buf.id) * self.size as usize;
        // SAFETY: the buffer is lent (checked above), so the kernel has finished writing it and
        // will not select it again until `recycle`; offset + len lies inside the mapping because
        // id < count and len <= size; the mapping lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.bufs.ptr.as_ptr().add(offset), buf.len as usize) }
    }

    /// Hands buffer `id` back to the kernel. Recycling a buffer that is not lent does nothing.
    pub(crate) fn recycle(&mut self, id: u16) {
        let Some(slot) = self.lent.get_mut(usize::from(id)) else {
            return;
        };
        if !*slot {
            return;
        }
        *slot = false;
        let mask = self.count - 1;
        let index = usize::from(self.tail & mask);
        let base = self.ring.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: index < count, so the entry lies inside the ring mapping. The kernel only reads
        // entries between its head and our published tail; this slot is past the tail (there are
        // at most `count` buffers in the ring and this one was not among them), so nobody reads
        // it concurrently.
        let entry = unsafe { &mut *base.add(index) };
        // SAFETY: id < count, so the buffer lies inside the buffer mapping.
        let addr = unsafe {
            self.bufs
                .ptr
                .as_ptr()
                .add(usize::from(id) * self.size as usize)
        };
        entry.set_addr(addr as u64);
        entry.set_len(self.size);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: `base` is the first entry of the ring, so `tail` points at the ring's shared
        // tail field, a naturally aligned u16 inside the mapping. The kernel reads it with acquire
        // semantics; the release store publishes the entry written above.
        unsafe {
            let tail = BufRingEntry::tail(base).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("count", &self.count)
            .field("size", &self.size)
            .field("bgid", &self.bgid)
            .finish_non_exhaustive()
    }
}

/// The system page size, `None` if `sysconf` fails.
fn page_size() -> Option<usize> {
    // SAFETY: sysconf takes an integer name and touches no memory of ours.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0)
}
