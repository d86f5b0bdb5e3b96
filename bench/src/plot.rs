//! SVG plots of a results report (plotters' SVG backend): for every load sweep, achieved
//! rate against offered load and latency percentiles against offered load, hub beside
//! bare; and one bar-like dot plot per figure comparing hub and bare medians with their
//! spread.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// Fonts tried for the labels (Debian's fonts-dejavu-core, fonts-liberation).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .context("no TrueType font found for the plot labels; install fonts-dejavu-core")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("cannot load the font {path}"))?;
    Ok(())
}

const HUB: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const BARE: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// The x position of a point: its offered load, or for saturation (0) 1.5× the largest.
fn x_of(point: &Value, max_offered: f64) -> f64 {
    match point["offered"].as_f64().unwrap_or(0.0) {
        0.0 => max_offered * 1.5,
        x => x,
    }
}

fn series<'a>(sweep: &'a Value, side: &str) -> &'a [Value] {
    sweep[side].as_array().map_or(&[], Vec::as_slice)
}

fn sweep_plots(name: &str, sweep: &Value, out: &Path) -> Result<()> {
    let all: Vec<&Value> = ["hub", "bare"]
        .iter()
        .flat_map(|side| series(sweep, side))
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    let max_offered = all
        .iter()
        .filter_map(|p| p["offered"].as_f64())
        .fold(1.0, f64::max);
    let x_max = max_offered * 1.7;
    let unit = if name == "rpc" {
        "requests/s"
    } else {
        "deliveries/s"
    };

    // Achieved against offered.
    let path = out.join(format!("{name}-throughput.svg"));
    {
        let root = SVGBackend::new(&path, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let y_max = all
            .iter()
            .filter_map(|p| p["achieved"].as_f64())
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{name}: achieved against offered load (rightmost: as fast as possible)"),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(BLACK.mix(0.04))
            .x_desc(format!("offered, {unit}"))
            .y_desc(format!("achieved, {unit}"))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (max_offered, max_offered)],
            ShapeStyle::from(&BLACK.mix(0.3)).stroke_width(1),
        ))?;
        for (side, color) in [("hub", HUB), ("bare", BARE)] {
            let points: Vec<(f64, f64)> = series(sweep, side)
                .iter()
                .map(|p| (x_of(p, max_offered), p["achieved"].as_f64().unwrap_or(0.0)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(side)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }

    // Latency percentiles against offered load (log scale).
    let path = out.join(format!("{name}-latency.svg"));
    {
        let root = SVGBackend::new(&path, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let y_max = all
            .iter()
            .filter_map(|p| p["p99_ms"].as_f64())
            .fold(0.1, f64::max)
            * 2.0;
        let y_min = all
            .iter()
            .filter_map(|p| p["p50_ms"].as_f64())
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min)
            .min(y_max / 10.0)
            / 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{name}: latency percentiles against offered load"),
                ("sans-serif", 18),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .bold_line_style(BLACK.mix(0.15))
            .light_line_style(BLACK.mix(0.04))
            .x_desc(format!("offered, {unit}"))
            .y_desc("latency, ms")
            .draw()?;
        for (side, color) in [("hub", HUB), ("bare", BARE)] {
            for (key, dash) in [("p50_ms", false), ("p99_ms", true)] {
                let points: Vec<(f64, f64)> = series(sweep, side)
                    .iter()
                    .map(|p| {
                        (
                            x_of(p, max_offered),
                            p[key].as_f64().unwrap_or(0.0).max(y_min),
                        )
                    })
                    .collect();
                let style = if dash {
                    color.mix(0.6).stroke_width(2)
                } else {
                    color.stroke_width(2)
                };
                let label = format!("{side} {}", key.trim_end_matches("_ms"));
                chart
                    .draw_series(LineSeries::new(points.clone(), style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                chart.draw_series(points.iter().map(|&p| {
                    if dash {
                        TriangleMarker::new(p, 5, color.filled()).into_dyn()
                    } else {
                        Circle::new(p, 4, color.filled()).into_dyn()
                    }
                }))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

/// One plot per figure: hub and bare medians with their min–max spread.
fn figure_plot(figure: &Value, out: &Path) -> Result<bool> {
    let Some(hub) = figure["hub"]["median"].as_f64() else {
        return Ok(false);
    };
    let id = figure["id"].as_str().unwrap_or("figure");
    let unit = figure["unit"].as_str().unwrap_or("");
    let sides: Vec<(&str, &Value, RGBColor)> = [
        ("hub", &figure["hub"], HUB),
        ("bare", &figure["bare"], BARE),
    ]
    .into_iter()
    .filter(|(_, v, _)| v["median"].is_number())
    .collect();
    let top = sides
        .iter()
        .filter_map(|(_, v, _)| v["max"].as_f64())
        .fold(hub, f64::max)
        .max(1e-9)
        * 1.25;
    let path = out.join(format!("figure-{id}.svg"));
    let root = SVGBackend::new(&path, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = figure["title"].as_str().unwrap_or(id);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 14))
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..(sides.len() as f64), 0f64..top)?;
    let names: Vec<String> = sides.iter().map(|(n, _, _)| (*n).to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(sides.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(unit)
        .draw()?;
    for (i, (_, value, color)) in sides.iter().enumerate() {
        let x = i as f64 + 0.5;
        let median = value["median"].as_f64().unwrap_or(0.0);
        let (lo, hi) = (
            value["min"].as_f64().unwrap_or(median),
            value["max"].as_f64().unwrap_or(median),
        );
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.3, 0.0), (x + 0.3, median)],
            color.mix(0.7).filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, lo), (x, hi)],
            BLACK.stroke_width(2),
        )))?;
    }
    root.present()?;
    Ok(true)
}

/// Draws every plot of `report` into `out`.
///
/// # Errors
/// No usable font, or a file that cannot be written.
pub fn draw_all(report: &Value, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    register_font()?;
    for (name, sweep) in report["sweeps"].as_object().into_iter().flatten() {
        sweep_plots(name, sweep, out)?;
    }
    for figure in report["figures"].as_array().into_iter().flatten() {
        figure_plot(figure, out)?;
    }
    Ok(())
}
