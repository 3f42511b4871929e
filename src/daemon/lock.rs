//! One orchestrator per repository: an exclusive file lock (fs4, flock).
//!
//! The kernel drops the lock when its process dies, so a lock left by a
//! crashed or `kill -9`ed orchestrator is simply taken by the next one; the
//! pid written inside is only for messages and `git sprint stop`.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

pub(crate) struct Lock {
    file: File,
}

/// Why the orchestrator lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the orchestrator is already running (pid {pid})")]
    Held { pid: String },
    #[error("cannot open the orchestrator lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn path(common_dir: &Path) -> PathBuf {
    common_dir.join("sprint").join("orchestrator.lock")
}

/// Takes the lock or says who holds it.
pub(crate) fn acquire(common_dir: &Path) -> Result<Lock, LockError> {
    let path = path(common_dir);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("lock has a parent")).map_err(io)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if !FileExt::try_lock_exclusive(&file).map_err(io)? {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Err(LockError::Held {
            pid: pid.trim().to_owned(),
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Lock { file })
}

/// The pid of the running orchestrator, if one holds the lock.
///
/// Right after an orchestrator is killed its lock may still be held for a
/// moment by a child it had just forked (the lock goes with the child's
/// copy of the descriptor at exec), while the pid inside is already gone:
/// that is waited out, for at most two seconds, rather than taken for a
/// running orchestrator (a `start` then started nothing).
pub fn holder(common_dir: &Path) -> Option<u32> {
    let path = path(common_dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let file = std::fs::File::open(&path).ok()?;
        // If we can take it, nobody holds it.
        if FileExt::try_lock_shared(&file).ok()? {
            let _ = FileExt::unlock(&file);
            return None;
        }
        let pid: u32 = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
        if crate::worker::procstat::is_alive(pid) || std::time::Instant::now() >= deadline {
            return Some(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
