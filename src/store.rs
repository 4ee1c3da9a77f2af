//! Tensor files: NumPy `.npz` batches in, safetensors out (and back in). Layouts are plain:
//! row-major, little-endian, the IR's dtypes (f32, f64, i32, bool). Files are written atomically
//! (a temporary file in the same directory, fsync, rename) so a crash never leaves half a file.

use crate::interp::Tensor;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Every array of an `.npz` file (compressed or not), by name. NumPy's default integer
/// (int64) is narrowed to i32 when it fits; float16, complex and object arrays are refused.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut npz = NpzReader::new(file)
        .map_err(|e| format!("`{}` is not an .npz file: {e}", path.display()))?;
    let names = npz
        .names()
        .map_err(|e| format!("cannot list `{}`: {e}", path.display()))?;
    let mut out = Vec::new();
    for raw in names {
        let name = raw.strip_suffix(".npy").unwrap_or(&raw).to_string();
        let t = read_array(&mut npz, &raw)
            .map_err(|e| format!("array `{name}` in `{}`: {e}", path.display()))?;
        out.push((name, t));
    }
    Ok(out)
}

fn read_array<R: std::io::Read + std::io::Seek>(
    npz: &mut NpzReader<R>,
    name: &str,
) -> Result<Tensor, String> {
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<f32>, IxDyn>(name) {
        return Ok(Tensor::F32(a));
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<f64>, IxDyn>(name) {
        return Ok(Tensor::F64(a));
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<i32>, IxDyn>(name) {
        return Ok(Tensor::I32(a));
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<i64>, IxDyn>(name) {
        let mut bad = None;
        let narrowed = a.mapv(|v| {
            i32::try_from(v).unwrap_or_else(|_| {
                bad.get_or_insert(v);
                0
            })
        });
        return match bad {
            Some(v) => Err(format!("the integer {v} does not fit in i32")),
            None => Ok(Tensor::I32(narrowed)),
        };
    }
    if let Ok(a) = npz.by_name::<ndarray::OwnedRepr<bool>, IxDyn>(name) {
        return Ok(Tensor::Bool(a));
    }
    Err("unsupported dtype: use float32, float64, int32, int64 or bool".into())
}

/// A tensor as safetensors stores it: dtype, shape, little-endian bytes.
type Encoded = (Dtype, Vec<usize>, Vec<u8>);

/// Named tensors and a file's string metadata.
pub type TensorFile = (Vec<(String, Tensor)>, HashMap<String, String>);

fn bytes_of(t: &Tensor) -> Encoded {
    let shape = t.ty().shape;
    match t {
        Tensor::F32(a) => (
            Dtype::F32,
            shape,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Tensor::F64(a) => (
            Dtype::F64,
            shape,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Tensor::I32(a) => (
            Dtype::I32,
            shape,
            a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Tensor::Bool(a) => (Dtype::BOOL, shape, a.iter().map(|&x| u8::from(x)).collect()),
    }
}

/// Writes tensors (in the given order) and string metadata to a safetensors file, atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), String> {
    let encoded: Vec<(String, Encoded)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), bytes_of(t)))
        .collect();
    let views = encoded
        .iter()
        .map(|(n, (d, s, b))| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| format!("tensor `{n}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::tensor::serialize(views, metadata)
        .map_err(|e| format!("cannot encode `{}`: {e}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Set in the environment, makes [`write_atomically`] kill the process between writing the
/// temporary file and renaming it: how the tests simulate a crash at the worst moment.
pub const ABORT_BEFORE_RENAME: &str = "NNL_TEST_ABORT_BEFORE_RENAME";

/// Writes `bytes` to `path` so that `path` is always either the old file or the whole new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("`{}` is not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if std::env::var_os(ABORT_BEFORE_RENAME).is_some() {
            std::process::abort();
        }
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write `{}`: {e}", path.display())
    })
}

/// Every tensor of a safetensors file, sorted by name, and its metadata. F16 and BF16 are
/// widened to f32, I64 narrowed to i32 (an error when a value does not fit).
pub fn read_safetensors(path: &Path) -> Result<TensorFile, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = Vec::new();
    for name in st.names() {
        let view = st
            .tensor(name)
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        let shape = IxDyn(view.shape());
        let data = view.data();
        let t = match view.dtype() {
            Dtype::F32 => Tensor::F32(from_le(shape, data, f32::from_le_bytes)?),
            Dtype::F64 => Tensor::F64(from_le(shape, data, f64::from_le_bytes)?),
            // Half precision widens to f32 exactly.
            Dtype::F16 => Tensor::F32(from_le(shape, data, |b| f16_to_f32(u16::from_le_bytes(b)))?),
            Dtype::BF16 => Tensor::F32(from_le(shape, data, |b| {
                f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
            })?),
            // PyTorch's counters (`num_batches_tracked`) are int64.
            Dtype::I64 => {
                let wide = from_le(shape, data, i64::from_le_bytes)?;
                if let Some(v) = wide.iter().find(|v| i32::try_from(**v).is_err()) {
                    return Err(format!(
                        "tensor `{name}`: the integer {v} does not fit in i32"
                    ));
                }
                Tensor::I32(wide.mapv(|v| v as i32))
            }
            Dtype::I32 => Tensor::I32(from_le(shape, data, i32::from_le_bytes)?),
            Dtype::BOOL => Tensor::Bool(
                ArrayD::from_shape_vec(shape, data.iter().map(|&b| b != 0).collect())
                    .map_err(|e| e.to_string())?,
            ),
            other => return Err(format!("tensor `{name}` has unsupported dtype {other:?}")),
        };
        out.push((name.to_string(), t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, metadata))
}

/// An IEEE half-precision number, exactly, as f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h >> 15 == 1 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn from_le<T, const N: usize>(
    shape: IxDyn,
    data: &[u8],
    f: fn([u8; N]) -> T,
) -> Result<ArrayD<T>, String> {
    let values = data
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks are N bytes")))
        .collect();
    ArrayD::from_shape_vec(shape, values).map_err(|e| e.to_string())
}
