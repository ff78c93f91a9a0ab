//! Giving free heap memory back to the kernel after a burst of connections.
//!
//! glibc's allocator keeps memory freed by the program in its arenas for reuse: after a burst
//! of many streaming connections has ended, the relay's resident set stays near its peak
//! although the connections' buffers were all freed. Only the free space at the top of an
//! arena's heap is returned by itself (above `M_TRIM_THRESHOLD`); free pages in the middle of
//! a heap, and the per-thread arenas' heaps, stay resident until `malloc_trim` asks for them.
//! `nix` offers no `malloc_trim`, so [`release_free_heap`] calls `libc`'s.

#![allow(unsafe_code)]

/// Asks the C allocator to return the free memory of every arena to the kernel
/// (`malloc_trim(0)`: unmapped from the top of each heap, `MADV_DONTNEED` on whole free pages
/// inside it), so the resident set shrinks to what is in use.
///
/// Input: none. Output: `true` if some memory was returned, `false` if there was none to
/// return or the C library is not glibc (where this does nothing). Never fails.
///
/// Safe to call from any thread at any time, but not free: it takes each arena's lock in turn
/// and walks its free chunks, so it costs time in proportion to the free heap (about 2 ms for
/// 64 MiB freed in 16 KiB blocks, PERFORMANCE.md) and the next allocations of that memory
/// fault their pages in again. Call it when a burst has ended, not per connection: e.g. from an event loop when
/// its live connections drop to zero after having been many, at most once every few seconds.
pub fn release_free_heap() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim takes a plain integer (the padding to leave at the top of the
        // heap), touches no memory of ours and is thread-safe in glibc (it takes each arena's
        // lock); it frees nothing that is in use.
        let released = unsafe { libc::malloc_trim(0) };
        released != 0
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `VmRSS` of this process in KiB (for the message only: tests run in parallel).
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    #[test]
    #[cfg(target_env = "gnu")]
    fn free_heap_after_a_burst_is_returned() {
        // 64 MiB in 16 KiB blocks (below the mmap threshold: they come from an arena's heap),
        // every page touched, then all freed but the last, which pins the top of the heap so
        // that the free space cannot simply be trimmed from the top by `free` itself.
        let mut blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 16 * 1024]).collect();
        let pin = blocks.pop();
        let before = rss_kib();
        drop(blocks);
        let t0 = std::time::Instant::now();
        let released = release_free_heap();
        let took = t0.elapsed();
        let after = rss_kib();
        eprintln!("malloc_trim: {released}, RSS {before} -> {after} KiB in {took:?}");
        assert!(
            released,
            "malloc_trim returned nothing of 64 MiB freed (RSS {before} -> {after} KiB)"
        );
        drop(pin);
    }

    #[test]
    fn a_second_call_is_harmless() {
        let _ = release_free_heap();
        let _ = release_free_heap();
    }
}
