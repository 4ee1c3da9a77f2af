//! The file-system adaptor for callers of the pipeline (the CLI and tests). The stages
//! themselves never read files.

use crate::resolve::Loader;

pub struct DiskLoader;

impl Loader for DiskLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}
