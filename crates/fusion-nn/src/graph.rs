//! The layer graph: a DAG of operations in topological order.
//!
//! A [`Graph`] is a list of [`Node`]s. Node 0 is the single [`Op::Input`]; every
//! other node names its input nodes by index, and every index must be smaller
//! than the node's own (the list *is* a topological order). The last node is the
//! output. Residual connections are [`Op::Add`] nodes with two inputs.
//!
//! Shapes are per sample (see [`crate::tensor`] for the layout): images are
//! `[C, H, W]`, vectors `[D]`. [`Graph::shapes`] infers every node's output shape
//! and reports the first mismatch with the node's name.
//!
//! Parameters live outside the graph, in [`crate::model::Params`], under the
//! names given by [`Graph::param_specs`]: `"<node>.weight"`, `"<node>.bias"`, and for
//! batch norm `"<node>.gamma"`, `"<node>.beta"`, `"<node>.running_mean"`,
//! `"<node>.running_var"`.
//!
//! | op | input | output | parameters |
//! |---|---|---|---|
//! | `dense` | `[D]` | `[out]` | weight `[out, D]`, bias `[out]` |
//! | `conv2d` | `[C, H, W]` | `[out, H', W']` | weight `[out, C, k, k]`, bias `[out]` |
//! | `relu`, `square` | any | same | none |
//! | `max_pool2d`, `avg_pool2d` | `[C, H, W]` | `[C, H', W']` | none |
//! | `batch_norm2d` | `[C, H, W]` | same | gamma, beta, running_mean, running_var `[C]` |
//! | `flatten` | any | `[prod]` | none |
//! | `add` | two of the same shape | same | none |
//! | `global_avg_pool` | `[C, H, W]` | `[C]` | none |
//!
//! with `H' = (H + 2 padding - kernel) / stride + 1` (floor), likewise `W'`.
//! Convolutions and average pools pad with zeros; average pools always divide by
//! `kernel^2` (padding counts, as PyTorch's default `count_include_pad`); max pools
//! take the maximum over the in-bounds positions only (padding never wins).

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// One operation of the graph. Serialised with a `"type"` tag in snake case,
/// e.g. `{"type": "conv2d", "out_channels": 16, "kernel": 5, "stride": 1, "padding": 0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// The network input (node 0 only).
    Input,
    /// Fully connected: `y = W x + b`, `W` is `[out_features, in_features]`.
    Dense {
        /// Output width.
        out_features: usize,
    },
    /// 2-D convolution (cross-correlation, as in PyTorch), square kernel, zero padding.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel side `k` (the kernel is `k x k`).
        kernel: usize,
        /// Stride (both directions).
        stride: usize,
        /// Zero padding on each side (both directions).
        padding: usize,
    },
    /// `max(x, 0)`.
    Relu,
    /// `x * x` (the TIMIT network's activation).
    Square,
    /// Max over `kernel x kernel` windows.
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on each side (at most `kernel / 2`; padded positions are ignored).
        padding: usize,
    },
    /// Mean over `kernel x kernel` windows (zero padding, divisor always `kernel^2`).
    AvgPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side (at most `kernel / 2`).
        padding: usize,
    },
    /// Batch normalisation with stored statistics (inference):
    /// `y = gamma (x - mean) / sqrt(var + eps) + beta`, per channel.
    BatchNorm2d {
        /// The `eps` added to the variance.
        eps: f32,
    },
    /// Reshape to one dimension (row-major, so `[C, H, W]` flattens channel-major).
    Flatten,
    /// Elementwise sum of two inputs of the same shape (residual connection).
    Add,
    /// Mean over the spatial dimensions: `[C, H, W] -> [C]`.
    GlobalAvgPool,
}

impl Op {
    /// The operation's JSON tag (`"conv2d"`, ...), for messages.
    pub fn tag(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Dense { .. } => "dense",
            Op::Conv2d { .. } => "conv2d",
            Op::Relu => "relu",
            Op::Square => "square",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::AvgPool2d { .. } => "avg_pool2d",
            Op::BatchNorm2d { .. } => "batch_norm2d",
            Op::Flatten => "flatten",
            Op::Add => "add",
            Op::GlobalAvgPool => "global_avg_pool",
        }
    }

    /// How many inputs the operation takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input => 0,
            Op::Add => 2,
            _ => 1,
        }
    }
}

/// A node: a named operation applied to earlier nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique name; parameters are stored under `"<name>.<param>"`.
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Input node ids, all smaller than this node's id.
    pub inputs: Vec<NodeId>,
}

/// The role of a parameter tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Dense / conv weight.
    Weight,
    /// Dense / conv bias.
    Bias,
    /// Batch-norm scale.
    Gamma,
    /// Batch-norm shift.
    Beta,
    /// Batch-norm stored mean.
    RunningMean,
    /// Batch-norm stored variance.
    RunningVar,
}

impl ParamKind {
    /// The suffix after the node name.
    pub fn suffix(self) -> &'static str {
        match self {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
            ParamKind::Gamma => "gamma",
            ParamKind::Beta => "beta",
            ParamKind::RunningMean => "running_mean",
            ParamKind::RunningVar => "running_var",
        }
    }
}

/// A parameter tensor the graph needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The node it belongs to.
    pub node: NodeId,
    /// Its role.
    pub kind: ParamKind,
    /// Its storage name, `"<node>.<suffix>"`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The fan-in of the layer (for weights; used by initialisers).
    pub fan_in: usize,
}

/// Parameter key of a node's parameter.
pub fn param_key(node: &str, kind: ParamKind) -> String {
    format!("{node}.{}", kind.suffix())
}

/// A network: nodes in topological order, node 0 the input, the last node the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Shape of one input sample (`[C, H, W]` or `[D]`).
    pub input_shape: Vec<usize>,
    /// The nodes.
    pub nodes: Vec<Node>,
}

/// Output size of a window operation along one axis, if the window fits.
pub fn window_out(size: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    let padded = padding.checked_mul(2)?.checked_add(size)?;
    if kernel == 0 || stride == 0 || padded < kernel {
        None
    } else {
        Some((padded - kernel) / stride + 1)
    }
}

/// Largest number of elements a per-sample value or a parameter tensor may have
/// (2^34): bounds what a malformed architecture file can make us allocate or
/// overflow.
pub const MAX_ELEMENTS: usize = 1 << 34;

/// The number of elements of `shape`, if it is at most [`MAX_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

impl Graph {
    /// The output node (the last one).
    pub fn output(&self) -> NodeId {
        self.nodes.len().saturating_sub(1)
    }

    /// Checks the structure and infers the output shape of every node.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        if self.input_shape.is_empty() || self.input_shape.contains(&0) {
            return Err(NnError::Graph(format!(
                "input shape {:?} must be non-empty with positive dimensions",
                self.input_shape
            )));
        }
        if self.nodes.len() < 2 {
            return Err(NnError::Graph(
                "a graph needs an input node and at least one operation".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.nodes.len());
        for (id, node) in self.nodes.iter().enumerate() {
            if node.name.is_empty() || node.name.contains(char::is_whitespace) {
                return Err(NnError::Graph(format!(
                    "node {id} has an empty name or one with spaces: {:?}",
                    node.name
                )));
            }
            if !names.insert(node.name.as_str()) {
                return Err(NnError::Graph(format!(
                    "duplicate node name `{}`",
                    node.name
                )));
            }
            if (id == 0) != (node.op == Op::Input) {
                return Err(NnError::Graph(format!(
                    "node {id} `{}`: the input must be node 0 and only node 0",
                    node.name
                )));
            }
            if node.inputs.len() != node.op.arity() {
                return Err(NnError::Graph(format!(
                    "node {id} `{}` ({}) takes {} input(s), has {}",
                    node.name,
                    node.op.tag(),
                    node.op.arity(),
                    node.inputs.len()
                )));
            }
            if let Some(&bad) = node.inputs.iter().find(|&&i| i >= id) {
                return Err(NnError::Graph(format!(
                    "node {id} `{}` uses node {bad}, which does not come before it (nodes must be in topological order)",
                    node.name
                )));
            }
            let ins: Vec<&[usize]> = node.inputs.iter().map(|&i| shapes[i].as_slice()).collect();
            let shape = infer(node, &ins, &self.input_shape)?;
            if checked_numel(&shape).is_none() {
                return Err(shape_err(
                    node,
                    format!("output {shape:?} has more than 2^34 elements"),
                ));
            }
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// The output shape of one sample.
    pub fn output_shape(&self) -> Result<Vec<usize>> {
        let mut s = self.shapes()?;
        Ok(s.pop().unwrap_or_default())
    }

    /// Every parameter tensor the graph needs, in node order.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        let shapes = self.shapes()?;
        let mut specs = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            let in_shape = node
                .inputs
                .first()
                .map(|&i| shapes[i].as_slice())
                .unwrap_or(&[]);
            let mut push = |kind: ParamKind, shape: Vec<usize>, fan_in: usize| {
                specs.push(ParamSpec {
                    node: id,
                    kind,
                    name: param_key(&node.name, kind),
                    shape,
                    fan_in,
                });
            };
            match node.op {
                Op::Dense { out_features } => {
                    let d = in_shape[0];
                    push(ParamKind::Weight, vec![out_features, d], d);
                    push(ParamKind::Bias, vec![out_features], d);
                }
                Op::Conv2d {
                    out_channels,
                    kernel,
                    ..
                } => {
                    let c = in_shape[0];
                    let fan_in = c * kernel * kernel;
                    push(
                        ParamKind::Weight,
                        vec![out_channels, c, kernel, kernel],
                        fan_in,
                    );
                    push(ParamKind::Bias, vec![out_channels], fan_in);
                }
                Op::BatchNorm2d { .. } => {
                    let c = in_shape[0];
                    for kind in [
                        ParamKind::Gamma,
                        ParamKind::Beta,
                        ParamKind::RunningMean,
                        ParamKind::RunningVar,
                    ] {
                        push(kind, vec![c], 1);
                    }
                }
                _ => {}
            }
        }
        if let Some(big) = specs.iter().find(|s| checked_numel(&s.shape).is_none()) {
            return Err(NnError::Graph(format!(
                "parameter `{}` of shape {:?} has more than 2^34 elements",
                big.name, big.shape
            )));
        }
        Ok(specs)
    }

    /// For every node, the nodes that use it (in increasing order).
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate() {
            for &i in &node.inputs {
                if i < out.len() {
                    out[i].push(id);
                }
            }
        }
        out
    }

    /// For every node, the last node that reads it (itself if none does; the
    /// output is never released). Engines free values after their last use.
    pub fn last_uses(&self) -> Vec<NodeId> {
        let mut last: Vec<NodeId> = (0..self.nodes.len()).collect();
        for (id, node) in self.nodes.iter().enumerate() {
            for &i in &node.inputs {
                if i < last.len() {
                    last[i] = last[i].max(id);
                }
            }
        }
        if let Some(l) = last.last_mut() {
            *l = usize::MAX;
        }
        last
    }

    /// Number of multiply-accumulates of one sample through the linear layers.
    pub fn macs(&self) -> Result<u64> {
        let shapes = self.shapes()?;
        let mut total = 0u64;
        for (id, node) in self.nodes.iter().enumerate() {
            let out: u64 = shapes[id].iter().product::<usize>() as u64;
            match node.op {
                Op::Dense { .. } => total += out * shapes[node.inputs[0]][0] as u64,
                Op::Conv2d { kernel, .. } => {
                    total += out * (shapes[node.inputs[0]][0] * kernel * kernel) as u64;
                }
                _ => {}
            }
        }
        Ok(total)
    }
}

fn shape_err(node: &Node, msg: String) -> NnError {
    NnError::Shape {
        node: node.name.clone(),
        op: node.op.tag(),
        msg,
    }
}

fn image(node: &Node, s: &[usize]) -> Result<(usize, usize, usize)> {
    match s {
        &[c, h, w] => Ok((c, h, w)),
        _ => Err(shape_err(
            node,
            format!("needs a [C, H, W] input per sample, got {s:?}"),
        )),
    }
}

fn window(
    node: &Node,
    s: &[usize],
    kernel: usize,
    stride: usize,
    padding: usize,
    max_pad_half: bool,
) -> Result<(usize, usize, usize, usize)> {
    let (c, h, w) = image(node, s)?;
    if kernel == 0 || stride == 0 {
        return Err(shape_err(node, "kernel and stride must be positive".into()));
    }
    if max_pad_half && 2 * padding > kernel {
        return Err(shape_err(
            node,
            format!("padding {padding} is more than half the kernel {kernel}"),
        ));
    }
    match (
        window_out(h, kernel, stride, padding),
        window_out(w, kernel, stride, padding),
    ) {
        (Some(ho), Some(wo)) => Ok((c, h, ho, wo)),
        _ => Err(shape_err(
            node,
            format!(
                "a {kernel}x{kernel} window with padding {padding} does not fit a {h}x{w} input"
            ),
        )),
    }
}

fn infer(node: &Node, ins: &[&[usize]], input_shape: &[usize]) -> Result<Vec<usize>> {
    Ok(match node.op {
        Op::Input => input_shape.to_vec(),
        Op::Dense { out_features } => {
            if out_features == 0 {
                return Err(shape_err(node, "out_features must be positive".into()));
            }
            match ins[0] {
                [_] => vec![out_features],
                s => {
                    return Err(shape_err(
                        node,
                        format!("needs a 1-D input per sample, got {s:?} (insert a flatten node)"),
                    ));
                }
            }
        }
        Op::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            if out_channels == 0 {
                return Err(shape_err(node, "out_channels must be positive".into()));
            }
            let (_, _, ho, wo) = window(node, ins[0], kernel, stride, padding, false)?;
            vec![out_channels, ho, wo]
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
        } => {
            let (c, _, ho, wo) = window(node, ins[0], kernel, stride, padding, true)?;
            vec![c, ho, wo]
        }
        Op::BatchNorm2d { eps } => {
            image(node, ins[0])?;
            if !(eps.is_finite() && eps >= 0.0) {
                return Err(shape_err(
                    node,
                    format!("eps must be finite and >= 0, got {eps}"),
                ));
            }
            ins[0].to_vec()
        }
        Op::Relu | Op::Square => ins[0].to_vec(),
        Op::Flatten => {
            vec![checked_numel(ins[0]).ok_or_else(|| shape_err(node, "input too large".into()))?]
        }
        Op::Add => {
            if ins[0] != ins[1] {
                return Err(shape_err(
                    node,
                    format!(
                        "adds tensors of different shapes {:?} and {:?}",
                        ins[0], ins[1]
                    ),
                ));
            }
            ins[0].to_vec()
        }
        Op::GlobalAvgPool => {
            let (c, _, _) = image(node, ins[0])?;
            vec![c]
        }
    })
}

/// Builds a graph node by node; each method returns the new node's id.
///
/// ```
/// use fusion_nn::graph::GraphBuilder;
/// let mut g = GraphBuilder::new(vec![30]);
/// let x = g.input();
/// let h = g.dense("fc1", x, 16);
/// let h = g.relu("relu1", h);
/// g.dense("fc2", h, 2);
/// let graph = g.finish().unwrap();
/// assert_eq!(graph.output_shape().unwrap(), vec![2]);
/// ```
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: Graph,
}

impl GraphBuilder {
    /// A graph whose input samples have `input_shape`.
    pub fn new(input_shape: Vec<usize>) -> Self {
        GraphBuilder {
            graph: Graph {
                input_shape,
                nodes: vec![Node {
                    name: "input".into(),
                    op: Op::Input,
                    inputs: vec![],
                }],
            },
        }
    }

    /// The input node (id 0).
    pub fn input(&self) -> NodeId {
        0
    }

    /// Appends any node.
    pub fn node(&mut self, name: impl Into<String>, op: Op, inputs: Vec<NodeId>) -> NodeId {
        self.graph.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
        });
        self.graph.nodes.len() - 1
    }

    /// A dense layer.
    pub fn dense(&mut self, name: &str, x: NodeId, out_features: usize) -> NodeId {
        self.node(name, Op::Dense { out_features }, vec![x])
    }

    /// A convolution.
    pub fn conv2d(
        &mut self,
        name: &str,
        x: NodeId,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> NodeId {
        self.node(
            name,
            Op::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            },
            vec![x],
        )
    }

    /// A ReLU.
    pub fn relu(&mut self, name: &str, x: NodeId) -> NodeId {
        self.node(name, Op::Relu, vec![x])
    }

    /// A square activation.
    pub fn square(&mut self, name: &str, x: NodeId) -> NodeId {
        self.node(name, Op::Square, vec![x])
    }

    /// A max pool.
    pub fn max_pool(
        &mut self,
        name: &str,
        x: NodeId,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> NodeId {
        self.node(
            name,
            Op::MaxPool2d {
                kernel,
                stride,
                padding,
            },
            vec![x],
        )
    }

    /// An average pool.
    pub fn avg_pool(
        &mut self,
        name: &str,
        x: NodeId,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> NodeId {
        self.node(
            name,
            Op::AvgPool2d {
                kernel,
                stride,
                padding,
            },
            vec![x],
        )
    }

    /// A batch norm (eps 1e-5).
    pub fn batch_norm(&mut self, name: &str, x: NodeId) -> NodeId {
        self.node(name, Op::BatchNorm2d { eps: 1e-5 }, vec![x])
    }

    /// A flatten.
    pub fn flatten(&mut self, name: &str, x: NodeId) -> NodeId {
        self.node(name, Op::Flatten, vec![x])
    }

    /// A residual add.
    pub fn add(&mut self, name: &str, a: NodeId, b: NodeId) -> NodeId {
        self.node(name, Op::Add, vec![a, b])
    }

    /// A global average pool.
    pub fn global_avg_pool(&mut self, name: &str, x: NodeId) -> NodeId {
        self.node(name, Op::GlobalAvgPool, vec![x])
    }

    /// The graph, validated.
    pub fn finish(self) -> Result<Graph> {
        self.graph.shapes()?;
        Ok(self.graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mnist_cnn() -> GraphBuilder {
        let mut g = GraphBuilder::new(vec![1, 28, 28]);
        let x = g.input();
        let x = g.conv2d("conv1", x, 16, 5, 1, 0);
        let x = g.relu("relu1", x);
        let x = g.avg_pool("pool1", x, 2, 2, 0);
        let x = g.conv2d("conv2", x, 16, 5, 1, 0);
        let x = g.relu("relu2", x);
        let x = g.avg_pool("pool2", x, 2, 2, 0);
        let x = g.flatten("flatten", x);
        let x = g.dense("fc1", x, 100);
        let x = g.relu("relu3", x);
        g.dense("fc2", x, 10);
        g
    }

    #[test]
    fn infers_the_mnist_cnn_shapes() {
        let g = mnist_cnn().finish().expect("valid");
        let s = g.shapes().expect("shapes");
        assert_eq!(s[1], vec![16, 24, 24]);
        assert_eq!(s[3], vec![16, 12, 12]);
        assert_eq!(s[4], vec![16, 8, 8]);
        assert_eq!(s[7], vec![256]);
        assert_eq!(g.output_shape().expect("out"), vec![10]);
        let specs = g.param_specs().expect("specs");
        assert_eq!(specs[0].name, "conv1.weight");
        assert_eq!(specs[0].shape, vec![16, 1, 5, 5]);
        assert_eq!(specs[4].shape, vec![100, 256]);
    }

    #[test]
    fn dense_on_an_image_names_the_node_and_suggests_flatten() {
        let mut g = GraphBuilder::new(vec![1, 28, 28]);
        let x = g.input();
        g.dense("fc", x, 10);
        let err = g.finish().expect_err("must fail").to_string();
        assert!(err.contains("`fc`") && err.contains("flatten"), "{err}");
    }

    #[test]
    fn mismatched_add_and_oversized_kernel_are_shape_errors() {
        let mut g = GraphBuilder::new(vec![3, 8, 8]);
        let x = g.input();
        let a = g.conv2d("a", x, 4, 3, 1, 1);
        let b = g.conv2d("b", x, 4, 3, 1, 0);
        g.add("sum", a, b);
        assert!(matches!(g.finish(), Err(NnError::Shape { ref node, .. }) if node == "sum"));

        let mut g = GraphBuilder::new(vec![3, 4, 4]);
        let x = g.input();
        g.conv2d("big", x, 4, 7, 1, 1);
        assert!(matches!(g.finish(), Err(NnError::Shape { ref node, .. }) if node == "big"));
    }

    #[test]
    fn structural_errors_are_graph_errors() {
        let mut g = mnist_cnn().finish().expect("valid");
        g.nodes[2].inputs = vec![5];
        assert!(matches!(g.shapes(), Err(NnError::Graph(_))));
        let mut g = mnist_cnn().finish().expect("valid");
        g.nodes[2].name = "conv1".into();
        assert!(matches!(g.shapes(), Err(NnError::Graph(_))));
        let mut g = mnist_cnn().finish().expect("valid");
        g.nodes[3].op = Op::Add;
        assert!(matches!(g.shapes(), Err(NnError::Graph(_))));
    }

    #[test]
    fn graph_round_trips_through_json() {
        let g = mnist_cnn().finish().expect("valid");
        let s = serde_json::to_string(&g).expect("ser");
        assert!(
            s.contains(r#"{"type":"conv2d","out_channels":16,"kernel":5,"stride":1,"padding":0}"#)
        );
        let back: Graph = serde_json::from_str(&s).expect("de");
        assert_eq!(back, g);
    }

    #[test]
    fn last_uses_track_residual_branches() {
        let mut g = GraphBuilder::new(vec![2, 4, 4]);
        let x = g.input();
        let a = g.relu("a", x);
        let b = g.relu("b", a);
        g.add("c", a, b);
        let g = g.finish().expect("valid");
        assert_eq!(g.last_uses(), vec![1, 3, 3, usize::MAX]);
    }
}
