//! `.nnl` source through every stage: read as the CLI reads a file (any bytes), then checked,
//! formatted, and when it checks clean lowered, differentiated, optimized and verified.

#[path = "../../../tests/common/stages.rs"]
mod stages;

fn main() {
    afl::fuzz!(|bytes: &[u8]| {
        let path = nnl_fuzz::write_input("source.nnl", bytes);
        if let Ok(text) = nnl::fs::read_source(&path) {
            stages::all_stages("fuzz.nnl", &text);
        }
    });
}
