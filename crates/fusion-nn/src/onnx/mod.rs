//! ONNX import: reads an ONNX file and maps its graph to a [`Model`] (layer
//! graph, f32 parameters, public preprocessing).
//!
//! The file is decoded with the hand-written protobuf messages of [`proto`].
//! The decoder treats the file as untrusted: its size is capped
//! ([`MAX_FILE_BYTES`]), every tensor's data length is checked against its
//! dimensions before anything is allocated from them, per-sample sizes are
//! capped ([`MAX_SAMPLE_ELEMENTS`]), and every failure is an
//! [`NnError::Onnx`] (malformed file) or [`NnError::OnnxUnsupported`] (a
//! well-formed graph we cannot serve, naming the node, the operator and what
//! is supported), never a panic.
//!
//! # What is imported
//!
//! One float input `[batch, D]` or `[batch, C, H, W]` (the batch dimension may be
//! symbolic; every other dimension must be a number), and one float output (the
//! only float output of the graph, or the one named in [`ImportOptions::output`]).
//! Only the nodes the output depends on are imported; the others (e.g. the
//! `ArgMax` label output of a scikit-learn export) are listed in
//! [`Imported::notes`]. Every node on the way must map to a layer:
//!
//! | ONNX | becomes |
//! |---|---|
//! | `Sub` / `Div` by constants right after the input (`(x - m) / s`, either alone) | [`Preprocess::Standardize`] (the same f32 computation) |
//! | `Mul` of the input by a scalar constant | [`Preprocess::Scale`] (the same f32 computation) |
//! | `Gemm` (`transA = 0`, any `transB`, `alpha`, `beta`), `MatMul` by a constant matrix | `dense` (`alpha`, `beta` multiplied into the weights and bias) |
//! | `Add` of a constant right after `MatMul` / `Gemm` / `Conv` | that layer's bias |
//! | `Conv` (2-D, square kernel, equal strides, equal pads, dilations 1, `group = 1`, `auto_pad` `NOTSET` or `VALID`) | `conv2d` |
//! | `BatchNormalization` (inference) on `[C, H, W]` | `batch_norm2d` (folded into the preceding conv by the fixed-point lowering) |
//! | `BatchNormalization` on `[D]` right after a `Gemm` / `MatMul` | folded into that layer's weights and bias (f64) |
//! | `Relu` | `relu` |
//! | `MaxPool`, `AveragePool` (square kernel, equal strides and pads, `ceil_mode = 0`, dilations 1; average pools with padding need `count_include_pad = 1`) | `max_pool2d`, `avg_pool2d` |
//! | `GlobalAveragePool` | `global_avg_pool` |
//! | `Flatten` (`axis = 1`), `Reshape` to `[batch, -1]` or to the current shape | `flatten` (or nothing) |
//! | `Add` of two activations of one shape | `add` (residual connection) |
//! | `Identity`, `Dropout` (inference), `Cast` to float of a float value | removed |
//! | `Softmax` producing the output | dropped (the argmax is unchanged; the model outputs logits) |
//! | `Constant` | a constant |
//!
//! Every attribute is checked: an unknown attribute or an unsupported value is
//! an error, nothing is skipped silently.

pub mod proto;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message as _;

use crate::error::{NnError, Result};
use crate::graph::{Graph, Node, NodeId, Op, ParamKind, checked_numel, param_key};
use crate::model::{Model, ModelMeta, Params, Preprocess};
use crate::tensor::Tensor;
use proto::{AttributeProto, NodeProto, TensorProto, attribute_type, data_type};

/// Largest ONNX file the importer reads (256 MiB).
pub const MAX_FILE_BYTES: usize = 256 << 20;
/// Largest number of elements of one sample at any point of the network (2^24).
pub const MAX_SAMPLE_ELEMENTS: usize = 1 << 24;
/// Largest number of nodes of a graph.
pub const MAX_NODES: usize = 100_000;
/// Oldest and newest default-domain opset versions accepted.
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=28;

/// The operators the importer maps (for messages).
pub const SUPPORTED_OPS: &str = "Gemm, MatMul, Add, Sub, Div, Mul, Conv, Relu, MaxPool, AveragePool, \
GlobalAveragePool, BatchNormalization, Flatten, Reshape, Identity, Dropout, Cast (to float, of a float), \
Softmax (final), Constant";

/// Import settings.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The model's name in its metadata.
    pub name: String,
    /// The graph output to serve (default: the only float output).
    pub output: Option<String>,
}

/// The batch dimension of the ONNX input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDim {
    /// A symbol (any batch size).
    Symbolic(String),
    /// A fixed number (the model is still served for any batch size).
    Fixed(i64),
}

/// An imported model and what the import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The model (metadata: name, classes, preprocessing; no dataset yet).
    pub model: Model,
    /// The ONNX input's name.
    pub input_name: String,
    /// Its per-sample shape in the ONNX graph.
    pub onnx_input_shape: Vec<usize>,
    /// Its batch dimension.
    pub batch: BatchDim,
    /// The served output's name.
    pub output_name: String,
    /// `producer_name producer_version` of the file.
    pub producer: String,
    /// The default-domain opset.
    pub opset: i64,
    /// One line per imported ONNX node: what it became.
    pub mapping: Vec<String>,
    /// Things the user should know (dropped Softmax, ignored outputs, ...).
    pub notes: Vec<String>,
}

impl Imported {
    /// Makes the model take samples of `sample_shape` (the calibration data's):
    /// equal to the ONNX input, or `[C, H, W]` for an ONNX input `[C * H * W]`
    /// (then a `flatten` node is put first; the features are the same values in
    /// the same row-major order). Anything else is an [`NnError::InputShape`].
    pub fn adapt_input(&mut self, sample_shape: &[usize]) -> Result<()> {
        let g = &self.model.graph;
        if g.input_shape == sample_shape {
            return Ok(());
        }
        let flat = g.input_shape.len() == 1
            && sample_shape.len() > 1
            && checked_numel(sample_shape) == Some(g.input_shape[0]);
        if !flat {
            return Err(NnError::InputShape {
                expected: g.input_shape.clone(),
                found: sample_shape.to_vec(),
            });
        }
        let mut name = "input_flatten".to_string();
        while g.nodes.iter().any(|n| n.name == name) {
            name.push('_');
        }
        let mut nodes = Vec::with_capacity(g.nodes.len() + 1);
        nodes.push(g.nodes[0].clone());
        nodes.push(Node {
            name: name.clone(),
            op: Op::Flatten,
            inputs: vec![0],
        });
        for n in &g.nodes[1..] {
            let mut n = n.clone();
            for i in &mut n.inputs {
                *i += 1;
            }
            nodes.push(n);
        }
        let graph = Graph {
            input_shape: sample_shape.to_vec(),
            nodes,
        };
        self.model = Model::new(self.model.meta.clone(), graph, self.model.params.clone())?;
        self.mapping.push(format!(
            "(input) samples {sample_shape:?} are flattened to the ONNX input's [{}] by `{name}`",
            self.onnx_input_shape.iter().product::<usize>()
        ));
        Ok(())
    }
}

fn malformed(msg: impl Into<String>) -> NnError {
    NnError::Onnx(msg.into())
}

/// Decodes an ONNX file's bytes (size-capped, no panics on any input).
pub fn decode(bytes: &[u8]) -> Result<proto::ModelProto> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(malformed(format!(
            "{} bytes is more than the {MAX_FILE_BYTES} bytes the importer reads",
            bytes.len()
        )));
    }
    if bytes.is_empty() {
        return Err(malformed("the file is empty"));
    }
    let m = proto::ModelProto::decode(bytes)
        .map_err(|e| malformed(format!("not a valid ONNX (protobuf) file: {e}")))?;
    if m.graph.is_none() {
        return Err(malformed(
            "no graph in the file (not an ONNX model, or a truncated one)",
        ));
    }
    if m.ir_version.unwrap_or(0) <= 0 {
        return Err(malformed(
            "no IR version in the file (not an ONNX model, or a truncated one)",
        ));
    }
    Ok(m)
}

/// Encodes a model (for tests and tools that edit a decoded file).
pub fn encode(m: &proto::ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

/// Reads and imports an ONNX file.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported> {
    let meta = std::fs::metadata(path).map_err(|e| NnError::io(path, e))?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(malformed(format!(
            "{}: {} bytes is more than the {MAX_FILE_BYTES} bytes the importer reads",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
    import(&bytes, opts)
}

/// Imports an ONNX model from its bytes (see the module doc).
pub fn import(bytes: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let m = decode(bytes)?;
    let opset = default_opset(&m)?;
    let graph = m.graph.as_ref().ok_or_else(|| malformed("no graph"))?;
    if graph.node.len() > MAX_NODES {
        return Err(malformed(format!(
            "{} nodes is more than {MAX_NODES}",
            graph.node.len()
        )));
    }
    let mut cx = Converter::new(opts, opset);
    cx.load_initializers(graph, false)?;
    let (input_name, batch, onnx_shape) = cx.find_input(graph)?;
    let output_name = cx.find_output(graph)?;
    let needed = needed_nodes(graph, &output_name)?;
    for (i, n) in graph.node.iter().enumerate() {
        if !needed[i] {
            cx.notes.push(format!(
                "not imported (the served output `{output_name}` does not use it): node `{}` ({})",
                n.name.as_deref().unwrap_or(""),
                n.op_type.as_deref().unwrap_or("")
            ));
        }
    }
    cx.count_uses(graph, &needed, &output_name);
    cx.out_aliases = output_aliases(graph, &output_name);
    cx.load_initializers(graph, true)?;
    for (i, n) in graph.node.iter().enumerate() {
        if needed[i] {
            cx.convert(n)?;
        }
    }
    let out = match cx.vals.get(&output_name) {
        Some(Val::Act(a)) => a.clone(),
        Some(Val::Const(_)) => {
            return Err(malformed(format!(
                "the output `{output_name}` is a constant, not computed from the input"
            )));
        }
        None => {
            return Err(malformed(format!(
                "the output `{output_name}` is not produced by any node"
            )));
        }
    };
    if out.onnx.len() != 1 || cx.fshape(out.node).len() != 1 {
        return Err(malformed(format!(
            "the output `{output_name}` has per-sample shape {:?}; a classifier's output is [classes]",
            out.onnx
        )));
    }
    if out.node == 0 {
        return Err(malformed(format!(
            "the output `{output_name}` is the input itself (no layer)"
        )));
    }
    cx.commit_pre(&out)?;
    let classes = out.onnx[0];
    // The output must be the last node: nodes after it (dead branches) are dropped.
    let graph_out = cx.finish(out.node)?;
    let producer = format!(
        "{} {}",
        m.producer_name.as_deref().unwrap_or("unknown producer"),
        m.producer_version.as_deref().unwrap_or("")
    )
    .trim()
    .to_string();
    let name = if opts.name.is_empty() {
        "imported".to_string()
    } else {
        opts.name.clone()
    };
    let meta = ModelMeta {
        name,
        description: format!(
            "imported from ONNX (producer {producer}, opset {opset}, input `{input_name}` {onnx_shape:?}, output `{output_name}`)"
        ),
        dataset: None,
        classes,
        preprocess: cx.preprocess.clone().unwrap_or(Preprocess::Identity),
        training: None,
        evaluation: None,
    };
    let model = Model::new(meta, graph_out, std::mem::take(&mut cx.params))?;
    Ok(Imported {
        model,
        input_name,
        onnx_input_shape: onnx_shape,
        batch,
        output_name,
        producer,
        opset,
        mapping: cx.mapping,
        notes: cx.notes,
    })
}

fn default_opset(m: &proto::ModelProto) -> Result<i64> {
    let mut found = None;
    for o in &m.opset_import {
        let d = o.domain.as_deref().unwrap_or("");
        if d.is_empty() || d == "ai.onnx" {
            found = Some(o.version.unwrap_or(0));
        }
    }
    let v = found.ok_or_else(|| malformed("the model imports no default (ai.onnx) opset"))?;
    if !OPSETS.contains(&v) {
        return Err(NnError::OnnxUnsupported {
            node: "(model)".into(),
            op: "opset".into(),
            msg: format!(
                "default-domain opset {v} is not supported (supported: {} to {})",
                OPSETS.start(),
                OPSETS.end()
            ),
        });
    }
    Ok(v)
}

/// The output's name and the names it copies through `Identity` nodes.
fn output_aliases(graph: &proto::GraphProto, output: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    let mut cur = output.to_string();
    while names.insert(cur.clone()) {
        let next = graph
            .node
            .iter()
            .find(|n| n.op_type.as_deref() == Some("Identity") && n.output.first() == Some(&cur));
        match next.and_then(|n| n.input.first()) {
            Some(i) => cur = i.clone(),
            None => break,
        }
    }
    names
}

/// Which nodes the output depends on (by walking producers back from it).
fn needed_nodes(graph: &proto::GraphProto, output: &str) -> Result<Vec<bool>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            if o.is_empty() {
                continue;
            }
            if producer.insert(o.as_str(), i).is_some() {
                return Err(malformed(format!(
                    "value `{o}` is produced by more than one node"
                )));
            }
        }
    }
    let mut needed = vec![false; graph.node.len()];
    let mut stack = vec![output];
    let mut seen: HashSet<&str> = HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if let Some(&i) = producer.get(v) {
            needed[i] = true;
            if let Some(n) = graph.node.get(i) {
                stack.extend(n.input.iter().filter(|s| !s.is_empty()).map(String::as_str));
            }
        }
    }
    Ok(needed)
}

/// A constant tensor.
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    data: ConstData,
}

#[derive(Debug, Clone)]
enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            ConstData::F32(v) => Some(v),
            ConstData::I64(_) => None,
        }
    }

    fn numel(&self) -> usize {
        match &self.data {
            ConstData::F32(v) => v.len(),
            ConstData::I64(v) => v.len(),
        }
    }

    /// The dims without leading 1s.
    fn core_dims(&self) -> &[usize] {
        let k = self.dims.iter().take_while(|&&d| d == 1).count();
        self.dims.get(k..).unwrap_or(&[])
    }
}

/// What has been applied to the raw input before any layer (becomes the
/// model's public preprocessing).
#[derive(Debug, Clone, PartialEq)]
enum Pre {
    Raw,
    Sub(Vec<f32>),
    Done(Preprocess),
}

/// A value computed from the input.
#[derive(Debug, Clone)]
struct Act {
    /// The fusion node holding it.
    node: NodeId,
    /// Its per-sample shape in the ONNX graph (same elements, same order as the
    /// fusion node's shape; they differ only after GlobalAveragePool).
    onnx: Vec<usize>,
    /// For the input node: the preprocessing applied so far.
    pre: Pre,
    /// The fusion node is a dense/conv whose bias may still absorb an `Add`
    /// (or a dense that may absorb a batch norm): its ONNX value has one use.
    open: bool,
}

#[derive(Debug, Clone)]
enum Val {
    Const(Const),
    Act(Act),
}

struct Converter {
    opset: i64,
    vals: HashMap<String, Val>,
    uses: HashMap<String, usize>,
    nodes: Vec<Node>,
    shapes: Vec<Vec<usize>>,
    params: Params,
    names: HashSet<String>,
    preprocess: Option<Preprocess>,
    mapping: Vec<String>,
    notes: Vec<String>,
    output_override: Option<String>,
    out_aliases: HashSet<String>,
    init_names: HashSet<String>,
}

fn unsupported(n: &NodeProto, msg: impl Into<String>) -> NnError {
    NnError::OnnxUnsupported {
        node: n.name.clone().unwrap_or_default(),
        op: n.op_type.clone().unwrap_or_default(),
        msg: msg.into(),
    }
}

fn bad_node(n: &NodeProto, msg: impl std::fmt::Display) -> NnError {
    malformed(format!(
        "node `{}` ({}): {msg}",
        n.name.as_deref().unwrap_or(""),
        n.op_type.as_deref().unwrap_or("")
    ))
}

/// Decodes a tensor, checking its data length against its dims first.
fn tensor_const(t: &TensorProto, what: &str) -> Result<Const> {
    let bad = |m: String| malformed(format!("tensor `{what}`: {m}"));
    if t.data_location == Some(proto::DATA_LOCATION_EXTERNAL) || !t.external_data.is_empty() {
        return Err(bad(
            "its data is in an external file; the importer reads self-contained files only (save with all tensors inside)".into(),
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len().min(8));
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}")))?;
        dims.push(d);
    }
    if dims.len() > 8 {
        return Err(bad(format!("{} dimensions", dims.len())));
    }
    let numel = checked_numel(&dims).ok_or_else(|| bad(format!("dims {dims:?} are too large")))?;
    let raw = t.raw_data.as_deref();
    let dt = t.data_type.unwrap_or(0);
    let data = match dt {
        data_type::FLOAT => match raw {
            Some(r) => {
                if Some(r.len()) != numel.checked_mul(4) {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} floats, the raw data has {} bytes",
                        r.len()
                    )));
                }
                ConstData::F32(
                    r.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                )
            }
            None => {
                if t.float_data.len() != numel {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} floats, it has {}",
                        t.float_data.len()
                    )));
                }
                ConstData::F32(t.float_data.clone())
            }
        },
        data_type::DOUBLE => match raw {
            Some(r) => {
                if Some(r.len()) != numel.checked_mul(8) {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} doubles, the raw data has {} bytes",
                        r.len()
                    )));
                }
                ConstData::F32(
                    r.chunks_exact(8)
                        .map(|b| {
                            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                                as f32
                        })
                        .collect(),
                )
            }
            None => {
                if t.double_data.len() != numel {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} doubles, it has {}",
                        t.double_data.len()
                    )));
                }
                ConstData::F32(t.double_data.iter().map(|&v| v as f32).collect())
            }
        },
        data_type::INT64 => match raw {
            Some(r) => {
                if Some(r.len()) != numel.checked_mul(8) {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} int64s, the raw data has {} bytes",
                        r.len()
                    )));
                }
                ConstData::I64(
                    r.chunks_exact(8)
                        .map(|b| {
                            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                )
            }
            None => {
                if t.int64_data.len() != numel {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} int64s, it has {}",
                        t.int64_data.len()
                    )));
                }
                ConstData::I64(t.int64_data.clone())
            }
        },
        data_type::BOOL => {
            let vals: Vec<i64> = match raw {
                Some(r) if r.len() == numel => r.iter().map(|&b| i64::from(b != 0)).collect(),
                Some(r) => {
                    return Err(bad(format!(
                        "dims {dims:?} need {numel} bools, the raw data has {} bytes",
                        r.len()
                    )));
                }
                None if t.int32_data.len() == numel => {
                    t.int32_data.iter().map(|&b| i64::from(b != 0)).collect()
                }
                None => return Err(bad(format!("dims {dims:?} need {numel} bools"))),
            };
            ConstData::I64(vals)
        }
        other => {
            return Err(bad(format!(
                "data type {other} is not supported (float, double, int64 and bool constants are)"
            )));
        }
    };
    if let ConstData::F32(v) = &data
        && v.iter().any(|x| !x.is_finite())
    {
        return Err(bad("has non-finite values".into()));
    }
    Ok(Const { dims, data })
}

/// Broadcasts a constant (numpy rules) to one sample of `target` (the batch
/// dimension, if the constant has it, must be 1).
fn broadcast(c: &Const, target: &[usize]) -> Option<Vec<f32>> {
    let v = c.f32s()?;
    let mut full = vec![1usize];
    full.extend_from_slice(target);
    if c.dims.len() > full.len() {
        return None;
    }
    let off = full.len() - c.dims.len();
    for (i, &d) in c.dims.iter().enumerate() {
        if d != 1 && d != full[off + i] {
            return None;
        }
    }
    let n = checked_numel(target)?;
    // strides of the constant in the full index space
    let mut cstride = vec![0usize; full.len()];
    let mut s = 1usize;
    for i in (0..c.dims.len()).rev() {
        cstride[off + i] = if c.dims[i] == 1 { 0 } else { s };
        s = s.checked_mul(c.dims[i])?;
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; target.len()];
    for _ in 0..n {
        let mut k = 0usize;
        for (j, &ij) in idx.iter().enumerate() {
            k += ij * cstride[j + 1];
        }
        out.push(*v.get(k)?);
        for j in (0..target.len()).rev() {
            idx[j] += 1;
            if idx[j] < target[j] {
                break;
            }
            idx[j] = 0;
        }
    }
    Some(out)
}

/// The per-sample output shape of a layer the converter builds (the graph's
/// own check, [`Graph::shapes`], runs again on the finished graph).
fn infer_shape(node: &Node, x: &[usize]) -> Result<Vec<usize>> {
    let err = |msg: String| NnError::Shape {
        node: node.name.clone(),
        op: node.op.tag(),
        msg,
    };
    let window = |k: usize, s: usize, p: usize| -> Result<Vec<usize>> {
        let &[c, h, w] = x else {
            return Err(err(format!("needs [C, H, W], got {x:?}")));
        };
        match (
            crate::graph::window_out(h, k, s, p),
            crate::graph::window_out(w, k, s, p),
        ) {
            (Some(ho), Some(wo)) => Ok(vec![c, ho, wo]),
            _ => Err(err(format!(
                "a {k}x{k} window with padding {p} does not fit a {h}x{w} input"
            ))),
        }
    };
    Ok(match node.op {
        Op::Dense { out_features } => vec![out_features],
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            let mut s = window(kernel, stride, padding)?;
            s[0] = out_channels;
            s
        }
        Op::MaxPool2d {
            kernel,
            stride,
            padding,
        }
        | Op::AvgPool2d {
            kernel,
            stride,
            padding,
        } => window(kernel, stride, padding)?,
        Op::GlobalAvgPool => vec![x.first().copied().unwrap_or(0)],
        Op::Flatten => vec![checked_numel(x).ok_or_else(|| err("too large".into()))?],
        Op::Input | Op::Relu | Op::Square | Op::BatchNorm2d { .. } | Op::Add => x.to_vec(),
    })
}

/// Attributes of a node, checked against the names an op allows.
struct Attrs<'a> {
    node: &'a NodeProto,
    map: HashMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto, allowed: &[&str]) -> Result<Self> {
        let mut map = HashMap::new();
        for a in &node.attribute {
            let name = a.name.as_deref().unwrap_or("");
            if a.ref_attr_name.is_some() {
                return Err(unsupported(
                    node,
                    format!("attribute `{name}` refers to a function attribute"),
                ));
            }
            if !allowed.contains(&name) {
                return Err(unsupported(
                    node,
                    format!(
                        "attribute `{name}` is not supported (supported: {})",
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
            if map.insert(name, a).is_some() {
                return Err(bad_node(node, format!("attribute `{name}` given twice")));
            }
        }
        Ok(Attrs { node, map })
    }

    fn kind(&self, name: &str, want: i32, what: &str) -> Result<Option<&'a AttributeProto>> {
        match self.map.get(name) {
            None => Ok(None),
            Some(a) => match a.r#type {
                Some(t) if t != want => Err(bad_node(
                    self.node,
                    format!("attribute `{name}` is not {what}"),
                )),
                _ => Ok(Some(a)),
            },
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.kind(name, attribute_type::INT, "an integer")?
            .map_or(Some(default), |a| a.i)
            .ok_or_else(|| bad_node(self.node, format!("attribute `{name}` has no value")))
    }

    fn float(&self, name: &str, default: f32) -> Result<f32> {
        let v = self
            .kind(name, attribute_type::FLOAT, "a float")?
            .map_or(Some(default), |a| a.f)
            .ok_or_else(|| bad_node(self.node, format!("attribute `{name}` has no value")))?;
        if !v.is_finite() {
            return Err(bad_node(self.node, format!("attribute `{name}` is {v}")));
        }
        Ok(v)
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .kind(name, attribute_type::INTS, "a list of integers")?
            .map(|a| a.ints.clone()))
    }

    fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.kind(name, attribute_type::STRING, "a string")? {
            None => Ok(default.to_string()),
            Some(a) => Ok(String::from_utf8_lossy(a.s.as_deref().unwrap_or_default()).into_owned()),
        }
    }

    fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self
            .kind(name, attribute_type::TENSOR, "a tensor")?
            .and_then(|a| a.t.as_ref()))
    }
}

/// Window attributes of Conv / pools: (kernel, stride, padding).
fn window_attrs(
    n: &NodeProto,
    a: &Attrs<'_>,
    kernel_from_weights: Option<(usize, usize)>,
) -> Result<(usize, usize, usize)> {
    let auto_pad = a.string("auto_pad", "NOTSET")?;
    if auto_pad != "NOTSET" && auto_pad != "VALID" {
        return Err(unsupported(
            n,
            format!("auto_pad `{auto_pad}` is not supported (NOTSET with explicit pads, or VALID)"),
        ));
    }
    if let Some(d) = a.ints("dilations")?
        && d.iter().any(|&x| x != 1)
    {
        return Err(unsupported(
            n,
            format!("dilations {d:?} are not supported (only 1)"),
        ));
    }
    let kernel = match (a.ints("kernel_shape")?, kernel_from_weights) {
        (Some(k), Some((kh, kw))) => {
            if k.len() != 2 || k[0] as usize != kh || k[1] as usize != kw {
                return Err(bad_node(
                    n,
                    format!("kernel_shape {k:?} does not match the weights' {kh}x{kw}"),
                ));
            }
            (kh, kw)
        }
        (None, Some(k)) => k,
        (Some(k), None) => {
            if k.len() != 2 || k.iter().any(|&x| x <= 0 || x > 1 << 16) {
                return Err(unsupported(
                    n,
                    format!("kernel_shape {k:?} is not supported (2-D, positive)"),
                ));
            }
            (k[0] as usize, k[1] as usize)
        }
        (None, None) => return Err(bad_node(n, "no kernel_shape")),
    };
    if kernel.0 != kernel.1 {
        return Err(unsupported(
            n,
            format!(
                "a {}x{} kernel is not supported (square kernels only)",
                kernel.0, kernel.1
            ),
        ));
    }
    let strides = a.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
    if strides.len() != 2 || strides[0] != strides[1] || !(1..=1 << 16).contains(&strides[0]) {
        return Err(unsupported(
            n,
            format!("strides {strides:?} are not supported (two equal positive strides)"),
        ));
    }
    let pads = if auto_pad == "VALID" {
        vec![0; 4]
    } else {
        a.ints("pads")?.unwrap_or_else(|| vec![0; 4])
    };
    if pads.len() != 4 || pads.iter().any(|&p| p != pads[0]) || !(0..=1 << 16).contains(&pads[0]) {
        return Err(unsupported(
            n,
            format!("pads {pads:?} are not supported (the same padding on all four sides)"),
        ));
    }
    Ok((kernel.0, strides[0] as usize, pads[0] as usize))
}

impl Converter {
    fn new(opts: &ImportOptions, opset: i64) -> Self {
        let mut names = HashSet::new();
        names.insert("input".to_string());
        Converter {
            opset,
            vals: HashMap::new(),
            uses: HashMap::new(),
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
            }],
            shapes: vec![vec![]],
            params: Params::default(),
            names,
            preprocess: None,
            mapping: Vec::new(),
            notes: Vec::new(),
            output_override: opts.output.clone(),
            out_aliases: HashSet::new(),
            init_names: HashSet::new(),
        }
    }

    fn fshape(&self, id: NodeId) -> &[usize] {
        self.shapes.get(id).map_or(&[], Vec::as_slice)
    }

    /// Records the initializers' names; decodes those the imported nodes use
    /// (after [`Converter::count_uses`]), so that unused ones (e.g. a label
    /// table of another output) may have types we do not read.
    fn load_initializers(&mut self, g: &proto::GraphProto, decode: bool) -> Result<()> {
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(malformed("an initializer has no name"));
            }
            if !decode {
                self.init_names.insert(name);
            } else if self.uses(&name) > 0 {
                let c = tensor_const(t, &name)?;
                self.vals.insert(name, Val::Const(c));
            }
        }
        Ok(())
    }

    fn find_input(&mut self, g: &proto::GraphProto) -> Result<(String, BatchDim, Vec<usize>)> {
        let real: Vec<&proto::ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !self.init_names.contains(i.name.as_deref().unwrap_or("")))
            .collect();
        let [inp] = real.as_slice() else {
            let names: Vec<&str> = real
                .iter()
                .map(|i| i.name.as_deref().unwrap_or(""))
                .collect();
            return Err(NnError::OnnxUnsupported {
                node: "(graph)".into(),
                op: "inputs".into(),
                msg: format!(
                    "the graph has {} inputs {names:?}; exactly one is supported",
                    names.len()
                ),
            });
        };
        let name = inp.name.clone().unwrap_or_default();
        let tt = inp
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| malformed(format!("input `{name}` is not a tensor")))?;
        if tt.elem_type != Some(data_type::FLOAT) {
            return Err(NnError::OnnxUnsupported {
                node: "(graph)".into(),
                op: "input".into(),
                msg: format!(
                    "input `{name}` has element type {:?}; only float (1) inputs are supported",
                    tt.elem_type
                ),
            });
        }
        let dims = &tt
            .shape
            .as_ref()
            .ok_or_else(|| malformed(format!("input `{name}` has no shape")))?
            .dim;
        if dims.len() != 2 && dims.len() != 4 {
            return Err(NnError::OnnxUnsupported {
                node: "(graph)".into(),
                op: "input".into(),
                msg: format!(
                    "input `{name}` has rank {}; supported are [batch, features] and [batch, C, H, W]",
                    dims.len()
                ),
            });
        }
        let batch = match (&dims[0].dim_value, &dims[0].dim_param) {
            (Some(v), _) if *v > 0 => BatchDim::Fixed(*v),
            (None, Some(p)) => BatchDim::Symbolic(p.clone()),
            (None, None) => BatchDim::Symbolic(String::new()),
            (Some(v), _) => {
                return Err(malformed(format!("input `{name}` has batch dimension {v}")));
            }
        };
        let mut shape = Vec::new();
        for (axis, d) in dims.iter().enumerate().skip(1) {
            match d.dim_value {
                Some(v) if v > 0 && v <= MAX_SAMPLE_ELEMENTS as i64 => shape.push(v as usize),
                Some(v) => {
                    return Err(malformed(format!(
                        "input `{name}` has dimension {v} at axis {axis}"
                    )));
                }
                None => {
                    return Err(NnError::OnnxUnsupported {
                        node: "(graph)".into(),
                        op: "input".into(),
                        msg: format!(
                            "input `{name}` has a dynamic dimension `{}` at axis {axis}; only the batch dimension (axis 0) may be symbolic",
                            d.dim_param.as_deref().unwrap_or("?")
                        ),
                    });
                }
            }
        }
        if checked_numel(&shape).is_none_or(|n| n > MAX_SAMPLE_ELEMENTS) {
            return Err(malformed(format!(
                "input `{name}` has {shape:?} per sample, more than {MAX_SAMPLE_ELEMENTS} values"
            )));
        }
        self.shapes[0] = shape.clone();
        self.vals.insert(
            name.clone(),
            Val::Act(Act {
                node: 0,
                onnx: shape.clone(),
                pre: Pre::Raw,
                open: false,
            }),
        );
        Ok((name, batch, shape))
    }

    fn find_output(&mut self, g: &proto::GraphProto) -> Result<String> {
        let outs: Vec<(&str, Option<i32>)> = g
            .output
            .iter()
            .map(|o| {
                (
                    o.name.as_deref().unwrap_or(""),
                    o.r#type
                        .as_ref()
                        .and_then(|t| t.tensor_type.as_ref())
                        .and_then(|t| t.elem_type),
                )
            })
            .collect();
        let names: Vec<&str> = outs.iter().map(|o| o.0).collect();
        if let Some(want) = &self.output_override {
            if !names.contains(&want.as_str()) {
                return Err(malformed(format!(
                    "the graph has no output `{want}` (outputs: {names:?})"
                )));
            }
            for o in names.iter().filter(|o| *o != want) {
                self.notes.push(format!("output `{o}` is not served"));
            }
            return Ok(want.clone());
        }
        let floats: Vec<&str> = outs
            .iter()
            .filter(|o| o.1 == Some(data_type::FLOAT))
            .map(|o| o.0)
            .collect();
        let [one] = floats.as_slice() else {
            return Err(NnError::OnnxUnsupported {
                node: "(graph)".into(),
                op: "outputs".into(),
                msg: format!(
                    "the graph has {} float outputs among {names:?}; name the one to serve (--output)",
                    floats.len()
                ),
            });
        };
        for o in names.iter().filter(|o| *o != one) {
            self.notes.push(format!(
                "output `{o}` is not served (not a float tensor; e.g. a label computed from the scores)"
            ));
        }
        Ok(one.to_string())
    }

    fn count_uses(&mut self, g: &proto::GraphProto, needed: &[bool], output: &str) {
        for (i, n) in g.node.iter().enumerate() {
            if needed.get(i) == Some(&true) {
                for inp in n.input.iter().filter(|s| !s.is_empty()) {
                    *self.uses.entry(inp.clone()).or_default() += 1;
                }
            }
        }
        *self.uses.entry(output.to_string()).or_default() += 1;
    }

    fn uses(&self, v: &str) -> usize {
        self.uses.get(v).copied().unwrap_or(0)
    }

    fn fresh_name(&mut self, n: &NodeProto, suffix: &str) -> String {
        let base: String = n
            .name
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(n.output.first().map(String::as_str))
            .unwrap_or("node")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = base.trim_matches('_');
        let base = if base.is_empty() { "node" } else { base };
        let base = format!("{base}{suffix}");
        let mut name = base.clone();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn push(&mut self, name: String, op: Op, inputs: Vec<NodeId>) -> Result<NodeId> {
        let node = Node { name, op, inputs };
        let x = node.inputs.first().map_or(&[][..], |&i| self.fshape(i));
        let shape = infer_shape(&node, x)?;
        if checked_numel(&shape).is_none_or(|n| n > MAX_SAMPLE_ELEMENTS) {
            return Err(NnError::Shape {
                node: node.name.clone(),
                op: node.op.tag(),
                msg: format!(
                    "output {shape:?} has more than {MAX_SAMPLE_ELEMENTS} values per sample"
                ),
            });
        }
        self.nodes.push(node);
        self.shapes.push(shape);
        Ok(self.nodes.len() - 1)
    }

    fn input<'a>(&'a self, n: &NodeProto, i: usize) -> Result<Option<&'a Val>> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => self.vals.get(name).map(Some).ok_or_else(|| {
                bad_node(n, format!("input `{name}` is not defined before the node"))
            }),
        }
    }

    fn act(&self, n: &NodeProto, i: usize) -> Result<Act> {
        match self.input(n, i)? {
            Some(Val::Act(a)) => Ok(a.clone()),
            Some(Val::Const(_)) => Err(unsupported(
                n,
                format!("input {i} is a constant; it must be computed from the model input"),
            )),
            None => Err(bad_node(n, format!("input {i} is missing"))),
        }
    }

    fn konst(&self, n: &NodeProto, i: usize, what: &str) -> Result<Option<Const>> {
        match self.input(n, i)? {
            Some(Val::Const(c)) => Ok(Some(c.clone())),
            Some(Val::Act(_)) => Err(unsupported(
                n,
                format!(
                    "the {what} (input {i}) is computed from the model input; it must be a constant"
                ),
            )),
            None => Ok(None),
        }
    }

    fn out_name(&self, n: &NodeProto) -> Result<String> {
        n.output
            .first()
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| bad_node(n, "no output"))
    }

    /// Only output 0 may be used.
    fn single_output(&self, n: &NodeProto) -> Result<()> {
        if let Some(o) = n
            .output
            .iter()
            .skip(1)
            .find(|o| !o.is_empty() && self.uses(o) > 0)
        {
            return Err(unsupported(
                n,
                format!("its output `{o}` is used; only the first output is supported"),
            ));
        }
        Ok(())
    }

    /// The preprocessing is fixed the first time a layer reads the input.
    fn commit_pre(&mut self, a: &Act) -> Result<()> {
        if a.node != 0 {
            return Ok(());
        }
        let p = match &a.pre {
            Pre::Raw => Preprocess::Identity,
            Pre::Sub(m) => Preprocess::Standardize {
                mean: m.clone(),
                std: vec![1.0; m.len()],
            },
            Pre::Done(p) => p.clone(),
        };
        match &self.preprocess {
            Some(q) if *q != p => Err(NnError::OnnxUnsupported {
                node: "(graph)".into(),
                op: "input".into(),
                msg: "layers read the input with different normalisations".into(),
            }),
            _ => {
                self.preprocess = Some(p);
                Ok(())
            }
        }
    }

    /// A layer input: a computed value (its preprocessing committed).
    fn layer_input(&mut self, n: &NodeProto, i: usize) -> Result<Act> {
        let a = self.act(n, i)?;
        self.commit_pre(&a)?;
        Ok(a)
    }

    fn set(&mut self, n: &NodeProto, a: Act) -> Result<()> {
        let name = self.out_name(n)?;
        if self.vals.contains_key(&name) {
            return Err(bad_node(n, format!("output `{name}` is defined twice")));
        }
        self.vals.insert(name, Val::Act(a));
        Ok(())
    }

    fn map_line(&mut self, n: &NodeProto, what: String) {
        self.mapping.push(format!(
            "`{}` {} -> {what}",
            n.name.as_deref().unwrap_or(""),
            n.op_type.as_deref().unwrap_or("")
        ));
    }

    fn layer(
        &mut self,
        n: &NodeProto,
        op: Op,
        ins: Vec<NodeId>,
        onnx: Option<Vec<usize>>,
        open: bool,
    ) -> Result<Act> {
        let tag = op.tag();
        let name = self.fresh_name(n, "");
        let id = self.push(name.clone(), op, ins)?;
        let shape = onnx.unwrap_or_else(|| self.shapes[id].clone());
        let out = self.out_name(n)?;
        let open = open && self.uses(&out) == 1;
        self.map_line(n, format!("{tag} `{name}` {:?}", self.shapes[id]));
        Ok(Act {
            node: id,
            onnx: shape,
            pre: Pre::Raw,
            open,
        })
    }

    fn image_input(&mut self, n: &NodeProto) -> Result<(Act, usize)> {
        let x = self.layer_input(n, 0)?;
        let fs = self.fshape(x.node).to_vec();
        if x.onnx.len() != 3 || fs != x.onnx {
            return Err(unsupported(
                n,
                format!("needs a [C, H, W] input per sample, got {:?}", x.onnx),
            ));
        }
        let c = fs[0];
        Ok((x, c))
    }

    fn dense(
        &mut self,
        n: &NodeProto,
        x: &Act,
        w: Vec<f32>,
        b: Vec<f32>,
        out: usize,
    ) -> Result<Act> {
        let id_before = self.nodes.len();
        let a = self.layer(n, Op::Dense { out_features: out }, vec![x.node], None, true)?;
        let name = self.nodes[id_before].name.clone();
        let d = x.onnx.first().copied().unwrap_or(0);
        self.params.insert(
            param_key(&name, ParamKind::Weight),
            Tensor::new(vec![out, d], w)?,
        );
        self.params.insert(
            param_key(&name, ParamKind::Bias),
            Tensor::new(vec![out], b)?,
        );
        Ok(a)
    }

    fn vector_input(&mut self, n: &NodeProto) -> Result<(Act, usize)> {
        let x = self.layer_input(n, 0)?;
        if x.onnx.len() != 1 || self.fshape(x.node).len() != 1 {
            return Err(unsupported(
                n,
                format!(
                    "needs a [features] input per sample, got {:?} (insert a Flatten)",
                    x.onnx
                ),
            ));
        }
        let d = x.onnx[0];
        Ok((x, d))
    }

    fn convert(&mut self, n: &NodeProto) -> Result<()> {
        let op = n.op_type.clone().unwrap_or_default();
        let domain = n.domain.as_deref().unwrap_or("");
        if !domain.is_empty() && domain != "ai.onnx" {
            let hint = if op == "Scaler" {
                " (for scikit-learn's StandardScaler, convert with skl2onnx option {'div': 'div'}: the normalisation then is Sub + Div, which maps to the model's preprocessing)"
            } else {
                ""
            };
            return Err(unsupported(
                n,
                format!(
                    "operator domain `{domain}` is not supported (only the default ONNX domain; supported operators: {SUPPORTED_OPS}){hint}"
                ),
            ));
        }
        match op.as_str() {
            "Constant" => {
                let a = Attrs::new(n, &["value"])?;
                let t = a
                    .tensor("value")?
                    .ok_or_else(|| bad_node(n, "Constant without a tensor `value`"))?;
                let c = tensor_const(t, &self.out_name(n)?)?;
                let name = self.out_name(n)?;
                self.vals.insert(name, Val::Const(c));
            }
            "Identity" => {
                Attrs::new(n, &[])?;
                let v = self
                    .input(n, 0)?
                    .cloned()
                    .ok_or_else(|| bad_node(n, "no input"))?;
                let name = self.out_name(n)?;
                self.vals.insert(name, v);
                self.map_line(n, "removed".into());
            }
            "Cast" => {
                let a = Attrs::new(n, &["to", "saturate"])?;
                if a.int("to", 0)? != i64::from(data_type::FLOAT) {
                    return Err(unsupported(
                        n,
                        "only a Cast to float of a float value (a no-op) is supported",
                    ));
                }
                let x = self.act(n, 0)?;
                self.set(n, x)?;
                self.map_line(n, "removed (float to float)".into());
            }
            "Dropout" => {
                Attrs::new(n, &["ratio", "seed", "is_test"])?;
                self.single_output(n)?;
                if let Some(t) = self.konst(n, 2, "training_mode")?
                    && !matches!(&t.data, ConstData::I64(v) if v.iter().all(|&x| x == 0))
                {
                    return Err(unsupported(n, "training_mode must be false (inference)"));
                }
                let x = self.act(n, 0)?;
                self.set(n, x)?;
                self.map_line(n, "removed (inference)".into());
            }
            "Relu" => {
                Attrs::new(n, &[])?;
                let x = self.layer_input(n, 0)?;
                let a = self.layer(n, Op::Relu, vec![x.node], Some(x.onnx.clone()), false)?;
                self.set(n, a)?;
            }
            "Softmax" => {
                let axis_default = if self.opset < 13 { 1 } else { -1 };
                let axis = Attrs::new(n, &["axis"])?.int("axis", axis_default)?;
                let x = self.act(n, 0)?;
                let out = self.out_name(n)?;
                if !self.out_aliases.contains(&out)
                    || x.onnx.len() != 1
                    || !(axis == 1 || axis == -1)
                {
                    return Err(unsupported(
                        n,
                        "Softmax is supported only as the last operation over the class axis of a [batch, classes] output (it is then dropped)",
                    ));
                }
                self.set(n, x)?;
                self.map_line(n, "dropped".into());
                self.notes.push(format!(
                    "final Softmax `{}` dropped: it is increasing in every logit, so the argmax (the class) is unchanged; the imported model outputs the logits",
                    n.name.as_deref().unwrap_or("")
                ));
            }
            "Gemm" => self.gemm(n)?,
            "MatMul" => {
                Attrs::new(n, &[])?;
                let (x, d) = self.vector_input(n)?;
                let b = self
                    .konst(n, 1, "matrix")?
                    .ok_or_else(|| bad_node(n, "no matrix"))?;
                let bv = b
                    .f32s()
                    .ok_or_else(|| bad_node(n, "the matrix is not float"))?;
                let [k, o] = b.dims[..] else {
                    return Err(unsupported(
                        n,
                        format!("matrix of shape {:?}; only 2-D [in, out] matrices", b.dims),
                    ));
                };
                if k != d {
                    return Err(bad_node(
                        n,
                        format!("input has {d} features, the matrix {:?}", b.dims),
                    ));
                }
                let mut w = vec![0f32; o * d];
                for i in 0..d {
                    for j in 0..o {
                        w[j * d + i] = bv[i * o + j];
                    }
                }
                let a = self.dense(n, &x, w, vec![0.0; o], o)?;
                self.set(n, a)?;
            }
            "Conv" => self.conv(n)?,
            "BatchNormalization" => self.batch_norm(n)?,
            "MaxPool" | "AveragePool" => {
                let max = op == "MaxPool";
                let allowed: &[&str] = if max {
                    &[
                        "auto_pad",
                        "ceil_mode",
                        "dilations",
                        "kernel_shape",
                        "pads",
                        "storage_order",
                        "strides",
                    ]
                } else {
                    &[
                        "auto_pad",
                        "ceil_mode",
                        "count_include_pad",
                        "dilations",
                        "kernel_shape",
                        "pads",
                        "strides",
                    ]
                };
                let a = Attrs::new(n, allowed)?;
                self.single_output(n)?;
                if a.int("ceil_mode", 0)? != 0 {
                    return Err(unsupported(
                        n,
                        "ceil_mode 1 is not supported (only 0, floor)",
                    ));
                }
                if a.int("storage_order", 0)? != 0 {
                    return Err(unsupported(n, "storage_order 1 is not supported"));
                }
                let (kernel, stride, padding) = window_attrs(n, &a, None)?;
                if !max && padding > 0 && a.int("count_include_pad", 0)? != 1 {
                    return Err(unsupported(
                        n,
                        "an average pool with padding needs count_include_pad = 1 (fusion divides by the whole window)",
                    ));
                }
                if 2 * padding > kernel {
                    return Err(unsupported(
                        n,
                        format!("padding {padding} is more than half the kernel {kernel}"),
                    ));
                }
                let (x, _) = self.image_input(n)?;
                let fop = if max {
                    Op::MaxPool2d {
                        kernel,
                        stride,
                        padding,
                    }
                } else {
                    Op::AvgPool2d {
                        kernel,
                        stride,
                        padding,
                    }
                };
                let a = self.layer(n, fop, vec![x.node], None, false)?;
                self.set(n, a)?;
            }
            "GlobalAveragePool" => {
                Attrs::new(n, &[])?;
                let (x, c) = self.image_input(n)?;
                let a = self.layer(
                    n,
                    Op::GlobalAvgPool,
                    vec![x.node],
                    Some(vec![c, 1, 1]),
                    false,
                )?;
                self.set(n, a)?;
            }
            "Flatten" => {
                let a = Attrs::new(n, &["axis"])?;
                let x = self.act(n, 0)?;
                let rank = x.onnx.len() as i64 + 1;
                let axis = a.int("axis", 1)?;
                if axis != 1 && axis != 1 - rank {
                    return Err(unsupported(
                        n,
                        format!("axis {axis} is not supported (only 1: flatten each sample)"),
                    ));
                }
                self.flatten_to(n, x)?;
            }
            "Reshape" => self.reshape(n)?,
            "Add" => self.add(n)?,
            "Sub" | "Div" | "Mul" => self.normalise(n, &op)?,
            _ => {
                return Err(unsupported(
                    n,
                    format!("operator `{op}` is not supported (supported: {SUPPORTED_OPS})"),
                ));
            }
        }
        Ok(())
    }

    fn flatten_to(&mut self, n: &NodeProto, x: Act) -> Result<()> {
        let numel: usize = x.onnx.iter().product();
        if self.fshape(x.node).len() == 1 {
            let mut y = x;
            y.onnx = vec![numel];
            self.map_line(n, "nothing (already one value per feature)".into());
            self.set(n, y)?;
        } else {
            self.commit_pre(&x)?;
            let a = self.layer(n, Op::Flatten, vec![x.node], None, false)?;
            self.set(n, a)?;
        }
        Ok(())
    }

    fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n, &["allowzero"])?;
        let allowzero = a.int("allowzero", 0)?;
        let x = self.act(n, 0)?;
        let shape = self
            .konst(n, 1, "shape")?
            .ok_or_else(|| bad_node(n, "no shape input"))?;
        let ConstData::I64(s) = &shape.data else {
            return Err(bad_node(n, "the shape is not int64"));
        };
        let numel: usize = x.onnx.iter().product();
        let bad = || {
            unsupported(
                n,
                format!(
                    "reshape of a {:?} sample to {s:?} is not supported (only [batch, -1], [batch, features] or the current shape)",
                    x.onnx
                ),
            )
        };
        let Some((&first, rest)) = s.split_first() else {
            return Err(bad());
        };
        if !(first == 0 && allowzero == 0 || first == -1) {
            return Err(bad());
        }
        let mut target = Vec::with_capacity(rest.len());
        let mut infer = None;
        for (i, &d) in rest.iter().enumerate() {
            match d {
                -1 if infer.is_none() && first != -1 => {
                    infer = Some(i);
                    target.push(1);
                }
                0 if allowzero == 0 => target.push(*x.onnx.get(i).ok_or_else(bad)?),
                d if d > 0 && d <= MAX_SAMPLE_ELEMENTS as i64 => target.push(d as usize),
                _ => return Err(bad()),
            }
        }
        let known = checked_numel(&target).ok_or_else(bad)?;
        if let Some(i) = infer {
            if known == 0 || !numel.is_multiple_of(known) {
                return Err(bad());
            }
            target[i] = numel / known;
        } else if first == -1 && !target.is_empty() && known != numel {
            return Err(bad());
        }
        if target.is_empty() {
            return Err(bad());
        }
        if checked_numel(&target) != Some(numel) {
            return Err(bad());
        }
        if target.len() == 1 {
            self.flatten_to(n, x)
        } else if target == x.onnx || target == self.fshape(x.node) {
            let mut y = x;
            y.onnx = target;
            self.map_line(n, "nothing (same layout)".into());
            self.set(n, y)
        } else {
            Err(bad())
        }
    }

    fn gemm(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(n, &["alpha", "beta", "transA", "transB"])?;
        let alpha = a.float("alpha", 1.0)?;
        let beta = a.float("beta", 1.0)?;
        if a.int("transA", 0)? != 0 {
            return Err(unsupported(
                n,
                "transA = 1 is not supported (the input must be [batch, features])",
            ));
        }
        let trans_b = match a.int("transB", 0)? {
            0 => false,
            1 => true,
            v => return Err(bad_node(n, format!("transB = {v}"))),
        };
        let (x, d) = self.vector_input(n)?;
        let b = self
            .konst(n, 1, "matrix B")?
            .ok_or_else(|| bad_node(n, "no matrix B"))?;
        let bv = b.f32s().ok_or_else(|| bad_node(n, "B is not float"))?;
        let [r, c] = b.dims[..] else {
            return Err(bad_node(n, format!("B has shape {:?}, not 2-D", b.dims)));
        };
        let (k, o) = if trans_b { (c, r) } else { (r, c) };
        if k != d {
            return Err(bad_node(
                n,
                format!(
                    "the input has {d} features, B {:?} (transB = {trans_b})",
                    b.dims
                ),
            ));
        }
        let mut w = vec![0f32; o * d];
        for j in 0..o {
            for i in 0..d {
                let v = if trans_b {
                    bv[j * d + i]
                } else {
                    bv[i * o + j]
                };
                w[j * d + i] = if alpha == 1.0 { v } else { alpha * v };
            }
        }
        let bias = match self.konst(n, 2, "bias C")? {
            None => vec![0.0; o],
            Some(cst) => {
                let core = cst.core_dims();
                if !(core.is_empty() || core == [o]) || cst.dims.len() > 2 {
                    return Err(unsupported(
                        n,
                        format!(
                            "bias C of shape {:?}; supported are [{o}], [1, {o}] and scalars",
                            cst.dims
                        ),
                    ));
                }
                let v = broadcast(&cst, &[o]).ok_or_else(|| bad_node(n, "C is not float"))?;
                v.into_iter()
                    .map(|c| if beta == 1.0 { c } else { beta * c })
                    .collect()
            }
        };
        let a = self.dense(n, &x, w, bias, o)?;
        self.set(n, a)
    }

    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(
            n,
            &[
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "pads",
                "strides",
            ],
        )?;
        if a.int("group", 1)? != 1 {
            return Err(unsupported(
                n,
                "group > 1 (grouped or depthwise convolution) is not supported",
            ));
        }
        let w = self
            .konst(n, 1, "weights")?
            .ok_or_else(|| bad_node(n, "no weights"))?;
        let [o, ci, kh, kw] = w.dims[..] else {
            return Err(unsupported(
                n,
                format!("weights of shape {:?}; only 2-D convolutions", w.dims),
            ));
        };
        let (kernel, stride, padding) = window_attrs(n, &a, Some((kh, kw)))?;
        let (x, c) = self.image_input(n)?;
        if c != ci {
            return Err(bad_node(
                n,
                format!("the input has {c} channels, the weights {:?}", w.dims),
            ));
        }
        let wv = w
            .f32s()
            .ok_or_else(|| bad_node(n, "weights are not float"))?
            .to_vec();
        let bias = match self.konst(n, 2, "bias")? {
            None => vec![0.0; o],
            Some(b) => {
                if b.dims != [o] {
                    return Err(bad_node(
                        n,
                        format!("bias of shape {:?}, expected [{o}]", b.dims),
                    ));
                }
                b.f32s()
                    .ok_or_else(|| bad_node(n, "bias is not float"))?
                    .to_vec()
            }
        };
        let id_before = self.nodes.len();
        let act = self.layer(
            n,
            Op::Conv2d {
                out_channels: o,
                kernel,
                stride,
                padding,
            },
            vec![x.node],
            None,
            true,
        )?;
        let name = self.nodes[id_before].name.clone();
        self.params.insert(
            param_key(&name, ParamKind::Weight),
            Tensor::new(vec![o, c, kernel, kernel], wv)?,
        );
        self.params.insert(
            param_key(&name, ParamKind::Bias),
            Tensor::new(vec![o], bias)?,
        );
        self.set(n, act)
    }

    fn batch_norm(&mut self, n: &NodeProto) -> Result<()> {
        let a = Attrs::new(
            n,
            &["epsilon", "momentum", "training_mode", "spatial", "is_test"],
        )?;
        let eps = a.float("epsilon", 1e-5)?;
        a.float("momentum", 0.9)?; // only used in training
        if a.int("training_mode", 0)? != 0 {
            return Err(unsupported(
                n,
                "training_mode = 1 is not supported (inference only)",
            ));
        }
        if a.int("spatial", 1)? != 1 {
            return Err(unsupported(n, "spatial = 0 is not supported"));
        }
        self.single_output(n)?;
        let x = self.act(n, 0)?;
        let c = *x.onnx.first().ok_or_else(|| bad_node(n, "scalar input"))?;
        let mut p = Vec::with_capacity(4);
        for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let t = self
                .konst(n, i, what)?
                .ok_or_else(|| bad_node(n, format!("no {what}")))?;
            if t.dims != [c] {
                return Err(bad_node(
                    n,
                    format!("{what} of shape {:?}, expected [{c}]", t.dims),
                ));
            }
            p.push(
                t.f32s()
                    .ok_or_else(|| bad_node(n, format!("{what} is not float")))?
                    .to_vec(),
            );
        }
        if p[3].iter().any(|&v| {
            (v as f64 + eps as f64).partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        }) {
            return Err(bad_node(n, "var + epsilon must be positive"));
        }
        if x.onnx.len() == 3 && self.fshape(x.node) == x.onnx.as_slice() {
            self.commit_pre(&x)?;
            let id_before = self.nodes.len();
            let act = self.layer(n, Op::BatchNorm2d { eps }, vec![x.node], None, false)?;
            let name = self.nodes[id_before].name.clone();
            for (kind, v) in [
                ParamKind::Gamma,
                ParamKind::Beta,
                ParamKind::RunningMean,
                ParamKind::RunningVar,
            ]
            .into_iter()
            .zip(p)
            {
                self.params
                    .insert(param_key(&name, kind), Tensor::new(vec![c], v)?);
            }
            return self.set(n, act);
        }
        let dense = x.node;
        if x.onnx.len() == 1 && x.open && matches!(self.nodes[dense].op, Op::Dense { .. }) {
            let name = self.nodes[dense].name.clone();
            let (wk, bk) = (
                param_key(&name, ParamKind::Weight),
                param_key(&name, ParamKind::Bias),
            );
            let (Some(w), Some(b)) = (self.params.get(&wk).cloned(), self.params.get(&bk).cloned())
            else {
                return Err(bad_node(n, "internal: dense parameters missing"));
            };
            let d = w.shape().get(1).copied().unwrap_or(0);
            let mut wn = w.data().to_vec();
            let mut bn = b.data().to_vec();
            for o in 0..c {
                let s = p[0][o] as f64 / (p[3][o] as f64 + eps as f64).sqrt();
                for v in wn.iter_mut().skip(o * d).take(d) {
                    *v = (*v as f64 * s) as f32;
                }
                bn[o] = ((bn[o] as f64 - p[2][o] as f64) * s + p[1][o] as f64) as f32;
            }
            self.params.insert(wk, Tensor::new(w.shape().to_vec(), wn)?);
            self.params.insert(bk, Tensor::new(vec![c], bn)?);
            self.map_line(n, format!("folded into dense `{name}`"));
            let out = self.out_name(n)?;
            let mut y = x;
            y.open = self.uses(&out) == 1;
            return self.set(n, y);
        }
        Err(unsupported(
            n,
            "batch normalisation of a [features] value is supported only right after a Gemm/MatMul whose output it alone uses",
        ))
    }

    fn add(&mut self, n: &NodeProto) -> Result<()> {
        Attrs::new(n, &[])?;
        let (a, b) = (self.input(n, 0)?.cloned(), self.input(n, 1)?.cloned());
        match (a, b) {
            (Some(Val::Act(x)), Some(Val::Act(y))) => {
                if x.onnx != y.onnx || self.fshape(x.node) != self.fshape(y.node) {
                    return Err(unsupported(
                        n,
                        format!(
                            "adds values of shapes {:?} and {:?}; only equal shapes (no broadcasting)",
                            x.onnx, y.onnx
                        ),
                    ));
                }
                self.commit_pre(&x)?;
                self.commit_pre(&y)?;
                let act = self.layer(
                    n,
                    Op::Add,
                    vec![x.node, y.node],
                    Some(x.onnx.clone()),
                    false,
                )?;
                self.set(n, act)
            }
            (Some(Val::Act(x)), Some(Val::Const(c))) | (Some(Val::Const(c)), Some(Val::Act(x))) => {
                self.add_bias(n, x, &c)
            }
            (Some(Val::Const(_)), Some(Val::Const(_))) => Err(unsupported(
                n,
                "adds two constants (constant folding is not supported)",
            )),
            _ => Err(bad_node(n, "needs two inputs")),
        }
    }

    fn add_bias(&mut self, n: &NodeProto, x: Act, c: &Const) -> Result<()> {
        let id = x.node;
        let layer = self.nodes.get(id).map(|nd| nd.op.clone());
        let channels = match layer {
            Some(Op::Dense { out_features }) if x.open => {
                let core = c.core_dims();
                (core.is_empty() || core == [out_features]).then_some(out_features)
            }
            Some(Op::Conv2d { out_channels, .. }) if x.open => {
                let core = c.core_dims();
                (core.is_empty() || core == [out_channels, 1, 1]).then_some(out_channels)
            }
            _ => {
                return Err(unsupported(
                    n,
                    "adding a constant is supported only as the bias right after MatMul/Gemm/Conv (whose output nothing else uses)",
                ));
            }
        };
        let Some(o) = channels else {
            return Err(unsupported(
                n,
                format!(
                    "a bias of shape {:?} is not per output feature/channel",
                    c.dims
                ),
            ));
        };
        let v =
            broadcast(c, &[o]).or_else(|| c.f32s().filter(|v| v.len() == o).map(<[f32]>::to_vec));
        let Some(v) = v else {
            return Err(bad_node(n, "the bias is not float"));
        };
        let name = self.nodes[id].name.clone();
        let bk = param_key(&name, ParamKind::Bias);
        let Some(b) = self.params.get(&bk).cloned() else {
            return Err(bad_node(n, "internal: bias missing"));
        };
        let nb: Vec<f32> = b.data().iter().zip(&v).map(|(a, b)| a + b).collect();
        self.params.insert(bk, Tensor::new(vec![o], nb)?);
        self.map_line(n, format!("bias of `{name}`"));
        let out = self.out_name(n)?;
        let mut y = x;
        y.open = self.uses(&out) == 1;
        self.set(n, y)
    }

    /// `Sub`, `Div`, `Mul` by constants: input normalisation only.
    fn normalise(&mut self, n: &NodeProto, op: &str) -> Result<()> {
        Attrs::new(n, &[])?;
        let (a, b) = (self.input(n, 0)?.cloned(), self.input(n, 1)?.cloned());
        let (x, c) = match (a, b) {
            (Some(Val::Act(x)), Some(Val::Const(c))) => (x, c),
            (Some(Val::Const(c)), Some(Val::Act(x))) if op == "Mul" => (x, c),
            _ => {
                return Err(unsupported(
                    n,
                    format!(
                        "`{op}` is supported only as input normalisation: (x - constant), (x / constant), x * scalar constant"
                    ),
                ));
            }
        };
        let input_name = n
            .input
            .iter()
            .find(|i| matches!(self.vals.get(i.as_str()), Some(Val::Act(_))))
            .cloned()
            .unwrap_or_default();
        if x.node != 0 || self.uses(&input_name) != 1 {
            return Err(unsupported(
                n,
                format!(
                    "`{op}` by a constant is supported only on the model input, before any layer, as its only use (normalisation)"
                ),
            ));
        }
        let per = broadcast(&c, &x.onnx).ok_or_else(|| {
            unsupported(
                n,
                format!(
                    "constant of shape {:?} does not broadcast to a sample {:?}",
                    c.dims, x.onnx
                ),
            )
        })?;
        let pre = match (op, &x.pre) {
            ("Sub", Pre::Raw) => Pre::Sub(per),
            ("Div", Pre::Raw | Pre::Sub(_)) => {
                if per.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
                    return Err(unsupported(n, "division by a non-positive constant"));
                }
                let mean = match &x.pre {
                    Pre::Sub(m) => m.clone(),
                    _ => vec![0.0; per.len()],
                };
                Pre::Done(Preprocess::Standardize { mean, std: per })
            }
            ("Mul", Pre::Raw) if c.numel() == 1 => Pre::Done(Preprocess::Scale { factor: per[0] }),
            _ => {
                return Err(unsupported(
                    n,
                    "this normalisation is not supported (supported: x - m, (x - m) / s, x / s, x * scalar)",
                ));
            }
        };
        self.map_line(
            n,
            "preprocessing (applied by the client in the clear)".into(),
        );
        let y = Act { pre, ..x };
        self.set(n, y)
    }

    /// The graph up to `out` (nodes after it are dropped: they are dead).
    fn finish(&mut self, out: NodeId) -> Result<Graph> {
        let keep = out + 1;
        let dead: Vec<String> = self.nodes[keep..].iter().map(|n| n.name.clone()).collect();
        if !dead.is_empty() {
            return Err(NnError::Graph(format!(
                "nodes {dead:?} come after the output (internal ordering error)"
            )));
        }
        let g = Graph {
            input_shape: self.shapes[0].clone(),
            nodes: self.nodes[..keep].to_vec(),
        };
        g.shapes()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests;
