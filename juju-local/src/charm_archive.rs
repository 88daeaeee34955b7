//! Unpacks a `.charm` (a zip) into a unit's charm dir as Juju's archive reader does: files keep
//! their unix mode (dispatch 0755), `hooks/<name>` symlinks stay symlinks, and any entry or symlink
//! that would land outside the charm dir is refused.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Reads one file (e.g. metadata.yaml) from the archive without unpacking it.
pub fn read_entry(archive: &Path, name: &str) -> Result<Option<String>> {
    let file = fs::File::open(archive).with_context(|| format!("cannot open charm {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("invalid charm archive {}", archive.display()))?;
    let mut entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(e).context("invalid charm archive"),
    };
    let mut text = String::new();
    entry.read_to_string(&mut text).with_context(|| format!("cannot read {name} from the charm"))?;
    Ok(Some(text))
}

/// True when the archive has an entry of that name (whatever its content: dispatch may be a binary).
pub fn has_entry(archive: &Path, name: &str) -> Result<bool> {
    let file = fs::File::open(archive).with_context(|| format!("cannot open charm {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("invalid charm archive {}", archive.display()))?;
    Ok(zip.by_name(name).is_ok())
}

/// Unpacks `archive` into `dest` (which must not exist yet or be empty).
pub fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    let file = fs::File::open(archive).with_context(|| format!("cannot open charm {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(file).with_context(|| format!("invalid charm archive {}", archive.display()))?;
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).context("invalid charm archive")?;
        let raw_name = entry.name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        let Some(rel) = entry.enclosed_name() else {
            bail!("charm entry {raw_name:?} points outside the charm directory");
        };
        let target = dest.join(&rel);
        if entry.is_dir() {
            fs::create_dir_all(&target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if entry.is_symlink() {
            let mut link = String::new();
            entry.read_to_string(&mut link).with_context(|| format!("cannot read symlink {raw_name}"))?;
            check_symlink(&rel, &link).with_context(|| format!("cannot extract {raw_name:?}"))?;
            let _ = fs::remove_file(&target);
            std::os::unix::fs::symlink(&link, &target)
                .with_context(|| format!("cannot create symlink {}", target.display()))?;
            continue;
        }
        let mut out = fs::File::create(&target).with_context(|| format!("cannot write {}", target.display()))?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("cannot extract {raw_name}"))?;
        let mode = entry.unix_mode().map(|m| m & 0o7777).filter(|m| *m != 0).unwrap_or(0o644);
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
    }
    if !dest.join("metadata.yaml").is_file() {
        bail!("invalid charm archive {}: no metadata.yaml", archive.display());
    }
    Ok(())
}

/// Refuses absolute symlinks and relative ones that climb out of the charm root.
fn check_symlink(entry: &Path, link: &str) -> Result<()> {
    if link.is_empty() || Path::new(link).is_absolute() {
        bail!("symlink {link:?} is absolute");
    }
    let mut stack: Vec<PathBuf> = Vec::new();
    let base = entry.parent().unwrap_or(Path::new(""));
    for comp in base.components().chain(Path::new(link).components()) {
        match comp {
            Component::Normal(c) => stack.push(PathBuf::from(c)),
            Component::CurDir => {}
            Component::ParentDir => {
                if stack.pop().is_none() {
                    bail!("symlink {link:?} leads out of scope");
                }
            }
            _ => bail!("symlink {link:?} is absolute"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_scope_is_checked() {
        assert!(check_symlink(Path::new("hooks/install"), "../dispatch").is_ok());
        assert!(check_symlink(Path::new("hooks/install"), "../../etc/passwd").is_err());
        assert!(check_symlink(Path::new("hooks/install"), "/bin/sh").is_err());
        assert!(check_symlink(Path::new("a"), "b/../c").is_ok());
    }
}
