//! Minimal SVG charts (no dependencies): grouped bars and lines.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound of the axis for `max`.
fn nice_max(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= max {
            return m * p;
        }
    }
    10.0 * p
}

fn frame(title: &str, y_label: &str, y_max: f64, s: &mut String) {
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        esc(title),
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label)
    );
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = H - BOTTOM - f * plot_h;
        let v = y_max * f;
        let label = fmt_num(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
}

/// Short number formatting for axis labels.
pub fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.1e}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(names: &[String], s: &mut String) {
    // As many 130-pixel entries per row as fit; a second row (and the first
    // moved up) only when they do not fit in one.
    let per_row = (((W - LEFT - RIGHT - 10.0) / 130.0).floor() as usize).max(1);
    let rows = names.len().div_ceil(per_row);
    for (i, n) in names.iter().enumerate() {
        let (row, col) = (i / per_row, i % per_row);
        let x = LEFT + 10.0 + 130.0 * col as f64;
        let y = if rows <= 1 {
            H - 22.0
        } else {
            H - 32.0 + 16.0 * row as f64
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            COLOURS[i % COLOURS.len()],
            x + 16.0,
            y + 10.0,
            esc(n)
        );
    }
}

/// Grouped bar chart: one group per category, one bar per series.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
) -> String {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max);
    let y_max = nice_max(max);
    let mut s = String::new();
    frame(title, y_label, y_max, &mut s);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let group = plot_w / categories.len().max(1) as f64;
    let bar = group * 0.8 / series.len().max(1) as f64;
    for (ci, c) in categories.iter().enumerate() {
        let gx = LEFT + group * ci as f64 + group * 0.1;
        for (si, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(ci).copied().unwrap_or(0.0).max(0.0);
            let h = v / y_max * plot_h;
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}</title></rect>"#,
                gx + bar * si as f64,
                H - BOTTOM - h,
                bar * 0.95,
                COLOURS[si % COLOURS.len()],
                fmt_num(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group * 0.4,
            H - BOTTOM + 16.0,
            esc(c)
        );
    }
    legend(
        &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        &mut s,
    );
    s.push_str("</svg>\n");
    s
}

/// Line chart over categorical x positions (e.g. `R = 8, 32, ...`), log y.
pub fn line_chart(
    title: &str,
    y_label: &str,
    xs: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let max = vals.iter().copied().fold(0.0, f64::max);
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    // Log axis from 10^floor(log10 min) to 10^ceil(log10 max).
    let lo = if min.is_finite() {
        10f64.powf(min.log10().floor())
    } else {
        1e-3
    };
    let hi = if max > 0.0 {
        10f64.powf(max.log10().ceil()).max(lo * 10.0)
    } else {
        lo * 10.0
    };
    let mut s = String::new();
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    // Frame with labels lo..hi on a log scale.
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        esc(title),
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label)
    );
    let decades = (hi / lo).log10().round().max(1.0) as i32;
    for d in 0..=decades {
        let v = lo * 10f64.powi(d);
        let y = H - BOTTOM - f64::from(d) / f64::from(decades) * plot_h;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
    }
    let ypos = |v: f64| H - BOTTOM - (v / lo).log10() / (hi / lo).log10() * plot_h;
    let step = plot_w / xs.len().max(1) as f64;
    let xpos = |i: usize| LEFT + step * (i as f64 + 0.5);
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            xpos(i),
            H - BOTTOM + 16.0,
            esc(x)
        );
    }
    for (si, (_, vals)) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.filter(|v| *v > 0.0)
                    .map(|v| format!("{:.1},{:.1}", xpos(i), ypos(v)))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for p in &pts {
            if let Some((x, y)) = p.split_once(',') {
                let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"#);
            }
        }
    }
    legend(
        &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        &mut s,
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_every_label() {
        let b = bar_chart(
            "t <1>",
            "s",
            &["a".into(), "b".into()],
            &[
                ("ours".into(), vec![1.0, 2.0]),
                ("SPU".into(), vec![3.0, 0.5]),
            ],
        );
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert!(b.contains("t &lt;1&gt;") && b.contains(">ours<") && b.contains(">SPU<"));
        assert_eq!(b.matches("<rect x=").count(), 4 + 2);
        let l = line_chart(
            "per query",
            "s",
            &["8".into(), "32".into()],
            &[
                ("lan".into(), vec![Some(0.5), Some(0.2)]),
                ("wan".into(), vec![None, Some(3.0)]),
            ],
        );
        assert!(l.contains("<polyline") && l.contains(">wan<"));
        assert_eq!(l.matches("<circle").count(), 3);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
