//! Damage found at open, named, never a panic: the cheap checks every
//! start runs (the full ones are `spoc verify`, [`super::verify`]).
//!
//! - sled may panic on a damaged `sled/db` (`tried to serialize
//!   Uninitialized`) or misreport a damaged `sled/conf`: [`open_sled`]
//!   catches the panic and names the file and what to do.
//! - sled's recovery stops at the first damaged entry of its own log and
//!   silently drops everything after it. Every checkpoint therefore writes
//!   a generation number into `meta` *and*, once sled's flush returned,
//!   into the file `checkpoint` beside it; a start that finds sled behind
//!   the file knows sled lost writes it had flushed, and refuses.

use std::path::Path;

use crate::error::{Error, Result};

/// Key in `meta` of the last checkpoint generation sled holds.
pub const CHECKPOINT_KEY: &[u8] = b"checkpoint_generation";
/// File of the data folder recording the last checkpoint generation sled
/// flushed.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// What an operator does about damaged data.
pub const WHAT_TO_DO: &str = "the server does not start on damaged data. Keep the data folder as \
     it is, run `spoc verify --data-dir DIR` for the full list, then follow the recovery \
     procedure of OPERATIONS.md (restore the last backup, replay the newer log segments)";

/// Opens sled in `dir/sled` with `config`, turning a panic or a damaged
/// configuration into an error naming the file.
pub fn open_sled(dir: &Path, config: sled::Config) -> Result<sled::Db> {
    let path = dir.join("sled");
    quiet_panics();
    QUIET.with(|q| q.set(true));
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    QUIET.with(|q| q.set(false));
    match opened {
        Ok(Ok(db)) => Ok(db),
        // Settings fixed at creation (segment size, compression, sled's
        // on-disk version) differ: not damage, a folder this build cannot
        // open (an older release on a folder a newer one created).
        Ok(Err(sled::Error::Unsupported(said)))
            if said.contains("across restarts") || said.contains("pagecache version") =>
        {
            Err(Error::FailedPrecondition(format!(
                "the store {} was written by a newer release or with other sled settings \
                 ({said}); this release cannot open it: run the release that wrote it, or \
                 restore the backup taken before upgrading (OPERATIONS.md, \"Store format \
                 and migration\")",
                path.display()
            )))
        }
        Ok(Err(err @ (sled::Error::Corruption { .. } | sled::Error::Unsupported(_)))) => {
            Err(Error::Corrupt {
                tree: "sled",
                key: path.display().to_string(),
                reason: format!("sled cannot read its files ({err}); {WHAT_TO_DO}"),
            })
        }
        Ok(Err(err)) => Err(Error::Storage(format!(
            "cannot open the store {}: {err}",
            path.display()
        ))),
        Err(panic) => {
            let said = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Error::Corrupt {
                tree: "sled",
                key: path.join("db").display().to_string(),
                reason: format!("sled failed reading a damaged file ({said}); {WHAT_TO_DO}"),
            })
        }
    }
}

thread_local! {
    /// Set while this thread opens sled: its panics are reported as errors.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for panics caught by
/// [`open_sled`] and hands every other panic to the previous hook.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// Refuses a sled that lost flushed writes: its `meta` generation is
/// behind the `checkpoint` file.
pub fn check_generation(dir: &Path, db: &sled::Db) -> Result<u64> {
    let in_sled = sled_generation(db)?;
    let file = dir.join(CHECKPOINT_FILE);
    let in_file = match std::fs::read_to_string(&file) {
        Ok(text) => text.trim().parse::<u64>().map_err(|_| Error::Corrupt {
            tree: "checkpoint",
            key: file.display().to_string(),
            reason: format!("not a checkpoint number: {text:?}; {WHAT_TO_DO}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Error::Storage(format!("{}: {e}", file.display()))),
    };
    if in_sled < in_file {
        return Err(Error::Corrupt {
            tree: "sled",
            key: dir.join("sled").join("db").display().to_string(),
            reason: format!(
                "sled holds checkpoint {in_sled} but checkpoint {in_file} was flushed \
                 ({}): sled's recovery dropped flushed writes, so acknowledged data is \
                 missing; {WHAT_TO_DO}",
                file.display()
            ),
        });
    }
    Ok(in_sled)
}

/// The generation sled holds (0 before the first checkpoint).
pub fn sled_generation(db: &sled::Db) -> Result<u64> {
    let meta = db.open_tree("meta")?;
    Ok(match meta.get(CHECKPOINT_KEY)? {
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_ref()) {
            Ok(b) => u64::from_be_bytes(b),
            Err(_) => {
                return Err(Error::Corrupt {
                    tree: "meta",
                    key: "checkpoint_generation".into(),
                    reason: format!("not 8 bytes; {WHAT_TO_DO}"),
                });
            }
        },
        None => 0,
    })
}

/// Puts `generation` in `meta` (call before sled's flush).
pub fn mark_in_sled(db: &sled::Db, generation: u64) -> Result<()> {
    db.open_tree("meta")?
        .insert(CHECKPOINT_KEY, &generation.to_be_bytes())?;
    Ok(())
}

/// Records `generation` in the `checkpoint` file, durably (call once
/// sled's flush returned).
pub fn mark_in_file(dir: &Path, generation: u64) -> Result<()> {
    use std::io::Write;
    let file = dir.join(CHECKPOINT_FILE);
    let tmp = dir.join(".checkpoint.tmp");
    let fail = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => {
            Error::Unavailable(format!("disk full: {}: {e}", file.display()))
        }
        _ => Error::Storage(format!("{}: {e}", file.display())),
    };
    let mut out = super::backup::private_file(&tmp).map_err(fail)?;
    out.write_all(format!("{generation}\n").as_bytes())
        .map_err(fail)?;
    out.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, &file).map_err(fail)?;
    super::backup::sync_parent(&file).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder sled created with other settings than this build's (here
    /// its segment size) is named as written by a newer release or with
    /// other settings, not as damage.
    #[test]
    fn other_sled_settings_are_not_reported_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::super::Store::open(dir.path()).unwrap());
        let config = sled::Config::new()
            .path(dir.path().join("sled"))
            .segment_size(512 * 1024);
        let err = open_sled(dir.path(), config).expect_err("refused");
        let text = err.to_string();
        assert!(matches!(err, Error::FailedPrecondition(_)), "{text}");
        assert!(text.contains("written by a newer release"), "{text}");
        assert!(text.contains("io buffer size"), "{text}");
    }
}
