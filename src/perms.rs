//! File modes for what Merpati keeps: every message and the password
//! hashes are in `data_dir`, so nothing there may be readable by other
//! local users, whatever umask the daemon was started with (systemd sets
//! `UMask=0027`; a shell usually 0022).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The umask for the daemon and the admin commands: files 0640 at most,
/// directories 0750.
pub const UMASK: libc::mode_t = 0o027;

/// Applies [`UMASK`] to this process (before any file is created).
pub fn restrict_umask() {
    // SAFETY: umask(2) only changes this process's file creation mask.
    unsafe {
        libc::umask(UMASK);
    }
}

/// Creates `dir` (and parents) if needed and makes it exactly `mode` when
/// this call created it; an existing directory keeps its mode (the admin
/// may have chosen it) but is warned about when wider than `mode`.
pub fn private_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    if dir.is_dir() {
        warn_if_wider(dir, mode);
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Logs a warning when `path` grants more than `mode` allows.
pub fn warn_if_wider(path: &Path, mode: u32) {
    if let Ok(meta) = std::fs::metadata(path) {
        let actual = meta.permissions().mode() & 0o777;
        if actual & !mode != 0 {
            tracing::warn!(
                "{} has mode {actual:o}, wider than {mode:o}: other local users may read mail; chmod {mode:o} it",
                path.display()
            );
        }
    }
}

/// Writes `bytes` to `path` with `mode` through a temp file, fsync and
/// rename: a crash never leaves a torn key file that would stop the next
/// start.
pub fn write_private_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_directories_get_the_mode_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir, 0o750).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
    }
}
