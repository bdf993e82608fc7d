//! Which file a path named when it was opened, so that a file deleted, renamed or replaced
//! under a running engine is noticed instead of written into an unreachable inode.

use std::fs::File;
use std::path::{Path, PathBuf};

/// An open file and the identity (device and inode) its path had at open.
#[derive(Debug)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    file: File,
    #[cfg(unix)]
    id: (u64, u64),
}

impl FileIdentity {
    pub(crate) fn new(path: &Path, file: File) -> std::io::Result<Self> {
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            let meta = file.metadata()?;
            (meta.dev(), meta.ino())
        };
        Ok(FileIdentity {
            path: path.to_path_buf(),
            file,
            #[cfg(unix)]
            id,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// `Err` with what happened if the path no longer names the open file: it was deleted,
    /// renamed away, or replaced by another file. Two `stat` calls; always `Ok` where the
    /// platform gives no file identity.
    pub(crate) fn check(&self) -> Result<(), String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let deleted = || match self.file.metadata() {
                Ok(open) => open.nlink() == 0,
                Err(_) => false,
            };
            match std::fs::metadata(&self.path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(if deleted() {
                    "was deleted while it was open".into()
                } else {
                    "was renamed away while it was open".into()
                }),
                Err(e) => Err(format!("cannot be inspected: {e}")),
                Ok(now) if (now.dev(), now.ino()) != self.id => {
                    Err("was replaced by another file while it was open".into())
                }
                Ok(_) => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &self.file;
            Ok(())
        }
    }
}
