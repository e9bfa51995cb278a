//! `fusion-bench extraction-figure`: the paper's Figure 8 shape from the
//! JSON lines `fusion experiment extraction` writes: stolen-model accuracy
//! against the attacker's query budget, one bar per (model, defence), with
//! the server model's own accuracy as the reference bar.
//!
//! Every bar is a measured line of the input files; nothing is
//! interpolated. Lines of other attacks than the one asked for are skipped.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::svg;
use crate::{BenchError, Result};

/// Options of `fusion-bench extraction-figure`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExtractionFigureOptions {
    /// JSON-lines files from `fusion experiment extraction --json`.
    #[arg(long = "results", value_name = "FILE", required = true, num_args = 1..)]
    pub results: Vec<PathBuf>,
    /// The attack to draw (jbda or carlini).
    #[arg(long, default_value = "jbda")]
    pub attack: String,
    /// The SVG to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// One line of `fusion experiment extraction --json` (the keys drawn).
#[derive(Debug, Clone, Deserialize)]
pub struct ExtractionRecord {
    /// `jbda` or `carlini`.
    pub attack: String,
    /// `none`, `label`, ...
    pub defence: String,
    /// The oracle.
    pub oracle: String,
    /// The served model's name.
    pub model: String,
    /// The attacker's query budget.
    pub budget: u64,
    /// The substitute's accuracy on the held-out test images.
    pub stolen_accuracy: f64,
    /// The server model's accuracy on the same images.
    pub server_accuracy: f64,
}

/// Reads every record of the files.
pub fn read_records(files: &[PathBuf]) -> Result<Vec<ExtractionRecord>> {
    crate::record::read_json_lines(files)
}

/// The chart: categories are the budgets, series `model defence` (stolen
/// accuracy, %) and `model server` (the served model's accuracy, %).
pub fn figure(records: &[ExtractionRecord], attack: &str) -> Result<String> {
    let rows: Vec<&ExtractionRecord> = records.iter().filter(|r| r.attack == attack).collect();
    if rows.is_empty() {
        return Err(BenchError::Usage(format!(
            "no `{attack}` records in the input"
        )));
    }
    let budgets: BTreeSet<u64> = rows.iter().map(|r| r.budget).collect();
    let budgets: Vec<u64> = budgets.into_iter().collect();
    let keys: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.model.clone(), r.defence.clone()))
        .collect();
    let models: BTreeSet<String> = rows.iter().map(|r| r.model.clone()).collect();
    let mut series = Vec::new();
    for model in &models {
        let server: Vec<f64> = budgets
            .iter()
            .map(|b| {
                rows.iter()
                    .find(|r| &r.model == model && r.budget == *b)
                    .map_or(0.0, |r| r.server_accuracy * 100.0)
            })
            .collect();
        series.push((format!("{model} server"), server));
        for (m, defence) in keys.iter().filter(|(m, _)| m == model) {
            let v: Vec<f64> = budgets
                .iter()
                .map(|b| {
                    rows.iter()
                        .find(|r| &r.model == m && &r.defence == defence && r.budget == *b)
                        .map_or(0.0, |r| r.stolen_accuracy * 100.0)
                })
                .collect();
            series.push((format!("{m} {defence}"), v));
        }
    }
    let oracles: BTreeSet<&str> = rows.iter().map(|r| r.oracle.as_str()).collect();
    let title = format!(
        "{attack}: stolen-model accuracy vs query budget (oracle {})",
        oracles.into_iter().collect::<Vec<_>>().join(", ")
    );
    let categories: Vec<String> = budgets.iter().map(|b| format!("{b} queries")).collect();
    Ok(svg::bar_chart(&title, "accuracy, %", &categories, &series))
}

/// Runs `fusion-bench extraction-figure`.
pub fn run_extraction_figure(o: &ExtractionFigureOptions) -> Result<PathBuf> {
    let records = read_records(&o.results)?;
    let chart = figure(&records, &o.attack)?;
    crate::record::write_file(&o.out, &chart)?;
    Ok(o.out.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, defence: &str, budget: u64, stolen: f64) -> ExtractionRecord {
        ExtractionRecord {
            attack: "jbda".into(),
            defence: defence.into(),
            oracle: "plaintext".into(),
            model: model.into(),
            budget,
            stolen_accuracy: stolen,
            server_accuracy: 0.99,
        }
    }

    #[test]
    fn every_measured_cell_is_a_bar_and_server_accuracy_is_the_reference() {
        let records = vec![
            rec("mnist-cnn", "none", 150, 0.77),
            rec("mnist-cnn", "none", 600, 0.79),
            rec("mnist-cnn", "label", 150, 0.74),
            rec("mnist-cnn", "label", 600, 0.75),
        ];
        let chart = figure(&records, "jbda").unwrap();
        // 3 series (server, label, none) x 2 budgets.
        assert_eq!(chart.matches("<rect x=").count() - 3, 6, "{chart}");
        for v in ["77.00", "79.00", "74.00", "75.00", "99.00"] {
            assert!(
                chart.contains(&format!("<title>{v}</title>")),
                "{v} missing"
            );
        }
        assert!(chart.contains("150 queries") && chart.contains("600 queries"));
    }

    #[test]
    fn an_attack_without_records_is_a_usage_error() {
        let records = vec![rec("mnist-cnn", "none", 150, 0.77)];
        assert!(matches!(
            figure(&records, "carlini"),
            Err(BenchError::Usage(_))
        ));
    }
}
