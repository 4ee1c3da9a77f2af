//! File formats: gzip-or-not files, CSV text (with the line and column of every cell), IDX and
//! NumPy `.npy` arrays.

use super::DataError;
use super::source::Values;
use std::collections::BTreeMap;
use std::path::Path;

/// A file's bytes, decompressed when they start with the gzip magic `1f 8b`.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let shown = path.display().to_string();
    let bytes = crate::store::read_bytes(path).map_err(|e| DataError::in_file(&shown, e))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    gunzip(&bytes).map_err(|e| DataError::in_file(&shown, e))
}

/// A gzip stream's contents. The size it declares (its trailer's last four bytes: the size mod
/// 2³², exact up to 4 GiB) bounds the output, so a stream that inflates beyond it is refused
/// before it can take the machine's memory; several members joined (`cat a.gz b.gz`) declare
/// only the last one's size and are refused the same way.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < 18 {
        return Err("corrupt gzip data: shorter than a gzip header and trailer".into());
    }
    let tail: [u8; 4] = bytes[bytes.len() - 4..].try_into().expect("4 bytes");
    let declared = u64::from(u32::from_le_bytes(tail));
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    let out = crate::store::read_limited(decoder, declared, "the decompressed data").map_err(
        |e| match e {
            crate::store::Limited::TooLong => format!(
                "the gzip data inflate beyond the {declared} bytes their trailer declares (several gzip files joined into one are not read: decompress it first)"
            ),
            crate::store::Limited::Failed(m) => format!("corrupt gzip data: {m}"),
        },
    )?;
    if out.len() as u64 != declared {
        return Err(format!(
            "the gzip data inflate to {} bytes, but their trailer declares {declared} (several gzip files joined into one are not read: decompress it first)",
            out.len()
        ));
    }
    Ok(out)
}

/// Where each cell of a CSV file was, and the text of the cells that are not numbers.
#[derive(Debug, Clone, Default)]
pub(super) struct CellMap {
    pub width: usize,
    /// Line and column (1-based; columns count characters) of cell `row * width + col`.
    pub places: Vec<(u32, u32)>,
    /// The text of every cell that is missing or not a number, by (row, column).
    pub texts: BTreeMap<(usize, usize), String>,
}

impl CellMap {
    pub fn place(&self, row: usize, col: usize) -> (usize, usize) {
        let (l, c) = self.places[row * self.width + col];
        (l as usize, c as usize)
    }
}

/// A parsed CSV file: one vector of values per column (NaN where a cell is missing or not a
/// number; its text is in `cells.texts`).
pub(super) struct Table {
    pub rows: usize,
    pub header: Option<Vec<String>>,
    pub columns: Vec<Vec<f64>>,
    pub cells: CellMap,
}

/// Whether a cell's text stands for a missing value: empty (or blank), `NA` or `nan` (any case).
pub(super) fn is_missing(text: &str) -> bool {
    let t = text.trim();
    t.is_empty() || t.eq_ignore_ascii_case("na") || t.eq_ignore_ascii_case("nan")
}

fn to_u32(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    col: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) {
        let c = self.bytes[self.pos];
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            // Not a UTF-8 continuation byte: a new character.
            self.col += 1;
        }
    }

    /// Skips the rest of the line and its line break.
    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.bump();
            if c == b'\n' {
                break;
            }
        }
    }

    fn line_is_blank(&self) -> bool {
        self.bytes[self.pos..]
            .iter()
            .take_while(|&&c| c != b'\n')
            .all(|c| matches!(c, b' ' | b'\t' | b'\r'))
    }
}

struct Cell {
    text: String,
    line: usize,
    col: usize,
}

/// One record: its cells, and where its line ends.
fn record(
    s: &mut Scanner,
    file: &str,
    delimiter: u8,
) -> Result<(Vec<Cell>, (usize, usize)), DataError> {
    let mut cells = Vec::new();
    loop {
        let (line, col) = (s.line, s.col);
        let mut text = Vec::new();
        if s.peek() == Some(b'"') {
            s.bump();
            loop {
                match s.peek() {
                    None => {
                        return Err(DataError::at(
                            file,
                            line,
                            col,
                            "this quoted cell is never closed (no matching `\"`)",
                        ));
                    }
                    Some(b'"') => {
                        s.bump();
                        if s.peek() != Some(b'"') {
                            break;
                        }
                        text.push(b'"');
                        s.bump();
                    }
                    Some(c) => {
                        text.push(c);
                        s.bump();
                    }
                }
            }
            while matches!(s.peek(), Some(b' ' | b'\t' | b'\r')) && s.peek() != Some(delimiter) {
                s.bump();
            }
            if !matches!(s.peek(), None | Some(b'\n')) && s.peek() != Some(delimiter) {
                return Err(DataError::at(
                    file,
                    s.line,
                    s.col,
                    format!(
                        "unexpected text after a quoted cell: expected `{}` or the end of the line",
                        char::from(delimiter).escape_default()
                    ),
                ));
            }
        } else {
            while let Some(c) = s.peek() {
                if c == delimiter || c == b'\n' {
                    break;
                }
                text.push(c);
                s.bump();
            }
            if text.last() == Some(&b'\r') && s.peek() != Some(delimiter) {
                text.pop();
            }
        }
        cells.push(Cell {
            text: String::from_utf8_lossy(&text).into_owned(),
            line,
            col,
        });
        match s.peek() {
            Some(c) if c == delimiter => s.bump(),
            _ => {
                let end = (s.line, s.col);
                if s.peek().is_some() {
                    s.bump();
                }
                return Ok((cells, end));
            }
        }
    }
}

/// The UTF-8 byte-order mark.
pub(super) const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Parses CSV text: `skip` lines are dropped first, then (with `header`) the first record names
/// the columns. Blank lines are ignored; cells may be quoted (`"a, b"`, `""` for a quote);
/// every row must have as many cells as the first.
pub(super) fn parse_csv(
    file: &str,
    bytes: &[u8],
    header: bool,
    delimiter: u8,
    skip: usize,
) -> Result<Table, DataError> {
    // A byte-order mark (Windows tools write one) is not part of the first cell.
    let start = if bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    let mut s = Scanner {
        bytes,
        pos: start,
        line: 1,
        col: 1,
    };
    for _ in 0..skip {
        s.skip_line();
    }
    let mut table = Table {
        rows: 0,
        header: None,
        columns: Vec::new(),
        cells: CellMap::default(),
    };
    // The number of cells per row, and the line that set it.
    let mut width: Option<(usize, usize)> = None;
    while s.peek().is_some() {
        if s.line_is_blank() {
            s.skip_line();
            continue;
        }
        let (cells, end) = record(&mut s, file, delimiter)?;
        let (w, first) = *width.get_or_insert((cells.len(), cells[0].line));
        if cells.len() != w {
            let (line, col) = match cells.get(w) {
                Some(extra) => (extra.line, extra.col),
                None => end,
            };
            return Err(DataError::at(
                file,
                line,
                col,
                format!(
                    "this row has {} cells, but line {first} has {w}",
                    cells.len()
                ),
            ));
        }
        if header && table.header.is_none() {
            table.header = Some(
                cells
                    .into_iter()
                    .map(|c| c.text.trim().to_string())
                    .collect(),
            );
            continue;
        }
        if table.columns.is_empty() {
            table.columns = vec![Vec::new(); w];
            table.cells.width = w;
        }
        let row = table.rows;
        for (c, cell) in cells.into_iter().enumerate() {
            let value = if is_missing(&cell.text) {
                None
            } else {
                cell.text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
            };
            table.columns[c].push(value.unwrap_or(f64::NAN));
            table
                .cells
                .places
                .push((to_u32(cell.line), to_u32(cell.col)));
            if value.is_none() {
                table.cells.texts.insert((row, c), cell.text);
            }
        }
        table.rows += 1;
    }
    if header && table.header.is_none() {
        return Err(DataError::at(
            file,
            s.line,
            1,
            "`header: true`, but there is no header line",
        ));
    }
    if table.columns.is_empty() {
        table.columns = vec![Vec::new(); table.header.as_ref().map_or(0, Vec::len)];
        table.cells.width = table.columns.len();
    }
    Ok(table)
}

/// An IDX file (MNIST's format): per-sample shape after the first dimension, and the values.
pub(super) fn parse_idx(file: &str, b: &[u8]) -> Result<(Vec<usize>, Values), DataError> {
    let err = |m: String| DataError::in_file(file, m);
    if b.len() < 4 {
        return Err(err(format!(
            "truncated: {} bytes, shorter than the 4-byte IDX magic number",
            b.len()
        )));
    }
    if b[0] != 0 || b[1] != 0 {
        return Err(err(format!(
            "not an IDX file: it starts with {:02x} {:02x}, not 00 00",
            b[0], b[1]
        )));
    }
    let (size, kind) = match b[2] {
        0x08 => (1, "u8"),
        0x09 => (1, "i8"),
        0x0B => (2, "i16"),
        0x0C => (4, "i32"),
        0x0D => (4, "f32"),
        0x0E => (8, "f64"),
        t => {
            return Err(err(format!(
                "not an IDX file: unknown element type {t:#04x} in the magic number"
            )));
        }
    };
    let ndim = usize::from(b[3]);
    if ndim == 0 {
        return Err(err("the IDX header declares no dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if b.len() < header {
        return Err(err(format!(
            "truncated: the header of {ndim} dimensions needs {header} bytes, the file has {}",
            b.len()
        )));
    }
    let dims: Vec<usize> = b[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shown: Vec<String> = dims.iter().map(usize::to_string).collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| {
            err(format!(
                "the IDX header's size {} is too large",
                shown.join("×")
            ))
        })?;
    let data = &b[header..];
    if data.len() < count {
        return Err(err(format!(
            "truncated: the header promises {} {kind} values ({count} bytes after the {header}-byte header), but the file has only {} bytes there",
            shown.join("×"),
            data.len()
        )));
    }
    if data.len() > count {
        return Err(err(format!(
            "{} unexpected bytes after the {} {kind} values the header promises",
            data.len() - count,
            shown.join("×")
        )));
    }
    let values = match b[2] {
        0x08 => Values::U8(data.to_vec()),
        0x09 => Values::I32(data.iter().map(|&x| i32::from(x as i8)).collect()),
        0x0B => Values::I32(
            data.chunks_exact(2)
                .map(|c| i32::from(i16::from_be_bytes([c[0], c[1]])))
                .collect(),
        ),
        0x0C => Values::I32(
            data.chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        0x0D => Values::F32(
            data.chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        _ => Values::F64(
            data.chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
    };
    Ok((dims, values))
}

/// A NumPy `.npy` array of float32, float64, int32, int64 (narrowed to i32), uint8 or bool:
/// its shape and values in row-major order.
pub(super) fn parse_npy(file: &str, b: &[u8]) -> Result<(Vec<usize>, Values), DataError> {
    use crate::store::NpyValues;
    let err = |m: String| DataError::in_file(file, m);
    let a = crate::store::parse_npy(b).map_err(err)?;
    let values = match a.values {
        NpyValues::F32(v) => Values::F32(v),
        NpyValues::F64(v) => Values::F64(v),
        NpyValues::U8(v) => Values::U8(v),
        // int32 values always fit; int64 ones must.
        NpyValues::I64(v) => Values::I32(
            v.iter()
                .map(|&x| i32::try_from(x))
                .collect::<Result<_, _>>()
                .map_err(|_| err("an int64 value does not fit in i32".into()))?,
        ),
    };
    Ok((a.shape, values))
}
