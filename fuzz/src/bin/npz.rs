//! `.npz` archives: the archive reader and a data block.

fn main() {
    let program = nnl_fuzz::DataProgram::new(
        "data d {\n  train = npz(\"in.npz\")\n  x: f32[3] = array(\"x\")\n}",
    );
    afl::fuzz!(|bytes: &[u8]| {
        let path = nnl_fuzz::write_input("in.npz", bytes);
        let _ = nnl::store::read_npz(&path);
        program.load();
    });
}
