//! Where the malicious client shifts its shares and by how much: the served
//! program's steps that the attack touches ([`Steps`], read from the public
//! program and schedule), one probe row's plan ([`Probe`]), and the
//! [`ClientDeviation`] hook that applies the plans ([`Shifter`]).

use std::sync::Arc;

use fusion_engine::behaviour::ClientDeviation;
use fusion_engine::domain::Domain;
use fusion_engine::schedule::{Action, ActionKind, NonLinearOp, Schedule};
use fusion_nn::fixed::{PublicOp, PublicProgram};

use super::chain::{Kind, Pool};

/// A linear step and the scale of its input.
#[derive(Debug, Clone, Copy)]
pub struct LinearStep {
    /// Program step.
    pub step: usize,
    /// Fractional bits of its input.
    pub in_scale: u32,
    /// Geometry.
    pub kind: Kind,
}

/// Where an "identity" ReLU's `+C` is taken off again: the next step the
/// hook sees after the ReLU (the pool's division, or the next linear
/// layer).
#[derive(Debug, Clone, Copy)]
pub struct Undo {
    /// Program step.
    pub step: usize,
    /// Fractional bits of its input.
    pub scale: u32,
}

/// One hidden block's steps.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    /// Its linear layer.
    pub linear: LinearStep,
    /// The ReLU (or fused ReLU-truncation) step.
    pub relu_step: usize,
    /// Fractional bits of the ReLU's input.
    pub relu_scale: u32,
    /// The average pool after the ReLU, if any.
    pub pool: Option<Pool>,
    /// Where an identity ReLU's shift is undone.
    pub undo: Undo,
}

impl Block {
    /// ReLU outputs summed into each input of the undo step (the pool
    /// window's size, or 1).
    pub fn fan_in(&self) -> usize {
        self.pool.map_or(1, |p| p.k * p.k)
    }
}

/// The steps of a served chain network the attack shifts.
#[derive(Debug, Clone)]
pub struct Steps {
    /// Hidden blocks, first to last.
    pub blocks: Vec<Block>,
    /// The last linear layer.
    pub last: LinearStep,
    /// Fractional bits of the program's output (the logits).
    pub out_scale: u32,
}

fn scale_of(program: &PublicProgram, value: usize) -> u32 {
    if value == 0 {
        program.fixed.frac_bits
    } else {
        program.steps[value - 1].scale
    }
}

impl Steps {
    /// Reads the steps from the public program and schedule; an error naming
    /// the step if the network is not a chain the attack handles.
    pub fn read(program: &PublicProgram, schedule: &Schedule) -> Result<Self, String> {
        let refuse = |a: &Action, why: &str| {
            format!(
                "step `{}` {why}: the MUSE attack handles chains of dense or stride-1 convolution \
                 layers, each followed by ReLU and optionally a non-overlapping average pool, \
                 ending in a linear layer",
                program.steps[a.step].name
            )
        };
        let acts = &schedule.actions;
        for w in acts.windows(2) {
            if w[1].inputs != [w[0].output] {
                return Err(refuse(&w[1], "does not continue a chain"));
            }
        }
        let linear = |a: &Action| -> Result<LinearStep, String> {
            let in_scale = scale_of(program, a.inputs[0]);
            let kind = match (&a.kind, &program.steps[a.step].op) {
                (
                    ActionKind::Linear,
                    &PublicOp::Dense {
                        in_features,
                        out_features,
                    },
                ) => Kind::Dense {
                    d: in_features,
                    o: out_features,
                },
                (
                    ActionKind::Linear,
                    &PublicOp::Conv2d {
                        in_channels,
                        in_height,
                        in_width,
                        out_channels,
                        kernel,
                        stride: 1,
                        padding,
                    },
                ) => Kind::Conv {
                    c: in_channels,
                    h: in_height,
                    w: in_width,
                    o: out_channels,
                    k: kernel,
                    pad: padding,
                },
                _ => return Err(refuse(a, "is not a dense or stride-1 convolution layer")),
            };
            Ok(LinearStep {
                step: a.step,
                in_scale,
                kind,
            })
        };
        let mut blocks = Vec::new();
        let mut i = 0;
        let skip_reshape = |i: &mut usize| {
            while acts.get(*i).is_some_and(|a| {
                matches!(a.kind, ActionKind::Local)
                    && matches!(program.steps[a.step].op, PublicOp::Reshape)
            }) {
                *i += 1;
            }
        };
        skip_reshape(&mut i);
        loop {
            let Some(a) = acts.get(i) else {
                return Err("the program ends without a linear layer".into());
            };
            let lin = linear(a)?;
            if i + 1 == acts.len() {
                if blocks.is_empty() {
                    return Err("the program has no hidden layer".into());
                }
                return Ok(Steps {
                    blocks,
                    last: lin,
                    out_scale: scale_of(program, schedule.output),
                });
            }
            let relu = &acts[i + 1];
            if !matches!(
                relu.kind,
                ActionKind::NonLinear(NonLinearOp::Relu { .. } | NonLinearOp::ReluTruncate { .. })
            ) {
                return Err(refuse(relu, "does not follow a linear layer with ReLU"));
            }
            i += 2;
            let mut undo = None;
            let mut pool = None;
            if let (Some(sum), Some(div)) = (acts.get(i), acts.get(i + 1))
                && let (
                    ActionKind::Local,
                    &PublicOp::SumPool {
                        kernel,
                        stride,
                        padding: 0,
                    },
                ) = (&sum.kind, &program.steps[sum.step].op)
            {
                let divides = matches!(
                    div.kind,
                    ActionKind::NonLinear(NonLinearOp::Truncate { bits, .. })
                        if 1usize.checked_shl(bits) == Some(kernel * kernel)
                );
                if stride != kernel || !divides {
                    return Err(refuse(sum, "is not a non-overlapping average pool"));
                }
                let Kind::Conv { o, .. } = lin.kind else {
                    return Err(refuse(sum, "pools the output of a dense layer"));
                };
                let (h, w) = lin.kind.out_hw();
                pool = Some(Pool {
                    k: kernel,
                    c: o,
                    h,
                    w,
                });
                undo = Some(Undo {
                    step: div.step,
                    scale: scale_of(program, div.inputs[0]),
                });
                i += 2;
            }
            skip_reshape(&mut i);
            let next = acts
                .get(i)
                .ok_or_else(|| "the program ends with a ReLU".to_string())?;
            let undo = match undo {
                Some(u) => u,
                None => Undo {
                    step: next.step,
                    scale: scale_of(program, next.inputs[0]),
                },
            };
            blocks.push(Block {
                linear: lin,
                relu_step: relu.step,
                relu_scale: scale_of(program, relu.inputs[0]),
                pool,
                undo,
            });
        }
    }

    /// The linear step of layer `l` (hidden blocks first, then the last).
    pub fn linear(&self, l: usize) -> &LinearStep {
        self.blocks.get(l).map_or(&self.last, |b| &b.linear)
    }
}

/// What a probe row does to one block's ReLU.
#[derive(Debug, Clone, PartialEq)]
pub enum Relu {
    /// `-c` on every input: every output is 0.
    Off,
    /// `+C` on every input and `-C` taken off after: the identity.
    Identity,
    /// `+c + extra` on these units and `-c` on the others: `z + c + extra`
    /// on these, 0 elsewhere.
    Isolate(Arc<Vec<usize>>, f64),
}

/// One probe row's plan.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Per hidden block.
    pub relus: Vec<Relu>,
    /// `(layer, index, amount)`: added to layer `layer`'s input (layer 0:
    /// put into the real input, not shifted).
    pub impulse: Option<(usize, usize, f64)>,
    /// Added to the client's share of the logits before the output stage
    /// (output units, one per class): the label-only search
    /// ([`super::labels`]).
    pub logits: Option<Arc<Vec<i64>>>,
}

/// The deviation hook: per batch row, its probe.
#[derive(Debug)]
pub struct Shifter {
    /// The steps.
    pub steps: Arc<Steps>,
    /// This batch's probes.
    pub rows: Vec<Probe>,
    /// The isolating shift `c`.
    pub c: f64,
    /// The identity shift `C`.
    pub identity: f64,
}

/// Adds `units` (signed, in the program's fixed point) to the share `v`.
fn add_units(domain: &Domain, v: &mut u64, units: i64) {
    let as_ring = domain.program_ring().from_signed(units);
    *v = domain.add(*v, domain.from_program(as_ring));
}

/// Adds the real `real` at scale `2^scale` to the share `v`.
fn add(domain: &Domain, v: &mut u64, real: f64, scale: u32) {
    add_units(domain, v, (real * 2f64.powi(scale as i32)).round() as i64);
}

impl ClientDeviation for Shifter {
    fn before_output(&self, y: &mut [u64], start: usize, m: usize, domain: &Domain) {
        if m == 0 || !y.len().is_multiple_of(m) {
            return;
        }
        for (r, row) in y.chunks_mut(y.len() / m).enumerate() {
            let Some(shift) = self.rows.get(start + r).and_then(|p| p.logits.as_ref()) else {
                continue;
            };
            for (v, &units) in row.iter_mut().zip(shift.iter()) {
                add_units(domain, v, units);
            }
        }
    }

    fn before_step(&self, step: usize, x: &mut [u64], start: usize, m: usize, domain: &Domain) {
        if m == 0 || !x.len().is_multiple_of(m) {
            return;
        }
        let width = x.len() / m;
        for (r, row) in x.chunks_mut(width).enumerate() {
            let Some(probe) = self.rows.get(start + r) else {
                continue;
            };
            for (b, block) in self.steps.blocks.iter().enumerate() {
                let relu = &probe.relus[b];
                if step == block.relu_step {
                    let (base, on) = match relu {
                        Relu::Off => (-self.c, None),
                        Relu::Identity => (self.identity, None),
                        Relu::Isolate(units, extra) => (-self.c, Some((units, *extra))),
                    };
                    for v in row.iter_mut() {
                        add(domain, v, base, block.relu_scale);
                    }
                    if let Some((units, extra)) = on {
                        for &u in units.iter() {
                            if let Some(v) = row.get_mut(u) {
                                add(domain, v, 2.0 * self.c + extra, block.relu_scale);
                            }
                        }
                    }
                }
                if step == block.undo.step && *relu == Relu::Identity {
                    let undo = -self.identity * block.fan_in() as f64;
                    for v in row.iter_mut() {
                        add(domain, v, undo, block.undo.scale);
                    }
                }
            }
            if let Some((l, i, amount)) = probe.impulse {
                let lin = self.steps.linear(l);
                if l > 0
                    && step == lin.step
                    && let Some(v) = row.get_mut(i)
                {
                    add(domain, v, amount, lin.in_scale);
                }
            }
        }
    }
}
