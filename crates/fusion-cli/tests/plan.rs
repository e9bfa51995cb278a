//! `fusion plan` end to end: output, JSON keys and exit codes.

use std::process::{Command, Output};

fn fusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(args)
        .output()
        .expect("the fusion binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const KEYS: [&str; 8] = [
    "queries",
    "lambda",
    "min_public",
    "copies",
    "public",
    "total",
    "cost",
    "log2_paper_bound",
];
const SLACK_KEYS: [&str; 6] = [
    "threshold",
    "slack",
    "log2_slack_bound",
    "slack_copies",
    "slack_public",
    "slack_cost",
];

fn keys_in_order(text: &str) -> Vec<String> {
    // Top-level keys in document order (the objects are flat).
    text.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(k, _)| k.to_string())
        })
        .collect()
}

#[test]
fn plan_json_has_exactly_the_documented_keys() {
    let o = fusion(&["plan", "--queries", "8", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(keys_in_order(&text), KEYS);
    assert_eq!(v["queries"], 8);
    assert_eq!(v["lambda"], 40);
    assert_eq!(v["min_public"], 100);
    assert_eq!(v["copies"], 8);
    assert_eq!(v["public"], 100);
    assert_eq!(v["total"], 164);
    assert_eq!(v["cost"], 20.5);
    assert!((v["log2_paper_bound"].as_f64().unwrap() + 40.311).abs() < 0.01);
}

#[test]
fn plan_json_with_threshold_adds_the_slack_keys() {
    let o = fusion(&["plan", "--queries", "8", "--threshold", "0.95", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: Vec<&str> = KEYS.iter().chain(SLACK_KEYS.iter()).copied().collect();
    assert_eq!(keys_in_order(&text), want);
    assert_eq!(v["threshold"], 0.95);
    assert_eq!(v["slack"], 5);
    assert!((v["log2_slack_bound"].as_f64().unwrap() + 33.242).abs() < 0.01);
    assert_eq!(v["slack_copies"], 10);
    assert_eq!(v["slack_public"], 100);
    assert_eq!(v["slack_cost"], 22.5);
}

#[test]
fn plan_text_output_reports_the_plan() {
    let o = fusion(&["plan", "--queries", "8", "--threshold", "0.95"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("copies B                8"), "{text}");
    assert!(text.contains("-33.24"), "{text}");
    assert!(text.contains("NOT met"), "{text}");
    assert!(text.contains("B = 10, T = 100, N = 180"), "{text}");
}

#[test]
fn plan_table_reproduces_paper_table_1() {
    let o = fusion(&["plan", "--table"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for (r, b) in [
        ("2^3", 8),
        ("2^5", 7),
        ("2^7", 6),
        ("2^9", 5),
        ("2^13", 4),
        ("2^19", 3),
    ] {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(r))
            .unwrap_or_else(|| panic!("no row for {r}: {text}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], b.to_string(), "{line}");
        assert_eq!(cols[2], "100", "{line}");
    }
    let o = fusion(&["plan", "--table", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
    assert_eq!(v[5]["queries"], 1 << 19);
    assert_eq!(v[5]["copies"], 3);
}

#[test]
fn bad_arguments_exit_with_code_2_and_a_message() {
    for (args, needle) in [
        (vec!["plan", "--queries", "0"], "R must be at least 1"),
        (
            vec!["plan", "--queries", "8", "--lambda", "0"],
            "lambda must be in 1..=256",
        ),
        (
            vec!["plan", "--queries", "8", "--threshold", "0"],
            "threshold must be in (0, 1]",
        ),
        (
            vec!["plan", "--queries", "8", "--threshold", "1.5"],
            "threshold must be in (0, 1]",
        ),
        (
            vec!["plan", "--queries", "8", "--threshold", "-0.1"],
            "threshold must be in (0, 1]",
        ),
        (
            vec!["plan", "--queries", "8", "--threshold", "abc"],
            "threshold must be in (0, 1]",
        ),
        (vec!["plan", "--queries", "x"], "R must be an integer"),
        (vec!["plan", "--queries", "-3"], "R must be an integer"),
        (
            vec!["plan", "--queries", "8", "--lambda", "-1"],
            "lambda must be an integer",
        ),
        (vec!["plan"], "required"),
        (
            vec!["plan", "--table", "--queries", "8"],
            "cannot be used with",
        ),
    ] {
        let o = fusion(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn threshold_one_keeps_the_paper_plan() {
    let o = fusion(&["plan", "--queries", "32", "--threshold", "1", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["slack"], 0);
    assert_eq!(v["slack_copies"], v["copies"]);
    assert_eq!(v["slack_public"], v["public"]);
    assert_eq!(v["log2_slack_bound"], v["log2_paper_bound"]);
}
