//! Key files: the one reader every key goes through — at startup, on a `SIGHUP` reload, for a
//! `keys rotate`/`keys set` request and for `spipe` — and `spiperelay keygen`, which writes a
//! new one.
//!
//! # The key-file rules
//! Every `-k` path, and every path named to the control socket, is read by [`read_key_file`]:
//! 1. It is opened read-only, close-on-exec and **non-blocking**, so that opening a FIFO never
//!    waits for a writer. A path that does not exist is [`KeyFileError::Missing`]; one that
//!    cannot be opened (permissions, a dangling symlink's target, ...) is
//!    [`KeyFileError::Unreadable`].
//! 2. The type is checked on the opened descriptor (so a file swapped after a check cannot
//!    slip through): a directory is [`KeyFileError::Directory`]; a FIFO, socket or device is
//!    [`KeyFileError::NotRegular`], and nothing is read from it. Only regular files are keys
//!    (symlinks to regular files are followed).
//! 3. The whole file is read and hashed into `K` (spec §1.1); the bytes are zeroised after.
//!    A read error is [`KeyFileError::Read`].
//! 4. The key is used even when it is weak or exposed, as spiped does, with a [`KeyWarning`]
//!    each: an empty file (everyone can compute its `K`), a file shorter than [`KEYGEN_LEN`]
//!    bytes, a file readable by its group or by others (mode checked on the descriptor).
//!
//! Sources that can be read only once are the command line's exception, as in spiped: `-k -`
//! (standard input), and a `-k` path that is a FIFO or a character device (`-k <(command)`,
//! `-k /dev/stdin`) are read to their end, once, at startup ([`read_startup_keys`]); a reload
//! ([`read_reload_keys`]) keeps the key read then, since such a source cannot be read again. A
//! configuration file names key files only, and a FIFO there is an error (rule 2).
//! A generated key is [`KEYGEN_LEN`] bytes from the kernel's RNG, written with mode 0600 and
//! never left half-written.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::cli::KeySource;
use crate::io::Errno;
use crate::os::random::fill_random;
use crate::proto::key::{Key, KeySet};

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

/// The warnings for a regular key file at `path` with permission bits `mode` whose contents
/// are `len` bytes long (rule 4 of the module documentation).
fn warnings(path: &Path, mode: u32, len: usize) -> Vec<KeyWarning> {
    let mut out = Vec::new();
    if mode & GROUP_OTHER_READ != 0 {
        out.push(KeyWarning::Readable(path.to_path_buf(), mode));
    }
    if len == 0 {
        out.push(KeyWarning::Empty(path.to_path_buf()));
    } else if len < KEYGEN_LEN {
        out.push(KeyWarning::Short(path.to_path_buf(), len));
    }
    out
}

/// What is at a key-file path that is not a regular file ([`KeyFileError::NotRegular`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device (`/dev/null`, a terminal).
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fifo => "a FIFO",
            Self::Socket => "a socket",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
        })
    }
}

/// Why a key could not be read. Each names the path (or standard input) and one cause.
#[derive(Debug)]
pub enum KeyFileError {
    /// Nothing exists at the path.
    Missing(PathBuf),
    /// The path exists but cannot be opened (e.g. `EACCES`).
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The `open` error.
        error: std::io::Error,
    },
    /// The path is a directory.
    Directory(PathBuf),
    /// The path is a FIFO, socket or device: nothing is read from it (it could block or never
    /// end).
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// Reading the opened file failed.
    Read {
        /// The path.
        path: PathBuf,
        /// The `read` error.
        error: std::io::Error,
    },
    /// `-k -`: standard input could not be read.
    Stdin(std::io::Error),
    /// No key source at all was given (the command-line parsers never allow that).
    NoSources,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(
                f,
                "cannot read key file {}: No such file or directory",
                p.display()
            ),
            Self::Unreadable { path, error } => {
                write!(f, "cannot open key file {}: {error}", path.display())
            }
            Self::Directory(p) => write!(
                f,
                "key file {} is a directory, not a regular file",
                p.display()
            ),
            Self::NotRegular { path, kind } => write!(
                f,
                "key file {} is {kind}, not a regular file",
                path.display()
            ),
            Self::Read { path, error } => {
                write!(f, "cannot read key file {}: {error}", path.display())
            }
            Self::Stdin(error) => write!(f, "cannot read the key from standard input: {error}"),
            Self::NoSources => f.write_str("no key file given (-k)"),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// A key read from a file, with the warnings about that file.
#[derive(Debug)]
pub struct KeyFile {
    /// The key, `K` = SHA-256 of the file's bytes.
    pub key: Key,
    /// What is weak or exposed about the file (rule 4); empty for a good key file.
    pub warnings: Vec<KeyWarning>,
}

/// Reads the key file at `path` by the rules of the module documentation.
///
/// # Errors
/// [`KeyFileError::Missing`], [`KeyFileError::Unreadable`], [`KeyFileError::Directory`],
/// [`KeyFileError::NotRegular`] or [`KeyFileError::Read`], naming `path`.
pub fn read_key_file(path: &Path) -> Result<KeyFile, KeyFileError> {
    let owned = || path.to_path_buf();
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => KeyFileError::Missing(owned()),
            _ => KeyFileError::Unreadable {
                path: owned(),
                error,
            },
        })?;
    let meta = f.metadata().map_err(|error| KeyFileError::Read {
        path: owned(),
        error,
    })?;
    let t = meta.file_type();
    let kind = if t.is_file() {
        None
    } else if t.is_dir() {
        return Err(KeyFileError::Directory(owned()));
    } else if t.is_fifo() {
        Some(FileKind::Fifo)
    } else if t.is_socket() {
        Some(FileKind::Socket)
    } else if t.is_block_device() {
        Some(FileKind::BlockDevice)
    } else {
        Some(FileKind::CharDevice)
    };
    if let Some(kind) = kind {
        return Err(KeyFileError::NotRegular {
            path: owned(),
            kind,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    f.read_to_end(&mut bytes)
        .map_err(|error| KeyFileError::Read {
            path: owned(),
            error,
        })?;
    Ok(KeyFile {
        key: Key::from_key_file(&bytes),
        warnings: warnings(path, meta.mode(), bytes.len()),
    })
}

/// Reads every `-k` source at startup into a [`KeySet`] (first = primary), with the warnings
/// for the files read: files by [`read_key_file`]; `-k -` from standard input to its end (the
/// parsers allow it at most once); a path that is a FIFO or a character device
/// ([`is_read_once`]) opened blocking and read to its end, once, as spiped does.
///
/// # Errors
/// The first source's [`KeyFileError`]; [`KeyFileError::NoSources`] for an empty list.
pub fn read_startup_keys(sources: &[KeySource]) -> Result<(KeySet, Vec<KeyWarning>), KeyFileError> {
    read_sources(sources, true, |_, source| {
        let mut buf = Zeroizing::new(Vec::new());
        match source {
            KeySource::Stdin => {
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(KeyFileError::Stdin)?;
            }
            KeySource::File(path) => {
                let read = |error| KeyFileError::Read {
                    path: path.clone(),
                    error,
                };
                fs::File::open(path)
                    .and_then(|mut f| f.read_to_end(&mut buf))
                    .map_err(read)?;
            }
        }
        Ok(Some(Key::from_key_file(&buf)))
    })
}

/// Re-reads the `-k` sources for a reload (`SIGHUP`), in order, with the warnings for the files
/// read. A `-k -` source keeps the key read at startup, `startup[i]` for source `i` (`startup`
/// is the set [`read_startup_keys`] returned for `sources`); pass the sources through
/// [`once_as_stdin`] first so that a FIFO or character device read at startup does too. Any
/// other path must be a regular file now: one that has become a FIFO is refused, never read.
///
/// # Errors
/// As [`read_key_file`], naming the first source that failed.
pub fn read_reload_keys(
    sources: &[KeySource],
    startup: &KeySet,
) -> Result<(KeySet, Vec<KeyWarning>), KeyFileError> {
    read_sources(sources, false, |i, _| {
        Ok(startup.as_slice().get(i).cloned())
    })
}

/// Reads key files only (a pipe added by a configuration reload, which has no keys from
/// startup): each source by [`read_key_file`]; a [`KeySource::Stdin`] gives no key.
///
/// # Errors
/// As [`read_key_file`], naming the first source that failed; [`KeyFileError::NoSources`]
/// when no key was read.
pub fn read_files(sources: &[KeySource]) -> Result<(KeySet, Vec<KeyWarning>), KeyFileError> {
    read_sources(sources, false, |_, _| Ok(None))
}

/// `sources` as a reload sees them: a path that is a FIFO or a character device now (read once
/// at startup by [`read_startup_keys`]) becomes [`KeySource::Stdin`], a source whose startup
/// key is kept. Only the file type is looked at (`stat`, which never blocks).
pub fn once_as_stdin(sources: &[KeySource]) -> Vec<KeySource> {
    sources
        .iter()
        .map(|source| match source {
            KeySource::File(path)
                if fs::metadata(path).is_ok_and(|m| {
                    let t = m.file_type();
                    t.is_fifo() || t.is_char_device()
                }) =>
            {
                KeySource::Stdin
            }
            other => other.clone(),
        })
        .collect()
}

/// True for the key sources the command line reads only once: `-k -`, and a path that is a
/// FIFO or a character device (a pipe from the shell, `/dev/stdin`).
fn is_read_once(error: &KeyFileError) -> bool {
    matches!(
        error,
        KeyFileError::NotRegular {
            kind: FileKind::Fifo | FileKind::CharDevice,
            ..
        }
    )
}

/// Reads `sources` in order, asking `once(i, source)` for the key of a source at index `i` that
/// can be read only once: `-k -`, and with `files_once` a path [`is_read_once`] holds for.
fn read_sources(
    sources: &[KeySource],
    files_once: bool,
    mut once: impl FnMut(usize, &KeySource) -> Result<Option<Key>, KeyFileError>,
) -> Result<(KeySet, Vec<KeyWarning>), KeyFileError> {
    let mut keys = Vec::with_capacity(sources.len());
    let mut warnings = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match source {
            KeySource::File(path) => match read_key_file(path) {
                Ok(k) => {
                    warnings.extend(k.warnings);
                    keys.push(k.key);
                }
                Err(e) if files_once && is_read_once(&e) => keys.extend(once(i, source)?),
                Err(e) => return Err(e),
            },
            KeySource::Stdin => keys.extend(once(i, source)?),
        }
    }
    let keys = KeySet::new(keys).ok_or(KeyFileError::NoSources)?;
    Ok((keys, warnings))
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
    let mut bytes = Zeroizing::new([0u8; KEYGEN_LEN]);
    fill_random(&mut bytes[..]).map_err(KeygenError::Random)?;
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
    fill_random(&mut suffix).map_err(KeygenError::Random)?;
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
        fill_random(&mut n).unwrap();
        let d = std::env::temp_dir().join(format!("spr-keyfile-{tag}-{:x}", u64::from_ne_bytes(n)));
        fs::create_dir(&d).unwrap();
        d
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write_mode(p: &Path, bytes: &[u8], mode: u32) {
        fs::write(p, bytes).unwrap();
        fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }

    #[test]
    fn good_key_file_has_no_warnings() {
        let d = Scratch(scratch("good"));
        let p = d.0.join("k");
        write_mode(&p, &[7u8; KEYGEN_LEN], 0o600);
        let k = read_key_file(&p).expect("read");
        assert_eq!(k.warnings, vec![]);
        assert_eq!(
            k.key.fingerprint(),
            Key::from_key_file(&[7u8; KEYGEN_LEN]).fingerprint()
        );
    }

    #[test]
    fn empty_short_and_exposed_files_are_used_with_warnings() {
        let d = Scratch(scratch("warn"));
        let p = d.0.join("k");
        write_mode(&p, b"abc", 0o644);
        let k = read_key_file(&p).expect("a short key is still a key");
        assert_eq!(
            k.warnings,
            vec![
                KeyWarning::Readable(p.clone(), fs::metadata(&p).unwrap().mode()),
                KeyWarning::Short(p.clone(), 3)
            ]
        );
        assert_eq!(
            k.key.fingerprint(),
            Key::from_key_file(b"abc").fingerprint()
        );
        assert!(
            k.warnings[0]
                .to_string()
                .contains("readable by group or others (mode 0644)")
        );
        assert!(k.warnings[1].to_string().contains("holds only 3 bytes"));
        write_mode(&p, b"", 0o600);
        let k = read_key_file(&p).expect("an empty key is still a key");
        assert_eq!(k.warnings, vec![KeyWarning::Empty(p.clone())]);
        assert!(k.warnings[0].to_string().contains("is empty"));
        write_mode(&p, &[1u8; KEYGEN_LEN], 0o640);
        let k = read_key_file(&p).expect("read");
        assert!(
            matches!(k.warnings[..], [KeyWarning::Readable(..)]),
            "{:?}",
            k.warnings
        );
    }

    #[test]
    fn missing_file() {
        let d = Scratch(scratch("missing"));
        let p = d.0.join("nope");
        let e = read_key_file(&p).expect_err("missing");
        assert!(matches!(&e, KeyFileError::Missing(q) if *q == p), "{e:?}");
        assert!(e.to_string().contains("No such file"), "{e}");
        // A dangling symlink is missing too.
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(
            read_key_file(&link),
            Err(KeyFileError::Missing(_))
        ));
    }

    #[test]
    fn unreadable_file() {
        // Root reads mode-000 files anyway; a file under a directory we cannot search is
        // unreadable for everyone but root too, so check what this process can do first.
        let d = Scratch(scratch("unreadable"));
        let p = d.0.join("k");
        write_mode(&p, b"secret key bytes", 0o000);
        match read_key_file(&p) {
            Err(KeyFileError::Unreadable { path, error }) => {
                assert_eq!(path, p);
                assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            }
            Ok(_) if nix::unistd::geteuid().is_root() => {}
            other => panic!("unexpected {other:?}"),
        }
        // Not a directory in the path: ENOTDIR, also unreadable (not missing).
        let e = read_key_file(&p.join("below")).expect_err("below a file");
        assert!(matches!(e, KeyFileError::Unreadable { .. }), "{e:?}");
    }

    #[test]
    fn directory_is_refused() {
        let d = Scratch(scratch("dir"));
        let e = read_key_file(&d.0).expect_err("directory");
        assert!(
            matches!(&e, KeyFileError::Directory(q) if *q == d.0),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("is a directory, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let d = Scratch(scratch("fifo"));
        let p = d.0.join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer: a blocking open would wait forever; this must return at once.
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_key_file(&q).map(|_| ()));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("read_key_file blocked on a FIFO");
        let e = r.expect_err("a FIFO is refused");
        assert!(
            matches!(
                &e,
                KeyFileError::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn the_command_line_reads_a_fifo_once_and_a_reload_keeps_its_key() {
        // `-k <(command)`: spiped reads any file, so the command line's startup reads a FIFO
        // to its end (blocking until its writer is done), and a reload keeps that key.
        let d = Scratch(scratch("fifo-once"));
        let (fifo, file) = (d.0.join("fifo"), d.0.join("file"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        write_mode(&file, &[2u8; KEYGEN_LEN], 0o600);
        let q = fifo.clone();
        let writer = std::thread::spawn(move || fs::write(q, [7u8; KEYGEN_LEN]));
        let sources = vec![KeySource::File(fifo.clone()), KeySource::File(file)];
        let (set, w) = read_startup_keys(&sources).expect("startup reads the FIFO");
        writer.join().unwrap().expect("FIFO writer");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            set.as_slice()[0].fingerprint(),
            Key::from_key_file(&[7u8; KEYGEN_LEN]).fingerprint()
        );
        // No writer now: a reload must not block on the FIFO, and keeps the startup key.
        let (again, _) = read_reload_keys(&once_as_stdin(&sources), &set).expect("reload");
        assert_eq!(
            again.as_slice()[0].fingerprint(),
            set.as_slice()[0].fingerprint()
        );
        assert_eq!(again.as_slice().len(), 2);
        // A path that was a regular file at startup and is a FIFO now is refused, never read.
        let e = read_reload_keys(&[sources[1].clone(), KeySource::File(fifo.clone())], &set)
            .expect_err("a FIFO where a file was");
        assert!(
            e.to_string().contains("is a FIFO, not a regular file"),
            "{e}"
        );
        // /dev/null, a character device, is read once too: an empty key.
        let (null, _) = read_startup_keys(&[KeySource::File("/dev/null".into())]).expect("null");
        assert_eq!(
            null.as_slice()[0].fingerprint(),
            Key::from_key_file(b"").fingerprint()
        );
    }

    #[test]
    fn devices_are_refused() {
        let e = read_key_file(Path::new("/dev/null")).expect_err("/dev/null");
        assert!(
            matches!(
                e,
                KeyFileError::NotRegular {
                    kind: FileKind::CharDevice,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn startup_and_reload_read_the_same_way() {
        let d = Scratch(scratch("sources"));
        let (a, b) = (d.0.join("a"), d.0.join("b"));
        write_mode(&a, &[1u8; KEYGEN_LEN], 0o600);
        write_mode(&b, b"short", 0o600);
        let sources = vec![KeySource::File(a.clone()), KeySource::File(b.clone())];
        let (set, w) = read_startup_keys(&sources).expect("startup");
        assert_eq!(set.as_slice().len(), 2);
        assert_eq!(w, vec![KeyWarning::Short(b.clone(), 5)]);
        let (again, w2) = read_reload_keys(&sources, &set).expect("reload");
        assert_eq!(w, w2);
        assert_eq!(
            again.as_slice()[1].fingerprint(),
            set.as_slice()[1].fingerprint()
        );
        // Both refuse the same things.
        fs::remove_file(&b).unwrap();
        fs::create_dir(&b).unwrap();
        assert!(matches!(
            read_startup_keys(&sources),
            Err(KeyFileError::Directory(_))
        ));
        assert!(matches!(
            read_reload_keys(&sources, &set),
            Err(KeyFileError::Directory(_))
        ));
        assert!(matches!(
            read_startup_keys(&[]),
            Err(KeyFileError::NoSources)
        ));
    }

    #[test]
    fn reload_keeps_the_stdin_key() {
        let d = Scratch(scratch("stdin"));
        let a = d.0.join("a");
        write_mode(&a, &[2u8; KEYGEN_LEN], 0o600);
        let startup = KeySet::new(vec![
            Key::from_key_file(b"from stdin"),
            Key::from_key_file(&[9u8; KEYGEN_LEN]),
        ])
        .unwrap();
        let sources = vec![KeySource::Stdin, KeySource::File(a)];
        let (set, w) = read_reload_keys(&sources, &startup).expect("reload");
        assert_eq!(w, vec![]);
        assert_eq!(
            set.as_slice()[0].fingerprint(),
            Key::from_key_file(b"from stdin").fingerprint()
        );
        assert_eq!(
            set.as_slice()[1].fingerprint(),
            Key::from_key_file(&[2u8; KEYGEN_LEN]).fingerprint()
        );
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
