//! `nnlc plot`: learning curves without TensorBoard. One panel per quantity (the loss first,
//! then each metric) against epochs: each run in its own colour, the training split solid and
//! the validation split dashed, the best epoch of each run marked on its curves, a legend.
//! SVG, or PNG when the file name ends in `.png` (the text drawn with a font embedded in the
//! binary, so the picture depends on no system font).
//!
//! A run is read from a `--report` JSON file or from a checkpoint directory (its last
//! checkpoint holds the run's history); `nnlc run` draws `curves.svg` beside its checkpoints.

use crate::runtime::checkpoint::{self, EpochRecord};
use crate::runtime::report::Report;
use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The font every label is drawn with (DejaVu Sans; licence in `assets/fonts/LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const WIDTH: u32 = 960;
const PANEL_HEIGHT: u32 = 320;

/// The runs' colours, in order (colour-blind-safe, Okabe and Ito).
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

/// One run's history.
#[derive(Debug, Clone)]
pub struct Run {
    /// The legend's name for it.
    pub label: String,
    pub history: Vec<EpochRecord>,
    /// The epoch with the best monitored value, and what was monitored (`val.loss`).
    pub best: Option<(usize, String)>,
}

impl Run {
    pub fn of_report(report: &Report, label: &str) -> Run {
        Run {
            label: label.to_string(),
            history: report.epochs.clone(),
            best: report.best.as_ref().map(|b| (b.epoch, b.monitor.clone())),
        }
    }

    /// A run from a `--report` JSON file or a checkpoint directory.
    pub fn load(path: &Path) -> Result<Run, String> {
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string());
        if path.is_dir() {
            let last = path.join(checkpoint::LAST);
            if !last.exists() {
                return Err(format!(
                    "`{}` has no `{}`: give a run's checkpoint directory or its `--report` file",
                    path.display(),
                    checkpoint::LAST
                ));
            }
            let state = checkpoint::load(&last)?.state;
            return Ok(Run {
                label,
                history: state.history,
                best: state.best.map(|b| (b.epoch, String::new())),
            });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
        let history: Vec<EpochRecord> = json
            .get("epochs")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| format!("`{}` has unreadable epochs: {e}", path.display()))?
            .ok_or_else(|| {
                format!(
                    "`{}` is not a report of `nnlc run --report` (no `epochs`)",
                    path.display()
                )
            })?;
        let best = json.get("best").and_then(|b| {
            let epoch = b.get("epoch")?.as_u64()? as usize;
            let monitor = b.get("monitor")?.as_str()?.to_string();
            Some((epoch, monitor))
        });
        Ok(Run {
            label,
            history,
            best,
        })
    }
}

/// Draws the runs' curves into `path`: PNG for a `.png` name, else SVG.
pub fn write(path: &Path, runs: &[Run]) -> Result<(), String> {
    let png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        register_font()?;
        let height = panels(runs).len().max(1) as u32 * PANEL_HEIGHT;
        let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
        draw(&root, runs)?;
        root.present()
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
    } else {
        let svg = svg(runs)?;
        crate::store::write_atomically(path, svg.as_bytes())
    }
}

/// The runs' curves as an SVG document.
pub fn svg(runs: &[Run]) -> Result<String, String> {
    register_font()?;
    let height = panels(runs).len().max(1) as u32 * PANEL_HEIGHT;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        draw(&root, runs)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn register_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font does not load".to_string())
        })
        .clone()
}

/// The quantities to draw: the losses first, then the metrics, by name.
fn panels(runs: &[Run]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs.iter().flat_map(|r| &r.history) {
        for name in r.train.keys().chain(r.val.keys()) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names.sort_by_key(|n| (!n.starts_with("loss"), n.clone()));
    names
}

/// `(epoch, value)` of one quantity on one split, finite values only.
fn series(run: &Run, name: &str, val: bool) -> Vec<(f64, f64)> {
    run.history
        .iter()
        .filter_map(|r| {
            let m = if val { &r.val } else { &r.train };
            m.get(name)
                .filter(|v| v.is_finite())
                .map(|&v| (r.epoch as f64, v))
        })
        .collect()
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, runs: &[Run]) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("cannot draw the curves: {e}");
    root.fill(&WHITE).map_err(fail)?;
    let names = panels(runs);
    if names.is_empty() {
        return Err("the runs have no epochs to draw".into());
    }
    let areas = root.split_evenly((names.len(), 1));
    for (name, area) in names.iter().zip(&areas) {
        let points: Vec<(f64, f64)> = runs
            .iter()
            .flat_map(|r| {
                series(r, name, false)
                    .into_iter()
                    .chain(series(r, name, true))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let (mut x0, mut x1) = bounds(points.iter().map(|p| p.0));
        if x1 - x0 < 1.0 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        // Room for the best epoch's marker at either end.
        let (x0, x1) = (x0 - 0.02 * (x1 - x0), x1 + 0.02 * (x1 - x0));
        let (y0, y1) = bounds(points.iter().map(|p| p.1));
        let pad = if y1 > y0 {
            0.06 * (y1 - y0)
        } else {
            0.1 * y0.abs().max(1e-3)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(name, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(fail)?;
        let epochs = (x1 - x0).floor() as usize + 1;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_labels(epochs.min(12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FAMILY, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(fail)?;
        for (i, run) in runs.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let line = colour.stroke_width(2);
            let label = |split: &str| {
                if runs.len() == 1 {
                    split.to_string()
                } else {
                    format!("{} {split}", run.label)
                }
            };
            let train = series(run, name, false);
            if !train.is_empty() {
                chart
                    .draw_series(LineSeries::new(train.clone(), line))
                    .map_err(fail)?
                    .label(label("train"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
            }
            let val = series(run, name, true);
            if !val.is_empty() {
                chart
                    .draw_series(DashedLineSeries::new(val.clone(), 7, 4, line))
                    .map_err(fail)?
                    .label(label("val"))
                    .legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (8, 0)], line)
                            + PathElement::new(vec![(13, 0), (21, 0)], line)
                    });
            }
            if let Some((best, _)) = &run.best {
                let on = if val.is_empty() { &train } else { &val };
                if let Some(&(x, y)) = on.iter().find(|p| p.0 == *best as f64) {
                    chart
                        .draw_series(std::iter::once(Circle::new((x, y), 6, colour.filled())))
                        .map_err(fail)?
                        .label(label(&format!("best epoch {best}")))
                        .legend(move |(x, y)| Circle::new((x + 12, y), 5, colour.filled()));
                }
            }
        }
        // The legend goes where the curves end up not being: below curves that end high.
        let ends: Vec<f64> = runs
            .iter()
            .filter_map(|r| series(r, name, false).last().map(|p| p.1))
            .collect();
        let end = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
        let position = if end > (y0 + y1) / 2.0 {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(position)
            .draw()
            .map_err(fail)?;
    }
    Ok(())
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// One picture of a grid of samples: `channels` planes of `height × width` values (1: grey, 3:
/// RGB), and the caption under it.
#[derive(Debug, Clone)]
pub struct Picture {
    pub values: Vec<f64>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub caption: String,
}

/// The side of a picture in a grid, in pixels at least (small images are magnified by a whole
/// factor, nearest neighbour).
const PICTURE_SIDE: usize = 96;
/// The height of a caption's line under a picture.
const CAPTION: usize = 20;
const GAP: usize = 6;

/// Draws `pictures` as a PNG grid (about square, row by row) with their captions. Values are
/// mapped linearly from the smallest to the largest of all pictures onto black to white, so the
/// pictures compare with each other.
pub fn write_grid(path: &Path, pictures: &[Picture]) -> Result<(), String> {
    register_font()?;
    let Some(first) = pictures.first() else {
        return Err("no samples to draw".into());
    };
    let zoom = PICTURE_SIDE.div_ceil(first.height.max(first.width)).max(1);
    let (ph, pw) = (first.height * zoom, first.width * zoom);
    let columns = (pictures.len() as f64).sqrt().ceil() as usize;
    let rows = pictures.len().div_ceil(columns);
    let cell_w = pw.max(PICTURE_SIDE) + GAP;
    let cell_h = ph + CAPTION + GAP;
    let (width, height) = (columns * cell_w + GAP, rows * cell_h + GAP);
    if width * height > 1 << 28 {
        return Err(format!(
            "a grid of {} pictures of {}×{} would be {width}×{height} pixels: show fewer",
            pictures.len(),
            first.height,
            first.width
        ));
    }
    let (lo, hi) = pictures
        .iter()
        .flat_map(|p| &p.values)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = if hi > lo { hi - lo } else { 1.0 };
    let byte = |v: f64| {
        if v.is_finite() {
            ((v - lo) / range * 255.0).round().clamp(0.0, 255.0) as u8
        } else {
            0
        }
    };
    let mut buf = vec![255u8; width * height * 3];
    for (k, p) in pictures.iter().enumerate() {
        let (x0, y0) = (GAP + (k % columns) * cell_w, GAP + (k / columns) * cell_h);
        let plane = p.height * p.width;
        for y in 0..ph.min(p.height * zoom) {
            for x in 0..pw.min(p.width * zoom) {
                let at = (y / zoom) * p.width + x / zoom;
                let rgb = if p.channels == 3 {
                    [0, 1, 2].map(|c| byte(p.values[c * plane + at]))
                } else {
                    [byte(p.values[at]); 3]
                };
                let o = ((y0 + y) * width + x0 + x) * 3;
                buf[o..o + 3].copy_from_slice(&rgb);
            }
        }
    }
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (width as u32, height as u32)).into_drawing_area();
        let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
        for (k, p) in pictures.iter().enumerate() {
            let (x0, y0) = (GAP + (k % columns) * cell_w, GAP + (k / columns) * cell_h);
            root.draw(&Text::new(
                p.caption.clone(),
                (x0 as i32, (y0 + ph + 3) as i32),
                style.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buf, width as u32, height as u32, image::ColorType::Rgb8)
        .map_err(|e| format!("cannot encode the picture: {e}"))?;
    crate::store::write_atomically(path, &png)
}

/// The first `n` training samples of `epoch` as the model sees them (shuffled and augmented),
/// as pictures of `field` (default: the first field with at least two axes) captioned with
/// their labels: the class name of each field that has class names, else the value of each
/// field of one whole number per sample.
pub fn training_pictures(
    data: &crate::data::Dataset,
    n: usize,
    epoch: u64,
    field: Option<&str>,
) -> Result<Vec<Picture>, String> {
    let fields = data.fields();
    let image = match field {
        Some(name) => fields
            .iter()
            .find(|(f, _)| f == name)
            .ok_or_else(|| format!("the data has no field `{name}`"))?,
        None => fields.iter().find(|(_, t)| t.shape.len() >= 2).ok_or(
            "no field holds images (a field with at least two axes): name one with --field",
        )?,
    };
    let shape = &image.1.shape;
    if shape.len() < 2 {
        return Err(format!(
            "field `{}` is {shape:?} per sample: a picture needs height and width",
            image.0
        ));
    }
    let (height, width) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let channels = match shape.len() {
        2 => 1,
        _ if shape[shape.len() - 3] == 3 => 3,
        _ => 1,
    };
    let labels = data.pipeline().labels();
    let captions: Vec<&(String, crate::ir::TensorType)> = fields
        .iter()
        .filter(|(f, t)| {
            f != &image.0
                && (labels.iter().any(|(l, _)| l == f)
                    || (t.shape.is_empty() && !t.dtype.is_float()))
        })
        .collect();
    let batch = data
        .batches("train", n, epoch)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the training split is empty")?;
    let values = batch.tensors[&image.0].to_f64();
    let per: usize = shape.iter().product();
    let caption_values: Vec<Vec<f64>> = captions
        .iter()
        .map(|(f, _)| batch.tensors[f].to_f64())
        .collect();
    Ok(values
        .chunks(per.max(1))
        .enumerate()
        .map(|(i, v)| {
            let caption: Vec<String> = captions
                .iter()
                .zip(&caption_values)
                .map(|((f, _), vals)| {
                    let v = vals[i];
                    let names = labels.iter().find(|(l, _)| l == f).map(|(_, n)| n);
                    match names.and_then(|n| n.get(v as usize)) {
                        Some(name) => name.clone(),
                        None => format!("{v}"),
                    }
                })
                .collect();
            Picture {
                // The first plane of images whose channels are not colours.
                values: v[..channels * height * width].to_vec(),
                channels,
                height,
                width,
                caption: caption.join(" "),
            }
        })
        .collect())
}
