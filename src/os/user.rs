//! `-u user[:group]`: looking the names up (with numeric ids as a fallback, as spiped's
//! `setuidgid` does) and switching to them after the listener is bound.

use std::fmt;

use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};

use super::errno;
use crate::io::Errno;

/// Why a `-u` user or group could not be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// No user of that name, and the name is not a numeric id.
    NoSuchUser(String),
    /// No group of that name, and the name is not a numeric id.
    NoSuchGroup(String),
    /// The name contains a NUL byte.
    NulByte(String),
    /// The password or group database could not be read.
    Database(Errno),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchUser(u) => write!(f, "no such user: {u}"),
            Self::NoSuchGroup(g) => write!(f, "no such group: {g}"),
            Self::NulByte(n) => write!(f, "invalid name: {n:?}"),
            Self::Database(e) => write!(f, "cannot read the user database: {e}"),
        }
    }
}

impl std::error::Error for LookupError {}

/// Errors of `getpwnam_r`/`getgrnam_r` that mean "no such entry" on some C library or NSS
/// module (POSIX allows each), not a broken database.
fn means_not_found(e: nix::Error) -> bool {
    matches!(
        e,
        nix::Error::ENOENT | nix::Error::ESRCH | nix::Error::EBADF | nix::Error::EPERM
    )
}

/// Looks up a user by name, falling back to a numeric uid (spiped's `setuidgid`). Returns
/// `(uid, primary gid)`; for a numeric uid with no passwd entry, the gid is `None`.
///
/// # Errors
/// [`LookupError::NoSuchUser`], [`LookupError::NulByte`] or [`LookupError::Database`].
pub fn lookup_user(name: &str) -> Result<(u32, Option<u32>), LookupError> {
    if name.contains('\0') {
        return Err(LookupError::NulByte(name.to_owned()));
    }
    match User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), Some(u.gid.as_raw()))),
        Ok(None) => numeric_user(name),
        Err(e) if means_not_found(e) => numeric_user(name),
        Err(e) => Err(LookupError::Database(errno(e))),
    }
}

fn numeric_user(name: &str) -> Result<(u32, Option<u32>), LookupError> {
    name.parse::<u32>()
        .map(|uid| (uid, None))
        .map_err(|_| LookupError::NoSuchUser(name.to_owned()))
}

/// Looks up a group by name, falling back to a numeric gid.
///
/// # Errors
/// [`LookupError::NoSuchGroup`], [`LookupError::NulByte`] or [`LookupError::Database`].
pub fn lookup_group(name: &str) -> Result<u32, LookupError> {
    if name.contains('\0') {
        return Err(LookupError::NulByte(name.to_owned()));
    }
    let numeric = || {
        name.parse::<u32>()
            .map_err(|_| LookupError::NoSuchGroup(name.to_owned()))
    };
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => numeric(),
        Err(e) if means_not_found(e) => numeric(),
        Err(e) => Err(LookupError::Database(errno(e))),
    }
}

/// Which step of [`drop_privileges`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivilegeError {
    /// `setgid(2)` failed (usually `EPERM`: not root).
    SetGid(Errno),
    /// `setuid(2)` failed.
    SetUid(Errno),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SetGid(e) => write!(f, "setgid failed: {e}"),
            Self::SetUid(e) => write!(f, "setuid failed: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Switches to `gid` and then `uid` (either may be absent), as spiped's `setuidgid` does: with
/// a gid, first `setgroups` to just that group (its failure is returned as `Ok(Some(errno))`, a
/// warning, since an unprivileged process cannot do it but may still switch groups it is in),
/// then `setgid`; then `setuid`. Must run while the process is single-threaded or accept that
/// glibc applies the change to every thread.
///
/// # Errors
/// [`PrivilegeError::SetGid`] or [`PrivilegeError::SetUid`]; the process should then exit.
pub fn drop_privileges(
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<Option<Errno>, PrivilegeError> {
    let mut warning = None;
    if let Some(gid) = gid.map(Gid::from_raw) {
        if let Err(e) = setgroups(&[gid]) {
            warning = Some(errno(e));
        }
        setgid(gid).map_err(|e| PrivilegeError::SetGid(errno(e)))?;
    }
    if let Some(uid) = uid.map(Uid::from_raw) {
        setuid(uid).map_err(|e| PrivilegeError::SetUid(errno(e)))?;
    }
    Ok(warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_unknowns() {
        assert_eq!(lookup_user("root"), Ok((0, Some(0))));
        assert_eq!(lookup_group("root"), Ok(0));
        // A number with no passwd entry is taken as is, with no primary group.
        assert_eq!(lookup_user("4000000123"), Ok((4_000_000_123, None)));
        assert_eq!(lookup_group("4000000123"), Ok(4_000_000_123));
        assert_eq!(
            lookup_user("no-such-user-spiperelay"),
            Err(LookupError::NoSuchUser("no-such-user-spiperelay".into()))
        );
        assert_eq!(
            lookup_group("no-such-group-spiperelay"),
            Err(LookupError::NoSuchGroup("no-such-group-spiperelay".into()))
        );
        assert!(matches!(lookup_user("a\0b"), Err(LookupError::NulByte(_))));
        assert!(matches!(lookup_group("a\0b"), Err(LookupError::NulByte(_))));
    }

    #[test]
    fn dropping_nothing_changes_nothing() {
        assert_eq!(drop_privileges(None, None), Ok(None));
    }
}
