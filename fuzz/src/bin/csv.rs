//! CSV tables: the inputs reader of `nnlc predict` and a data block with a split and
//! standardization.

fn main() {
    let program = nnl_fuzz::DataProgram::new(
        "data d {\n  source = csv(\"t.csv\", header: true)\n  x: f32[3] = cols(0..3) |> standardize\n  split val = 0.5 of source\n}",
    );
    afl::fuzz!(|bytes: &[u8]| {
        let path = nnl_fuzz::write_input("t.csv", bytes);
        let _ = nnl::data::read_inputs(&path);
        program.load();
    });
}
