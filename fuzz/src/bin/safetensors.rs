//! safetensors files: the tensor-file reader and the checkpoint loader.

fn main() {
    afl::fuzz!(|bytes: &[u8]| {
        let path = nnl_fuzz::write_input("in.safetensors", bytes);
        let _ = nnl::store::read_safetensors(&path);
        let _ = nnl::runtime::checkpoint::load(&path);
    });
}
