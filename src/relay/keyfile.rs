//! Key files: the start-up checks that warn about weak or exposed keys, and
//! `spiperelay keygen`, which writes a new one.
//!
//! spiped accepts any key file, even an empty one (`K = SHA-256("")`, spec §1.1), and so does
//! spiperelay, for compatibility; it only warns. A generated key is [`KEYGEN_LEN`] bytes from
//! the kernel's RNG, written with mode 0600 and never left half-written.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::io::{Errno, sys};
use crate::proto::key::Key;

/// Bytes in a generated key file, and the length below which a key file draws a warning
/// (spiped's documentation asks for 32 bytes from `/dev/urandom`).
pub const KEYGEN_LEN: usize = 32;

/// The mode of a generated key file: read and write for the owner only.
pub const KEYGEN_MODE: u32 = 0o600;

/// Permission bits that let group or others read a file.
const GROUP_OTHER_READ: u32 = 0o044;

/// Something worth telling the user about a key file that is still used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWarning {
    /// The file is empty: every empty key file gives the same `K`, known to everyone.
    Empty(PathBuf),
    /// The file holds fewer than [`KEYGEN_LEN`] bytes. Holds the path and the length.
    Short(PathBuf, usize),
    /// A regular file readable by its group or by others. Holds the path and its mode bits.
    Readable(PathBuf, u32),
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty(p) => write!(
                f,
                "warning: key file {} is empty; anyone can compute its key",
                p.display()
            ),
            Self::Short(p, n) => write!(
                f,
                "warning: key file {} holds only {n} bytes; use {KEYGEN_LEN} random bytes \
                 (spiperelay keygen)",
                p.display()
            ),
            Self::Readable(p, mode) => write!(
                f,
                "warning: key file {} is readable by group or others (mode {:04o}); \
                 chmod 600 it",
                p.display(),
                mode & 0o7777
            ),
        }
    }
}

/// The warnings for a key file at `path` whose contents, already read, are `len` bytes long.
/// The permission check applies only to regular files (not `/dev/null` or a pipe) and is
/// skipped if `path` can no longer be examined. Never fails.
pub fn warnings(path: &Path, len: usize) -> Vec<KeyWarning> {
    let mut out = Vec::new();
    if let Ok(meta) = fs::metadata(path) {
        if meta.is_file() && meta.mode() & GROUP_OTHER_READ != 0 {
            out.push(KeyWarning::Readable(path.to_path_buf(), meta.mode()));
        }
    }
    if len == 0 {
        out.push(KeyWarning::Empty(path.to_path_buf()));
    } else if len < KEYGEN_LEN {
        out.push(KeyWarning::Short(path.to_path_buf(), len));
    }
    out
}

/// Why `spiperelay keygen` failed. Nothing is left at the destination in any case.
#[derive(Debug)]
pub enum KeygenError {
    /// The destination exists and `--force` was not given.
    Exists(PathBuf),
    /// The kernel's RNG failed.
    Random(Errno),
    /// Writing the temporary file or moving it into place failed.
    Write {
        /// The path being written.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

impl fmt::Display for KeygenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(p) => write!(
                f,
                "{} already exists; not overwriting it (use --force to replace it)",
                p.display()
            ),
            Self::Random(e) => write!(f, "cannot read random bytes: {e}"),
            Self::Write { path, error } => write!(f, "cannot write {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for KeygenError {}

/// A temporary file removed on drop unless it was moved into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes a new key file at `path`: [`KEYGEN_LEN`] bytes from `getrandom(2)`, mode
/// [`KEYGEN_MODE`]. The bytes go to a temporary file in the same directory (created
/// exclusively, mode 0600 from the start, synced), which is then linked to `path` (refusing an
/// existing file) or, with `force`, renamed over it. So `path` either keeps its old state or
/// holds the complete new key, never a partial one.
///
/// Returns the new key's [`Key::fingerprint`].
///
/// # Errors
/// [`KeygenError::Exists`] when `path` exists (even as a dangling symlink) and `force` is
/// false; [`KeygenError::Random`]; [`KeygenError::Write`] for any file-system failure.
pub fn generate(path: &Path, force: bool) -> Result<String, KeygenError> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(KeygenError::Exists(path.to_path_buf()));
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; KEYGEN_LEN]);
    sys::fill_random(&mut bytes[..]).map_err(KeygenError::Random)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error| KeygenError::Write { path, error }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "key".to_owned());
    let mut suffix = [0u8; 8];
    sys::fill_random(&mut suffix).map_err(KeygenError::Random)?;
    let tmp_path = dir.join(format!(".{name}.tmp-{:016x}", u64::from_ne_bytes(suffix)));
    let mut tmp = TempFile(None);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(KEYGEN_MODE)
        .open(&tmp_path)
        .map_err(write_err(&tmp_path))?;
    tmp.0 = Some(tmp_path.clone());
    file.write_all(&bytes[..])
        .and_then(|()| file.sync_all())
        .map_err(write_err(&tmp_path))?;
    drop(file);
    if force {
        fs::rename(&tmp_path, path).map_err(write_err(path))?;
        tmp.0 = None;
    } else {
        match fs::hard_link(&tmp_path, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeygenError::Exists(path.to_path_buf()));
            }
            Err(e) => return Err(write_err(path)(e)),
        }
    }
    Ok(Key::from_key_file(&bytes[..]).fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let mut n = [0u8; 8];
        sys::fill_random(&mut n).unwrap();
        let d = std::env::temp_dir().join(format!("spr-keyfile-{tag}-{:x}", u64::from_ne_bytes(n)));
        fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn warns_about_short_empty_and_readable() {
        let d = scratch("warn");
        let p = d.join("k");
        fs::write(&p, b"abc").unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let w = warnings(&p, 3);
        assert!(w.contains(&KeyWarning::Short(p.clone(), 3)), "{w:?}");
        assert!(
            w.iter().any(|w| matches!(w, KeyWarning::Readable(..))),
            "{w:?}"
        );
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert_eq!(warnings(&p, 32), vec![]);
        assert_eq!(warnings(&p, 0), vec![KeyWarning::Empty(p.clone())]);
        // Not a regular file: no permission warning.
        assert_eq!(warnings(Path::new("/dev/null"), 32), vec![]);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn generate_leaves_no_temp_files() {
        let d = scratch("gen");
        let p = d.join("key");
        let fp = generate(&p, false).unwrap();
        assert!(matches!(generate(&p, false), Err(KeygenError::Exists(_))));
        let fp2 = generate(&p, true).unwrap();
        assert_ne!(fp, fp2);
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key")]);
        assert_eq!(
            fp2,
            Key::from_key_file(&fs::read(&p).unwrap()).fingerprint()
        );
        fs::remove_dir_all(d).unwrap();
    }
}
