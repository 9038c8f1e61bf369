//! Output paths, checked before any long computation: the directory exists and is
//! writable, nothing is replaced without `--overwrite`, no two outputs share a path, and
//! outputs never touch the inputs. Output files are written under hidden temporary names
//! and renamed into place together at the end, so a failure leaves nothing behind.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use aperture_pipeline::formats::bundle::files;

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The final component of an output path; `.`, `..` and `/` name no file.
fn file_name(option: &str, path: &Path) -> Result<OsString> {
    path.file_name().map(|n| n.to_os_string()).ok_or_else(|| {
        anyhow!(
            "{option} {}: does not name a file or directory",
            path.display()
        )
    })
}

/// Checks that the directory of output `path` exists and that files can be created in it.
fn check_parent_writable(option: &str, path: &Path) -> Result<PathBuf> {
    let parent = parent_dir(path);
    match fs::metadata(&parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "{option} {}: {} is not a directory",
            path.display(),
            parent.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "{option} {}: directory {} does not exist",
            path.display(),
            parent.display()
        ),
        Err(e) => bail!(
            "{option} {}: cannot access {}: {e}",
            path.display(),
            parent.display()
        ),
    }
    let probe = parent.join(format!(".aperture-probe-{}", std::process::id()));
    match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
        }
        Err(e) => bail!(
            "{option} {}: directory {} is not writable: {e}",
            path.display(),
            parent.display()
        ),
    }
    Ok(parent)
}

/// `path` with its directory resolved (symlinks, `..`), for comparing paths that may
/// not exist yet.
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    let parent = parent_dir(path);
    let parent = fs::canonicalize(&parent).unwrap_or(parent);
    match path.file_name() {
        Some(n) => parent.join(n),
        None => parent,
    }
}

/// A set of output files written together (e.g. image, quick-look, PSF).
#[derive(Debug)]
pub struct FileOutputs {
    overwrite: bool,
    entries: Vec<Entry>,
    committed: bool,
}

#[derive(Debug)]
struct Entry {
    option: String,
    path: PathBuf,
    key: PathBuf,
    staged: PathBuf,
}

/// Index of a registered output.
#[derive(Debug, Clone, Copy)]
pub struct OutputId(usize);

impl FileOutputs {
    pub fn new(overwrite: bool) -> Self {
        Self {
            overwrite,
            entries: Vec::new(),
            committed: false,
        }
    }

    /// Registers output file `path` of `option` (the option's name, or e.g.
    /// "quick-look of --out"), checking it now.
    pub fn add(&mut self, option: &str, path: &Path) -> Result<OutputId> {
        let name = file_name(option, path)?;
        let parent = check_parent_writable(option, path)?;
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => bail!("{option} {}: is a directory", path.display()),
            Ok(_) if !self.overwrite => bail!(
                "{option} {}: already exists (add --overwrite to replace it)",
                path.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => bail!("{option} {}: cannot inspect: {e}", path.display()),
        }
        let key = resolved(path);
        if let Some(other) = self.entries.iter().find(|e| e.key == key) {
            bail!(
                "{option} {}: the same file as {} {}",
                path.display(),
                other.option,
                other.path.display()
            );
        }
        let mut staged_name = OsString::from(".");
        staged_name.push(&name);
        staged_name.push(format!(".partial-{}", std::process::id()));
        self.entries.push(Entry {
            option: option.to_owned(),
            path: path.to_path_buf(),
            key,
            staged: parent.join(staged_name),
        });
        Ok(OutputId(self.entries.len() - 1))
    }

    /// The temporary path to write output `id` to.
    pub fn staged(&self, id: OutputId) -> &Path {
        &self.entries[id.0].staged
    }

    /// Renames every written output into place and returns their paths, in the order
    /// they were added. If a rename fails, the outputs already renamed and the remaining
    /// temporaries are removed.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if let Err(err) = fs::rename(&e.staged, &e.path) {
                let msg = format!(
                    "{} {}: cannot rename into place: {err}",
                    e.option,
                    e.path.display()
                );
                for done in &self.entries[..i] {
                    let _ = fs::remove_file(&done.path);
                }
                return Err(anyhow!(msg));
            }
        }
        self.committed = true;
        Ok(self.entries.iter().map(|e| e.path.clone()).collect())
    }
}

impl Drop for FileOutputs {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for e in &self.entries {
            match fs::remove_file(&e.staged) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %e.staged.display(), error = %err, "could not remove temporary output")
                }
            }
        }
    }
}

/// Checks output bundle directory `dir` of `option` before any computation: its parent
/// is writable, and an existing non-empty `dir` is only replaced with `overwrite` and only
/// when it holds nothing but bundle files (so a mistyped `--out` cannot delete other data).
pub fn check_bundle_output(option: &str, dir: &Path, overwrite: bool) -> Result<()> {
    file_name(option, dir)?;
    check_parent_writable(option, dir)?;
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("{option} {}: cannot inspect: {e}", dir.display()),
    };
    if !meta.is_dir() {
        bail!("{option} {}: exists and is not a directory", dir.display());
    }
    let entries: Vec<OsString> = fs::read_dir(dir)
        .map_err(|e| anyhow!("{option} {}: cannot list: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !overwrite {
        bail!(
            "{option} {}: already exists and is not empty (add --overwrite to replace it)",
            dir.display()
        );
    }
    const KNOWN: [&str; 9] = [
        files::UVW,
        files::FREQ,
        files::VIS,
        files::WEIGHT,
        files::FLAG,
        files::ANT1,
        files::ANT2,
        files::TIME,
        files::META,
    ];
    if let Some(odd) = entries
        .iter()
        .find(|n| !n.to_str().is_some_and(|n| KNOWN.contains(&n)))
    {
        bail!(
            "{option} {}: holds {}, which is not part of a visibility bundle; refusing to replace it",
            dir.display(),
            Path::new(odd).display()
        );
    }
    Ok(())
}

/// Errors when output `out` (of `option`) is, contains or lies inside input `input`
/// (described as `what`), which writing or replacing `out` would damage.
pub fn check_not_input(option: &str, out: &Path, what: &str, input: &Path) -> Result<()> {
    let (o, i) = (resolved(out), resolved(input));
    if o == i || o.starts_with(&i) || i.starts_with(&o) {
        bail!(
            "{option} {}: overlaps the {what} {}; inputs are never modified, choose another output",
            out.display(),
            input.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_staged_and_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.fits");
        let b = dir.path().join("a.png");
        let mut outs = FileOutputs::new(false);
        let ia = outs.add("--out", &a).unwrap();
        let ib = outs.add("quick-look of --out", &b).unwrap();
        assert!(
            outs.add("--psf", &a)
                .unwrap_err()
                .to_string()
                .contains("same file")
        );
        fs::write(outs.staged(ia), b"x").unwrap();
        fs::write(outs.staged(ib), b"y").unwrap();
        assert_eq!(outs.commit().unwrap(), [a.clone(), b.clone()]);
        assert_eq!(fs::read(&a).unwrap(), b"x");
        assert_eq!(fs::read(&b).unwrap(), b"y");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        // Exists without --overwrite.
        let e = FileOutputs::new(false).add("--out", &a).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[test]
    fn dropped_outputs_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut outs = FileOutputs::new(false);
            let i = outs.add("--out", &dir.path().join("x.fits")).unwrap();
            fs::write(outs.staged(i), b"x").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bundle_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        check_bundle_output("--out", &b, false).unwrap();
        fs::create_dir(&b).unwrap();
        check_bundle_output("--out", &b, false).unwrap();
        fs::write(b.join("vis.npy"), b"x").unwrap();
        assert!(check_bundle_output("--out", &b, false).is_err());
        check_bundle_output("--out", &b, true).unwrap();
        fs::write(b.join("notes.txt"), b"x").unwrap();
        let e = check_bundle_output("--out", &b, true).unwrap_err();
        assert!(e.to_string().contains("notes.txt"), "{e}");
        let f = dir.path().join("file");
        fs::write(&f, b"x").unwrap();
        let e = check_bundle_output("--out", &f.join("b"), false).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert!(check_not_input("--out", &b.join("x"), "input bundle", &b).is_err());
        assert!(check_not_input("--out", dir.path(), "input bundle", &b).is_err());
        assert!(check_not_input("--out", &dir.path().join("c"), "input bundle", &b).is_ok());
    }
}
