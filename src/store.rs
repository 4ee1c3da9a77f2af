//! Tensor files: NumPy `.npy`/`.npz` arrays in, safetensors out (and back in). Layouts are plain:
//! row-major, little-endian, the IR's dtypes (f32, f64, i32, bool). Files are written atomically
//! (a temporary file in the same directory, fsync, rename) so a crash never leaves half a file.
//!
//! Reading never trusts a header: sizes are computed with checked arithmetic and compared with
//! the bytes the file really has before anything is allocated for them; memory is reserved
//! fallibly, so a file too large for the machine is an error, not an abort; a device or FIFO
//! (which has no size) is read up to [`MAX_STREAM_BYTES`].

use crate::tensor::Tensor;
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

/// The most bytes read from a file that is not a regular file (a device such as `/dev/zero`, a
/// FIFO): such files have no size to check, so they are cut off here.
pub const MAX_STREAM_BYTES: u64 = 256 << 20;

/// A `Vec` with room for `n` elements, or an error when the memory cannot be had.
pub fn vec_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        format!(
            "{what} needs {} bytes of memory, more than this machine can give",
            n.saturating_mul(std::mem::size_of::<T>())
        )
    })?;
    Ok(v)
}

/// A whole file's bytes: a regular file by its size, anything else (a device, a FIFO) up to
/// [`MAX_STREAM_BYTES`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if meta.is_dir() {
        return Err(format!("cannot read `{shown}`: it is a directory"));
    }
    let (limit, regular) = if meta.is_file() {
        (meta.len(), true)
    } else {
        (MAX_STREAM_BYTES, false)
    };
    read_limited(file, limit, &format!("`{shown}`")).map_err(|e| match e {
        Limited::TooLong if regular => format!("`{shown}` grew while it was being read"),
        Limited::TooLong => format!(
            "`{shown}` is not a regular file and gives more than {} MiB; save the data to a file",
            MAX_STREAM_BYTES >> 20
        ),
        Limited::Failed(m) => m,
    })
}

/// Why [`read_limited`] stopped.
pub enum Limited {
    /// The reader had more than the limit.
    TooLong,
    Failed(String),
}

/// Everything `reader` gives, at most `limit` bytes (more is [`Limited::TooLong`]), in memory
/// reserved fallibly as it arrives.
pub fn read_limited(mut reader: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, Limited> {
    const CHUNK: usize = 1 << 16;
    let first = usize::try_from(limit.min(CHUNK as u64 * 16)).unwrap_or(CHUNK);
    let mut buf = vec_with_capacity::<u8>(first, what).map_err(Limited::Failed)?;
    loop {
        if buf.len() as u64 > limit {
            return Err(Limited::TooLong);
        }
        if buf.capacity() - buf.len() < CHUNK {
            let grow = buf.capacity().max(CHUNK);
            buf.try_reserve(grow).map_err(|_| {
                Limited::Failed(format!(
                    "{what} needs more than {} bytes of memory, more than this machine can give",
                    buf.len()
                ))
            })?;
        }
        let len = buf.len();
        let room = (buf.capacity() - len).min(CHUNK);
        buf.resize(len + room, 0);
        match reader.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                // The last doubling may have reserved as much again as was read.
                buf.shrink_to_fit();
                return Ok(buf);
            }
            Ok(n) => buf.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(len),
            Err(e) => return Err(Limited::Failed(format!("cannot read {what}: {e}"))),
        }
    }
}

/// The element types of `.npy` arrays that nnl reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl NpyDtype {
    fn size(self) -> usize {
        match self {
            NpyDtype::F64 | NpyDtype::I64 => 8,
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::U8 | NpyDtype::Bool => 1,
        }
    }
}

/// An array of a `.npy` file: its dtype, shape, and values in row-major order (int32 widened
/// to i64, bool as bytes 0 and 1).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub dtype: NpyDtype,
    pub shape: Vec<usize>,
    pub values: NpyValues,
}

/// The values of an [`NpyArray`], in the type the file stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyValues {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

/// Parses a `.npy` file (format versions 1 to 3): float32, float64, int32, int64, uint8 or bool,
/// either byte order, C or Fortran order. The header's shape is checked against the bytes that
/// follow it before anything is allocated.
pub fn parse_npy(b: &[u8]) -> Result<NpyArray, String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if !b.starts_with(MAGIC) || b.len() < 10 {
        return Err("not a .npy file (it does not start with `\\x93NUMPY`)".into());
    }
    let (header_len, header_start) = match b[6] {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10usize),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(format!("unknown .npy format version {v}")),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= b.len())
        .ok_or_else(|| {
            format!(
                "truncated: the header says it is {header_len} bytes long, the file has {}",
                b.len().saturating_sub(header_start)
            )
        })?;
    let header = std::str::from_utf8(&b[header_start..data_start])
        .map_err(|_| "the .npy header is not text".to_string())?;
    let (descr, fortran, shape) = npy_header(header)?;
    let (dtype, big_endian) = npy_dtype(&descr)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(dtype.size()).is_some())
        .ok_or_else(|| format!("the header's shape {shape:?} has more elements than can exist"))?;
    let data = &b[data_start..];
    let want = count * dtype.size();
    if data.len() != want {
        let what = if data.len() < want {
            "truncated"
        } else {
            "extra bytes"
        };
        return Err(format!(
            "{what}: the header declares shape {shape:?} of {descr}, {want} bytes, but {} follow it",
            data.len()
        ));
    }
    let what = "this array";
    fn decode<T, const N: usize>(
        data: &[u8],
        count: usize,
        what: &str,
        f: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, String> {
        let mut v = vec_with_capacity(count, what)?;
        v.extend(
            data.chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks are N bytes"))),
        );
        Ok(v)
    }
    let values = match (dtype, big_endian) {
        (NpyDtype::F32, false) => NpyValues::F32(decode(data, count, what, f32::from_le_bytes)?),
        (NpyDtype::F32, true) => NpyValues::F32(decode(data, count, what, f32::from_be_bytes)?),
        (NpyDtype::F64, false) => NpyValues::F64(decode(data, count, what, f64::from_le_bytes)?),
        (NpyDtype::F64, true) => NpyValues::F64(decode(data, count, what, f64::from_be_bytes)?),
        (NpyDtype::I32, false) => NpyValues::I64(decode(data, count, what, |c| {
            i64::from(i32::from_le_bytes(c))
        })?),
        (NpyDtype::I32, true) => NpyValues::I64(decode(data, count, what, |c| {
            i64::from(i32::from_be_bytes(c))
        })?),
        (NpyDtype::I64, false) => NpyValues::I64(decode(data, count, what, i64::from_le_bytes)?),
        (NpyDtype::I64, true) => NpyValues::I64(decode(data, count, what, i64::from_be_bytes)?),
        (NpyDtype::U8, _) => NpyValues::U8(decode(data, count, what, |[c]: [u8; 1]| c)?),
        (NpyDtype::Bool, _) => {
            NpyValues::U8(decode(data, count, what, |[c]: [u8; 1]| u8::from(c != 0))?)
        }
    };
    let values = if fortran && shape.len() > 1 {
        to_c_order(values, &shape)
    } else {
        values
    };
    Ok(NpyArray {
        dtype,
        shape,
        values,
    })
}

/// Values stored in Fortran (column-major) order, reordered row-major.
fn to_c_order(values: NpyValues, shape: &[usize]) -> NpyValues {
    fn reorder<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
        let a = ArrayD::from_shape_vec(IxDyn(shape).f(), v).expect("the length is the shape's");
        a.as_standard_layout().iter().cloned().collect()
    }
    match values {
        NpyValues::F32(v) => NpyValues::F32(reorder(v, shape)),
        NpyValues::F64(v) => NpyValues::F64(reorder(v, shape)),
        NpyValues::I64(v) => NpyValues::I64(reorder(v, shape)),
        NpyValues::U8(v) => NpyValues::U8(reorder(v, shape)),
    }
}

/// `'<f4'` → (float32, little-endian).
fn npy_dtype(descr: &str) -> Result<(NpyDtype, bool), String> {
    let (order, code) = descr.split_at(descr.len().min(1));
    let big = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return Err(format!("unsupported dtype `{descr}`")),
    };
    let dtype = match code {
        "f4" => NpyDtype::F32,
        "f8" => NpyDtype::F64,
        "i4" => NpyDtype::I32,
        "i8" => NpyDtype::I64,
        "u1" => NpyDtype::U8,
        "b1" => NpyDtype::Bool,
        _ => {
            return Err(format!(
                "unsupported dtype `{descr}`: use float32, float64, int32, int64, uint8 or bool"
            ));
        }
    };
    Ok((dtype, big))
}

/// The `descr`, `fortran_order` and `shape` of a `.npy` header, a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (10, 4), }`.
fn npy_header(h: &str) -> Result<(String, bool, Vec<usize>), String> {
    let bad = || format!("unreadable .npy header `{}`", h.trim());
    let value_of = |key: &str| -> Option<&str> {
        let at = h
            .find(&format!("'{key}'"))
            .or_else(|| h.find(&format!("\"{key}\"")))?;
        let rest = h[at + key.len() + 2..].trim_start().strip_prefix(':')?;
        Some(rest.trim_start())
    };
    let descr = value_of("descr").ok_or_else(bad)?;
    let quote = descr
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or_else(|| {
            "unsupported dtype: structured arrays are not read (one plain dtype per array)"
                .to_string()
        })?;
    let descr = descr[1..].split(quote).next().ok_or_else(bad)?.to_string();
    let fortran = value_of("fortran_order")
        .ok_or_else(bad)?
        .starts_with("True");
    let shape = value_of("shape").ok_or_else(bad)?;
    let inside = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(bad)?;
    let shape = inside
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse::<usize>().map_err(|_| bad()))
        .collect::<Result<Vec<usize>, String>>()?;
    Ok((descr, fortran, shape))
}

/// Every array of an `.npz` file (compressed or not), by name, in the file's order. int64 and
/// uint8 arrays become i32 (an int64 value must fit); float16, complex and object arrays are
/// refused. Each member's declared size is checked against the archive before it is read, and
/// one that inflates beyond it is refused.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, String> {
    let shown = path.display();
    let bytes = read_bytes(path)?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..]))
        .map_err(|e| format!("`{shown}` is not an .npz file: {e}"))?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let member = zip
            .by_index(i)
            .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
        let raw = member.name().to_string();
        let name = raw.strip_suffix(".npy").unwrap_or(&raw).to_string();
        let fail = |e: String| format!("array `{name}` in `{shown}`: {e}");
        let declared = member.size();
        // A compressed member may claim any size; it cannot honestly claim more than deflate's
        // best ratio (about 1032:1) allows, nor more than the reading limit.
        let plausible = member.compressed_size().saturating_mul(1032).max(1 << 16);
        if declared > plausible {
            return Err(fail(format!(
                "it claims {declared} bytes from {} compressed ones",
                member.compressed_size()
            )));
        }
        let data = read_limited(member, declared, &format!("array `{name}` in `{shown}`"))
            .map_err(|e| match e {
                Limited::TooLong => fail(format!(
                    "it inflates beyond the {declared} bytes it declares"
                )),
                Limited::Failed(m) => m,
            })?;
        let array = parse_npy(&data).map_err(fail)?;
        let tensor = npy_tensor(array).map_err(fail)?;
        out.push((name, tensor));
    }
    Ok(out)
}

/// An `.npy` array as a tensor of the IR's dtypes.
fn npy_tensor(a: NpyArray) -> Result<Tensor, String> {
    let shape = IxDyn(&a.shape);
    let shaped = |e: ndarray::ShapeError| e.to_string();
    Ok(match a.values {
        NpyValues::F32(v) => Tensor::F32(ArrayD::from_shape_vec(shape, v).map_err(shaped)?),
        NpyValues::F64(v) => Tensor::F64(ArrayD::from_shape_vec(shape, v).map_err(shaped)?),
        NpyValues::I64(v) => {
            let narrowed = v
                .iter()
                .map(|&x| {
                    i32::try_from(x).map_err(|_| format!("the integer {x} does not fit in i32"))
                })
                .collect::<Result<Vec<i32>, String>>()?;
            Tensor::I32(ArrayD::from_shape_vec(shape, narrowed).map_err(shaped)?)
        }
        NpyValues::U8(v) if a.dtype == NpyDtype::Bool => Tensor::Bool(
            ArrayD::from_shape_vec(shape, v.into_iter().map(|x| x != 0).collect())
                .map_err(shaped)?,
        ),
        NpyValues::U8(v) => Tensor::I32(
            ArrayD::from_shape_vec(shape, v.into_iter().map(i32::from).collect())
                .map_err(shaped)?,
        ),
    })
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

/// Whether a file name is one of [`write_atomically`]'s temporary files (`.NAME.tmpPID`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

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
    let bytes = read_bytes(path)?;
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
