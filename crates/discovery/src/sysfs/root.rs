//! Files below an injectable root, with symlinks resolved inside that root.
//!
//! A captured tree (or a fixture) holds the same relative symlinks as the live
//! `/sys` (`../../../devices/pci0000:00/...`). Following them with the operating
//! system works for relative links, but an absolute link (`/proc/device-tree` points
//! to `/sys/firmware/devicetree/base`) would leave the tree. [`Root::resolve`] walks
//! every component itself: relative targets are taken against the link's directory,
//! absolute targets against the root, and `..` never climbs above the root.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution before giving up (the kernel's limit).
const MAX_HOPS: usize = 40;

/// What reading a file gave.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The file does not exist (or a directory on its path does not).
    Missing,
    /// The file exists but could not be read; the reason, for a gap.
    Unreadable(String),
    /// The file's contents (lossily decoded; sysfs and procfs text is ASCII).
    Text(String),
}

/// A directory standing for `/`.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    base: PathBuf,
}

impl Root {
    /// A root at `base`.
    pub(crate) fn new(base: &Path) -> Self {
        Root {
            base: base.to_path_buf(),
        }
    }

    /// `rel` as a user would name it (`ROOT/rel`), for gap messages.
    pub(crate) fn show(&self, rel: &str) -> String {
        self.base.join(rel).display().to_string()
    }

    /// Resolves `rel` inside the root, following symlinks; returns the components of
    /// the resolved path relative to the root. A path that runs into a missing
    /// component resolves lexically from there on (reading it then gives
    /// [`Lookup::Missing`]).
    pub(crate) fn resolve(&self, rel: &str) -> io::Result<Vec<OsString>> {
        let mut done: Vec<OsString> = Vec::new();
        let mut todo: VecDeque<OsString> = VecDeque::new();
        push_components(&mut todo, Path::new(rel), false);
        let mut hops = 0usize;
        let mut missing = false;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            if missing {
                continue;
            }
            let here = self.join(&done);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::other("too many levels of symbolic links"));
                    }
                    let target = fs::read_link(&here)?;
                    done.pop();
                    if target.is_absolute() {
                        done.clear();
                    }
                    push_components(&mut todo, &target, true);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The real path of resolved components.
    pub(crate) fn join(&self, comps: &[OsString]) -> PathBuf {
        let mut p = self.base.clone();
        p.extend(comps);
        p
    }

    /// Reads the file `rel`.
    pub(crate) fn read(&self, rel: &str) -> Lookup {
        let path = match self.resolve(rel) {
            Ok(c) => self.join(&c),
            Err(e) => return Lookup::Unreadable(e.to_string()),
        };
        // Bounded: a captured tree may hold anything (a link to /dev/zero, a huge file).
        let cap = linkwise_fsio::max_input_bytes();
        match fs::File::open(&path).and_then(|f| linkwise_fsio::read_bounded(f, cap)) {
            Ok(bytes) => Lookup::Text(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Lookup::Missing,
            Err(e) => Lookup::Unreadable(e.to_string()),
        }
    }

    /// Reads `rel` and trims it; `None` when missing, unreadable or blank.
    pub(crate) fn read_trimmed(&self, rel: &str) -> Option<String> {
        match self.read(rel) {
            Lookup::Text(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            Lookup::Missing | Lookup::Unreadable(_) => None,
        }
    }

    /// The last component of the target of the symlink `rel` (`driver` gives
    /// `nvidia`, `iommu_group` gives `17`). `Ok(None)` when there is no such link;
    /// the target itself need not exist.
    pub(crate) fn link_name(&self, rel: &str) -> Result<Option<String>, String> {
        let path = Path::new(rel);
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let dir = self
            .resolve(&parent.to_string_lossy())
            .map_err(|e| e.to_string())?;
        let link = self.join(&dir).join(name);
        match fs::read_link(&link) {
            Ok(target) => match target.file_name() {
                Some(n) => Ok(Some(n.to_string_lossy().into_owned())),
                None => Err(format!(
                    "points to {}, which names nothing",
                    target.display()
                )),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Names in the directory `rel`, sorted.
    pub(crate) fn list(&self, rel: &str) -> io::Result<Vec<String>> {
        let dir = self.join(&self.resolve(rel)?);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// True when `rel` resolves to something that exists.
    pub(crate) fn exists(&self, rel: &str) -> bool {
        self.resolve(rel)
            .is_ok_and(|c| fs::metadata(self.join(&c)).is_ok())
    }
}

/// Appends (or, for a symlink target, prepends) the components of `p` to `todo`,
/// dropping the root and `.` components.
fn push_components(todo: &mut VecDeque<OsString>, p: &Path, front: bool) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    if front {
        for c in comps.into_iter().rev() {
            todo.push_front(c);
        }
    } else {
        todo.extend(comps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn resolves_relative_and_absolute_links_inside_the_root() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("sys/devices/pci0000:00/0000:00:01.0")).unwrap();
        fs::write(
            r.join("sys/devices/pci0000:00/0000:00:01.0/vendor"),
            "0x10de\n",
        )
        .unwrap();
        fs::create_dir_all(r.join("sys/bus/pci/devices")).unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:01.0",
            r.join("sys/bus/pci/devices/0000:00:01.0"),
        )
        .unwrap();
        fs::create_dir_all(r.join("proc")).unwrap();
        symlink("/sys/devices/pci0000:00", r.join("proc/abs")).unwrap();
        symlink("../../../../../../../../../../../..", r.join("proc/up")).unwrap();
        symlink("loop", r.join("proc/loop")).unwrap();
        let root = Root::new(r);
        let c = root.resolve("sys/bus/pci/devices/0000:00:01.0").unwrap();
        assert_eq!(
            c,
            ["sys", "devices", "pci0000:00", "0000:00:01.0"].map(OsString::from)
        );
        assert!(
            matches!(root.read("sys/bus/pci/devices/0000:00:01.0/vendor"), Lookup::Text(t) if t == "0x10de\n")
        );
        assert!(matches!(
            root.read("proc/abs/0000:00:01.0/vendor"),
            Lookup::Text(_)
        ));
        assert_eq!(
            root.resolve("proc/up/sys").unwrap(),
            [OsString::from("sys")]
        );
        assert!(matches!(root.read("proc/loop/x"), Lookup::Unreadable(_)));
        assert!(matches!(root.read("nope/vendor"), Lookup::Missing));
        assert_eq!(root.list("sys/bus/pci/devices").unwrap(), ["0000:00:01.0"]);
    }
}
