//! The plaintext interpreter of a [`FixedProgram`]: exact ring arithmetic.
//!
//! Products and sums are computed with wrapping `u64` arithmetic and reduced
//! mod `2^l` at the end of each op, which is exact in `Z_{2^l}` for every `l <= 64`.

use fusion_core::ring::Ring;
use rayon::prelude::*;

use super::{Conv2dOp, DenseOp, FixedOp, FixedProgram, Step, StepStats, ValueId};
use crate::error::{NnError, Result};
use crate::kernels::{Window, dot_u64, gemm_u64, im2col, window_reduce};
use crate::tensor::RingTensor;

/// The output shape an op gives for these input shapes, or why it cannot run.
pub(super) fn output_shape(
    op: &FixedOp,
    ins: &[&[usize]],
) -> std::result::Result<Vec<usize>, String> {
    let img = |s: &[usize]| match *s {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!("{} needs [C, H, W] inputs, got {s:?}", op.tag())),
    };
    let x = ins.first().copied().unwrap_or(&[]);
    Ok(match op {
        FixedOp::Dense(d) => {
            if x != [d.in_features] {
                return Err(format!("dense expects [{}], got {x:?}", d.in_features));
            }
            if !(d.weight.is_empty() && d.bias.is_empty())
                && (Some(d.weight.len()) != d.in_features.checked_mul(d.out_features)
                    || d.bias.len() != d.out_features)
            {
                return Err("dense coefficients have the wrong length".into());
            }
            vec![d.out_features]
        }
        FixedOp::Conv2d(c) => {
            if x != [c.in_channels, c.in_height, c.in_width] {
                return Err(format!(
                    "conv2d expects [{}, {}, {}], got {x:?}",
                    c.in_channels, c.in_height, c.in_width
                ));
            }
            let g = conv_window(c).ok_or("conv2d window does not fit")?;
            let weights = [c.out_channels, c.in_channels, c.kernel, c.kernel];
            let numel = crate::graph::checked_numel(&weights).ok_or("conv2d weights too large")?;
            crate::graph::checked_numel(&[c.out_channels, g.ho, g.wo])
                .ok_or("conv2d output too large")?;
            if !(c.weight.is_empty() && c.bias.is_empty())
                && (c.weight.len() != numel || c.bias.len() != c.out_channels)
            {
                return Err("conv2d coefficients have the wrong length".into());
            }
            vec![c.out_channels, g.ho, g.wo]
        }
        FixedOp::ChannelAffine(a) => {
            let (c, _, _) = img(x)?;
            if c != a.channels
                || !(a.scale.is_empty() && a.shift.is_empty())
                    && (a.scale.len() != c || a.shift.len() != c)
            {
                return Err("channel_affine coefficients do not match the channels".into());
            }
            x.to_vec()
        }
        FixedOp::SumPool {
            kernel,
            stride,
            padding,
        }
        | FixedOp::MaxPool {
            kernel,
            stride,
            padding,
        } => {
            let (c, h, w) = img(x)?;
            if 2 * padding > *kernel {
                return Err("pool padding is more than half the kernel".into());
            }
            let g = Window::new(c, h, w, *kernel, *stride, *padding)
                .ok_or("pool window does not fit")?;
            vec![c, g.ho, g.wo]
        }
        FixedOp::GlobalSumPool => vec![img(x)?.0],
        FixedOp::Add => {
            if ins.len() != 2 || ins[0] != ins[1] {
                return Err(format!("add needs two inputs of one shape, got {ins:?}"));
            }
            x.to_vec()
        }
        FixedOp::Reshape => {
            vec![crate::graph::checked_numel(x).ok_or("reshape input has too many elements")?]
        }
        FixedOp::MulConst { .. } | FixedOp::Truncate { .. } | FixedOp::Relu | FixedOp::Square => {
            x.to_vec()
        }
    })
}

fn conv_window(c: &Conv2dOp) -> Option<Window> {
    Window::new(
        c.in_channels,
        c.in_height,
        c.in_width,
        c.kernel,
        c.stride,
        c.padding,
    )
}

fn missing(name: &str) -> NnError {
    NnError::FixedPoint(format!(
        "step `{name}` has no coefficients (a public view of the program cannot be run)"
    ))
}

impl Step {
    /// Applies this step to input batches in the plaintext ring (the reference
    /// semantics of the op; the secure engine must reproduce it up to the
    /// documented truncation error). Inputs must be canonical ring elements.
    pub fn apply(&self, ring: Ring, ins: &[&RingTensor]) -> Result<RingTensor> {
        if ins.len() != self.op.arity() {
            return Err(NnError::FixedPoint(format!(
                "step `{}` takes {} inputs",
                self.name,
                self.op.arity()
            )));
        }
        let x = ins[0];
        let n = x.batch();
        let in_shapes: Vec<&[usize]> = ins.iter().map(|t| t.sample_shape()).collect();
        let shape = output_shape(&self.op, &in_shapes)
            .map_err(|m| NnError::FixedPoint(format!("step `{}`: {m}", self.name)))?;
        let out_len: usize = shape.iter().product();
        let mut full = vec![n];
        full.extend_from_slice(&shape);
        let mask = ring.mask();
        let mut y = vec![0u64; n * out_len];
        match &self.op {
            FixedOp::Dense(d) => {
                if d.weight.is_empty() {
                    return Err(missing(&self.name));
                }
                dense(d, x, &mut y);
            }
            FixedOp::Conv2d(c) => {
                if c.weight.is_empty() {
                    return Err(missing(&self.name));
                }
                conv(c, x, &mut y);
            }
            FixedOp::ChannelAffine(a) => {
                if a.scale.is_empty() {
                    return Err(missing(&self.name));
                }
                let hw = x.sample_len() / a.channels.max(1);
                y.par_chunks_mut(out_len)
                    .zip(x.data().par_chunks(out_len))
                    .for_each(|(ys, xs)| {
                        for c in 0..a.channels {
                            for i in c * hw..(c + 1) * hw {
                                ys[i] = xs[i].wrapping_mul(a.scale[c]).wrapping_add(a.shift[c]);
                            }
                        }
                    });
            }
            FixedOp::SumPool {
                kernel,
                stride,
                padding,
            }
            | FixedOp::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                let s = x.sample_shape();
                let g = Window::new(s[0], s[1], s[2], *kernel, *stride, *padding)
                    .ok_or_else(|| NnError::FixedPoint("pool window".into()))?;
                let is_max = matches!(self.op, FixedOp::MaxPool { .. });
                y.par_chunks_mut(out_len)
                    .zip(x.data().par_chunks(g.in_len()))
                    .for_each(|(ys, xs)| {
                        if is_max {
                            window_reduce(&g, xs, ys, |a, b| {
                                if ring.to_signed(b) > ring.to_signed(a) {
                                    b
                                } else {
                                    a
                                }
                            });
                        } else {
                            window_reduce(&g, xs, ys, u64::wrapping_add);
                        }
                    });
            }
            FixedOp::GlobalSumPool => {
                let hw = x.sample_len() / out_len.max(1);
                for (o, plane) in y.iter_mut().zip(x.data().chunks(hw)) {
                    *o = plane.iter().fold(0u64, |a, &b| a.wrapping_add(b));
                }
            }
            FixedOp::MulConst { factor } => {
                y.iter_mut()
                    .zip(x.data())
                    .for_each(|(o, &v)| *o = v.wrapping_mul(*factor));
            }
            FixedOp::Add => {
                y.iter_mut()
                    .zip(x.data().iter().zip(ins[1].data()))
                    .for_each(|(o, (&a, &b))| *o = a.wrapping_add(b));
            }
            FixedOp::Reshape => y.copy_from_slice(x.data()),
            FixedOp::Truncate { bits } => {
                let bits = *bits;
                y.par_iter_mut()
                    .zip(x.data().par_iter())
                    .for_each(|(o, &v)| *o = ring.shift_right_signed(v, bits));
            }
            FixedOp::Relu => {
                y.par_iter_mut()
                    .zip(x.data().par_iter())
                    .for_each(|(o, &v)| *o = if ring.msb(v) { 0 } else { v });
            }
            FixedOp::Square => {
                y.par_iter_mut()
                    .zip(x.data().par_iter())
                    .for_each(|(o, &v)| *o = v.wrapping_mul(v));
            }
        }
        y.iter_mut().for_each(|v| *v &= mask);
        RingTensor::new(full, y)
    }
}

fn dense(d: &DenseOp, x: &RingTensor, y: &mut [u64]) {
    let (di, o) = (d.in_features, d.out_features);
    y.par_chunks_mut(o)
        .zip(x.data().par_chunks(di))
        .for_each(|(ys, xs)| {
            for (j, out) in ys.iter_mut().enumerate() {
                *out = dot_u64(&d.weight[j * di..(j + 1) * di], xs).wrapping_add(d.bias[j]);
            }
        });
}

fn conv(c: &Conv2dOp, x: &RingTensor, y: &mut [u64]) {
    let Some(g) = conv_window(c) else { return };
    let (np, kk, co) = (g.out_positions(), g.patch_len(), c.out_channels);
    let one = |xs: &[u64], ys: &mut [u64], parallel: bool| {
        let mut cols = vec![0u64; kk * np];
        im2col(&g, xs, &mut cols);
        if parallel {
            // One sample: split the output channels.
            let rows = co.div_ceil(8).max(1);
            ys.par_chunks_mut(rows * np)
                .enumerate()
                .for_each(|(ci, yc)| {
                    let r = yc.len() / np;
                    gemm_u64(
                        r,
                        kk,
                        np,
                        &c.weight[ci * rows * kk..(ci * rows + r) * kk],
                        &cols,
                        yc,
                    );
                });
        } else {
            gemm_u64(co, kk, np, &c.weight, &cols, ys);
        }
        for (o, plane) in ys.chunks_mut(np).enumerate() {
            plane
                .iter_mut()
                .for_each(|v| *v = v.wrapping_add(c.bias[o]));
        }
    };
    if x.batch() == 1 {
        one(x.data(), y, true);
    } else {
        y.par_chunks_mut(co * np)
            .zip(x.data().par_chunks(g.in_len()))
            .for_each(|(ys, xs)| one(xs, ys, false));
    }
}

impl FixedProgram {
    fn check_input(&self, x: &RingTensor) -> Result<()> {
        crate::float::check_batch(x, &self.input_shape)?;
        let ring = self.ring();
        if x.data().iter().any(|&v| !ring.contains(v)) {
            return Err(NnError::FixedPoint(format!(
                "input has elements outside Z_2^{}",
                ring.bits()
            )));
        }
        Ok(())
    }

    fn execute(
        &self,
        x: &RingTensor,
        keep_all: bool,
        mut observe: impl FnMut(usize, &RingTensor),
    ) -> Result<Vec<Option<RingTensor>>> {
        self.check_input(x)?;
        let last = self.last_uses();
        let mut values: Vec<Option<RingTensor>> = vec![None; self.steps.len() + 1];
        values[0] = Some(x.clone());
        for (i, step) in self.steps.iter().enumerate() {
            let ins: Vec<&RingTensor> = step
                .inputs
                .iter()
                .map(|&v: &ValueId| {
                    values.get(v).and_then(Option::as_ref).ok_or_else(|| {
                        NnError::FixedPoint(format!(
                            "step {i} reads value {v}, which is not available"
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let y = step.apply(self.ring(), &ins)?;
            observe(i, &y);
            values[i + 1] = Some(y);
            if !keep_all {
                for &v in &step.inputs {
                    if last[v] == i + 1 {
                        values[v] = None;
                    }
                }
            }
        }
        Ok(values)
    }

    /// Runs the program on an encoded batch `[N, ...input_shape]`; returns the
    /// output batch at scale [`FixedProgram::output_scale`].
    pub fn run(&self, x: &RingTensor) -> Result<RingTensor> {
        let mut values = self.execute(x, false, |_, _| {})?;
        values
            .pop()
            .flatten()
            .ok_or_else(|| NnError::FixedPoint("empty program".into()))
    }

    /// Runs the program and returns every value (index = value id), for
    /// checking a secure engine step by step.
    pub fn run_all(&self, x: &RingTensor) -> Result<Vec<RingTensor>> {
        self.execute(x, true, |_, _| {})?
            .into_iter()
            .map(|v| v.ok_or_else(|| NnError::FixedPoint("missing value".into())))
            .collect()
    }

    /// Runs the program, showing every step's output batch to `observe`
    /// (step index, value) as it is computed.
    pub fn run_observed(
        &self,
        x: &RingTensor,
        observe: impl FnMut(usize, &RingTensor),
    ) -> Result<RingTensor> {
        let mut values = self.execute(x, false, observe)?;
        values
            .pop()
            .flatten()
            .ok_or_else(|| NnError::FixedPoint("empty program".into()))
    }

    /// Runs the program and reports the largest magnitude each step produced
    /// (how much of the ring the values use: headroom for choosing `l`).
    pub fn run_traced(&self, x: &RingTensor) -> Result<(RingTensor, Vec<StepStats>)> {
        let ring = self.ring();
        let mut stats = Vec::with_capacity(self.steps.len());
        let mut values = self.execute(x, false, |i, y| {
            let max_abs = y
                .data()
                .iter()
                .map(|&v| ring.to_signed(v).unsigned_abs())
                .max()
                .unwrap_or(0);
            stats.push(StepStats {
                name: self.steps[i].name.clone(),
                max_abs,
                bits_used: 65 - max_abs.leading_zeros().min(64),
            });
        })?;
        let y = values
            .pop()
            .flatten()
            .ok_or_else(|| NnError::FixedPoint("empty program".into()))?;
        Ok((y, stats))
    }
}
