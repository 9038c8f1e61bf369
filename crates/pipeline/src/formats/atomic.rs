//! Atomic output: files and directories are built under a temporary sibling name
//! (`<path>.tmp-<pid>`), synced to disk, then renamed into place, so a reader never
//! sees partial output. On any error (or panic) the temporary is removed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::FormatError;

/// Removes a temporary file or directory when dropped, unless disarmed.
struct TempGuard {
    path: PathBuf,
    is_dir: bool,
    armed: bool,
}

impl TempGuard {
    fn new(path: PathBuf, is_dir: bool) -> Self {
        Self {
            path,
            is_dir,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let res = if self.is_dir {
            fs::remove_dir_all(&self.path)
        } else {
            fs::remove_file(&self.path)
        };
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove temporary output");
        }
    }
}

/// `<path>.<tag>-<pid>` beside `path`; errors if `path` has no file name.
fn sibling(path: &Path, tag: &str) -> Result<PathBuf, FormatError> {
    let name = path.file_name().ok_or_else(|| {
        FormatError::invalid(
            "output path",
            format!("{} does not name a file or directory", path.display()),
        )
    })?;
    let mut name = name.to_os_string();
    name.push(format!(".{tag}-{}", std::process::id()));
    Ok(path.with_file_name(name))
}

/// Best-effort fsync of the directory holding `path`, so a rename is durable.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent);
}

fn sync_dir(dir: &Path) {
    // Directories cannot be opened for syncing on every platform; failure only costs
    // durability across a power loss, not correctness.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates `path`, lets `write` fill it through a buffered writer, flushes and fsyncs.
/// Not atomic by itself; used for files inside a temporary directory.
pub(crate) fn write_file_synced<F>(path: &Path, write: F) -> Result<(), FormatError>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<(), FormatError>,
{
    let file = File::create(path).map_err(|e| FormatError::io("creating", path, e))?;
    let mut w = BufWriter::new(file);
    write(&mut w)?;
    w.flush().map_err(|e| FormatError::io("writing", path, e))?;
    let file = w
        .into_inner()
        .map_err(|e| FormatError::io("writing", path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| FormatError::io("syncing", path, e))
}

/// Writes `path` atomically: `write` fills `<path>.tmp-<pid>` in the same directory,
/// which is fsynced and renamed over `path`. On error the temporary file is removed
/// and `path` is untouched.
pub(crate) fn write_file_atomic<F>(path: &Path, write: F) -> Result<(), FormatError>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<(), FormatError>,
{
    let tmp = sibling(path, "tmp")?;
    let mut guard = TempGuard::new(tmp.clone(), false);
    write_file_synced(&tmp, write)?;
    fs::rename(&tmp, path).map_err(|e| FormatError::io("renaming into", path, e))?;
    guard.disarm();
    sync_parent(path);
    Ok(())
}

/// True when `dir` exists and has at least one entry.
fn is_non_empty_dir(dir: &Path) -> Result<bool, FormatError> {
    let mut entries = fs::read_dir(dir).map_err(|e| FormatError::io("listing", dir, e))?;
    Ok(entries.next().is_some())
}

/// Builds directory `dir` atomically: `fill` writes into a fresh `<dir>.tmp-<pid>`,
/// which is then renamed to `dir`. An existing non-empty `dir` is an error unless
/// `overwrite` is set, in which case it is replaced (moved aside, swapped, deleted).
pub(crate) fn write_dir_atomic<F>(dir: &Path, overwrite: bool, fill: F) -> Result<(), FormatError>
where
    F: FnOnce(&Path) -> Result<(), FormatError>,
{
    let existing = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Some(is_non_empty_dir(dir)?),
        Ok(_) => {
            return Err(FormatError::invalid(
                "output directory",
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(FormatError::io("inspecting", dir, e)),
    };
    if existing == Some(true) && !overwrite {
        return Err(FormatError::Exists {
            path: dir.to_path_buf(),
        });
    }

    let tmp = sibling(dir, "tmp")?;
    if tmp.exists() {
        // A leftover from an earlier, killed run of a process with our pid.
        fs::remove_dir_all(&tmp).map_err(|e| FormatError::io("removing stale", &tmp, e))?;
    }
    fs::create_dir(&tmp).map_err(|e| FormatError::io("creating", &tmp, e))?;
    let mut guard = TempGuard::new(tmp.clone(), true);
    fill(&tmp)?;
    sync_dir(&tmp);

    match existing {
        None => {
            fs::rename(&tmp, dir).map_err(|e| FormatError::io("renaming into", dir, e))?;
        }
        Some(false) => {
            fs::remove_dir(dir).map_err(|e| FormatError::io("replacing empty", dir, e))?;
            fs::rename(&tmp, dir).map_err(|e| FormatError::io("renaming into", dir, e))?;
        }
        Some(true) => {
            let old = sibling(dir, "old")?;
            if old.exists() {
                fs::remove_dir_all(&old).map_err(|e| FormatError::io("removing stale", &old, e))?;
            }
            fs::rename(dir, &old).map_err(|e| FormatError::io("moving aside", dir, e))?;
            if let Err(e) = fs::rename(&tmp, dir) {
                // Put the previous contents back so the caller loses nothing.
                let _ = fs::rename(&old, dir);
                return Err(FormatError::io("renaming into", dir, e));
            }
            if let Err(e) = fs::remove_dir_all(&old) {
                tracing::warn!(path = %old.display(), error = %e, "could not remove replaced bundle");
            }
        }
    }
    guard.disarm();
    sync_parent(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_file_atomic(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(FormatError::invalid("test", "deliberate failure"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("deliberate"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn panicking_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let dir_out = dir.path().join("bundle");
        let file = std::panic::catch_unwind(|| {
            write_file_atomic(&path, |w| {
                w.write_all(b"partial").unwrap();
                panic!("deliberate panic in a file writer")
            })
        });
        let tree = std::panic::catch_unwind(|| {
            write_dir_atomic(&dir_out, false, |d| {
                fs::write(d.join("a.npy"), b"x").unwrap();
                panic!("deliberate panic in a directory writer")
            })
        });
        assert!(file.is_err() && tree.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_replaces_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        fs::write(&path, b"old").unwrap();
        write_file_atomic(&path, |w| {
            w.write_all(b"new")
                .map_err(|e| FormatError::io("writing", "x", e))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dir_write_respects_overwrite_flag() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bundle");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("old.txt"), b"x").unwrap();
        let fill = |d: &Path| {
            fs::write(d.join("new.txt"), b"y").map_err(|e| FormatError::io("writing", d, e))
        };
        let err = write_dir_atomic(&dir, false, fill).unwrap_err();
        assert!(matches!(err, FormatError::Exists { .. }), "{err}");
        assert!(dir.join("old.txt").exists());
        write_dir_atomic(&dir, true, fill).unwrap();
        assert!(dir.join("new.txt").exists() && !dir.join("old.txt").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_dir_write_removes_temporary() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bundle");
        let err = write_dir_atomic(&dir, false, |d| {
            fs::write(d.join("a.npy"), b"x").unwrap();
            Err(FormatError::invalid("test", "deliberate failure"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("deliberate"));
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
