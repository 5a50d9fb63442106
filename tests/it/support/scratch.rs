//! A test's temporary directory or file (`/tmp/awk-*`): removed when its guard drops after the
//! test passed, kept when the test panicked (its path printed), since what it holds (server
//! logs, fixtures, a cluster's data) is what explains the failure. Bind it to a variable that
//! lives as long as anything uses the path: a temporary is dropped at the end of its statement.

use std::ops::Deref;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new empty directory `<tmp>/<prefix>XXXXXX`.
    pub fn dir(prefix: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        Scratch { path: dir.keep() }
    }

    /// A new empty file `<tmp>/<prefix>XXXXXX<suffix>`.
    pub fn file(prefix: &str, suffix: &str) -> Scratch {
        let file = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(suffix)
            .tempfile()
            .unwrap();
        Scratch {
            path: file.into_temp_path().keep().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept {}", self.path.display());
            return;
        }
        let removed = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&self.path),
            Ok(_) => std::fs::remove_file(&self.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}
