//! `fusion attack muse`: a malicious client recovers bc-mlp's weights, and a
//! small convolutional network's layer by layer, by shifting its shares,
//! against a server in the same process over QUIC on 127.0.0.1: on a
//! backend whose client shares are chosen online (cheetah), on one that
//! fixes them in preprocessing (delphi: the client picks its garbled-circuit
//! inputs there), and through a server that reveals only labels.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn muse_with(model: &Path, backend: &str, extra: &[&str], out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fusion"))
        .env("FUSION_DATA", data())
        .args(["attack", "muse", "--local", "--model"])
        .arg(model)
        .args(["--backend", backend])
        .args(extra)
        .arg("--json")
        .arg(out)
        .output()
        .expect("run fusion attack muse")
}

fn muse(backend: &str, out: &Path) -> std::process::Output {
    muse_with(&data().join("models/bc-mlp"), backend, &[], out)
}

fn report(run: &std::process::Output, out: &Path) -> serde_json::Value {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out).expect("json")).expect("parse")
}

#[test]
fn muse_share_shifting_recovers_every_bc_mlp_parameter_from_322_rows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("muse.json");
    let r = report(&muse("cheetah", &out), &out);
    // Last layer: 1 all-off row + 16 impulses. Hidden layer (2 classes, so
    // 2 units per row): 1 all-off row + 8 groups x (4 reference + 4
    // calibration + 30 impulse rows).
    assert_eq!(r["queries"], 322);
    assert_eq!(r["parameters"], 530);
    assert_eq!(r["unobservable"], 0);
    let err = r["max_relative_error"].as_f64().expect("error");
    assert!(err < 1e-3, "max relative weight error {err}");
    for b in r["layer_bias_errors"].as_array().expect("bias errors") {
        assert!(b.as_f64().expect("f64") < 1e-2, "{b}");
    }
    assert_eq!(r["agreement"].as_f64(), Some(1.0));
}

/// A small convolutional network with seeded weights: conv 3x3 (1 -> 3
/// channels) on 8 x 8, ReLU, 2 x 2 average pool, dense 27 -> 6, ReLU, dense
/// 6 -> 4.
fn small_cnn(dir: &Path) {
    use fusion_nn::Model;
    use fusion_nn::graph::GraphBuilder;
    use fusion_nn::model::{ModelMeta, Params, Preprocess, WeightDtype};
    use rand::rngs::ChaCha20Rng;
    use rand::{Rng, SeedableRng};

    let mut g = GraphBuilder::new(vec![1, 8, 8]);
    let x = g.input();
    let c = g.conv2d("conv", x, 3, 3, 1, 0);
    let r = g.relu("relu1", c);
    let p = g.avg_pool("pool", r, 2, 2, 0);
    let f = g.flatten("flat", p);
    let d = g.dense("fc1", f, 6);
    let r = g.relu("relu2", d);
    g.dense("fc2", r, 4);
    let graph = g.finish().expect("graph");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut params = Params::default();
    for spec in graph.param_specs().expect("specs") {
        let n: usize = spec.shape.iter().product();
        let data = (0..n)
            .map(|_| (rng.next_u32() as f64 / f64::from(u32::MAX) - 0.5) as f32)
            .collect();
        params.insert(
            spec.name.clone(),
            fusion_nn::Tensor::new(spec.shape.clone(), data).expect("tensor"),
        );
    }
    let meta = ModelMeta {
        name: "small-cnn".into(),
        description: "test".into(),
        dataset: None,
        classes: 4,
        preprocess: Preprocess::Identity,
        training: None,
        evaluation: None,
    };
    Model::new(meta, graph, params)
        .expect("model")
        .save(dir, WeightDtype::F32)
        .expect("save");
}

/// Runs the attack on [`small_cnn`] and checks every layer is recovered,
/// biases within `bias_error` (their readout is noise-limited).
fn recovers_the_small_cnn(backend: &str, extra: &[&str], bias_error: f64) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tmp");
    let model = tmp.path().join("small-cnn");
    small_cnn(&model);
    let out = tmp.path().join("muse.json");
    let r = report(&muse_with(&model, backend, extra, &out), &out);
    // conv 27 + 3, fc1 162 + 6, fc2 24 + 4.
    assert_eq!(
        r["parameters"].as_u64().expect("u64") + r["unobservable"].as_u64().expect("u64"),
        226
    );
    assert_eq!(r["unobservable"], 0);
    let weights = r["layer_weight_errors"].as_array().expect("errors");
    assert_eq!(weights.len(), 3);
    for (l, e) in weights.iter().enumerate() {
        assert!(e.as_f64().expect("f64") < 2e-2, "layer {l}: {e} in {r}");
    }
    for (l, e) in r["layer_bias_errors"]
        .as_array()
        .expect("errors")
        .iter()
        .enumerate()
    {
        assert!(
            e.as_f64().expect("f64") < bias_error,
            "layer {l} bias: {e} in {r}"
        );
    }
    r
}

#[test]
fn muse_share_shifting_recovers_a_convolutional_network_layer_by_layer() {
    // The first layer's bias readout is noise-limited (the one-bit truncation
    // errors): 7 runs gave 0.004 to 0.008, and one 0.020.
    recovers_the_small_cnn("cheetah", &[], 3e-2);
}

/// The layer-by-layer attack through a label-only server: convolution,
/// pooling and the hidden dense layer read through logit differences.
#[test]
fn a_label_only_server_gives_up_a_convolutional_network_too() {
    let r = recovers_the_small_cnn("cheetah", &["--output-mode", "label"], 5e-2);
    assert_eq!(r["output_mode"], "label");
}

/// DELPHI fixes the client's share of each ReLU input in preprocessing
/// (the labels of its garbled-circuit input, fetched by OT); MUSE's attack
/// on DELPHI shifts that share there, and the same 322 rows recover bc-mlp.
#[test]
fn muse_on_delphi_picks_its_garbled_circuit_inputs_in_preprocessing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("muse.json");
    let r = report(&muse("delphi", &out), &out);
    assert_eq!(r["queries"], 322);
    assert_eq!(r["parameters"], 530);
    let err = r["max_relative_error"].as_f64().expect("error");
    assert!(err < 1e-3, "max relative weight error {err}");
    assert_eq!(r["agreement"].as_f64(), Some(1.0));
}

/// A server that reveals only the class does not stop share shifting: the
/// client shifts its share of the logits before the secure argmax and
/// reads each logit difference by binary search, at one row per comparison.
#[test]
fn label_only_output_costs_the_attack_rows_but_stops_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("muse.json");
    let run = muse_with(
        &data().join("models/bc-mlp"),
        "cheetah",
        &["--output-mode", "label"],
        &out,
    );
    let r = report(&run, &out);
    assert_eq!(r["output_mode"], "label");
    assert_eq!(r["parameters"], 530);
    let rows = r["queries"].as_u64().expect("queries");
    assert!(rows > 322 * 10, "{rows} rows");
    let err = r["max_relative_error"].as_f64().expect("error");
    assert!(err < 1e-3, "max relative weight error {err}");
    assert_eq!(r["agreement"].as_f64(), Some(1.0));
}

/// Kills and reaps the child when dropped.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fusion() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fusion"));
    c.env("FUSION_DATA", data());
    c
}

fn ok(out: std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fusion keygen ARGS --out OUT`.
fn keygen(args: &[&str], out: &Path) {
    ok(fusion()
        .arg("keygen")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("keygen"));
}

/// Starts `fusion serve` on bc-mlp with the keys in `dir/keys` and `extra`
/// arguments; returns it with the address it printed.
fn serve(dir: &Path, extra: &[&str]) -> (Guard, String) {
    use std::io::{BufRead, BufReader};
    let mut server = Guard(
        fusion()
            .arg("serve")
            .arg("--model")
            .arg(data().join("models/bc-mlp"))
            .args(["--listen", "127.0.0.1:0", "--cert"])
            .arg(dir.join("keys/cert.pem"))
            .arg("--key")
            .arg(dir.join("keys/key.pem"))
            .args(["--timeout", "60"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let stdout = server.0.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on "))
        .expect("address line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .to_string();
    (server, addr)
}

/// Deviating clients (one killed in the middle of its attack, and complete
/// attacks on two backends) neither stop nor hang a real `fusion serve`: an
/// honest client is served afterwards.
#[test]
fn a_deviating_client_neither_stops_nor_hangs_the_server_for_honest_clients() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    keygen(&[], &dir.join("keys"));
    for (extra, file) in [
        (&["--count", "2"][..], "q.csv"),
        (
            &["--offset", "4", "--count", "100", "--with-labels"][..],
            "p.csv",
        ),
    ] {
        ok(fusion()
            .args(["samples", "--data", "breast-cancer"])
            .args(extra)
            .arg("--out")
            .arg(dir.join(file))
            .output()
            .expect("samples"));
    }
    let (mut server, addr) = serve(dir, &["--backend", "cheetah,delphi"]);
    let attack = |backend: &str| {
        let mut c = fusion();
        c.args(["attack", "muse", "--server", &addr, "--server-cert"])
            .arg(dir.join("keys/cert.pem"))
            .arg("--model")
            .arg(data().join("models/bc-mlp"))
            .args(["--backend", backend, "--chunk", "16", "--json"])
            .arg(dir.join(format!("muse-{backend}.json")));
        c
    };
    // Killed once its first batch of shifted rows is done, mid-session.
    let mut vanishing = attack("cheetah")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("attack");
    let stderr = vanishing.stderr.take().expect("stderr");
    let first_batch = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .any(|l| l.contains(" rows ("));
    vanishing.kill().expect("kill");
    vanishing.wait().expect("reap");
    assert!(first_batch, "the attack never finished a batch");
    ok(attack("delphi").output().expect("attack"));
    ok(attack("cheetah").output().expect("attack"));
    let honest = fusion()
        .args(["query", "--server", &addr, "--server-cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--queries")
        .arg(dir.join("q.csv"))
        .arg("--public")
        .arg(dir.join("p.csv"))
        .args(["--quiet", "--timeout", "60"])
        .output()
        .expect("query");
    let text = String::from_utf8_lossy(&honest.stdout);
    assert_eq!(honest.status.code(), Some(0), "{text}");
    assert!(text.contains("ACCEPT"), "{text}");
    assert!(
        server.0.try_wait().expect("wait").is_none(),
        "the server is still running"
    );
}

/// A per-client row quota (`fusion serve --client-ca --quota`) stops the
/// attack at the quota: the server refuses the batch that would pass it,
/// before any of its protocol work, and the attack says how far it got.
#[test]
fn a_per_client_quota_stops_the_attack_at_its_limit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    keygen(&[], &dir.join("keys"));
    keygen(&["--ca"], &dir.join("ca"));
    let ca = dir.join("ca").display().to_string();
    keygen(&["--client", "mallory", "--ca", &ca], &dir.join("clients"));
    let ca_pem = dir.join("ca/ca.pem").display().to_string();
    let db = dir.join("quota.redb").display().to_string();
    let (_server, addr) = serve(
        dir,
        &[
            "--client-ca",
            &ca_pem,
            "--quota",
            "100/1d",
            "--quota-db",
            &db,
        ],
    );
    let out = fusion()
        .args(["attack", "muse", "--server", &addr, "--server-cert"])
        .arg(dir.join("keys/cert.pem"))
        .arg("--client-cert")
        .arg(dir.join("clients/mallory.pem"))
        .arg("--client-key")
        .arg(dir.join("clients/mallory-key.pem"))
        .arg("--model")
        .arg(data().join("models/bc-mlp"))
        .args(["--chunk", "40", "--json"])
        .arg(dir.join("muse.json"))
        .output()
        .expect("attack");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    // 17 last-layer rows, then batches of 40: 57 and 97 pass, 137 would not.
    assert!(
        stderr.contains("refused a batch of 40 rows after 97")
            && stderr.contains("quota of 100 samples per 86400 s"),
        "{stderr}"
    );
    assert!(!dir.join("muse.json").exists());
}
