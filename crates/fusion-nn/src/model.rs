//! Models: a graph, its parameters and public metadata; load and save.
//!
//! # Files
//!
//! A model is a directory with two files:
//!
//! * `model.json`: the **architecture and public metadata**:
//!   ```json
//!   {
//!     "format": "fusion-nn-model/1",
//!     "meta": { "name": "bc-mlp", "description": "...", "dataset": "breast-cancer",
//!               "classes": 2, "preprocess": {"type": "standardize", "mean": [...], "std": [...]},
//!               "training": {...}, "evaluation": {...} },
//!     "weights": { "file": "weights.safetensors", "dtype": "f32" },
//!     "graph": { "input_shape": [30], "nodes": [ {"name": "input", "op": {"type": "input"}, "inputs": []}, ... ] }
//!   }
//!   ```
//! * the weights in [safetensors](https://github.com/huggingface/safetensors):
//!   one tensor per parameter, named as in [`crate::graph::Graph::param_specs`]
//!   (`"conv1.weight"`, ...), dtype `F32`, `F16` or `BF16` (converted to f32 on
//!   load; a model saved in 16 bits is evaluated on exactly what is stored).
//!
//! Loading checks everything and returns a typed [`NnError`], never panics: bad
//! JSON or an unknown format ([`NnError::Architecture`]), a malformed graph
//! ([`NnError::Graph`] / [`NnError::Shape`]), a truncated or unparsable weights
//! file or a non-finite value ([`NnError::Weights`]), a missing tensor
//! ([`NnError::MissingWeight`]), a tensor of the wrong shape
//! ([`NnError::WeightShape`]) or one the graph does not use
//! ([`NnError::UnexpectedWeight`]).
//!
//! # Preprocessing is public
//!
//! [`Preprocess`] maps a raw sample (pixels 0..255, raw clinical features) to the
//! network input. It is part of the *public* metadata and the client applies it in
//! the clear, before fixed-point encoding, so the encoded inputs are O(1) and the
//! ring needs no headroom for raw feature ranges (breast-cancer areas reach 2500).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::ChaCha20Rng;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};
use crate::graph::{Graph, NodeId, ParamKind, ParamSpec, param_key};
use crate::tensor::Tensor;

/// The architecture file's name inside a model directory.
pub const ARCH_FILE: &str = "model.json";
/// The default weights file's name inside a model directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The architecture format tag this version reads and writes.
pub const FORMAT: &str = "fusion-nn-model/1";

/// Named parameter tensors (`"<node>.<kind>"` to tensor).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(pub BTreeMap<String, Tensor<f32>>);

impl Params {
    /// The tensor stored under `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor<f32>> {
        self.0.get(name)
    }

    /// Stores a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor<f32>) {
        self.0.insert(name.into(), t);
    }

    /// Total number of scalars.
    pub fn scalars(&self) -> usize {
        self.0.values().map(Tensor::len).sum()
    }
}

/// Public input preprocessing, applied by the client in the clear (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preprocess {
    /// The raw sample is the network input.
    Identity,
    /// `x * factor` (e.g. `1/255` for pixels).
    Scale {
        /// The factor.
        factor: f32,
    },
    /// `(x - mean[i]) / std[i]` per feature (flattened sample index `i`).
    Standardize {
        /// Per-feature means (of the training split).
        mean: Vec<f32>,
        /// Per-feature standard deviations (positive).
        std: Vec<f32>,
    },
}

impl Preprocess {
    /// Checks the parameters against the per-sample length.
    pub fn validate(&self, sample_len: usize) -> std::result::Result<(), String> {
        match self {
            Preprocess::Identity => Ok(()),
            Preprocess::Scale { factor } if factor.is_finite() => Ok(()),
            Preprocess::Scale { factor } => Err(format!("scale factor {factor} is not finite")),
            Preprocess::Standardize { mean, std } => {
                if mean.len() != sample_len || std.len() != sample_len {
                    return Err(format!(
                        "standardize has {} means and {} stds for samples of {sample_len} values",
                        mean.len(),
                        std.len()
                    ));
                }
                if mean.iter().any(|m| !m.is_finite())
                    || std.iter().any(|s| !(s.is_finite() && *s > 0.0))
                {
                    return Err("standardize needs finite means and positive finite stds".into());
                }
                Ok(())
            }
        }
    }

    /// Applies the preprocessing to a batch of raw samples.
    pub fn apply(&self, raw: &Tensor<f32>) -> Result<Tensor<f32>> {
        self.validate(raw.sample_len())
            .map_err(NnError::InvalidArgument)?;
        Ok(match self {
            Preprocess::Identity => raw.clone(),
            Preprocess::Scale { factor } => raw.map(|v| v * factor),
            Preprocess::Standardize { mean, std } => {
                let n = raw.sample_len();
                let data = raw
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean[i % n]) / std[i % n])
                    .collect();
                Tensor::new(raw.shape().to_vec(), data)?
            }
        })
    }
}

/// How a model was trained (recorded by the trainer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The recipe name (`fusion train --recipe NAME`).
    pub recipe: String,
    /// The command that reproduces the model.
    pub command: String,
    /// RNG seed.
    pub seed: u64,
    /// Epochs.
    pub epochs: usize,
    /// Training samples used.
    pub train_samples: usize,
    /// Wall-clock seconds of training.
    pub seconds: f64,
    /// Where it ran (CPU model, threads).
    pub machine: String,
}

/// Accuracy of a model on its dataset's test split, float and fixed point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Which split (`"test"`).
    pub split: String,
    /// Samples evaluated.
    pub samples: usize,
    /// f32 engine accuracy.
    pub float_accuracy: f64,
    /// Fixed-point engine accuracy.
    pub fixed_accuracy: f64,
    /// Fraction of samples whose fixed-point argmax equals the float argmax.
    pub argmax_agreement: f64,
    /// Largest `|fixed - float|` over all logits.
    #[serde(default)]
    pub max_logit_error: f64,
    /// Ring bits `l` of the fixed-point evaluation.
    pub ring_bits: u32,
    /// Fractional bits `f` of the fixed-point evaluation.
    pub frac_bits: u32,
}

/// Public metadata of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Model name (`"mnist-cnn"`).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Dataset it was trained for (registry name), or `None` for random weights.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Number of classes (the output width).
    pub classes: usize,
    /// Input preprocessing (public, applied by the client).
    pub preprocess: Preprocess,
    /// Training record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingInfo>,
    /// Measured accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

#[cfg(test)]
impl ModelMeta {
    /// Metadata of an anonymous test model with `classes` classes and no
    /// preprocessing.
    pub(crate) fn for_tests(classes: usize) -> Self {
        ModelMeta {
            name: "t".into(),
            description: String::new(),
            dataset: None,
            classes,
            preprocess: Preprocess::Identity,
            training: None,
            evaluation: None,
        }
    }
}

/// Storage precision of the weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// IEEE single precision.
    #[default]
    F32,
    /// IEEE half precision (10-bit mantissa; for large layers such as LeNet's FC).
    F16,
    /// bfloat16 (8-bit mantissa).
    Bf16,
}

impl WeightDtype {
    fn safetensors(self) -> Dtype {
        match self {
            WeightDtype::F32 => Dtype::F32,
            WeightDtype::F16 => Dtype::F16,
            WeightDtype::Bf16 => Dtype::BF16,
        }
    }

    /// Rounds an f32 to this precision and back.
    pub fn round(self, v: f32) -> f32 {
        match self {
            WeightDtype::F32 => v,
            WeightDtype::F16 => half::f16::from_f32(v).to_f32(),
            WeightDtype::Bf16 => half::bf16::from_f32(v).to_f32(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightsRef {
    file: String,
    dtype: WeightDtype,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    format: String,
    meta: ModelMeta,
    weights: WeightsRef,
    graph: Graph,
}

/// A network with its parameters and public metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Public metadata.
    pub meta: ModelMeta,
    /// The architecture.
    pub graph: Graph,
    /// The parameters (server-private in the two-party setting).
    pub params: Params,
}

impl Model {
    /// A model from its parts, validated.
    pub fn new(meta: ModelMeta, graph: Graph, params: Params) -> Result<Self> {
        let m = Model {
            meta,
            graph,
            params,
        };
        m.validate()?;
        Ok(m)
    }

    /// Checks the graph, that every parameter is present with the right shape
    /// and finite, that no extra parameter exists, and the metadata.
    pub fn validate(&self) -> Result<()> {
        let mem = PathBuf::from("<memory>");
        let specs = self.graph.param_specs()?;
        for spec in &specs {
            let t = self
                .params
                .get(&spec.name)
                .ok_or_else(|| NnError::MissingWeight {
                    path: mem.clone(),
                    name: spec.name.clone(),
                })?;
            if t.shape() != spec.shape.as_slice() {
                return Err(NnError::WeightShape {
                    path: mem,
                    name: spec.name.clone(),
                    expected: spec.shape.clone(),
                    found: t.shape().to_vec(),
                });
            }
            if t.data().iter().any(|v| !v.is_finite()) {
                return Err(NnError::Weights {
                    path: mem,
                    msg: format!("tensor `{}` has non-finite values", spec.name),
                });
            }
        }
        if let Some(extra) = self
            .params
            .0
            .keys()
            .find(|k| !specs.iter().any(|s| &s.name == *k))
        {
            return Err(NnError::UnexpectedWeight {
                path: mem,
                name: extra.clone(),
            });
        }
        self.validate_meta()
    }

    fn validate_meta(&self) -> Result<()> {
        let out = self.graph.output_shape()?;
        if out != [self.meta.classes] {
            return Err(NnError::Graph(format!(
                "the output shape {out:?} does not match {} classes",
                self.meta.classes
            )));
        }
        let len: usize = self.graph.input_shape.iter().product();
        self.meta.preprocess.validate(len).map_err(NnError::Graph)
    }

    /// A model with freshly initialised parameters: He-normal weights
    /// (variance `2 / fan_in`), zero biases, identity batch norms. Seeded.
    pub fn init(meta: ModelMeta, graph: Graph, seed: u64) -> Result<Self> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut params = Params::default();
        for spec in graph.param_specs()? {
            let n: usize = spec.shape.iter().product();
            let data: Vec<f32> = match spec.kind {
                ParamKind::Weight => {
                    let std = (2.0 / spec.fan_in as f64).sqrt();
                    (0..n)
                        .map(|_| (std * crate::util::normal(&mut rng)) as f32)
                        .collect()
                }
                ParamKind::Gamma | ParamKind::RunningVar => vec![1.0; n],
                ParamKind::Bias | ParamKind::Beta | ParamKind::RunningMean => vec![0.0; n],
            };
            params.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), data)?);
        }
        Model::new(meta, graph, params)
    }

    /// The parameter `kind` of node `id`.
    pub fn param(&self, id: NodeId, kind: ParamKind) -> Result<&Tensor<f32>> {
        let name = param_key(&self.graph.nodes[id].name, kind);
        self.params
            .get(&name)
            .ok_or_else(|| NnError::MissingWeight {
                path: PathBuf::from("<memory>"),
                name,
            })
    }

    /// The parameter specs of the graph.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        self.graph.param_specs()
    }

    /// Rounds every parameter to `dtype` in place (what a save in that dtype
    /// followed by a load gives).
    pub fn round_params(&mut self, dtype: WeightDtype) {
        for t in self.params.0.values_mut() {
            for v in t.data_mut() {
                *v = dtype.round(*v);
            }
        }
    }

    /// Serialises to `(model.json bytes, safetensors bytes)`.
    pub fn to_bytes(&self, dtype: WeightDtype) -> Result<(Vec<u8>, Vec<u8>)> {
        self.validate()?;
        let file = ModelFile {
            format: FORMAT.into(),
            meta: self.meta.clone(),
            weights: WeightsRef {
                file: WEIGHTS_FILE.into(),
                dtype,
            },
            graph: self.graph.clone(),
        };
        let mut json = serde_json::to_vec_pretty(&file).map_err(|e| NnError::Architecture {
            path: ARCH_FILE.into(),
            msg: e.to_string(),
        })?;
        json.push(b'\n');
        let mut views = Vec::new();
        for (name, t) in &self.params.0 {
            let mut bytes = Vec::with_capacity(t.len() * 4);
            for &v in t.data() {
                match dtype {
                    WeightDtype::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
                    WeightDtype::F16 | WeightDtype::Bf16 => {
                        let r = dtype.round(v);
                        if !r.is_finite() {
                            return Err(NnError::Weights {
                                path: WEIGHTS_FILE.into(),
                                msg: format!(
                                    "tensor `{name}` has value {v} outside the range of {dtype:?}"
                                ),
                            });
                        }
                        let b = if dtype == WeightDtype::F16 {
                            half::f16::from_f32(v).to_le_bytes()
                        } else {
                            half::bf16::from_f32(v).to_le_bytes()
                        };
                        bytes.extend_from_slice(&b);
                    }
                }
            }
            views.push((name.clone(), bytes, t.shape().to_vec()));
        }
        let tv: Vec<(String, safetensors::tensor::TensorView<'_>)> = views
            .iter()
            .map(|(name, bytes, shape)| {
                safetensors::tensor::TensorView::new(dtype.safetensors(), shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| NnError::Weights {
                        path: WEIGHTS_FILE.into(),
                        msg: e.to_string(),
                    })
            })
            .collect::<Result<_>>()?;
        let mut info = std::collections::HashMap::new();
        info.insert("format".to_string(), FORMAT.to_string());
        let st = safetensors::serialize(tv, Some(info)).map_err(|e| NnError::Weights {
            path: WEIGHTS_FILE.into(),
            msg: e.to_string(),
        })?;
        Ok((json, st))
    }

    /// Writes `model.json` and `weights.safetensors` into `dir` (created if needed).
    pub fn save(&self, dir: &Path, dtype: WeightDtype) -> Result<()> {
        let (json, st) = self.to_bytes(dtype)?;
        std::fs::create_dir_all(dir).map_err(|e| NnError::io(dir, e))?;
        let wpath = dir.join(WEIGHTS_FILE);
        std::fs::write(&wpath, st).map_err(|e| NnError::io(&wpath, e))?;
        let apath = dir.join(ARCH_FILE);
        std::fs::write(&apath, json).map_err(|e| NnError::io(&apath, e))?;
        Ok(())
    }

    /// Rewrites only `model.json` (e.g. to record an evaluation), keeping the weights file.
    pub fn save_metadata(&self, dir: &Path, dtype: WeightDtype) -> Result<()> {
        let (json, _) = self.to_bytes(dtype)?;
        let apath = dir.join(ARCH_FILE);
        std::fs::write(&apath, json).map_err(|e| NnError::io(&apath, e))
    }

    /// Loads a model directory.
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self::load_with_dtype(dir)?.0)
    }

    /// Loads a model directory and tells the stored weight precision.
    pub fn load_with_dtype(dir: &Path) -> Result<(Self, WeightDtype)> {
        let apath = dir.join(ARCH_FILE);
        let json = std::fs::read(&apath).map_err(|e| NnError::io(&apath, e))?;
        let file = parse_arch(&json, &apath)?;
        let wname = &file.weights.file;
        if wname.is_empty() || wname.contains('/') || wname.contains('\\') || wname == ".." {
            return Err(NnError::Architecture {
                path: apath,
                msg: format!(
                    "weights file name {wname:?} must be a plain file name in the model directory"
                ),
            });
        }
        let wpath = dir.join(wname);
        let bytes = std::fs::read(&wpath).map_err(|e| NnError::io(&wpath, e))?;
        let dtype = file.weights.dtype;
        Ok((build(file, &bytes, &wpath)?, dtype))
    }

    /// Builds a model from in-memory file contents (`model.json`, safetensors).
    pub fn from_bytes(json: &[u8], weights: &[u8]) -> Result<Self> {
        let file = parse_arch(json, Path::new(ARCH_FILE))?;
        build(file, weights, Path::new(WEIGHTS_FILE))
    }
}

fn parse_arch(json: &[u8], path: &Path) -> Result<ModelFile> {
    let file: ModelFile = serde_json::from_slice(json).map_err(|e| NnError::Architecture {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    if file.format != FORMAT {
        return Err(NnError::Architecture {
            path: path.to_path_buf(),
            msg: format!(
                "unknown format {:?} (this version reads {FORMAT:?})",
                file.format
            ),
        });
    }
    Ok(file)
}

fn build(file: ModelFile, bytes: &[u8], wpath: &Path) -> Result<Model> {
    let werr = |msg: String| NnError::Weights {
        path: wpath.to_path_buf(),
        msg,
    };
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| werr(format!("not a valid safetensors file: {e}")))?;
    let specs = file.graph.param_specs()?;
    let mut params = Params::default();
    for spec in &specs {
        let view = st.tensor(&spec.name).map_err(|_| NnError::MissingWeight {
            path: wpath.to_path_buf(),
            name: spec.name.clone(),
        })?;
        if view.shape() != spec.shape.as_slice() {
            return Err(NnError::WeightShape {
                path: wpath.to_path_buf(),
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(werr(format!(
                    "tensor `{}` has dtype {other:?}; only F32, F16, BF16 are read",
                    spec.name
                )));
            }
        };
        if data.iter().any(|v| !v.is_finite()) {
            return Err(werr(format!(
                "tensor `{}` has non-finite values",
                spec.name
            )));
        }
        params.insert(spec.name.clone(), Tensor::new(spec.shape.clone(), data)?);
    }
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|n| !specs.iter().any(|s| s.name == *n))
    {
        return Err(NnError::UnexpectedWeight {
            path: wpath.to_path_buf(),
            name: extra.to_string(),
        });
    }
    let model = Model {
        meta: file.meta,
        graph: file.graph,
        params,
    };
    model.validate_meta()?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;

    fn small() -> Model {
        let mut g = GraphBuilder::new(vec![1, 6, 6]);
        let x = g.input();
        let x = g.conv2d("conv", x, 3, 3, 1, 1);
        let x = g.batch_norm("bn", x);
        let x = g.relu("relu", x);
        let x = g.flatten("flat", x);
        g.dense("fc", x, 4);
        let meta = ModelMeta {
            name: "small".into(),
            description: String::new(),
            dataset: None,
            classes: 4,
            preprocess: Preprocess::Scale { factor: 0.5 },
            training: None,
            evaluation: None,
        };
        Model::init(meta, g.finish().expect("graph"), 3).expect("init")
    }

    #[test]
    fn save_and_load_round_trip_in_f32_and_f16() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = small();
        m.save(dir.path(), WeightDtype::F32).expect("save");
        assert_eq!(Model::load(dir.path()).expect("load"), m);

        m.save(dir.path(), WeightDtype::F16).expect("save f16");
        let (back, dtype) = Model::load_with_dtype(dir.path()).expect("load f16");
        assert_eq!(dtype, WeightDtype::F16);
        let mut rounded = m.clone();
        rounded.round_params(WeightDtype::F16);
        assert_eq!(back, rounded);
        assert_ne!(back, m);
    }

    #[test]
    fn truncated_weights_file_is_a_weights_error() {
        let (json, st) = small().to_bytes(WeightDtype::F32).expect("bytes");
        for cut in [0, 4, 9, st.len() / 2, st.len() - 1] {
            let err = Model::from_bytes(&json, &st[..cut]).expect_err("truncated");
            assert!(matches!(err, NnError::Weights { .. }), "cut {cut}: {err}");
        }
    }

    #[test]
    fn bad_json_is_an_architecture_error() {
        let (json, st) = small().to_bytes(WeightDtype::F32).expect("bytes");
        let err = Model::from_bytes(&json[..json.len() / 2], &st).expect_err("bad json");
        assert!(matches!(err, NnError::Architecture { .. }), "{err}");
        let other = String::from_utf8(json.clone())
            .expect("utf8")
            .replace(FORMAT, "fusion-nn-model/99");
        let err = Model::from_bytes(other.as_bytes(), &st).expect_err("format");
        assert!(err.to_string().contains("unknown format"), "{err}");
        let err = Model::from_bytes(b"{\"format\": 3}", &st).expect_err("types");
        assert!(matches!(err, NnError::Architecture { .. }));
    }

    fn with_params(m: &Model, f: impl FnOnce(&mut Params)) -> Vec<u8> {
        let mut params = m.params.clone();
        f(&mut params);
        let mut views = Vec::new();
        for (name, t) in &params.0 {
            let bytes: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
            views.push((name.clone(), bytes, t.shape().to_vec()));
        }
        let tv: Vec<_> = views
            .iter()
            .map(|(n, b, s)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
                )
            })
            .collect();
        safetensors::serialize(tv, None).expect("ser")
    }

    #[test]
    fn wrong_shape_missing_and_extra_tensors_are_typed_errors() {
        let m = small();
        let (json, _) = m.to_bytes(WeightDtype::F32).expect("bytes");

        let st = with_params(&m, |p| {
            p.insert(
                "fc.weight",
                Tensor::new(vec![4, 107], vec![0.0; 428]).expect("t"),
            );
        });
        match Model::from_bytes(&json, &st) {
            Err(NnError::WeightShape {
                name,
                expected,
                found,
                ..
            }) => {
                assert_eq!(name, "fc.weight");
                assert_eq!(expected, vec![4, 108]);
                assert_eq!(found, vec![4, 107]);
            }
            other => panic!("expected WeightShape, got {other:?}"),
        }

        let st = with_params(&m, |p| {
            p.0.remove("bn.running_var");
        });
        assert!(
            matches!(Model::from_bytes(&json, &st), Err(NnError::MissingWeight { name, .. }) if name == "bn.running_var")
        );

        let st = with_params(&m, |p| {
            p.insert("ghost.weight", Tensor::new(vec![1], vec![0.0]).expect("t"))
        });
        assert!(
            matches!(Model::from_bytes(&json, &st), Err(NnError::UnexpectedWeight { name, .. }) if name == "ghost.weight")
        );

        let st = with_params(&m, |p| {
            if let Some(t) = p.0.get_mut("conv.bias") {
                t.data_mut()[0] = f32::NAN;
            }
        });
        assert!(matches!(
            Model::from_bytes(&json, &st),
            Err(NnError::Weights { .. })
        ));
    }

    #[test]
    fn absurd_dimensions_are_errors_not_panics() {
        let (json, st) = small().to_bytes(WeightDtype::F32).expect("bytes");
        let text = String::from_utf8(json).expect("utf8");
        for (from, to) in [
            ("\"out_features\": 4", "\"out_features\": 4000000000000"),
            (
                "\"input_shape\": [\n      1,",
                "\"input_shape\": [\n      18446744073709551615,",
            ),
            ("\"padding\": 1", "\"padding\": 9223372036854775807"),
            ("\"kernel\": 3", "\"kernel\": 0"),
        ] {
            assert!(text.contains(from), "{from}");
            let bad = text.replace(from, to);
            let err = Model::from_bytes(bad.as_bytes(), &st).expect_err(to);
            assert!(
                matches!(
                    err,
                    NnError::Graph(_) | NnError::Shape { .. } | NnError::Architecture { .. }
                ),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let err = Model::load(Path::new("/nonexistent/model/dir")).expect_err("missing");
        assert!(matches!(err, NnError::Io { .. }));
    }

    #[test]
    fn preprocessing_is_validated_and_applied() {
        let p = Preprocess::Standardize {
            mean: vec![1.0, 2.0],
            std: vec![2.0, 4.0],
        };
        let x = Tensor::new(vec![1, 2], vec![3.0, 10.0]).expect("t");
        assert_eq!(p.apply(&x).expect("apply").data(), &[1.0, 2.0]);
        assert!(
            p.apply(&Tensor::new(vec![1, 3], vec![0.0; 3]).expect("t"))
                .is_err()
        );
        assert!(
            Preprocess::Standardize {
                mean: vec![0.0],
                std: vec![0.0]
            }
            .validate(1)
            .is_err()
        );
    }
}
