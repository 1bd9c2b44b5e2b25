//! Files that hold customers' data (call history, recordings and their sidecars) are created
//! readable by the service's user only: 0600 for files, 0700 for the folders wacall creates.
//! Folders that already exist keep the mode their owner gave them.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or truncates) `path` for writing with mode 0600.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Makes sure `path` exists with mode 0600 before another library (SQLite) opens it; an
/// existing file is left as it is.
pub fn ensure_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_private() {
        let base = std::env::temp_dir().join(format!("wacall-priv-{}", rand::random::<u32>()));
        let dir = base.join("a/b");
        create_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&base.join("a")), 0o700);
        create_file(&dir.join("f")).unwrap();
        assert_eq!(mode(&dir.join("f")), 0o600);
        ensure_file(&dir.join("g")).unwrap();
        assert_eq!(mode(&dir.join("g")), 0o600);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
