//! What the fuzz targets share: a scratch directory of their own, and programs whose data
//! blocks read the file a target has just written.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A directory for this process's inputs (targets write each input to a file, as users' data
/// arrives, so that every reader runs from its real entry point).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nnl-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the scratch directory is made");
        dir
    })
}

/// Writes `bytes` to `name` in the scratch directory; its path.
pub fn write_input(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("the input is written");
    path
}

/// A checked program in the scratch directory whose data block `d` is `data_block`, and the
/// path it was checked as; checked once per process, as its data files change under it.
pub struct DataProgram {
    /// Read only (a panic in a target ends the process, and AFL keeps the input).
    program: AssertUnwindSafe<nnl::resolve::Program>,
    file: PathBuf,
}

impl DataProgram {
    pub fn new(data_block: &str) -> DataProgram {
        let source = format!(
            "use std.nn.{{Dense}}\n{data_block}\nmodel M()(x: f32[B, 3]) -> f32[B, 1] {{ x |> Dense(1) }}\ntrain M on d {{\n  loss = mean(out)\n  optimizer = sgd(lr: 0.1)\n}}\n"
        );
        let file = scratch().join("m.nnl");
        let (check, program) =
            nnl::check_program(&file.to_string_lossy(), &source, &nnl::fs::DiskLoader);
        assert!(!check.has_errors(), "the target's own program checks");
        DataProgram {
            program: AssertUnwindSafe(program),
            file,
        }
    }

    /// Loads the data set as `nnlc run` would; errors are the expected outcome.
    pub fn load(&self) {
        let _ = nnl::runtime::load_data(&self.program, &self.file, 1);
    }
}
