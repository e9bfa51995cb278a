//! The `delphi` backend's non-linear layers: garbled circuits (Yao; the
//! half-gates garbling of fusion-gc), garbled **offline** by the server and
//! evaluated **online** by the client, as in DELPHI (Mishra, Lehmkuhl,
//! Srinivasan, Zheng, Popa, USENIX Security 2020, §4 "ReLU layers").
//!
//! **Circuit of one non-linear step** over the `N` input elements of a chunk
//! (ring `Z_{2^l}`, `M` outputs). Garbler inputs, in this order: the output
//! mask `z` (`M·l` bits, chosen offline), the server's share `x_S`
//! (`N·l` bits, online) and the client's padded share `δ = x_C ⊕ ρ`
//! (`N·l` bits, online); evaluator inputs: the pad `ρ` (`N·l` bits, chosen by
//! the client offline). The circuit recovers `x_C = δ ⊕ ρ` (free XORs),
//! reconstructs `x = x_S + x_C mod 2^l`, applies the op and outputs
//! `y − z mod 2^l` to the client. When the client's share is already known
//! offline (the step reads a linear layer's output, whose client share is
//! the offline HE share), the circuit is **unpadded**: there is no `δ`, the
//! evaluator's input is `x_C` itself, and online the client sends nothing.
//!
//!
//! | op | `y` | AND gates per element |
//! |---|---|---|
//! | `Relu` | `x` if `x ≥ 0` (signed) else `0` | `3(l − 1)` |
//! | `ReluTruncate { bits }` | `ReLU(x) >> bits` (the shift is rewiring; exact floor) | `3(l − 1)` |
//! | `Truncate { bits, .. }` | `x >> bits`, arithmetic (exact floor, every mode) | `2(l − 1)` |
//! | `MaxPool` | signed max over each window | `l − 1` per input, `2l(k − 1) + l − 1` per window of `k` |
//! | `Square` | `x·x mod 2^l` (schoolbook, low `l` bits) | about `l² + l − 1` |
//!
//! **Offline** ([`server_offline`], [`client_offline`], in the
//! `Preprocessing` phase): the server draws `z`, garbles, and sends a header
//! (circuit id and shape), the garbled tables, the output decoding bits and
//! the labels of `z`; the client draws `ρ` and obtains the labels of `ρ` by
//! IKNP oblivious transfer (fusion-ot's `OtEngine<Iknp>`, one chosen-message
//! block OT per bit). The client's input is thus transferred by OT offline
//! even though its share is only known online: online it reveals only
//! `δ = x_C ⊕ ρ`, a one-time pad of its share (Beaver's OT precomputation
//! applied to the evaluator's input).
//!
//! **Online** ([`client_online`], [`server_online`]): the client sends `δ`
//! (`⌈N·l/8⌉` bytes); the server replies with the labels of `x_S` and `δ`
//! (`2·N·l` labels of 16 bytes); the client evaluates and decodes `y − z`.
//! Two flights, no OT. Unpadded: one flight, the labels of `x_S` only
//! (`N·l` labels); the client checks that the share it holds is the one it
//! fed to the OT.
//!
//! **What each party learns.** The server learns `δ`, uniformly random given
//! its view since `ρ` is uniform and used once, and nothing from the OT (it
//! is the sender). The client learns one label per wire of a circuit garbled
//! under a fresh `Δ` and its output `y − z`, uniformly random since `z` is
//! uniform and used once. The shares of the result are `z` (server) and
//! `y − z` (client). Every garbled circuit is evaluated once: the garbler's
//! and the client's circuit counters must agree (checked on the header).

use std::sync::Arc;

use fusion_core::ring::Ring;
use fusion_gc::gadgets::arith::{add, sub};
use fusion_gc::gadgets::max::max_signed;
use fusion_gc::gadgets::{bits_to_values, values_to_bits};
use fusion_gc::{
    Builder, Circuit, Evaluator, GarbledCircuit, Garbler, GarblerInputPairs, GcError, LABEL_BYTES,
    Labels, Wire, receive_evaluator_labels, send_evaluator_labels,
};
use fusion_net::Channel;
use fusion_ot::{Iknp, OtEngine};
use rand::rngs::ChaCha20Rng;
use rand::{CryptoRng, Rng, SeedableRng};

use super::pack::{pack, recv_chunked, recv_values, send_chunked};
use crate::backends::cheetah::he::blocking;
use crate::error::{SecureError, SecureResult};
use crate::schedule::NonLinearOp;

/// Bytes of the offline header (5 little-endian `u64`s).
const HEADER_BYTES: usize = 40;
const MAGIC: u64 = u64::from_le_bytes(*b"DELPHIGC");

/// The public circuit of one non-linear step of a chunk.
#[derive(Debug, Clone)]
pub struct OpCircuit {
    /// The circuit.
    pub circuit: Arc<Circuit>,
    /// Input elements `N`.
    pub inputs: usize,
    /// Output elements `M`.
    pub outputs: usize,
    /// The op's tag.
    pub tag: &'static str,
    /// The layer, for errors: the op and its program step.
    pub what: String,
    /// Whether the client's input is padded (`δ = x_C ⊕ ρ` online) or its
    /// share is known offline and is the evaluator's input directly.
    pub padded: bool,
}

fn param(e: GcError) -> SecureError {
    SecureError::Config(format!("garbled circuit: {e}"))
}

/// Maps a fusion-gc error of a peer interaction on `what` to the engine's
/// error: I/O stays I/O, OT stays OT, everything else is the peer's
/// malformed data.
fn peer(what: &str) -> impl Fn(GcError) -> SecureError + '_ {
    move |e| match e {
        GcError::Io(e) => SecureError::Net(e),
        GcError::Ot(e) => SecureError::Ot(e),
        e => SecureError::Malformed(format!("{what}: {e}")),
    }
}

/// `ReLU` of a signed `l`-bit value: zero unless the sign bit is clear
/// (`l − 1` ANDs).
fn relu(b: &mut Builder, x: &[Wire]) -> Vec<Wire> {
    let l = x.len();
    let pos = b.not(x[l - 1]);
    let mut y: Vec<Wire> = x[..l - 1].iter().map(|&w| b.and(w, pos)).collect();
    y.push(Wire::ZERO);
    y
}

/// `x >> bits`, filling with `fill` (the sign bit: arithmetic; zero:
/// logical). Free.
fn shift_right(x: &[Wire], bits: u32, fill: Wire) -> Vec<Wire> {
    let s = bits as usize;
    (0..x.len())
        .map(|j: usize| x.get(j.saturating_add(s)).copied().unwrap_or(fill))
        .collect()
}

/// `x·x mod 2^l` (schoolbook: row `i` adds `x_i·x` shifted by `i`).
fn square(b: &mut Builder, x: &[Wire]) -> SecureResult<Vec<Wire>> {
    let l = x.len();
    let mut acc = vec![Wire::ZERO; l];
    for i in 0..l {
        let row: Vec<Wire> = (0..l - i).map(|j| b.and(x[j], x[i])).collect();
        let sum = add(b, &acc[i..], &row).map_err(param)?;
        acc[i..].copy_from_slice(&sum);
    }
    Ok(acc)
}

/// The circuit of `op` (program step `step`) on `inputs` elements of a
/// chunk of `n` samples in `ring` (module docs); `padded`: the client's
/// input arrives online as `δ = x_C ⊕ ρ` (else its share is the evaluator's
/// input itself, known offline).
pub fn build(
    op: &NonLinearOp,
    ring: Ring,
    n: usize,
    inputs: usize,
    step: usize,
    padded: bool,
) -> SecureResult<OpCircuit> {
    let l = ring.bits() as usize;
    let windows = op.batch_windows(n);
    if let Some(w) = &windows
        && w.iter().flatten().any(|&i| i >= inputs)
    {
        return Err(SecureError::Config(format!(
            "max pool window index outside the {inputs} inputs"
        )));
    }
    if let Some(w) = &windows
        && w.iter().any(Vec::is_empty)
    {
        return Err(SecureError::Config("max pool with an empty window".into()));
    }
    let outputs = windows.as_ref().map_or(inputs, Vec::len);
    let mut b = Builder::new();
    let z: Vec<Vec<Wire>> = (0..outputs).map(|_| b.garbler_inputs(l)).collect();
    let xs: Vec<Vec<Wire>> = (0..inputs).map(|_| b.garbler_inputs(l)).collect();
    let delta: Vec<Vec<Wire>> = if padded {
        (0..inputs).map(|_| b.garbler_inputs(l)).collect()
    } else {
        Vec::new()
    };
    let rho: Vec<Vec<Wire>> = (0..inputs).map(|_| b.evaluator_inputs(l)).collect();
    let mut x = Vec::with_capacity(inputs);
    for i in 0..inputs {
        let xc: Vec<Wire> = match delta.get(i) {
            Some(d) => d.iter().zip(&rho[i]).map(|(&d, &r)| b.xor(d, r)).collect(),
            None => rho[i].clone(),
        };
        x.push(add(&mut b, &xs[i], &xc).map_err(param)?);
    }
    let y: Vec<Vec<Wire>> = match op {
        NonLinearOp::Relu { .. } => x.iter().map(|v| relu(&mut b, v)).collect(),
        NonLinearOp::ReluTruncate { bits, .. } => x
            .iter()
            .map(|v| shift_right(&relu(&mut b, v), *bits, Wire::ZERO))
            .collect(),
        NonLinearOp::Truncate { bits, .. } => {
            x.iter().map(|v| shift_right(v, *bits, v[l - 1])).collect()
        }
        NonLinearOp::MaxPool { .. } => {
            let windows = windows.unwrap_or_default();
            let mut out = Vec::with_capacity(windows.len());
            for w in &windows {
                let vals: Vec<Vec<Wire>> = w.iter().map(|&i| x[i].clone()).collect();
                out.push(max_signed(&mut b, &vals).map_err(param)?);
            }
            out
        }
        NonLinearOp::Square => x
            .iter()
            .map(|v| square(&mut b, v))
            .collect::<SecureResult<_>>()?,
    };
    for (yi, zi) in y.iter().zip(&z) {
        let o = sub(&mut b, yi, zi).map_err(param)?;
        b.outputs(&o);
    }
    Ok(OpCircuit {
        circuit: Arc::new(b.finish()),
        inputs,
        outputs,
        tag: op.tag(),
        what: format!("{} (step {step})", op.tag()),
        padded,
    })
}

/// The server's part of one preprocessed circuit: its output share `z` and
/// the label pairs of its online inputs.
pub struct ServerGc {
    oc: OpCircuit,
    z: Vec<u64>,
    pairs: GarblerInputPairs,
}

/// The client's part of one preprocessed circuit.
pub struct ClientGc {
    oc: OpCircuit,
    gc: GarbledCircuit,
    z_labels: Labels,
    rho: Vec<u64>,
    rho_labels: Labels,
}

fn header(id: u64, oc: &OpCircuit) -> Vec<u8> {
    [
        MAGIC,
        id,
        oc.circuit.and_count() as u64,
        oc.inputs as u64,
        oc.outputs as u64,
    ]
    .iter()
    .flat_map(|v| v.to_le_bytes())
    .collect()
}

fn fork<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    ChaCha20Rng::from_seed(seed)
}

/// Offline, server: garbles `oc` and sends it with the labels of a fresh
/// mask `z`; transfers the labels of the client's pad by OT. Returns the
/// server's state for the online phase and the table bytes sent.
pub async fn server_offline<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    ot: &mut OtEngine<Iknp>,
    garbler: &mut Option<Garbler>,
    oc: OpCircuit,
    ring: Ring,
    rng: &mut R,
) -> SecureResult<(ServerGc, u64)> {
    let l = ring.bits() as usize;
    let z: Vec<u64> = (0..oc.outputs).map(|_| ring.random(rng)).collect();
    let mut g = garbler
        .take()
        .ok_or_else(|| SecureError::Config("the garbler is gone after an error".into()))?;
    let id = g.next_id();
    let mut r = fork(rng);
    let circuit = oc.circuit.clone();
    let (g, garbling) = blocking(move || {
        let garbling = g.garble(&circuit, &mut r).map_err(param)?;
        Ok((g, garbling))
    })
    .await?;
    *garbler = Some(g);
    let (gc, pairs, epairs) = garbling.into_deferred();
    let (z_labels, pairs) = pairs.split_front(&values_to_bits(&z, l)).map_err(param)?;
    ch.send_frame(&header(id, &oc)).await?;
    let tables = gc.table_bytes();
    send_chunked(ch, &tables).await?;
    send_chunked(ch, &gc.decoding_bytes()).await?;
    send_chunked(ch, &z_labels.to_bytes()).await?;
    drop(z_labels);
    send_evaluator_labels(ot, epairs)
        .await
        .map_err(peer(&oc.what))?;
    Ok((ServerGc { oc, z, pairs }, tables.len() as u64))
}

/// Offline, client: receives the garbled circuit `id` for `oc` and the
/// labels of the server's mask, and obtains by OT the labels of its input:
/// its share `known` if `oc` is not padded, else a fresh pad `ρ`.
pub async fn client_offline<R: Rng + CryptoRng + ?Sized>(
    ch: &mut Channel,
    ot: &mut OtEngine<Iknp>,
    id: u64,
    oc: OpCircuit,
    known: Option<Vec<u64>>,
    ring: Ring,
    rng: &mut R,
) -> SecureResult<ClientGc> {
    let l = ring.bits() as usize;
    let what = oc.what.clone();
    let what = what.as_str();
    let head = recv_chunked(ch, HEADER_BYTES, what).await?;
    if head != header(id, &oc) {
        return Err(SecureError::Malformed(format!(
            "{what}: the garbled circuit's header does not match circuit {id} of {} ANDs, {} inputs, {} outputs",
            oc.circuit.and_count(),
            oc.inputs,
            oc.outputs
        )));
    }
    let tables = recv_chunked(ch, oc.circuit.table_bytes(), what).await?;
    let decoding = recv_chunked(ch, oc.circuit.output_count().div_ceil(8), what).await?;
    let gc = GarbledCircuit::from_bytes(&oc.circuit, id, &tables, &decoding).map_err(peer(what))?;
    drop(tables);
    let nz = oc.outputs * l;
    let zb = recv_chunked(ch, nz * LABEL_BYTES, what).await?;
    let z_labels =
        Labels::from_bytes(&zb, nz, "labels of the server's mask").map_err(peer(what))?;
    let rho: Vec<u64> = match known {
        Some(x) if !oc.padded && x.len() == oc.inputs => x,
        None if oc.padded => (0..oc.inputs).map(|_| ring.random(rng)).collect(),
        _ => {
            return Err(SecureError::Config(format!(
                "{what}: the client's offline input does not fit the circuit"
            )));
        }
    };
    let rho_labels = receive_evaluator_labels(ot, &values_to_bits(&rho, l))
        .await
        .map_err(peer(what))?;
    Ok(ClientGc {
        oc,
        gc,
        z_labels,
        rho,
        rho_labels,
    })
}

impl ServerGc {
    /// The op's tag.
    pub fn tag(&self) -> &'static str {
        self.oc.tag
    }
}

impl ClientGc {
    /// The op's tag.
    pub fn tag(&self) -> &'static str {
        self.oc.tag
    }
}

/// Online, server: receives the client's padded share, sends the labels of
/// its share `x_s` and of the padded share; returns its output share `z`.
pub async fn server_online(
    ch: &mut Channel,
    state: ServerGc,
    x_s: &[u64],
    ring: Ring,
) -> SecureResult<Vec<u64>> {
    let ServerGc { oc, z, pairs } = state;
    let l = ring.bits() as usize;
    if x_s.len() != oc.inputs {
        return Err(SecureError::Config(format!(
            "{}: {} input shares where the circuit has {}",
            oc.what,
            x_s.len(),
            oc.inputs
        )));
    }
    let mut bits = values_to_bits(x_s, l);
    if oc.padded {
        let what = format!("padded client shares of {}", oc.what);
        let delta = recv_values(ch, oc.inputs, ring, &what).await?;
        bits.extend(values_to_bits(&delta, l));
    }
    let labels = pairs.select(&bits).map_err(param)?;
    let mut bytes = labels.to_bytes();
    drop(labels);
    let sent = send_chunked(ch, &bytes).await;
    bytes.iter_mut().for_each(|b| *b = 0);
    sent?;
    Ok(z)
}

/// Online, client: sends its padded share, receives the server's labels,
/// evaluates and returns its output share `y − z`.
pub async fn client_online(
    ch: &mut Channel,
    evaluator: &mut Option<Evaluator>,
    state: ClientGc,
    x_c: &[u64],
    ring: Ring,
) -> SecureResult<Vec<u64>> {
    let ClientGc {
        oc,
        gc,
        mut z_labels,
        rho,
        rho_labels,
    } = state;
    let l = ring.bits() as usize;
    let what = oc.what.clone();
    if x_c.len() != oc.inputs {
        return Err(SecureError::Config(format!(
            "{what}: {} input shares where the circuit has {}",
            x_c.len(),
            oc.inputs
        )));
    }
    let ng = if oc.padded {
        let delta: Vec<u64> = x_c
            .iter()
            .zip(&rho)
            .map(|(&x, &r)| (x ^ r) & ring.mask())
            .collect();
        ch.send_frame(&pack(&delta, ring.bits())).await?;
        2 * oc.inputs * l
    } else {
        // The share fed to the OT offline must be the one we hold now.
        if x_c != rho.as_slice() {
            return Err(SecureError::Config(format!(
                "{what}: the client's share differs from the one preprocessed"
            )));
        }
        oc.inputs * l
    };
    let bytes = recv_chunked(ch, ng * LABEL_BYTES, &what).await?;
    let labels = Labels::from_bytes(&bytes, ng, "garbler input labels").map_err(peer(&what))?;
    z_labels.append(labels);
    let mut ev = evaluator
        .take()
        .ok_or_else(|| SecureError::Config("the evaluator is gone after an error".into()))?;
    let circuit = oc.circuit.clone();
    let (ev, out) = blocking(move || {
        let out = ev
            .evaluate(&circuit, gc, z_labels, rho_labels)
            .map_err(|e| SecureError::Malformed(format!("{what}: {e}")));
        Ok((ev, out))
    })
    .await?;
    *evaluator = Some(ev);
    Ok(bits_to_values(&out?, l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_gc::Evaluator;
    use rand::RngExt;

    /// Garbles and evaluates `op` in one process (both inputs known) and
    /// returns the reconstructed outputs.
    fn run(op: &NonLinearOp, ring: Ring, n: usize, x: &[u64], seed: u64) -> Vec<u64> {
        let padded = run_with(op, ring, n, x, seed, true);
        let known = run_with(op, ring, n, x, seed, false);
        assert_eq!(
            padded, known,
            "padded and offline-known client inputs differ"
        );
        padded
    }

    fn run_with(
        op: &NonLinearOp,
        ring: Ring,
        n: usize,
        x: &[u64],
        seed: u64,
        padded: bool,
    ) -> Vec<u64> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let l = ring.bits() as usize;
        let oc = build(op, ring, n, x.len(), 0, padded).unwrap();
        let xs: Vec<u64> = x.iter().map(|_| ring.random(&mut rng)).collect();
        let xc: Vec<u64> = x.iter().zip(&xs).map(|(&v, &s)| ring.sub(v, s)).collect();
        let rho: Vec<u64> = x.iter().map(|_| ring.random(&mut rng)).collect();
        let delta: Vec<u64> = xc.iter().zip(&rho).map(|(&a, &b)| a ^ b).collect();
        let z: Vec<u64> = (0..oc.outputs).map(|_| ring.random(&mut rng)).collect();
        let (gc, pairs, epairs) = Garbler::new()
            .garble(&oc.circuit, &mut rng)
            .unwrap()
            .into_deferred();
        let (mut gl, rest) = pairs.split_front(&values_to_bits(&z, l)).unwrap();
        let mut bits = values_to_bits(&xs, l);
        if padded {
            bits.extend(values_to_bits(&delta, l));
        }
        gl.append(rest.select(&bits).unwrap());
        let ein = if padded { &rho } else { &xc };
        let el = epairs.select(&values_to_bits(ein, l)).unwrap();
        let out = Evaluator::new().evaluate(&oc.circuit, gc, gl, el).unwrap();
        bits_to_values(&out, l)
            .iter()
            .zip(&z)
            .map(|(&a, &b)| ring.add(a, b))
            .collect()
    }

    fn edge_and_random(ring: Ring, count: usize, seed: u64) -> Vec<u64> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let half = 1u64 << (ring.bits() - 1);
        let mut v = vec![0, 1, ring.mask(), half, half - 1, half + 1, 7, ring.neg(7)];
        v.extend((0..count).map(|_| rng.random::<u64>() & ring.mask()));
        v
    }

    #[test]
    fn every_op_circuit_computes_the_reference_exactly() {
        for bits in [13u32, 37, 64] {
            let ring = Ring::new(bits).unwrap();
            let x = edge_and_random(ring, 24, u64::from(bits));
            let s = |v: u64| ring.to_signed(v);
            let y = run(&NonLinearOp::Relu { input_bits: None }, ring, 1, &x, 1);
            for (&a, &b) in x.iter().zip(&y) {
                assert_eq!(b, if s(a) < 0 { 0 } else { a }, "relu l = {bits}");
            }
            for k in [0u32, 1, 5, 12] {
                let y = run(
                    &NonLinearOp::ReluTruncate {
                        bits: k,
                        input_bits: None,
                    },
                    ring,
                    1,
                    &x,
                    2,
                );
                for (&a, &b) in x.iter().zip(&y) {
                    assert_eq!(b, ring.from_signed(s(a).max(0) >> k), "relu_truncate {k}");
                }
                let op = NonLinearOp::Truncate {
                    bits: k,
                    mode: crate::schedule::TruncMode::Signed,
                };
                let y = run(&op, ring, 1, &x, 3);
                for (&a, &b) in x.iter().zip(&y) {
                    assert_eq!(b, ring.from_signed(s(a) >> k), "truncate {k}");
                }
            }
            let y = run(&NonLinearOp::Square, ring, 1, &x, 4);
            for (&a, &b) in x.iter().zip(&y) {
                assert_eq!(b, ring.mul(a, a), "square l = {bits}");
            }
            // Two samples of 4 elements, windows {0,1}, {1,2,3}, {3}.
            let windows = Arc::new(vec![vec![0, 1], vec![1, 2, 3], vec![3]]);
            let op = NonLinearOp::MaxPool {
                windows: windows.clone(),
                in_len: 4,
                input_bits: None,
                stages: None,
            };
            let y = run(&op, ring, 2, &x[..8], 5);
            let mut want = Vec::new();
            for smp in 0..2 {
                for w in windows.iter() {
                    let m = w.iter().map(|&i| x[4 * smp + i]).max_by_key(|&v| s(v));
                    want.push(m.unwrap());
                }
            }
            assert_eq!(y, want, "max pool l = {bits}");
        }
    }

    /// Both parties' OT engines and garbled-circuit channels over a real
    /// loopback session (the sessions are returned to keep them alive).
    async fn parties() -> (
        OtEngine<Iknp>,
        OtEngine<Iknp>,
        Channel,
        Channel,
        (fusion_net::Session, fusion_net::Session),
    ) {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build_global();
        let (mut srv, mut cli) = fusion_net::local_pair(&fusion_net::NetConfig::default())
            .await
            .unwrap();
        let ring = Ring::new(37).unwrap();
        let cfg = fusion_ot::OtConfig {
            min_refill: 1 << 12,
            ..fusion_ot::OtConfig::default()
        };
        let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
        use fusion_ot::Role;
        let (ot_s, ot_c) = tokio::try_join!(
            OtEngine::<Iknp>::setup_on(
                srv.sub_connection(),
                None,
                Role::Server,
                ring,
                cfg,
                &mut r0
            ),
            OtEngine::<Iknp>::setup_on(
                cli.sub_connection(),
                None,
                Role::Client,
                ring,
                cfg,
                &mut r1
            ),
        )
        .unwrap();
        let (ch_s, ch_c) =
            tokio::try_join!(srv.protocol_channel(), cli.protocol_channel()).unwrap();
        (ot_s, ot_c, ch_s, ch_c, (srv, cli))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_parties_share_relu_and_malformed_peer_bytes_are_refused() {
        let ring = Ring::new(37).unwrap();
        let (mut ot_s, mut ot_c, mut ch_s, mut ch_c, _sessions) = parties().await;
        // 47 values of 37 bits: the packed shares end with 5 padding bits.
        let x = edge_and_random(ring, 39, 5);
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let xs: Vec<u64> = x.iter().map(|_| ring.random(&mut rng)).collect();
        let xc: Vec<u64> = x.iter().zip(&xs).map(|(&v, &s)| ring.sub(v, s)).collect();
        let (mut srng, mut crng) = (ChaCha20Rng::seed_from_u64(3), ChaCha20Rng::seed_from_u64(4));
        let mut garbler = Some(Garbler::new());
        let mut evaluator = Some(Evaluator::new());

        // An honest run: the shares reconstruct ReLU(x) exactly.
        let oc = build(
            &NonLinearOp::Relu { input_bits: None },
            ring,
            1,
            x.len(),
            7,
            true,
        )
        .unwrap();
        let ((s_state, table_bytes), c_state) = tokio::try_join!(
            server_offline(
                &mut ch_s,
                &mut ot_s,
                &mut garbler,
                oc.clone(),
                ring,
                &mut srng
            ),
            client_offline(&mut ch_c, &mut ot_c, 0, oc.clone(), None, ring, &mut crng),
        )
        .unwrap();
        assert_eq!(table_bytes, 32 * oc.circuit.and_count() as u64);
        let (zs, zc) = tokio::try_join!(
            server_online(&mut ch_s, s_state, &xs, ring),
            client_online(&mut ch_c, &mut evaluator, c_state, &xc, ring),
        )
        .unwrap();
        for i in 0..x.len() {
            let want = if ring.to_signed(x[i]) < 0 { 0 } else { x[i] };
            assert_eq!(ring.add(zs[i], zc[i]), want, "element {i}");
        }

        // The client's share known offline (after a linear layer): no
        // online message from the client, its share is the OT's input.
        let known = build(
            &NonLinearOp::Relu { input_bits: None },
            ring,
            1,
            x.len(),
            8,
            false,
        )
        .unwrap();
        let ((s_state, _), c_state) = tokio::try_join!(
            server_offline(
                &mut ch_s,
                &mut ot_s,
                &mut garbler,
                known.clone(),
                ring,
                &mut srng
            ),
            client_offline(
                &mut ch_c,
                &mut ot_c,
                1,
                known,
                Some(xc.clone()),
                ring,
                &mut crng
            ),
        )
        .unwrap();
        let (zs, zc) = tokio::try_join!(
            server_online(&mut ch_s, s_state, &xs, ring),
            client_online(&mut ch_c, &mut evaluator, c_state, &xc, ring),
        )
        .unwrap();
        for i in 0..x.len() {
            let want = if ring.to_signed(x[i]) < 0 { 0 } else { x[i] };
            assert_eq!(ring.add(zs[i], zc[i]), want, "element {i}");
        }

        // The next circuit: the client's padded shares with padding bits set
        // are refused by the server, naming the layer.
        let (s_state, c_state) = {
            let ((s, _), c) = tokio::try_join!(
                server_offline(
                    &mut ch_s,
                    &mut ot_s,
                    &mut garbler,
                    oc.clone(),
                    ring,
                    &mut srng
                ),
                client_offline(&mut ch_c, &mut ot_c, 2, oc.clone(), None, ring, &mut crng),
            )
            .unwrap();
            (s, c)
        };
        drop(c_state);
        let mut bad = pack(&xc, ring.bits());
        *bad.last_mut().unwrap() |= 0x80;
        let (sent, refused) = tokio::join!(
            ch_c.send_frame(&bad),
            server_online(&mut ch_s, s_state, &xs, ring)
        );
        sent.unwrap();
        match refused {
            Err(SecureError::Malformed(m)) => assert!(m.contains("relu (step 7)"), "{m}"),
            other => panic!("expected a malformed-message error, got {other:?}"),
        }

        // A client expecting another circuit (or id) refuses the header
        // before reading any table.
        ch_s.send_frame(&header(5, &oc)).await.unwrap();
        let refused =
            client_offline(&mut ch_c, &mut ot_c, 3, oc.clone(), None, ring, &mut crng).await;
        match refused {
            Err(SecureError::Malformed(m)) => assert!(m.contains("relu (step 7)"), "{m}"),
            Err(e) => panic!("expected a malformed-message error, got {e}"),
            Ok(_) => panic!("a wrong header was accepted"),
        }
    }
}
