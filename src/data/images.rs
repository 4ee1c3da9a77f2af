//! The `images(dir, size: [H, W], channels: C, skip_bad: false)` source: a folder with one
//! subfolder per class, read as TorchVision's `ImageFolder` reads it.
//!
//! The classes are the subfolders' names, sorted by their bytes; a class's index is its place
//! in that order. The samples are the PNG and JPEG files (by extension, any case: `.png`,
//! `.jpg`, `.jpeg`) found in each class folder and its own subfolders, class after class, each
//! class's files sorted by their path; other files and files directly in `dir` are ignored.
//! Subfolders and files whose real path (symbolic links followed) leaves `dir` are refused, as
//! paths written in the `.nnl` file are. Every file is decoded once, in parallel, into `C × H ×
//! W` bytes:
//!
//! - channels: 1 is grey, a grey image's own values, a colour image's luma as PIL computes it
//!   (`(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`); 3 is RGB, a grey image repeated. Alpha is
//!   dropped, 16-bit values are scaled to 8 bits.
//! - an image of another size is resized to `H × W` with the bilinear (triangle) filter of the
//!   `image` crate, which widens with the scale when shrinking (antialiased, like TorchVision's
//!   `Resize`); an image of the right size is kept as it is.
//!
//! A file that does not decode is an error naming it; with `skip_bad: true` it is left out and
//! counted ([`Folder::skipped`]).

use super::DataError;
use image::imageops::FilterType;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The most values (`C·H·W`) one image may become, so that a typo in `size` cannot exhaust
/// memory.
pub const MAX_VALUES: usize = 1 << 24;

/// The extensions of the files read, in lower case.
const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// A class folder's decoded images.
#[derive(Debug, Clone)]
pub(super) struct Folder {
    /// The class names, in class order.
    pub classes: Vec<String>,
    /// `C·H·W` bytes per sample, channel-major.
    pub pixels: Vec<u8>,
    pub labels: Vec<i32>,
    /// Each sample's file, as shown in messages.
    pub files: Vec<String>,
    /// The files left out with `skip_bad: true`, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// How an `images` source reads its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub skip_bad: bool,
}

/// Called as files are decoded: the folder, how many are done, how many there are.
pub type Progress<'a> = &'a (dyn Fn(&str, usize, usize) + Sync);

/// Reads the class folders of `dir` (shown as `shown` in messages).
pub(super) fn read(
    dir: &Path,
    shown: &str,
    layout: Layout,
    progress: Progress<'_>,
) -> Result<Folder, DataError> {
    let err = |m: String| DataError::in_file(shown, m);
    let root = dir
        .canonicalize()
        .map_err(|e| err(format!("cannot read the folder: {e}")))?;
    if !root.is_dir() {
        return Err(err(
            "not a folder: `images` reads a folder with one subfolder per class".into(),
        ));
    }
    let mut classes: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries(&root, shown)? {
        if inside(&entry, &root, shown)?.is_some_and(|real| real.is_dir()) {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            classes.push((name, entry));
        }
    }
    classes.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if classes.is_empty() {
        return Err(err(
            "holds no class folder: put each class's images in a subfolder named after it (`cat/1.png`, `dog/2.png`)".into(),
        ));
    }
    let mut files: Vec<(PathBuf, i32)> = Vec::new();
    for (class, (name, path)) in classes.iter().enumerate() {
        let mut found = Vec::new();
        walk(path, &root, shown, &mut found)?;
        if found.is_empty() {
            return Err(DataError::in_file(
                &show(shown, &root, path),
                format!(
                    "the class folder `{name}` holds no image (.png, .jpg or .jpeg file): remove it or add its images"
                ),
            ));
        }
        found.sort();
        files.extend(found.into_iter().map(|f| (f, class as i32)));
    }
    let total = files.len();
    let per = layout.channels * layout.height * layout.width;
    let needed = total as u128 * per as u128;
    if let Some(available) = crate::fs::available_memory()
        && needed > available / 2
    {
        return Err(err(format!(
            "its {total} images of {per} bytes need {} MiB, and only {} MiB of memory is available: read them smaller (`size`)",
            needed >> 20,
            available >> 20
        )));
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let decoded: Vec<(String, Result<Vec<u8>, String>)> = files
        .par_iter()
        .map(|(path, _)| {
            let name = show(shown, &root, path);
            let pixels = decode(path, layout);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(shown, n, total);
            (name, pixels)
        })
        .collect();
    let mut folder = Folder {
        classes: classes.into_iter().map(|(n, _)| n).collect(),
        pixels: Vec::with_capacity(total * per),
        labels: Vec::with_capacity(total),
        files: Vec::with_capacity(total),
        skipped: Vec::new(),
    };
    for ((name, pixels), (_, label)) in decoded.into_iter().zip(&files) {
        match pixels {
            Ok(p) => {
                folder.pixels.extend_from_slice(&p);
                folder.labels.push(*label);
                folder.files.push(name);
            }
            Err(why) if layout.skip_bad => folder.skipped.push((name, why)),
            Err(why) => {
                return Err(DataError::in_file(
                    &name,
                    format!(
                        "{why} (to leave out the files that do not decode, write `skip_bad: true`)"
                    ),
                ));
            }
        }
    }
    if folder.labels.is_empty() {
        return Err(err(format!(
            "none of its {total} images decodes (the first: {}: {})",
            folder.skipped[0].0, folder.skipped[0].1
        )));
    }
    Ok(folder)
}

/// A file's path for messages: the folder as written, then the path inside it.
fn show(shown: &str, root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => Path::new(shown).join(rel).display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The paths of a folder's entries.
fn entries(dir: &Path, shown: &str) -> Result<Vec<PathBuf>, DataError> {
    let read = std::fs::read_dir(dir)
        .map_err(|e| DataError::in_file(shown, format!("cannot read `{}`: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::in_file(shown, e.to_string()))?;
        out.push(entry.path());
    }
    Ok(out)
}

/// Collects the image files under `dir`, which lies inside `root`.
fn walk(dir: &Path, root: &Path, shown: &str, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in entries(dir, shown)? {
        let Some(real) = inside(&path, root, shown)? else {
            continue;
        };
        if real.is_dir() {
            walk(&path, root, shown, out)?;
        } else if path.extension().is_some_and(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            EXTENSIONS.contains(&e.as_str())
        }) {
            out.push(path);
        }
    }
    Ok(())
}

/// The real path of `path` (symbolic links followed), None for a dangling link; an error when
/// it leads out of `root`.
fn inside(path: &Path, root: &Path, shown: &str) -> Result<Option<PathBuf>, DataError> {
    let Ok(real) = path.canonicalize() else {
        return Ok(None);
    };
    if !real.starts_with(root) {
        return Err(DataError::in_file(
            &show(shown, root, path),
            format!(
                "leads to `{}`, outside the image folder: the files an `images` source reads stay inside its folder",
                real.display()
            ),
        ));
    }
    Ok(Some(real))
}

/// Decodes one file into `C·H·W` bytes.
fn decode(path: &Path, layout: Layout) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let reader = image::io::Reader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a PNG or JPEG image".into());
    }
    let img = reader
        .decode()
        .map_err(|e| format!("does not decode as an image: {e}"))?;
    let (w, h) = (layout.width as u32, layout.height as u32);
    let resize = |i: &image::DynamicImage| i.width() != w || i.height() != h;
    Ok(match layout.channels {
        1 => {
            let grey = if img.color().has_color() {
                luma(&img.to_rgb8())
            } else {
                img.to_luma8()
            };
            let grey = if resize(&img) {
                image::imageops::resize(&grey, w, h, FilterType::Triangle)
            } else {
                grey
            };
            grey.into_raw()
        }
        _ => {
            let rgb = img.to_rgb8();
            let rgb = if resize(&img) {
                image::imageops::resize(&rgb, w, h, FilterType::Triangle)
            } else {
                rgb
            };
            // Interleaved RGB to channel-major planes.
            let raw = rgb.into_raw();
            let plane = raw.len() / 3;
            let mut out = vec![0; raw.len()];
            for (p, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * plane + p] = px[c];
                }
            }
            out
        }
    })
}

/// PIL's luma of an RGB image (ITU-R 601-2 weights in 16-bit fixed point).
fn luma(rgb: &image::RgbImage) -> image::GrayImage {
    let (w, h) = rgb.dimensions();
    let values = rgb
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(u32::from);
            ((19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16) as u8
        })
        .collect();
    image::GrayImage::from_raw(w, h, values).expect("one value per pixel")
}
