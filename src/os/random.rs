//! Bytes from the kernel's cryptographically secure RNG (`getrandom(2)`), for handshake nonces,
//! Diffie-Hellman private keys and generated key files.

use crate::io::Errno;

/// Fills `buf` with bytes from the kernel's cryptographically secure RNG (`getrandom(2)`,
/// through the `getrandom` crate, which retries after interruptions and short reads and falls
/// back to `/dev/urandom` on a kernel without the system call).
///
/// # Errors
/// The operating-system error that stopped it (`EIO` if the crate reports none).
pub fn fill_random(buf: &mut [u8]) -> Result<(), Errno> {
    getrandom::fill(buf).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_whole_buffer() {
        // 64 zero bytes from a working RNG: probability 2^-512.
        let mut a = [0u8; 64];
        fill_random(&mut a).expect("getrandom");
        assert_ne!(a, [0u8; 64]);
        let mut b = [0u8; 64];
        fill_random(&mut b).expect("getrandom");
        assert_ne!(a, b);
        fill_random(&mut []).expect("an empty buffer is fine");
    }
}
