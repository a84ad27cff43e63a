//! `plot`: draws fan-out reports (`fanout --json FILE`) as one PNG for `docs/performance.md`:
//! deliveries/s and p99 latency against the subscriber count, one series per report `label`
//! (or `url` in reports that have none), both axes logarithmic. Repeated runs of one
//! (label, subscribers) point are drawn as their median with a min–max bar.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Map, Value};

/// Where Debian's `fonts-dejavu-core` puts its sans-serif face.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Size of the PNG in pixels.
pub const SIZE: (u32, u32) = (1400, 560);

/// The family name the font is registered under and every text style asks for.
const FAMILY: &str = "sans-serif";

#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// PNG file to write (its name must end in .png).
    #[arg(long, value_name = "PATH")]
    pub output: PathBuf,
    /// Caption above the two charts.
    #[arg(long, default_value = "fan-out, 100 B messages")]
    pub title: String,
    /// TrueType/OpenType font for all text (Debian package fonts-dejavu-core).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_FONT)]
    pub font: PathBuf,
    /// Reports written by `fanout --json FILE`; repeated runs of one point are summarised.
    #[arg(value_name = "REPORT", required = true, num_args = 1..)]
    pub reports: Vec<PathBuf>,
}

/// Reads the reports, writes the PNG. Warnings (values left out) go to stderr.
pub fn run(args: &PlotArgs) -> Result<(), String> {
    check_output(&args.output)?;
    let mut warnings = Vec::new();
    let figure = load(&args.reports, &mut warnings);
    for warning in &warnings {
        eprintln!("herald-load plot: warning: {warning}");
    }
    let figure = figure?;
    register_font(&args.font)?;
    draw(&figure, &args.title, &args.output)?;
    println!(
        "wrote {}: {} report(s), {} series, {} point(s)",
        args.output.display(),
        figure.reports,
        figure.labels.len(),
        figure
            .deliveries
            .iter()
            .map(|s| s.points.len())
            .sum::<usize>()
    );
    Ok(())
}

/// The bitmap backend picks the encoder from the file name: anything but `.png` would fail
/// only after all the drawing, with a less clear message.
fn check_output(path: &Path) -> Result<(), String> {
    let png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        Ok(())
    } else {
        Err(format!(
            "--output {}: the file name must end in .png",
            path.display()
        ))
    }
}

fn load(paths: &[PathBuf], warnings: &mut Vec<String>) -> Result<Figure, String> {
    let mut runs = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        runs.extend(parse_file(&text, &path.display().to_string(), warnings)?);
    }
    Figure::from_runs(&runs, warnings)
}

/// Reads a file written by `--json`: one report, or a `--vs` comparison whose `runs` are
/// reports.
pub fn parse_file(
    text: &str,
    source: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<Run>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("{source}: not a JSON report: {e}"))?;
    let Some(Value::Array(reports)) = value.get("runs") else {
        return Ok(parse_report(value, source, warnings)?.into_iter().collect());
    };
    let mut runs = Vec::with_capacity(reports.len());
    for (i, report) in reports.iter().enumerate() {
        let source = format!("{source} (run {})", i + 1);
        if report.get("scenario").is_none() {
            // A run of the comparison that failed before measuring anything.
            warnings.push(format!("{source}: measured nothing; left out"));
            continue;
        }
        runs.extend(parse_report(report.clone(), &source, warnings)?);
    }
    Ok(runs)
}

/// One fan-out report, reduced to what the plot needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The file it came from, for messages.
    pub source: String,
    pub label: String,
    pub subscribers: u64,
    pub deliveries_per_s: f64,
    pub p99_ms: f64,
}

/// Reads one report. `Ok(None)` is a report that cannot be placed on the subscriber axis
/// (nobody subscribed), with a warning.
pub fn parse_report(
    value: Value,
    source: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Run>, String> {
    let Value::Object(report) = value else {
        return Err(format!("{source}: not a JSON object"));
    };
    match report.get("scenario") {
        Some(Value::String(s)) if s == "fanout" => {}
        Some(Value::String(s)) => {
            return Err(format!(
                "{source}: a \"{s}\" report; plot draws \"fanout\" reports only"
            ));
        }
        Some(_) => return Err(format!("{source}: \"scenario\" is not a string")),
        None => {
            return Err(format!(
                "{source}: no \"scenario\" key: not a herald-load report"
            ));
        }
    }
    let label = match (text_field(&report, "label"), text_field(&report, "url")) {
        (Some(label), _) => label,
        (None, Some(url)) => url,
        (None, None) => {
            return Err(format!(
                "{source}: neither \"label\" nor \"url\" to name the series"
            ));
        }
    };
    let subscribers = match report.get("subscribers_subscribed") {
        Some(v) => v.as_u64().ok_or_else(|| {
            format!("{source}: \"subscribers_subscribed\" is not a whole number: {v}")
        })?,
        None => return Err(format!("{source}: missing key \"subscribers_subscribed\"")),
    };
    let deliveries_per_s = number(&report, "deliveries_per_s", source)?;
    let p99_ms = number(&report, "latency_p99_ms", source)?;
    if subscribers == 0 {
        warnings.push(format!(
            "{source}: no subscriber subscribed; left out (0 has no place on a log axis)"
        ));
        return Ok(None);
    }
    if let Some(requested) = report.get("subscribers_requested").and_then(Value::as_u64) {
        if requested > subscribers {
            warnings.push(format!(
                "{source}: only {subscribers} of {requested} subscribers subscribed; \
                 plotted at {subscribers}"
            ));
        }
    }
    Ok(Some(Run {
        source: source.to_owned(),
        label,
        subscribers,
        deliveries_per_s,
        p99_ms,
    }))
}

fn text_field(report: &Map<String, Value>, key: &str) -> Option<String> {
    match report.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn number(report: &Map<String, Value>, key: &str, source: &str) -> Result<f64, String> {
    match report.get(key) {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("{source}: \"{key}\" is not a number: {v}")),
        None => Err(format!("{source}: missing key \"{key}\"")),
    }
}

/// One (label, subscribers) point of one chart: the median of its runs and their spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub subscribers: u64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

/// One label's points on one chart, by ascending subscriber count. `index` is the label's
/// place among all labels: it picks the colour and marker, the same on both charts.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub index: usize,
    pub points: Vec<Point>,
}

/// The median: the middle value, or the mean of the two middle ones. `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The labels in the order they first appear: the order of the series in the legend.
pub fn labels(runs: &[Run]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for run in runs {
        if !labels.contains(&run.label) {
            labels.push(run.label.clone());
        }
    }
    labels
}

/// Groups one figure of the runs (`value`, named `key` in the reports) by label and
/// subscriber count. Values a log axis cannot show (zero, negative, not finite) are left out
/// with a warning; a label left with no point at all is dropped from this chart.
pub fn group(
    runs: &[Run],
    key: &str,
    value: impl Fn(&Run) -> f64,
    warnings: &mut Vec<String>,
) -> Vec<Series> {
    let labels = labels(runs);
    let mut grouped: Vec<BTreeMap<u64, Vec<f64>>> = vec![BTreeMap::new(); labels.len()];
    for run in runs {
        let v = value(run);
        if !(v.is_finite() && v > 0.0) {
            warnings.push(format!(
                "{}: \"{key}\" is {v}; left out (a log axis shows positive values only)",
                run.source
            ));
            continue;
        }
        let index = labels.iter().position(|l| *l == run.label).unwrap_or(0);
        grouped[index].entry(run.subscribers).or_default().push(v);
    }
    let mut series = Vec::new();
    for (index, (label, points)) in labels.into_iter().zip(grouped).enumerate() {
        if points.is_empty() {
            warnings.push(format!("\"{label}\": no \"{key}\" left to plot"));
            continue;
        }
        let points = points
            .into_iter()
            .filter_map(|(subscribers, values)| {
                Some(Point {
                    subscribers,
                    median: median(&values)?,
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    runs: values.len(),
                })
            })
            .collect();
        series.push(Series {
            label,
            index,
            points,
        });
    }
    series
}

/// Everything the PNG shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub reports: usize,
    pub labels: Vec<String>,
    pub deliveries: Vec<Series>,
    pub p99: Vec<Series>,
}

impl Figure {
    pub fn from_runs(runs: &[Run], warnings: &mut Vec<String>) -> Result<Figure, String> {
        if runs.is_empty() {
            return Err("nothing to plot: no report has a subscriber count above 0".to_owned());
        }
        let deliveries = group(runs, "deliveries_per_s", |r| r.deliveries_per_s, warnings);
        let p99 = group(runs, "latency_p99_ms", |r| r.p99_ms, warnings);
        for (series, key) in [(&deliveries, "deliveries_per_s"), (&p99, "latency_p99_ms")] {
            if series.is_empty() {
                return Err(format!(
                    "nothing to plot: no report has a positive \"{key}\" (a log axis needs one)"
                ));
            }
        }
        Ok(Figure {
            reports: runs.len(),
            labels: labels(runs),
            deliveries,
            p99,
        })
    }

    /// Fewest and most runs behind one point, over both charts.
    fn runs_per_point(&self) -> (usize, usize) {
        let counts = self
            .deliveries
            .iter()
            .chain(&self.p99)
            .flat_map(|s| &s.points)
            .map(|p| p.runs);
        let min = counts.clone().min().unwrap_or(0);
        (min, counts.max().unwrap_or(0))
    }
}

/// A number for a tick label: at most 3 significant digits, `k`/`M`/`G` for thousands,
/// millions, billions (10, 100, 1k, 10k; 100k, 1.5M; 0.25).
pub fn short_number(v: f64) -> String {
    let (scaled, suffix) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let decimals = if scaled >= 100.0 || scaled == 0.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else if scaled >= 1.0 {
        2
    } else {
        (2.0 - scaled.log10().floor()).clamp(2.0, 12.0) as usize
    };
    let mut text = format!("{scaled:.decimals$}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    text + suffix
}

/// An axis range around data from `lo` to `hi` (both positive): a sixth of a decade of margin
/// each side, and at least one decade in all so that ticks exist.
pub fn log_bounds(lo: f64, hi: f64) -> (f64, f64) {
    let (mut a, mut b) = (lo.log10() - 0.17, hi.log10() + 0.17);
    if b - a < 1.0 {
        let mid = (a + b) / 2.0;
        (a, b) = (mid - 0.5, mid + 0.5);
    }
    (10f64.powf(a), 10f64.powf(b))
}

/// Values m × 10^e within `lo..=hi`, for m in `mantissas`, ascending.
fn log_steps(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| *v >= lo && *v <= hi)
        .collect()
}

const EVERY_DIGIT: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];

/// Labelled ticks for a log value axis (powers of ten, or 1-2-5 steps when the range holds
/// fewer than three powers) and the unlabelled grid lines between them.
pub fn value_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let bold = [&[1.0][..], &[1.0, 2.0, 5.0][..]]
        .into_iter()
        .map(|m| log_steps(lo, hi, m))
        .find(|t| t.len() >= 3)
        .unwrap_or_else(|| log_steps(lo, hi, &EVERY_DIGIT));
    let light = log_steps(lo, hi, &EVERY_DIGIT)
        .into_iter()
        .filter(|v| !bold.iter().any(|b| (b / v - 1.0).abs() < 1e-9))
        .collect();
    (bold, light)
}

/// Labelled ticks for the subscriber axis: the counts the reports have, thinned so that
/// neighbours differ by a factor of 1.8 at least (their labels would collide otherwise).
pub fn subscriber_ticks(counts: &[u64]) -> Vec<f64> {
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts.dedup();
    let mut ticks: Vec<f64> = Vec::new();
    for c in counts {
        let c = c as f64;
        if ticks.last().is_none_or(|last| c / last >= 1.8) {
            ticks.push(c);
        }
    }
    ticks
}

/// Colour-blind-safe colours (Okabe & Ito), one per label, in legend order.
const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn colour(index: usize) -> RGBColor {
    COLOURS[index % COLOURS.len()]
}

const GREY: RGBColor = RGBColor(90, 90, 90);

/// The font file registered last: plotters draws every text with it for the rest of the process.
static REGISTERED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Makes the font at `path` the one every text of the plot is drawn with.
fn register_font(path: &Path) -> Result<(), String> {
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    if registered.as_deref() == Some(path) {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "font {}: {e} (install Debian's fonts-dejavu-core, or give another TrueType font \
             with --font)",
            path.display()
        )
    })?;
    // plotters' ab_glyph registry holds fonts as `&'static [u8]` for the rest of the process.
    // The bytes are leaked once per font file registered (once per run of the tool); a
    // process that draws again with the same font reuses them (`REGISTERED`).
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("font {}: not a TrueType/OpenType font file", path.display()))?;
    *registered = Some(path.to_owned());
    Ok(())
}

fn draw_error(e: impl std::fmt::Display) -> String {
    format!("drawing: {e}")
}

/// The figure is drawn at `SCALE` times its size, then averaged down: plotters' bitmap
/// backend draws lines and markers without anti-aliasing, and its wide lines look thinner
/// on a slope than level. Every length below goes through `px`.
const SCALE: u32 = 2;

fn px(length: i32) -> i32 {
    length * SCALE as i32
}

fn draw(figure: &Figure, title: &str, output: &Path) -> Result<(), String> {
    let big = (SIZE.0 * SCALE, SIZE.1 * SCALE);
    let mut pixels = vec![0u8; big.0 as usize * big.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, big).into_drawing_area();
        draw_figure(&root, figure, title)?;
        root.present().map_err(draw_error)?;
    }
    let pixels = downsample(&pixels, big, SCALE);
    let mut png = BitMapBackend::new(output, SIZE);
    png.blit_bitmap((0, 0), SIZE, &pixels).map_err(draw_error)?;
    png.present()
        .map_err(|e| format!("writing {}: {e}", output.display()))
}

/// Averages each `factor` × `factor` block of an RGB image of `size` pixels into one pixel.
pub fn downsample(rgb: &[u8], size: (u32, u32), factor: u32) -> Vec<u8> {
    let (w, h, f) = (size.0 as usize, size.1 as usize, factor.max(1) as usize);
    let (small_w, small_h) = (w / f, h / f);
    let mut out = Vec::with_capacity(small_w * small_h * 3);
    for y in 0..small_h {
        for x in 0..small_w {
            for channel in 0..3 {
                let mut sum = 0u32;
                for dy in 0..f {
                    let row = (y * f + dy) * w;
                    for dx in 0..f {
                        sum += u32::from(rgb[(row + x * f + dx) * 3 + channel]);
                    }
                }
                let n = (f * f) as u32;
                out.push(((sum + n / 2) / n) as u8);
            }
        }
    }
    out
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw_figure(root: &Area, figure: &Figure, title: &str) -> Result<(), String> {
    root.fill(&WHITE).map_err(draw_error)?;
    let legend = Legend::lay_out(root, figure)?;
    let header_height = px(78) + px(LEGEND_ROW) * (legend.rows.len() as i32 - 1);
    let (header, body) = root.split_vertically(header_height);
    header
        .draw_text(
            title,
            &TextStyle::from((FAMILY, px(26)).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
            (px(SIZE.0 as i32 / 2), px(12)),
        )
        .map_err(draw_error)?;
    legend.draw(&header, px(54))?;
    let (left, right) = body.split_horizontally(px(SIZE.0 as i32 / 2));
    draw_chart(
        &left,
        &figure.deliveries,
        "Deliveries per second",
        "deliveries/s (all subscribers)",
    )?;
    draw_chart(
        &right,
        &figure.p99,
        "End-to-end latency, 99th percentile",
        "p99 latency (ms)",
    )
}

/// Height of one legend row, unscaled.
const LEGEND_ROW: i32 = 26;

/// The legend: a line and marker per label, then a note on how the points summarise the
/// runs, in centred rows as wide as the figure allows.
struct Legend<'a> {
    labels: &'a [String],
    note: String,
    /// Width of each item: the labels' entries, then the note.
    widths: Vec<i32>,
    rows: Vec<Vec<usize>>,
}

impl<'a> Legend<'a> {
    const SWATCH: i32 = 34;
    const GAP: i32 = 8;
    const SPACING: i32 = 34;

    fn label_style() -> TextStyle<'static> {
        TextStyle::from((FAMILY, px(17)).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center))
    }

    fn note_style() -> TextStyle<'static> {
        TextStyle::from((FAMILY, px(15)).into_font())
            .color(&GREY)
            .pos(Pos::new(HPos::Left, VPos::Center))
    }

    fn lay_out(area: &Area, figure: &'a Figure) -> Result<Legend<'a>, String> {
        let note = match figure.runs_per_point() {
            (1, 1) => "one run per point".to_owned(),
            (n, m) if n == m => format!("median of {n} runs per point; bars: min to max"),
            (n, m) => format!("median of {n} to {m} runs per point; bars: min to max"),
        };
        let text_width = |text: &str, style: &TextStyle| -> Result<i32, String> {
            let (w, _) = area.estimate_text_size(text, style).map_err(draw_error)?;
            Ok(w as i32)
        };
        let mut widths = Vec::with_capacity(figure.labels.len() + 1);
        for label in &figure.labels {
            let text = text_width(label, &Self::label_style())?;
            widths.push(px(Self::SWATCH + Self::GAP) + text);
        }
        widths.push(text_width(&note, &Self::note_style())?);
        let rows = legend_rows(&widths, px(Self::SPACING), px(SIZE.0 as i32 - 40));
        Ok(Legend {
            labels: &figure.labels,
            note,
            widths,
            rows,
        })
    }

    /// Draws the rows, the first centred on `y`.
    fn draw(&self, area: &Area, y: i32) -> Result<(), String> {
        let spacing = px(Self::SPACING);
        for (row, y) in self.rows.iter().zip((0..).map(|i| y + i * px(LEGEND_ROW))) {
            let width = row.iter().map(|&i| self.widths[i] + spacing).sum::<i32>() - spacing;
            let mut x = (px(SIZE.0 as i32) - width) / 2;
            for &item in row {
                if let Some(label) = self.labels.get(item) {
                    let (swatch, gap) = (px(Self::SWATCH), px(Self::GAP));
                    let line = colour(item).stroke_width(2 * SCALE);
                    area.draw(&PathElement::new(vec![(x, y), (x + swatch, y)], line))
                        .map_err(draw_error)?;
                    draw_marker(area, (x + swatch / 2, y), item)?;
                    area.draw_text(label, &Self::label_style(), (x + swatch + gap, y))
                        .map_err(draw_error)?;
                } else {
                    area.draw_text(&self.note, &Self::note_style(), (x, y))
                        .map_err(draw_error)?;
                }
                x += self.widths[item] + spacing;
            }
        }
        Ok(())
    }
}

/// Splits items of the given widths, `spacing` apart, into rows at most `max` wide (an item
/// wider than that gets a row of its own). Returns the items' indices, row by row.
pub fn legend_rows(widths: &[i32], spacing: i32, max: i32) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for (i, &w) in widths.iter().enumerate() {
        match rows.last_mut() {
            Some(row) if used + spacing + w <= max => {
                row.push(i);
                used += spacing + w;
            }
            _ => {
                rows.push(vec![i]);
                used = w;
            }
        }
    }
    rows
}

/// The marker of label `index`: circle, triangle, square, in turn.
fn draw_marker<CT: CoordTranslate>(
    area: &DrawingArea<BitMapBackend, CT>,
    at: CT::From,
    index: usize,
) -> Result<(), String>
where
    CT::From: Clone + 'static,
{
    let fill = colour(index).filled();
    match index % 3 {
        0 => {
            area.draw(&Circle::new(at.clone(), px(5), fill))
                .map_err(draw_error)?;
            area.draw(&Circle::new(at, px(5), WHITE.stroke_width(SCALE)))
        }
        1 => area.draw(&TriangleMarker::new(at, px(7), fill)),
        _ => area.draw(
            &(EmptyElement::at(at) + Rectangle::new([(px(-5), px(-5)), (px(5), px(5))], fill)),
        ),
    }
    .map_err(draw_error)
}

fn draw_chart(area: &Area, series: &[Series], caption: &str, y_desc: &str) -> Result<(), String> {
    let points = || series.iter().flat_map(|s| &s.points);
    let counts: Vec<u64> = points().map(|p| p.subscribers).collect();
    let x_min = counts.iter().copied().min().unwrap_or(1) as f64;
    let x_max = counts.iter().copied().max().unwrap_or(1) as f64;
    let (x_lo, x_hi) = log_bounds(x_min, x_max);
    let x_light: Vec<f64> = log_steps(x_lo, x_hi, &EVERY_DIGIT);
    let y_min = points().map(|p| p.min).fold(f64::INFINITY, f64::min);
    let y_max = points().map(|p| p.max).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = log_bounds(y_min, y_max);
    let (y_ticks, y_light) = value_ticks(y_lo, y_hi);

    let mut chart = ChartBuilder::on(area)
        .margin_top(px(6))
        .margin_bottom(px(10))
        .margin_left(px(14))
        .margin_right(px(26))
        .caption(caption, (FAMILY, px(20)).into_font())
        .x_label_area_size(px(52))
        .y_label_area_size(px(78))
        .build_cartesian_2d(
            (x_lo..x_hi)
                .log_scale()
                .with_key_points(subscriber_ticks(&counts))
                .with_light_points(x_light),
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(y_ticks)
                .with_light_points(y_light),
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("subscribers (log scale)")
        .y_desc(format!("{y_desc}, log scale"))
        .x_label_formatter(&|v| short_number(*v))
        .y_label_formatter(&|v| short_number(*v))
        .label_style((FAMILY, px(15)).into_font().color(&BLACK))
        .axis_desc_style((FAMILY, px(16)).into_font().color(&BLACK))
        .set_all_tick_mark_size(px(5))
        .bold_line_style(BLACK.mix(0.16).stroke_width(SCALE))
        .light_line_style(BLACK.mix(0.05).stroke_width(SCALE))
        .axis_style(BLACK.mix(0.6).stroke_width(SCALE))
        .draw()
        .map_err(draw_error)?;

    for s in series {
        let line = colour(s.index).stroke_width(2 * SCALE);
        let xy = |p: &Point| (p.subscribers as f64, p.median);
        chart
            .draw_series(LineSeries::new(s.points.iter().map(xy), line))
            .map_err(draw_error)?;
        for p in s.points.iter().filter(|p| p.max > p.min) {
            let x = p.subscribers as f64;
            chart
                .draw_series([PathElement::new(vec![(x, p.min), (x, p.max)], line)])
                .map_err(draw_error)?;
            chart
                .draw_series([p.min, p.max].map(|y| {
                    EmptyElement::at((x, y)) + PathElement::new(vec![(px(-5), 0), (px(5), 0)], line)
                }))
                .map_err(draw_error)?;
        }
        for p in &s.points {
            draw_marker(chart.plotting_area(), xy(p), s.index)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "herald-plot-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn report(label: Option<&str>, subscribers: u64, deliveries: f64, p99: f64) -> String {
        let mut r = serde_json::json!({
            "scenario": "fanout",
            "url": "ws://127.0.0.1:25674/ws",
            "subscribers_requested": subscribers,
            "subscribers_subscribed": subscribers,
            "deliveries_per_s": deliveries,
            "latency_p50_ms": p99 / 3.0,
            "latency_p99_ms": p99,
        });
        if let Some(label) = label {
            r["label"] = label.into();
        }
        serde_json::to_string_pretty(&r).unwrap()
    }

    fn run_of(label: &str, subscribers: u64, deliveries: f64, p99: f64) -> Run {
        Run {
            source: format!("{label}-{subscribers}.json"),
            label: label.to_owned(),
            subscribers,
            deliveries_per_s: deliveries,
            p99_ms: p99,
        }
    }

    fn args(dir: &TempDir, reports: Vec<PathBuf>) -> PlotArgs {
        PlotArgs {
            output: dir.0.join("fanout.png"),
            title: "fan-out, 100 B messages".to_owned(),
            font: PathBuf::from(DEFAULT_FONT),
            reports,
        }
    }

    /// Two labels, four subscriber counts, three runs each (one label's older reports
    /// without a `label`, named by URL).
    fn synthetic_reports(dir: &TempDir) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for (i, subscribers) in [10u64, 100, 1000, 10_000].into_iter().enumerate() {
            for run in 0..3 {
                let jitter = 1.0 + 0.08 * f64::from(run);
                let herald = report(
                    Some("Herald"),
                    subscribers,
                    3e4 * subscribers as f64 * jitter / (1.0 + i as f64),
                    0.4 * 3f64.powi(i as i32) * jitter,
                );
                paths.push(dir.write(&format!("herald-{subscribers}-{run}.json"), &herald));
                let rabbit = report(
                    None,
                    subscribers,
                    9e3 * subscribers as f64 * jitter / (1.0 + 2.0 * i as f64),
                    1.5 * 5f64.powi(i as i32) * jitter,
                );
                paths.push(dir.write(&format!("rabbit-{subscribers}-{run}.json"), &rabbit));
            }
        }
        paths
    }

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "not a PNG: {}",
            path.display()
        );
        let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .expect("the PNG decodes");
        (image.width(), image.height())
    }

    #[test]
    fn plot_renders_a_png_of_the_requested_size() {
        let dir = TempDir::new();
        let args = args(&dir, synthetic_reports(&dir));
        run(&args).unwrap();
        assert_eq!(png_size(&args.output), SIZE);
    }

    #[test]
    fn plot_renders_a_single_run_at_a_single_point() {
        let dir = TempDir::new();
        let one = dir.write("one.json", &report(Some("Herald"), 100, 1234.5, 7.0));
        let args = args(&dir, vec![one]);
        run(&args).unwrap();
        assert_eq!(png_size(&args.output), SIZE);
    }

    fn plot_error(dir: &TempDir, text: &str) -> String {
        let path = dir.write("bad.json", text);
        let args = args(dir, vec![path]);
        let err = run(&args).unwrap_err();
        assert!(!args.output.exists(), "no PNG after an error");
        err
    }

    #[test]
    fn plot_refuses_a_file_that_is_not_json() {
        let dir = TempDir::new();
        let err = plot_error(&dir, "deliveries/s: 1276307.8\n");
        assert!(
            err.contains("bad.json") && err.contains("not a JSON report"),
            "{err}"
        );
        let err = plot_error(&dir, "[1, 2]");
        assert!(err.contains("not a JSON object"), "{err}");
    }

    #[test]
    fn plot_refuses_reports_of_other_scenarios() {
        let dir = TempDir::new();
        let err = plot_error(&dir, r#"{"scenario": "queue", "url": "tcp://x:1"}"#);
        assert!(err.contains("\"queue\" report"), "{err}");
        let err = plot_error(&dir, r#"{"url": "tcp://x:1"}"#);
        assert!(err.contains("no \"scenario\" key"), "{err}");
    }

    #[test]
    fn plot_names_a_missing_or_mistyped_key() {
        let dir = TempDir::new();
        for key in [
            "subscribers_subscribed",
            "deliveries_per_s",
            "latency_p99_ms",
        ] {
            let mut r: Value = serde_json::from_str(&report(Some("H"), 10, 1.0, 1.0)).unwrap();
            r.as_object_mut().unwrap().remove(key);
            let err = plot_error(&dir, &r.to_string());
            assert!(err.contains(&format!("missing key \"{key}\"")), "{err}");
        }
        let mut r: Value = serde_json::from_str(&report(Some("H"), 10, 1.0, 1.0)).unwrap();
        r["deliveries_per_s"] = "fast".into();
        let err = plot_error(&dir, &r.to_string());
        assert!(
            err.contains("\"deliveries_per_s\" is not a number"),
            "{err}"
        );
        let mut r: Value = serde_json::from_str(&report(None, 10, 1.0, 1.0)).unwrap();
        r.as_object_mut().unwrap().remove("url");
        let err = plot_error(&dir, &r.to_string());
        assert!(err.contains("neither \"label\" nor \"url\""), "{err}");
    }

    #[test]
    fn plot_refuses_when_no_point_is_left_for_a_log_axis() {
        let dir = TempDir::new();
        let err = plot_error(&dir, &report(Some("H"), 0, 100.0, 1.0));
        assert!(err.contains("nothing to plot"), "{err}");
        let err = plot_error(&dir, &report(Some("H"), 10, 0.0, 1.0));
        assert!(
            err.contains("nothing to plot") && err.contains("deliveries_per_s"),
            "{err}"
        );
        let err = plot_error(&dir, &report(Some("H"), 10, 100.0, -1.0));
        assert!(err.contains("latency_p99_ms"), "{err}");
    }

    #[test]
    fn plot_reports_io_font_and_output_errors() {
        let dir = TempDir::new();
        let good = dir.write("good.json", &report(Some("H"), 10, 100.0, 1.0));
        let mut a = args(&dir, vec![dir.0.join("missing.json")]);
        let err = run(&a).unwrap_err();
        assert!(
            err.contains("reading") && err.contains("missing.json"),
            "{err}"
        );

        a.reports = vec![good.clone()];
        a.output = dir.0.join("plot.svg");
        let err = run(&a).unwrap_err();
        assert!(err.contains(".png"), "{err}");

        a.output = dir.0.join("plot.png");
        a.font = dir.0.join("no-such-font.ttf");
        let err = run(&a).unwrap_err();
        assert!(err.contains("fonts-dejavu-core"), "{err}");
        a.font = good;
        let err = run(&a).unwrap_err();
        assert!(err.contains("not a TrueType"), "{err}");
        assert!(!a.output.exists());
    }

    fn parse_text(
        text: &str,
        source: &str,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Run>, String> {
        parse_report(serde_json::from_str(text).unwrap(), source, warnings)
    }

    #[test]
    fn a_vs_file_gives_each_of_its_runs() {
        let mut runs: Vec<Value> = [
            report(Some("A"), 100, 5.0, 1.0),
            report(Some("B"), 100, 2.0, 3.0),
        ]
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
        runs.push(serde_json::json!({"run": "B2", "clean": false}));
        let file = serde_json::json!({"scenario": "fanout", "runs": runs}).to_string();
        let mut warnings = Vec::new();
        let parsed = parse_file(&file, "vs.json", &mut warnings).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            (parsed[0].label.as_str(), parsed[1].label.as_str()),
            ("A", "B")
        );
        assert!(parsed[1].source.contains("run 2"), "{}", parsed[1].source);
        assert!(warnings[0].contains("run 3"), "{warnings:?}");
    }

    #[test]
    fn reports_without_a_label_are_named_by_url_and_odd_values_warn() {
        let mut warnings = Vec::new();
        let run = parse_text(&report(None, 100, 5.0, 1.0), "a.json", &mut warnings)
            .unwrap()
            .unwrap();
        assert_eq!(run.label, "ws://127.0.0.1:25674/ws");
        assert_eq!(run.subscribers, 100);
        assert!(warnings.is_empty());
        let run = parse_text(&report(Some(" Herald "), 100, 5.0, 1.0), "b", &mut warnings)
            .unwrap()
            .unwrap();
        assert_eq!(run.label, "Herald");

        let mut short: Value = serde_json::from_str(&report(Some("H"), 100, 5.0, 1.0)).unwrap();
        short["subscribers_subscribed"] = 97.into();
        let run = parse_text(&short.to_string(), "c.json", &mut warnings)
            .unwrap()
            .unwrap();
        assert_eq!(run.subscribers, 97);
        assert!(warnings[0].contains("only 97 of 100"), "{warnings:?}");

        let none = parse_text(&report(Some("H"), 0, 5.0, 1.0), "d.json", &mut warnings).unwrap();
        assert_eq!(none, None);
        assert!(warnings[1].contains("d.json"), "{warnings:?}");
    }

    #[test]
    fn legend_items_wrap_into_rows() {
        assert_eq!(legend_rows(&[100, 200, 300], 10, 1000), vec![vec![0, 1, 2]]);
        assert_eq!(legend_rows(&[100, 200, 300], 10, 620), vec![vec![0, 1, 2]]);
        assert_eq!(
            legend_rows(&[100, 200, 300], 10, 619),
            vec![vec![0, 1], vec![2]]
        );
        assert_eq!(
            legend_rows(&[900, 50, 50], 10, 500),
            vec![vec![0], vec![1, 2]]
        );
        assert_eq!(legend_rows(&[], 10, 500), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn plot_arguments_parse_with_defaults() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cmd {
            #[command(flatten)]
            plot: PlotArgs,
        }
        let cmd = Cmd::try_parse_from(["plot", "--output", "f.png", "a.json", "b.json"]).unwrap();
        assert_eq!(cmd.plot.output, PathBuf::from("f.png"));
        assert_eq!(cmd.plot.font, PathBuf::from(DEFAULT_FONT));
        assert_eq!(cmd.plot.title, "fan-out, 100 B messages");
        assert_eq!(cmd.plot.reports.len(), 2);
        assert!(Cmd::try_parse_from(["plot", "--output", "f.png"]).is_err());
        assert!(Cmd::try_parse_from(["plot", "a.json"]).is_err());
    }

    #[test]
    fn downsampling_averages_blocks() {
        // 4x2 RGB image, averaged 2x2 into 2x1.
        #[rustfmt::skip]
        let big = [
            0, 0, 0,   255, 255, 255,   10, 20, 30,   10, 20, 30,
            255, 255, 255,   0, 0, 0,   10, 20, 30,   10, 20, 31,
        ];
        assert_eq!(downsample(&big, (4, 2), 2), vec![128, 128, 128, 10, 20, 30]);
        assert_eq!(downsample(&big, (4, 2), 1), big.to_vec());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(&[9.0, 1.0, 5.0, 3.0]), Some(4.0));
    }

    #[test]
    fn runs_group_by_label_in_order_of_appearance_then_by_subscribers() {
        let runs = vec![
            run_of("RabbitMQ", 1000, 50.0, 9.0),
            run_of("Herald", 100, 300.0, 1.0),
            run_of("Herald", 10, 100.0, 0.5),
            run_of("Herald", 100, 100.0, 3.0),
            run_of("Herald", 100, 200.0, 2.0),
            run_of("RabbitMQ", 1000, 70.0, 0.0),
        ];
        let mut warnings = Vec::new();
        let deliveries = group(
            &runs,
            "deliveries_per_s",
            |r| r.deliveries_per_s,
            &mut warnings,
        );
        assert!(warnings.is_empty());
        assert_eq!(
            deliveries,
            vec![
                Series {
                    label: "RabbitMQ".to_owned(),
                    index: 0,
                    points: vec![Point {
                        subscribers: 1000,
                        median: 60.0,
                        min: 50.0,
                        max: 70.0,
                        runs: 2
                    }],
                },
                Series {
                    label: "Herald".to_owned(),
                    index: 1,
                    points: vec![
                        Point {
                            subscribers: 10,
                            median: 100.0,
                            min: 100.0,
                            max: 100.0,
                            runs: 1
                        },
                        Point {
                            subscribers: 100,
                            median: 200.0,
                            min: 100.0,
                            max: 300.0,
                            runs: 3
                        },
                    ],
                },
            ]
        );
        // The zero latency is left out with a warning naming its file; the label keeps its
        // index (and so its colour) even where another label is missing.
        let p99 = group(&runs, "latency_p99_ms", |r| r.p99_ms, &mut warnings);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("RabbitMQ-1000.json"), "{warnings:?}");
        assert_eq!(p99[0].points[0].runs, 1);
        assert_eq!(p99[0].points[0].median, 9.0);
        assert_eq!(p99[1].index, 1);

        let only_zero = vec![run_of("A", 10, 0.0, 1.0), run_of("B", 10, 5.0, 1.0)];
        let mut warnings = Vec::new();
        let deliveries = group(
            &only_zero,
            "deliveries_per_s",
            |r| r.deliveries_per_s,
            &mut warnings,
        );
        assert_eq!(deliveries.len(), 1);
        assert_eq!(
            (deliveries[0].label.as_str(), deliveries[0].index),
            ("B", 1)
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (10.0, "10"),
            (100.0, "100"),
            (1000.0, "1k"),
            (10_000.0, "10k"),
            (100_000.0, "100k"),
            (1_000_000.0, "1M"),
            (2_500_000.0, "2.5M"),
            (3e9, "3G"),
            (0.5, "0.5"),
            (0.05, "0.05"),
            (0.30000000000000004, "0.3"),
            (1.0, "1"),
            (20.0, "20"),
        ];
        for (v, text) in cases {
            assert_eq!(short_number(v), text, "{v}");
        }
    }

    #[test]
    fn ticks_cover_the_range() {
        let (lo, hi) = log_bounds(3000.0, 2_000_000.0);
        assert!(lo < 3000.0 && hi > 2_000_000.0);
        let (bold, light) = value_ticks(lo, hi);
        assert_eq!(bold, vec![10_000.0, 100_000.0, 1_000_000.0]);
        assert!(light.contains(&3000.0) && !light.contains(&10_000.0));
        // A narrow range is widened to a decade and gets 1-2-5 ticks.
        let (lo, hi) = log_bounds(80.0, 120.0);
        assert!((hi / lo - 10.0).abs() < 1e-9);
        let (bold, _) = value_ticks(lo, hi);
        assert_eq!(bold, vec![50.0, 100.0, 200.0]);
        assert_eq!(
            subscriber_ticks(&[10_000, 10, 100, 9_987, 1000, 100]),
            vec![10.0, 100.0, 1000.0, 9987.0]
        );
    }
}
