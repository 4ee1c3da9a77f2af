//! The language server on a byte stream, as an editor would write it: frames, JSON, requests
//! on documents; the server runs until the stream ends.

fn main() {
    let cache = nnl_fuzz::scratch().join("cache");
    afl::fuzz!(|bytes: &[u8]| {
        let input = std::io::Cursor::new(bytes.to_vec());
        let _ = nnl::lsp::run_streams(input, std::io::sink(), Some(cache.clone()));
    });
}
