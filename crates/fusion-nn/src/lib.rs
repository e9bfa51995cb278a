//! # fusion-nn: networks for Fusion
//!
//! Fusion's inference stack: the layer graph, an f32 engine, the fixed-point
//! program that the two-party engine (the `fusion-engine` crate) executes, model
//! files, training, datasets and the benchmark zoo. Everything here is
//! plaintext: the secure engine runs the same [`fixed::FixedProgram`] on
//! shares and lives in `fusion-engine`, which depends on this crate (never the
//! other way round).
//!
//! | module | what |
//! |---|---|
//! | [`graph`] | DAG of layers in topological order, shape inference |
//! | [`tensor`] | row-major tensors; **layout: batch-major, `[C, H, W]` per image sample** |
//! | [`float`] | the f32 engine |
//! | [`fixed`] | lowering to a ring program over `Z_{2^l}` (the engine contract: truncation rule, error bounds) and its plaintext interpreter |
//! | [`model`] | models: `model.json` (architecture + public metadata incl. preprocessing) + safetensors weights |
//! | [`train`] | deterministic trainer and the recipes of the shipped models |
//! | [`data`] | IDX / CSV loaders, dataset registry, data directory |
//! | [`zoo`] | docs/DESIGN.md section 4's networks with seeded random weights |
//! | [`eval`] | accuracy, float vs fixed point |
//! | [`input_grad`] | gradients with respect to the input (Jacobians; fully connected networks and pooling) |
//! | [`onnx`] | ONNX import: decode (hand-written prost messages), map the graph to layers |
//! | [`calibrate`] | per-layer value ranges in float and fixed point, headroom against the ring, choice of `f` |
//! | [`piecewise`] | clipped piecewise-linear functions in fixed point (sums of ReLUs), fitted to a tolerance |
//! | [`reverse_sigmoid`] | Lee et al.'s reverse sigmoid: the f64 defence and the fixed-point pipeline the secure output stage computes |
//! | [`kernels`] | im2col, matrix products, window reductions |
//!
//! ## A typical use
//!
//! ```no_run
//! use fusion_nn::{data, eval, fixed, model::Model};
//! let dir = data::data_dir()?;
//! let model = Model::load(&dir.join("models/mnist-cnn"))?;
//! let test = data::load(&dir, "mnist", data::Part::Test)?;
//! let program = fixed::lower(&model, eval::default_fixed_point())?;   // l = 37, f = 12
//! let pred = program.predict(&model.meta.preprocess, &test.inputs, 256)?;
//! println!("fixed-point accuracy {}", eval::accuracy(&pred, &test.labels));
//! # Ok::<(), fusion_nn::NnError>(())
//! ```
//!
//! ## Why our own trainer
//!
//! The networks to train are small (at most LeNet's 1.7 M parameters) and need
//! only dense, conv, pooling and ReLU layers with Adam. The pure-Rust training
//! frameworks (burn, candle, dfdx) are large dependency trees with long cold
//! builds, which the 2-core CI pays on every run, and they would add a second
//! tensor/graph representation next to the one the fixed-point lowering needs
//! anyway. So the trainer is ~400 lines here: backpropagation over our own graph,
//! im2col convolutions, Adam, softmax cross-entropy. The one borrowed piece is the
//! f32 matrix product: `ndarray`'s `general_mat_mul`, which calls `matrixmultiply`
//! (bluss; pure Rust, run-time AVX/FMA detection, already in our lock file through
//! cryprot). We parallelise over samples and row chunks with rayon ourselves, in
//! chunks fixed by the shapes, so training is bitwise deterministic per CPU. LeNet
//! trains to 98.9% test accuracy in 2 epochs, about 7 minutes on 2 cores shared
//! with other jobs; the MNIST CNN to 99.3% in 85 s (see `data/models/README.md`).

pub mod calibrate;
pub mod data;
pub mod error;
pub mod eval;
pub mod fixed;
pub mod float;
pub mod graph;
pub mod input_grad;
pub mod kernels;
pub mod model;
pub mod onnx;
pub mod piecewise;
pub mod reverse_sigmoid;
pub mod tensor;
pub mod train;
pub mod util;
pub mod zoo;

pub use error::{NnError, Result};
pub use model::Model;
pub use tensor::{RingTensor, Tensor};
