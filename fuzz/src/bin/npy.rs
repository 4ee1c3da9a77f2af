//! `.npy` arrays: the array parser, the inputs reader of `nnlc predict`, and a data block.

fn main() {
    let program =
        nnl_fuzz::DataProgram::new("data d {\n  train = npy(\"in.npy\")\n  x: f32[3] = x\n}");
    afl::fuzz!(|bytes: &[u8]| {
        let _ = nnl::store::parse_npy(bytes);
        let path = nnl_fuzz::write_input("in.npy", bytes);
        let _ = nnl::data::read_inputs(&path);
        program.load();
    });
}
