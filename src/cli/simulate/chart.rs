//! The SVG chart: demand, free sessions and servers per provider over clock time, one set of
//! lines per policy, and a vertical line at each configuration change.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use super::Run;

/// The chart's file, opened before the simulation runs so that a path that cannot be written
/// (a missing directory, a directory, no permission) fails at once.
pub(crate) struct Target {
    path: PathBuf,
    file: File,
    /// Whether opening made the file (it is then removed if the run fails).
    created: bool,
}

impl Target {
    /// Opens (or makes) `path` for writing, leaving what it holds until [`Target::write`].
    pub(crate) fn open(path: &Path) -> Result<Self, (PathBuf, std::io::Error)> {
        let existed = path.symlink_metadata().is_ok();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(|file| Target {
                path: path.to_owned(),
                file,
                created: !existed,
            })
            .map_err(|e| (path.to_owned(), e))
    }

    /// Where the chart goes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content with `svg`.
    pub(crate) fn write(mut self, svg: &str) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all(svg.as_bytes())?;
        self.file.flush()
    }

    /// The run failed: remove the file if opening made it.
    pub(crate) fn abandon(self) {
        if self.created {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What the title says about the run.
pub(crate) struct About<'a> {
    /// The seed.
    pub seed: u64,
    /// The wall-clock start.
    pub start: Timestamp,
    /// The configuration's name (file name, or "the default scenario").
    pub config: &'a str,
}

/// The clock time `hours` after `start`, as the axis shows it: `08:00` within a day, `Tue 08:00`
/// within two weeks, `Dec 01` beyond.
fn clock(start: Timestamp, hours: f64, span_hours: f64) -> String {
    let Some(t) = SignedDuration::try_from_secs_f64(hours * 3600.0)
        .ok()
        .and_then(|d| start.checked_add(d).ok())
    else {
        return String::new();
    };
    let format = if span_hours <= 24.0 {
        "%H:%M"
    } else if span_hours <= 14.0 * 24.0 {
        "%a %H:%M"
    } else {
        "%b %d"
    };
    t.strftime(format).to_string()
}

/// The chart of `runs` as SVG text.
pub(crate) fn render(
    runs: &[Run],
    about: &About<'_>,
) -> Result<String, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = runs
            .iter()
            .filter_map(|r| r.series.minutes.last())
            .fold(0.0f64, |a, m| a.max(m / 60.0))
            .max(1.0);
        let y_max = runs
            .iter()
            .flat_map(|r| {
                r.series
                    .demand
                    .iter()
                    .chain(&r.series.free)
                    .chain(r.series.servers.values().flatten())
            })
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.1;
        let title = format!(
            "kasm-scale simulation: {}, seed {}, start {}",
            about.config,
            about.seed,
            about.start.strftime("%Y-%m-%d %H:%M UTC")
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        let start = about.start;
        let formatter = move |h: &f64| clock(start, *h, x_max);
        chart
            .configure_mesh()
            .x_desc("time (UTC)")
            .x_label_formatter(&formatter)
            .y_desc("sessions / servers")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        let palette = [
            RGBColor(214, 39, 40),
            RGBColor(31, 119, 180),
            RGBColor(44, 160, 44),
            RGBColor(148, 103, 189),
            RGBColor(255, 127, 14),
            RGBColor(23, 190, 207),
            RGBColor(140, 86, 75),
            RGBColor(0, 0, 0),
        ];
        // The demand is the trace's: the same for every policy.
        let mut lines: Vec<(String, &[f64], &[u32], bool)> = Vec::new();
        if let Some(first) = runs.first() {
            lines.push((
                "sessions (running or waiting)".into(),
                &first.series.minutes,
                &first.series.demand,
                false,
            ));
        }
        let compare = runs.len() > 1;
        for (i, run) in runs.iter().enumerate() {
            // Every policy but the last is drawn dashed.
            let dashed = compare && i + 1 < runs.len();
            let of = |what: String| {
                if compare {
                    format!("{what} — {}", run.title)
                } else {
                    what
                }
            };
            let minutes = run.series.minutes.as_slice();
            lines.push((
                of("free sessions".into()),
                minutes,
                &run.series.free,
                dashed,
            ));
            for (name, values) in &run.series.servers {
                lines.push((of(format!("servers on {name}")), minutes, values, dashed));
            }
        }
        for (i, (name, minutes, values, dashed)) in lines.into_iter().enumerate() {
            let color = palette[i % palette.len()];
            let points: Vec<(f64, f64)> = minutes
                .iter()
                .map(|m| m / 60.0)
                .zip(values.iter().map(|v| f64::from(*v)))
                .collect();
            let style = color.stroke_width(2);
            let drawn = if dashed {
                chart.draw_series(DashedLineSeries::new(points, 8, 5, style))?
            } else {
                chart.draw_series(LineSeries::new(points, style))?
            };
            drawn.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
        // Each configuration change: a vertical line at its moment, labelled with its number
        // and name.
        let changes = runs
            .first()
            .map_or(&[][..], |r| r.metrics.changes.as_slice());
        let mark = RGBColor(90, 90, 90);
        for (i, c) in changes.iter().enumerate() {
            let x = c.at_s / 3600.0;
            chart.draw_series(DashedLineSeries::new(
                [(x, 0.0), (x, y_max)],
                6,
                4,
                mark.stroke_width(1),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                format!(" change {}: {}", i + 1, c.label),
                (x, y_max * (0.97 - 0.04 * (i % 4) as f64)),
                ("sans-serif", 13).into_font().color(&mark),
            )))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}
