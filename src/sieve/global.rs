//! The administrator's scripts (`sieve.before`, `sieve.after`, and
//! `include :global` from `sieve.global_dir`): files, compiled on first
//! use and again only when the file changes (size or modification time),
//! so delivery does not parse Sieve and an edit needs no restart. A file
//! that does not compile is logged once per change and skipped.

use super::compile::Program;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

type Entry = (Option<SystemTime>, u64, Option<Arc<Program>>);

static CACHE: Mutex<Option<HashMap<PathBuf, Entry>>> = Mutex::new(None);

/// Files cached at most (a bound on what a `global_dir` can make us hold).
const MAX_FILES: usize = 1024;

/// The compiled script in `path`, if it exists and compiles.
pub fn load(path: &Path, max_size: u64) -> Option<Arc<Program>> {
    let meta = std::fs::metadata(path).ok()?;
    let stamp = (meta.modified().ok(), meta.len());
    let lock = || CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((modified, len, program)) = lock().as_ref().and_then(|map| map.get(path))
        && (*modified, *len) == stamp
    {
        return program.clone();
    }
    // Compiled without the lock: deliveries using other scripts (or this
    // one, already cached) do not wait for it.
    let program = compile_file(path, max_size);
    let mut cache = lock();
    let map = cache.get_or_insert_with(HashMap::new);
    if map.len() >= MAX_FILES {
        map.clear();
    }
    map.insert(path.to_path_buf(), (stamp.0, stamp.1, program.clone()));
    program
}

fn compile_file(path: &Path, max_size: u64) -> Option<Arc<Program>> {
    let text = match std::fs::read(path) {
        Ok(bytes) if bytes.len() as u64 <= max_size => String::from_utf8(bytes).ok(),
        Ok(_) => {
            tracing::error!(
                "sieve: {}: larger than sieve.max_script_size; skipped",
                path.display()
            );
            return None;
        }
        Err(e) => {
            tracing::error!("sieve: {}: {e}; skipped", path.display());
            return None;
        }
    };
    let Some(text) = text else {
        tracing::error!("sieve: {}: not UTF-8; skipped", path.display());
        return None;
    };
    match super::compile(&text) {
        Ok(program) => Some(Arc::new(program)),
        Err(e) => {
            tracing::error!("sieve: {}: {e}; skipped", path.display());
            None
        }
    }
}

/// `include :global "name"`: `name.sieve` in `dir` (names cannot hold
/// `/`, so the file stays inside it).
pub fn in_dir(dir: &str, name: &str) -> Option<PathBuf> {
    if dir.is_empty() || super::scripts::check_name(name).is_err() || name.starts_with('.') {
        return None;
    }
    Some(Path::new(dir).join(format!("{name}.sieve")))
}
