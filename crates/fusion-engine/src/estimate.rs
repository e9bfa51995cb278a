//! Cost estimates: the communication of one pass of a program under a
//! backend, step by step, from public sizes alone (no keys, no session).
//!
//! Every backend answers [`crate::backend::PreparedBackend::estimate`] with a
//! [`CostEstimate`]: for each step of the [`Schedule`](crate::Schedule) the bytes each way,
//! split into the input-independent part (the `Preprocessing` phase: OT
//! generation, garbled tables, HE masks) and the part that runs in the step
//! itself, and the number of flights (one-way messages in sequence). The
//! figures come from the protocols' own cost formulas (stated in their module
//! docs and repeated beside each function here) and, for HE layers, from
//! fusion-he's planner, which knows every ciphertext's size exactly.
//!
//! **What an estimate covers.** Protocol messages of the linear and
//! non-linear steps and of the output stage, per pass of `n` samples (a batch
//! of `N` samples runs `ceil(N / chunk)` passes). **Not covered:** the
//! one-time session setup (keys, base OTs: [`CostEstimate::setup_note`] says
//! what it contains), framing (a few bytes per message), QUIC/TLS overhead and
//! retransmissions. Silent OT's generation cost is modelled per ROT
//! ([`SILENT_BYTES_PER_ROT`]), which is accurate for large passes and an
//! underestimate for passes needing fewer ROTs than one minimum refill.
//!
//! `crates/fusion-engine/tests/estimate.rs` checks every backend's estimate
//! against the metered bytes of real sessions (within ±25% per phase and in
//! total); `fusion inspect --model DIR` prints the estimates of every backend.

use serde::Serialize;

use crate::schedule::{NonLinearOp, TruncMode};

/// Bytes one way and the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Client to server.
    pub client_to_server: u64,
    /// Server to client.
    pub server_to_client: u64,
}

impl Traffic {
    /// Both directions together.
    pub fn total(&self) -> u64 {
        self.client_to_server + self.server_to_client
    }

    /// `bits` split evenly between the directions (protocols that balance
    /// their OT directions, e.g. fusion-ot's millionaires).
    pub fn balanced_bits(bits: u64) -> Self {
        let bytes = bits.div_ceil(8);
        Traffic {
            client_to_server: bytes / 2,
            server_to_client: bytes - bytes / 2,
        }
    }
}

impl std::ops::Add for Traffic {
    type Output = Traffic;
    fn add(self, o: Traffic) -> Traffic {
        Traffic {
            client_to_server: self.client_to_server + o.client_to_server,
            server_to_client: self.server_to_client + o.server_to_client,
        }
    }
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Traffic {
    fn sum<I: Iterator<Item = Traffic>>(iter: I) -> Traffic {
        iter.fold(Traffic::default(), |a, b| a + b)
    }
}

/// The estimated cost of one schedule action (a step, or a fused pair).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepCost {
    /// The program step.
    pub step: usize,
    /// Its name.
    pub name: String,
    /// What runs (`linear`, `relu`, `relu_truncate`, ...).
    pub op: String,
    /// Input-independent traffic (charged to the `preprocessing` phase).
    pub offline: Traffic,
    /// Traffic of the step itself (the `linear` or `nonlinear` phase).
    pub online: Traffic,
    /// Flights of the online part (one-way messages in sequence).
    pub flights: u32,
}

/// A backend's estimated communication for one pass of `n` samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// The backend.
    pub backend: &'static str,
    /// Samples in the pass.
    pub n: usize,
    /// Per schedule action with traffic (local steps are left out: they
    /// send nothing).
    pub steps: Vec<StepCost>,
    /// The output stage (revealing the logits).
    pub output: Traffic,
    /// What the one-time session setup sends (not included in the totals).
    pub setup_note: String,
}

impl CostEstimate {
    /// Input-independent traffic of the pass.
    pub fn offline(&self) -> Traffic {
        self.steps.iter().map(|s| s.offline).sum()
    }

    /// Traffic of the linear steps.
    pub fn linear(&self) -> Traffic {
        self.steps
            .iter()
            .filter(|s| s.op == "linear")
            .map(|s| s.online)
            .sum()
    }

    /// Traffic of the non-linear steps.
    pub fn nonlinear(&self) -> Traffic {
        self.steps
            .iter()
            .filter(|s| s.op != "linear")
            .map(|s| s.online)
            .sum()
    }

    /// Everything of the pass: offline, linear, non-linear and output.
    pub fn total(&self) -> Traffic {
        self.offline() + self.linear() + self.nonlinear() + self.output
    }

    /// Online flights of the pass (steps in sequence, plus the output).
    pub fn flights(&self) -> u32 {
        self.steps.iter().map(|s| s.flights).sum::<u32>() + 1
    }
}

/// Packed bytes of `count` ring elements of `l` bits (the backends' packing).
pub fn packed_bytes(count: usize, l: u32) -> u64 {
    (count as u64 * u64::from(l)).div_ceil(8)
}

/// Silent-OT generation, bytes per random OT (both directions together):
/// CryProt's silent OT expands a short seed correlation, so its traffic
/// grows sublinearly; at the refill sizes of real passes (`>= 2^16` ROTs)
/// it is about this much per ROT (`cargo bench -p fusion-ot --bench
/// nonlinear`, raw OT row: 0.2 B/OT).
pub const SILENT_BYTES_PER_ROT: f64 = 0.2;

/// IKNP OT extension, bits per random OT on the wire: the receiver's
/// `κ = 128`-bit column of the extension matrix.
pub const IKNP_BITS_PER_ROT: u64 = 128;

/// Cost of one fusion-ot protocol run over a batch: bits on the wire (both
/// directions together), ROTs consumed and flights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtCost {
    /// Bits on the wire per element (both directions).
    pub bits: u64,
    /// Random OTs consumed per element (both directions).
    pub rots: u64,
    /// Flights of one run.
    pub flights: u32,
}

impl OtCost {
    fn then(self, o: OtCost) -> OtCost {
        OtCost {
            bits: self.bits + o.bits,
            rots: self.rots + o.rots,
            flights: self.flights + o.flights,
        }
    }
}

/// fusion-ot's millionaires' comparison of `w`-bit inputs with `m`-bit
/// blocks (`crates/fusion-ot/src/millionaires.rs`, "Cost"): `q = ceil(w/m)`
/// leaves, one 1-of-`2^{m_j}` OT of `t_j`-bit messages each (`t = 1` for
/// block 0, else 2) plus one choice correction per leaf ROT (`w` bits); the
/// AND tree has `q - 1` nodes of 6 bits, except the `ceil(log2 q)` nodes
/// containing block 0, which need only 4.
pub fn millionaires(w: u32, m: u32) -> OtCost {
    let m = m.max(1);
    let q = w.div_ceil(m).max(1);
    let mut bits = u64::from(w);
    for j in 0..q {
        let mj = if j + 1 == q { w - m * (q - 1) } else { m };
        let t = if j == 0 { 1 } else { 2 };
        bits += (1u64 << mj) * t;
    }
    let levels = if q <= 1 {
        0
    } else {
        32 - (q - 1).leading_zeros()
    };
    let nodes = u64::from(q - 1);
    bits += 4 * u64::from(levels) + 6 * (nodes - u64::from(levels));
    OtCost {
        bits,
        rots: u64::from(w) + 2 * nodes,
        flights: 2 + levels,
    }
}

/// fusion-ot's ReLU in `Z_{2^l}` (`relu.rs`): DReLU (millionaires on the
/// low `l - 1` bits) and a multiplexer (`2l + 2` bits, 2 ROTs, 1 flight).
pub fn relu(l: u32, m: u32) -> OtCost {
    relu_comparing(l, l - 1, m)
}

/// A ReLU in `Z_{2^l}` whose DReLU compares `w` bits (`drelu.rs`, narrow
/// windows), and the `l`-bit multiplexer.
pub fn relu_comparing(l: u32, w: u32, m: u32) -> OtCost {
    millionaires(w, m).then(OtCost {
        bits: 2 * u64::from(l) + 2,
        rots: 2,
        flights: 1,
    })
}

/// fusion-ot's fused ReLU-truncation (`relu_truncate.rs`): a ReLU whose
/// DReLU skips `min(f + 1, l - 2)` bits (compares
/// `l - 1 - min(f + 1, l - 2)` bits), plus `f + 1` bits and 1 ROT in the same
/// flights; for `f >= 3` its multiplexer runs on `k = l + 1 - f` bits
/// (`2(l - k)` bits fewer) and an extension to `l` bits follows (`l - k + 1`
/// bits, 1 ROT, 1 flight).
pub fn relu_truncate(l: u32, m: u32, f: u32) -> OtCost {
    let w = l - 1 - (f + 1).min(l.saturating_sub(2));
    let base = relu_comparing(l, w, m).then(OtCost {
        bits: u64::from(f) + 1,
        rots: 1,
        flights: 0,
    });
    if f < 3 || f >= l {
        return base;
    }
    let narrowed = u64::from(f - 1); // l - k
    OtCost {
        bits: base.bits - 2 * narrowed + narrowed + 1,
        rots: base.rots + 1,
        flights: base.flights + 1,
    }
}

/// [`relu_truncate`] of inputs known to fit in `input_bits` signed bits
/// (`OtEngine::relu_truncate_bounded`): where the working ring `Z_{2^w}`,
/// `w = input_bits + 1`, is narrower than `Z_{2^l}` and `3 <= f <= w - 3`,
/// the fused op in `Z_{2^w}` with its extension reaching `l` bits (`l - w`
/// bits more); else [`relu_truncate`].
pub fn relu_truncate_bounded(l: u32, m: u32, f: u32, input_bits: Option<u32>) -> OtCost {
    match input_bits.map(|k| k + 1) {
        Some(w) if w < l && f >= 3 && f + 3 <= w => {
            let c = relu_truncate(w, m, f);
            OtCost {
                bits: c.bits + u64::from(l - w),
                ..c
            }
        }
        _ => relu_truncate(l, m, f),
    }
}

/// fusion-ot's one-bit-error truncation (`truncate.rs`): `f + 1` bits,
/// 1 ROT, 1 flight.
pub fn truncate(f: u32) -> OtCost {
    OtCost {
        bits: u64::from(f) + 1,
        rots: 1,
        flights: 1,
    }
}

/// fusion-ot's exact truncation (`truncate_exact.rs`): one `l`-bit
/// comparison split at bit `f`, then two B2As (`l + 2` bits, 1 ROT each).
pub fn truncate_exact(l: u32, m: u32) -> OtCost {
    millionaires(l, m).then(OtCost {
        bits: 2 * (u64::from(l) + 2),
        rots: 2,
        flights: 1,
    })
}

/// fusion-ot's square (`square.rs`): `l(l-1)/2 + 2l` bits, `l - 1` ROTs,
/// 1 flight.
pub fn square(l: u32) -> OtCost {
    let l = u64::from(l);
    OtCost {
        bits: l * (l - 1) / 2 + 2 * l,
        rots: l - 1,
        flights: 1,
    }
}

/// Pairwise comparisons per tournament level of a max pool over windows of
/// the given sizes (`maxpool.rs`: all pairs of one level in one batch).
pub fn maxpool_levels(window_sizes: impl IntoIterator<Item = usize>) -> Vec<u64> {
    let mut sizes: Vec<usize> = window_sizes.into_iter().collect();
    let mut levels = Vec::new();
    loop {
        let pairs: usize = sizes.iter().map(|k| k / 2).sum();
        if pairs == 0 {
            return levels;
        }
        levels.push(pairs as u64);
        sizes.iter_mut().for_each(|k| *k = k.div_ceil(2));
    }
}

/// The OT cost of non-linear op `op` on a pass of `n` samples whose input
/// has `elems` elements in total, in ring `Z_{2^l}` with `m`-bit blocks:
/// total bits, total ROTs and flights.
pub fn ot_op(op: &NonLinearOp, elems: usize, n: usize, l: u32, m: u32) -> (u64, u64, u32) {
    let e = elems as u64;
    let scale = |c: OtCost, k: u64| (c.bits * k, c.rots * k, c.flights);
    match op {
        NonLinearOp::Relu { .. } => {
            // A ReLU of k-bit inputs compares k - 1 bits (`OtEngine::relu_bounded`).
            let k = op.input_width(l).unwrap_or(l);
            scale(relu_comparing(l, k - 1, m), e)
        }
        NonLinearOp::ReluTruncate { bits, input_bits } => {
            scale(relu_truncate_bounded(l, m, *bits, *input_bits), e)
        }
        NonLinearOp::Truncate { bits: 0, .. } => (0, 0, 0),
        NonLinearOp::Truncate { bits, mode } => match mode {
            TruncMode::Signed | TruncMode::NonNeg => scale(truncate(*bits), e),
            TruncMode::Exact => scale(truncate_exact(l, m), e),
        },
        NonLinearOp::Square => scale(square(l), e),
        NonLinearOp::MaxPool { .. } => {
            // A max of two k-bit values compares k bits (`OtEngine::max_bounded`).
            let per = relu_comparing(l, op.input_width(l).unwrap_or(l - 1), m);
            op.pool_stages()
                .into_iter()
                .flat_map(|(windows, _)| maxpool_levels(windows.iter().map(Vec::len)))
                .fold((0, 0, 0), |(b, r, f), pairs| {
                    let k = pairs * n as u64;
                    (b + per.bits * k, r + per.rots * k, f + per.flights)
                })
        }
    }
}

/// Bytes of one garbled AND gate (half-gates: two ciphertexts of 16 bytes).
pub const GC_AND_BYTES: u64 = 32;

/// Bytes of one wire label.
pub const GC_LABEL_BYTES: u64 = 16;

/// A chosen-message 1-of-2 OT of one 128-bit label on IKNP, bits on the
/// wire: the receiver's extension column (128) and choice correction (1),
/// the sender's two masked labels (256).
pub const IKNP_LABEL_OT_BITS: u64 = IKNP_BITS_PER_ROT + 1 + 256;

/// Bytes of the offline header of one garbled circuit (the `delphi`
/// backend's `gc.rs`: five `u64`s).
pub const GC_HEADER_BYTES: u64 = 40;

/// A garbled non-linear step of the `delphi`/`aby` backends
/// (`backends/delphi/gc.rs`) with `and_gates` AND gates, `inputs` input and
/// `outputs` output elements of `l` bits: offline, the garbled tables, the
/// output decoding bits, the labels of the server's mask `z` and one label
/// OT (IKNP) per bit of the client's input; online, the client's padded
/// share (if `padded`) and the labels of the server's share (and of the pad).
/// Returns (offline, online, online flights).
pub fn gc_step(
    and_gates: u64,
    inputs: usize,
    outputs: usize,
    l: u32,
    padded: bool,
) -> (Traffic, Traffic, u32) {
    let in_bits = inputs as u64 * u64::from(l);
    let out_bits = outputs as u64 * u64::from(l);
    let offline = Traffic {
        client_to_server: (in_bits * (IKNP_BITS_PER_ROT + 1)).div_ceil(8),
        server_to_client: GC_HEADER_BYTES
            + GC_AND_BYTES * and_gates
            + out_bits.div_ceil(8)
            + out_bits * GC_LABEL_BYTES
            + (in_bits * 256).div_ceil(8),
    };
    let (online, flights) = if padded {
        (
            Traffic {
                client_to_server: in_bits.div_ceil(8),
                server_to_client: 2 * in_bits * GC_LABEL_BYTES,
            },
            2,
        )
    } else {
        (
            Traffic {
                client_to_server: 0,
                server_to_client: in_bits * GC_LABEL_BYTES,
            },
            1,
        )
    };
    (offline, online, flights)
}

/// Gilboa's OT multiplication (`fusion-ot/src/gilboa.rs`) for `products`
/// products in `Z_{2^l}`, the client receiving: per product `l` choice
/// corrections and `l` IKNP columns client→server, `l(l+1)/2` correction
/// bits server→client.
pub fn gilboa(products: u64, l: u32) -> Traffic {
    let l = u64::from(l);
    Traffic {
        client_to_server: (products * l * (1 + IKNP_BITS_PER_ROT)).div_ceil(8),
        server_to_client: (products * l * (l + 1) / 2).div_ceil(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_reproduce_the_costs_stated_in_fusion_ot() {
        // millionaires.rs: w = 36, m = 4: 348 bits.
        assert_eq!(millionaires(36, 4).bits, 348);
        // drelu.rs: l = 37: 6 flights, 52 ROTs; l = 64: 93 ROTs, 625 bits.
        assert_eq!(millionaires(36, 4).rots, 52);
        assert_eq!(millionaires(36, 4).flights, 6);
        assert_eq!(millionaires(63, 4).rots, 93);
        assert_eq!(millionaires(63, 4).bits, 625);
        // relu.rs: l = 37: 7 flights, 54 ROTs, 424 bits; l = 64: 95, 755.
        assert_eq!(
            relu(37, 4),
            OtCost {
                bits: 424,
                rots: 54,
                flights: 7
            }
        );
        assert_eq!(relu(64, 4).rots, 95);
        assert_eq!(relu(64, 4).bits, 755);
        // square.rs: l = 37: 740 bits.
        assert_eq!(square(37).bits, 740);
        // truncate.rs: f + 1 bits.
        assert_eq!(truncate(12).bits, 13);
    }

    #[test]
    fn a_2x2_max_pool_costs_three_comparisons_in_two_levels() {
        assert_eq!(maxpool_levels([4usize, 4]), vec![4, 2]);
        assert_eq!(maxpool_levels([3usize]), vec![1, 1]);
        assert!(maxpool_levels([1usize]).is_empty());
    }
}
