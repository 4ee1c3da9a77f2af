//! The IR's text form (`nnlc ir` prints it; the parser reads it back): parsed, and what parses
//! is verified.

fn main() {
    afl::fuzz!(|bytes: &[u8]| {
        if let Ok(text) = std::str::from_utf8(bytes)
            && let Ok(graph) = nnl::ir::text::parse(text)
        {
            let _ = nnl::ir::verify(&graph);
        }
    });
}
