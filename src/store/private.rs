//! The data folder is private: it holds learner names, key hashes and the
//! leftovers of erased learners, so only the service's user may read it.
//!
//! The folder is created 0700 and every file in it 0600. sled creates its
//! own files (`db`, `conf`, `blobs/`, `snap.*`) and takes no mode, so
//! [`open_private`] also sets the process's umask to 0077 before sled opens
//! (a server process creates nothing meant for others), and tightens what
//! an older version left readable. A folder that others can write is
//! refused: anyone able to write there could replace the store.
//!
//! Leftovers of interrupted work are removed at open: a killed backup's
//! `.snapshot-*.tmp` copy and a killed fit's `models/.*.tmp` file.

use std::path::Path;

use crate::error::{Error, Result};

/// Mode of every folder in the data folder.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in the data folder.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (0700) if missing, refuses it if others can write it,
/// sets the umask and tightens the modes of what it holds; then removes
/// the temporary files interrupted work left.
pub fn open_private(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // SAFETY: umask only swaps the process's file-mode mask.
        unsafe {
            libc::umask(0o077);
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|e| fail(dir, "cannot create", e))?;
        }
        let meta = std::fs::metadata(dir).map_err(|e| fail(dir, "cannot read", e))?;
        if !meta.is_dir() {
            return Err(Error::Storage(format!(
                "data folder {} is not a folder",
                dir.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o022 != 0 {
            return Err(Error::Storage(format!(
                "data folder {} is writable by other users (mode {mode:o}): anyone could \
                 replace the store; fix it with `chmod 700 {}` (and check who owns it), \
                 then start again",
                dir.display(),
                dir.display()
            )));
        }
        tighten(dir)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, "cannot create", e))?;
    remove_leftovers(dir);
    Ok(())
}

/// Sets every folder under `dir` (itself included) to 0700 and every file
/// to 0600, where they are wider.
#[cfg(unix)]
pub fn tighten(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| fail(dir, "cannot read", e))?;
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| fail(dir, "cannot restrict", e))?;
    }
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, "cannot list", e))? {
        let entry = entry.map_err(|e| fail(dir, "cannot list", e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| fail(&path, "cannot read", e))?;
        if kind.is_dir() {
            tighten(&path)?;
        } else if kind.is_file() {
            let mode = entry
                .metadata()
                .map_err(|e| fail(&path, "cannot read", e))?
                .permissions()
                .mode();
            if mode & 0o777 != FILE_MODE {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(FILE_MODE))
                    .map_err(|e| fail(&path, "cannot restrict", e))?;
            }
        }
    }
    Ok(())
}

/// Removes `.snapshot-*.tmp` (a backup killed while it copied) and
/// `models/.*.tmp` (a fit killed while it wrote): nobody reads them, and a
/// snapshot copy is as large as the store.
fn remove_leftovers(dir: &Path) {
    let is_leftover = |name: &str, prefix: &str| name.starts_with(prefix) && name.ends_with(".tmp");
    for (folder, prefix) in [(dir.to_path_buf(), ".snapshot-"), (dir.join("models"), ".")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if is_leftover(&name, prefix) && entry.file_type().is_ok_and(|t| t.is_file()) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(
                        path = %entry.path().display(),
                        "removed the temporary file of an interrupted backup or fit"
                    ),
                    Err(err) => tracing::warn!(
                        path = %entry.path().display(),
                        error = %err,
                        "cannot remove the temporary file of an interrupted backup or fit"
                    ),
                }
            }
        }
    }
}

fn fail(path: &Path, what: &str, err: std::io::Error) -> Error {
    Error::Storage(format!("{what} {}: {err}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("the file exists")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_new_folder_is_private_and_old_files_are_tightened() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        open_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(dir.join("wal")).unwrap();
        std::fs::write(dir.join("wal/wal-1.log"), b"x").unwrap();
        std::fs::set_permissions(
            dir.join("wal/wal-1.log"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::set_permissions(dir.join("wal"), std::fs::Permissions::from_mode(0o755)).unwrap();
        open_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("wal")), 0o700);
        assert_eq!(mode(&dir.join("wal/wal-1.log")), 0o600);
    }

    #[test]
    fn a_folder_others_can_write_is_refused_with_the_fix() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_private(&dir).unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("chmod 700"), "{err}");
    }

    #[test]
    fn leftovers_of_interrupted_backups_and_fits_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        std::fs::create_dir_all(dir.join("models")).unwrap();
        std::fs::write(dir.join(".snapshot-1-0.tmp"), b"x").unwrap();
        std::fs::write(dir.join("models/.bkt-1.json.tmp"), b"x").unwrap();
        std::fs::write(dir.join("models/bkt-1.json"), b"{}").unwrap();
        open_private(&dir).unwrap();
        assert!(!dir.join(".snapshot-1-0.tmp").exists());
        assert!(!dir.join("models/.bkt-1.json.tmp").exists());
        assert!(dir.join("models/bkt-1.json").exists());
    }
}
