//! Writing files atomically: a temporary file in the same directory, synced, then renamed,
//! so readers see the old content or the new, never half of either.
//!
//! What is replaced keeps what it was: a symlink is written through (the file it points
//! to is replaced, the link stays), and an existing file keeps its mode and, as far as
//! the process may set it, its owner and group.

use std::fs::{File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::WriteError;

/// The mode of a file that did not exist before (the umask applies).
const NEW_FILE_MODE: u32 = 0o644;
/// How many symlinks are followed before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// What [`write_atomic_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The file replaced or created: `path`, or the file its symlinks lead to.
    pub target: PathBuf,
    /// The path given, when it is a symlink to [`Written::target`].
    pub via: Option<PathBuf>,
    /// The bytes written.
    pub bytes: usize,
}

impl Written {
    /// `wrote TARGET (via LINK; DETAIL, N bytes)`: the line a command prints on stderr.
    /// `detail` (e.g. `8 GPUs`) may be empty.
    pub fn line(&self, detail: &str) -> String {
        let mut facts = Vec::new();
        if let Some(link) = &self.via {
            facts.push(format!("via {}", link.display()));
        }
        let mut size = String::new();
        if !detail.is_empty() {
            size.push_str(detail);
            size.push_str(", ");
        }
        size.push_str(&format!("{} bytes", self.bytes));
        facts.push(size);
        format!("wrote {} ({})", self.target.display(), facts.join("; "))
    }
}

/// Replaces `path` with `content` atomically (see [`write_atomic_report`]).
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), WriteError> {
    write_atomic_report(path, content).map(|_| ())
}

/// Replaces `path` with `content` atomically and says what was written.
///
/// - A symlink is followed to its final target (relative links from the link's
///   directory), which is replaced; the temporary file goes next to the target, so the
///   rename stays within one directory. A dangling link creates its target.
/// - An existing file keeps its permission bits, and its owner and group where the
///   process may set them (root; a group the user is in). A new file gets mode 0644
///   less the umask.
/// - A target that exists and is not a regular file (a directory, a device such as
///   `/dev/null`, a FIFO) is refused ([`WriteError::NotAFile`]): renaming over it would
///   replace it.
pub fn write_atomic_report(path: &Path, content: &[u8]) -> Result<Written, WriteError> {
    let target = resolve(path).map_err(|error| WriteError::Io {
        context: format!("writing {}", path.display()),
        error,
    })?;
    let via = (target != path).then(|| path.to_path_buf());
    let context = |error| WriteError::Io {
        context: match &via {
            Some(link) => format!("writing {} (via {})", target.display(), link.display()),
            None => format!("writing {}", target.display()),
        },
        error,
    };
    let existing = match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => Some(m),
        Ok(m) => {
            let what = if m.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            let named = match &via {
                Some(link) => format!("{} (via {})", target.display(), link.display()),
                None => target.display().to_string(),
            };
            return Err(WriteError::NotAFile { named, what });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(context(e)),
    };
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut file, tmp) = temp_file(dir, &name, existing.is_some()).map_err(context)?;
    let result = (|| -> std::io::Result<()> {
        file.write_all(content)?;
        if let Some(m) = &existing {
            // Owner first: changing the owner clears set-id bits, which the mode restores.
            // Only root may give a file away; anyone may fail here and keep going.
            if (m.uid(), m.gid()) != (file.metadata()?.uid(), file.metadata()?.gid()) {
                let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))
                    .or_else(|_| std::os::unix::fs::fchown(&file, None, Some(m.gid())));
            }
            file.set_permissions(Permissions::from_mode(m.mode() & 0o7777))?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        // The rename is durable once the directory is; not every file system syncs one.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(context)?;
    Ok(Written {
        target,
        via,
        bytes: content.len(),
    })
}

/// `path` with its symlinks followed to the final target (which need not exist).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = if to.is_absolute() {
                    to
                } else {
                    p.parent().unwrap_or(Path::new("")).join(to)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_LINKS} symlinks to follow"
    )))
}

/// A new hidden temporary file in `dir`: private until its mode is set when it is to
/// replace a file, else created with [`NEW_FILE_MODE`] (less the umask).
fn temp_file(dir: &Path, name: &str, replacing: bool) -> std::io::Result<(File, PathBuf)> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mode = if replacing { 0o600 } else { NEW_FILE_MODE };
    loop {
        let tmp = dir.join(format!(
            ".{name}.linkwise-tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            // Left behind by a crashed process with the same id: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_a_file_keeping_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gres.conf");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o640)).unwrap();
        let w = write_atomic_report(&f, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new\n");
        assert_eq!(mode(&f), 0o640);
        assert_eq!(w.target, f);
        assert_eq!(w.via, None);
        assert_eq!(
            w.line("8 GPUs"),
            format!("wrote {} (8 GPUs, 4 bytes)", f.display())
        );
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn new_files_are_0644_less_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("new.conf");
        write_atomic(&f, b"x").unwrap();
        // The umask only takes bits away.
        assert_eq!(mode(&f) & !0o644, 0);
        assert_ne!(mode(&f) & 0o600, 0);
    }

    #[test]
    fn symlinks_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let target = real.join("gres.conf");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o600)).unwrap();
        // A relative link to a relative link.
        let hop = dir.path().join("hop");
        std::os::unix::fs::symlink("real/gres.conf", &hop).unwrap();
        let link = dir.path().join("gres.conf");
        std::os::unix::fs::symlink("hop", &link).unwrap();
        let w = write_atomic_report(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            std::fs::symlink_metadata(&hop)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(mode(&target), 0o600);
        assert_eq!(w.target, real.join("gres.conf"));
        assert_eq!(w.via.as_deref(), Some(link.as_path()));
        assert!(
            w.line("")
                .contains(&format!("(via {}; 3 bytes)", link.display()))
        );
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("real/created", &dangling).unwrap();
        write_atomic(&dangling, b"c").unwrap();
        assert_eq!(std::fs::read_to_string(real.join("created")).unwrap(), "c");
        assert!(
            std::fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn refuses_to_replace_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomic(dir.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert!(
            matches!(e, WriteError::NotAFile { .. }),
            "bad input: exit 2"
        );
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let e = write_atomic(&link, b"x").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &looped).unwrap();
        assert!(write_atomic(&looped, b"x").is_err());
    }
}
