//! `fusion experiment extraction` as a user runs it: JSON lines and clear
//! refusals (exit 2) of what is not supported.

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn model(name: &str) -> PathBuf {
    repo_data().join("models").join(name)
}

fn run(args: &[&str], model_name: &str, json: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["experiment", "extraction", "--model"])
        .arg(model(model_name))
        .args(args)
        .arg("--json")
        .arg(json)
        .env("FUSION_DATA", repo_data())
        .output()
        .expect("run fusion")
}

fn refused(args: &[&str], model_name: &str, needle: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(args, model_name, &dir.path().join("out.jsonl"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {err}");
    assert!(err.contains(needle), "{args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs a command that must succeed and write one JSON line; the line.
fn one_line(args: &[&str], model_name: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.jsonl");
    let out = run(args, model_name, &json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(std::fs::read_to_string(&json).expect("json").trim()).expect("one line")
}

#[test]
fn extraction_writes_one_json_line_per_budget_with_the_documented_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("out.jsonl");
    let out = run(
        &[
            "--attack",
            "carlini",
            "--budget",
            "3000,30000",
            "--seed",
            "1",
            "--oracle",
            "f64",
        ],
        "bc-mlp",
        &json,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("json");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (v, budget) in lines.iter().zip([3000u64, 30000]) {
        for key in [
            "attack",
            "defence",
            "oracle",
            "budget",
            "queries_used",
            "rows_evaluated",
            "stolen_accuracy",
            "server_accuracy",
            "max_weight_error",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["attack"], "carlini");
        assert_eq!(v["defence"], "none");
        assert_eq!(v["oracle"], "f64");
        assert_eq!(v["budget"], budget);
        assert!(v["queries_used"].as_u64().expect("u64") <= budget);
        assert_eq!(v["rows_evaluated"], v["queries_used"]);
    }
    // With the larger budget the f64 oracle gives the weights almost exactly.
    assert!(lines[1]["max_weight_error"].as_f64().expect("f64") < 1e-6);
}

#[test]
fn extraction_refuses_bad_budgets_models_and_modes_with_exit_2() {
    let c = ["--attack", "carlini", "--seed", "1"];
    refused(&[&c[..], &["--budget", "0"]].concat(), "bc-mlp", "positive");
    refused(
        &[
            &c[..],
            &[
                "--budget",
                "1000",
                "--defence",
                "reverse-sigmoid",
                "--beta",
                "1.5",
            ],
        ]
        .concat(),
        "bc-mlp",
        "beta",
    );
    refused(
        &[&c[..], &["--budget", "1000", "--defence", "label"]].concat(),
        "bc-mlp",
        "needs scores",
    );
    refused(
        &[&c[..], &["--budget", "1000"]].concat(),
        "mnist-cnn-weak",
        "conv2d",
    );
    refused(
        &[
            &c[..],
            &[
                "--budget",
                "100",
                "--oracle",
                "secure",
                "--public-count",
                "0",
            ],
        ]
        .concat(),
        "bc-mlp",
        "--public-count must be between 1 and",
    );
    refused(
        &["--attack", "jbda", "--budget", "100", "--seeds", "0"],
        "bc-mlp",
        "--seeds",
    );
}

#[test]
fn the_secure_oracle_counts_fusions_copies_and_public_samples_as_evaluated_rows() {
    let line = one_line(
        &[
            "--attack", "carlini", "--budget", "200", "--seed", "1", "--oracle", "secure",
        ],
        "bc-mlp",
    );
    assert_eq!(line["oracle"], "secure-cheetah");
    let used = line["queries_used"].as_u64().expect("queries");
    let rows = line["rows_evaluated"].as_u64().expect("rows");
    assert!(used > 0 && used <= 200, "{line}");
    // Every Fusion run adds at least one more copy per query and 100 public samples.
    assert!(rows >= 2 * used + 100, "{line}");
}

#[test]
fn the_label_defence_through_the_secure_oracle_is_the_servers_output_mode_on_shares() {
    let line = one_line(
        &[
            "--attack",
            "jbda",
            "--defence",
            "label",
            "--oracle",
            "secure",
            "--budget",
            "60",
            "--seeds",
            "30",
            "--seed",
            "1",
        ],
        "bc-mlp",
    );
    assert_eq!(line["oracle"], "secure-cheetah-label");
    assert_eq!(line["defence"], "label");
    assert_eq!(line["queries_used"], 60);
}

#[test]
fn the_reverse_sigmoid_defence_runs_the_attack_on_perturbed_probabilities() {
    let v = one_line(
        &[
            "--attack",
            "carlini",
            "--budget",
            "2000",
            "--seed",
            "1",
            "--defence",
            "reverse-sigmoid",
            "--beta",
            "0.5",
            "--gamma",
            "0.25",
        ],
        "bc-mlp",
    );
    assert_eq!(v["defence"], "reverse-sigmoid");
    assert_eq!(v["oracle"], "plaintext-reverse-sigmoid");
    // With two classes the perturbation keeps the service's labels.
    assert!(v["server_accuracy"].as_f64().expect("f64") > 0.9, "{v}");
}
