//! Free space where mail is written (Postfix's `queue_minfree`): new mail
//! is refused with a temporary error while accepting it could fill the
//! disk, instead of failing after the client was told to send it.

use std::path::Path;

/// Bytes an unprivileged writer may still use on `path`'s filesystem.
pub fn available(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: statvfs writes only into the struct we pass, and the path is
    // NUL-terminated by CString.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// True when a message of `size` bytes (0 when unknown) fits on `path`'s
/// filesystem with `reserve` bytes to spare. As Postfix does, the size
/// counts one and a half times (the queue file and its copy in the store
/// coexist for a while). A filesystem that cannot be asked is assumed to
/// have room: the write itself will then tell.
pub fn has_room(path: &Path, reserve: u64, size: u64) -> bool {
    let Ok(free) = available(path) else {
        return true;
    };
    let needed = reserve.saturating_add(size.saturating_add(size / 2));
    free >= needed.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_some_room_and_not_infinite_room() {
        let dir = std::env::temp_dir();
        assert!(available(&dir).unwrap() > 0);
        assert!(has_room(&dir, 0, 0));
        assert!(!has_room(&dir, u64::MAX / 2, u64::MAX / 2));
    }
}
