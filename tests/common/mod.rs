//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.nnl` files directly in a directory, sorted.
pub fn nnl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "nnl"))
        .collect();
    files.sort();
    files
}

/// Checks a file the way the CLI does, with paths relative to the crate root.
pub fn check_path(path: &Path) -> nnl::CheckOutput {
    let rel = path.strip_prefix(root()).unwrap_or(path);
    let text = std::fs::read_to_string(path).expect("readable fixture");
    let cwd_guard = CwdLoader { base: root() };
    nnl::check_source(&rel.to_string_lossy(), &text, &cwd_guard)
}

/// Reads `use "…"`d files relative to the crate root, as the CLI does from its working directory.
pub struct CwdLoader {
    pub base: PathBuf,
}

impl nnl::resolve::Loader for CwdLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.base.join(path)).map_err(|e| e.to_string())
    }
}
