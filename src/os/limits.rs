//! The open-file limit (`RLIMIT_NOFILE`): a relay needs two descriptors per connection, and the
//! default soft limit is often 1024.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::errno;
use crate::io::Errno;

/// The current `RLIMIT_NOFILE` as `(soft, hard)`.
///
/// # Errors
/// The `getrlimit(2)` error (not expected).
pub fn nofile_limit() -> Result<(u64, u64), Errno> {
    getrlimit(Resource::RLIMIT_NOFILE).map_err(errno)
}

/// Sets the soft `RLIMIT_NOFILE` to `soft` (at most the hard limit), leaving the hard limit.
///
/// # Errors
/// The `getrlimit(2)` or `setrlimit(2)` error.
pub fn set_nofile_soft_limit(soft: u64) -> Result<(), Errno> {
    let (_, hard) = nofile_limit()?;
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).map_err(errno)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
///
/// # Errors
/// As [`set_nofile_soft_limit`].
pub fn raise_nofile_limit() -> Result<u64, Errno> {
    let (soft, hard) = nofile_limit()?;
    if soft < hard {
        set_nofile_soft_limit(hard)?;
    }
    Ok(hard.max(soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let (_, hard) = nofile_limit().expect("getrlimit");
        assert_eq!(raise_nofile_limit().expect("raise"), hard);
        assert_eq!(nofile_limit().expect("getrlimit"), (hard, hard));
    }
}
