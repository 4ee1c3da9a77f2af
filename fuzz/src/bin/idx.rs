//! IDX files (MNIST's format), plain and gzip-compressed. The first byte chooses: bit 0, the
//! input is a gzip stream (`.idx.gz`); bit 1, it is the labels file rather than the images
//! file. The other file of the pair is a valid one (four 28×28 images, or their four labels).

use std::io::Write;

fn main() {
    let plain = nnl_fuzz::DataProgram::new(
        "data d {\n  train = idx(\"i.idx\", \"l.idx\")\n  x: f32[3] = image |> flatten |> reshape([3])\n}",
    );
    let compressed = nnl_fuzz::DataProgram::new(
        "data d {\n  train = idx(\"i.idx.gz\", \"l.idx.gz\")\n  x: f32[3] = image |> flatten |> reshape([3])\n}",
    );
    let images = idx(&[4, 28, 28], 4 * 28 * 28);
    let labels = idx(&[4], 4);
    let (images_gz, labels_gz) = (gzip(&images), gzip(&labels));
    afl::fuzz!(|bytes: &[u8]| {
        let Some((&choice, input)) = bytes.split_first() else {
            return;
        };
        let is_labels = choice & 2 == 2;
        let (program, ext, other) = match (choice & 1 == 1, is_labels) {
            (false, false) => (&plain, "idx", &labels),
            (false, true) => (&plain, "idx", &images),
            (true, false) => (&compressed, "idx.gz", &labels_gz),
            (true, true) => (&compressed, "idx.gz", &images_gz),
        };
        let (input_name, other_name) = if is_labels { ("l", "i") } else { ("i", "l") };
        nnl_fuzz::write_input(&format!("{input_name}.{ext}"), input);
        nnl_fuzz::write_input(&format!("{other_name}.{ext}"), other);
        program.load();
    });
}

/// An IDX file of unsigned bytes with dimensions `dims` and `count` values.
fn idx(dims: &[u32], count: usize) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(7u8, count));
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip to memory");
    gz.finish().expect("gzip to memory")
}
