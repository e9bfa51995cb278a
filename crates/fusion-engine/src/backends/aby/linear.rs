//! The `aby` backend's linear layers: arithmetic sharing with OT-generated
//! multiplication triples (ABY, Demmler, Schneider, Zohner, NDSS 2015,
//! §III-B), in `Z_{2^l}`.
//!
//! A linear step `y = W·x + b` on additive shares `x = x_C + x_S` needs the
//! products of the server's private coefficients `w` with the client's share.
//! Each product `w·x_C[j]` is an ABY multiplication of a server-held and a
//! client-held value, done with a precomputed triple:
//!
//! * **Preprocessing** ([`client_offline`], [`server_offline`], in the
//!   engine's `Preprocessing` phase): the client draws a uniform mask `r`
//!   (one element per input element of the chunk); for **every product** of
//!   the step (every weight times every input element it touches: `O·D` per
//!   sample for a dense layer, `Co·Ho·Wo·C·k²` minus the zero padding for a
//!   convolution, one per element for a channel affine) the parties run
//!   Gilboa's OT multiplication of `w` (server) and `r[j]` (client):
//!   `l` correlated OTs of `(l − k)`-bit strings per product, IKNP-style
//!   ([`fusion_ot::gilboa`] on `OtEngine<Iknp>`), exactly ABY's cost per
//!   arithmetic multiplication triple. Each party adds its product shares
//!   into its share of `W·r` (the client `c`, the server `s`, `c + s = W·r`).
//! * **Online** (the `delphi` backend's [`crate::backends::delphi::linear`]
//!   online functions, reused): the client opens `m = x_C − r` (packed,
//!   `⌈len·l/8⌉` bytes, the Beaver opening); the server computes
//!   `W·(x_S + m) + b + s` in the clear and the client keeps `c`. The shares
//!   sum to `W·(x − r) + b + W·r = W·x + b`.
//!
//! **Vector triples, not one triple per product.** In ABY every
//! multiplication gate consumes its own triple `(a, b, c = a·b)` and opens
//! both `x − a` and `y − b`. Here one operand of every product is the
//! server's coefficient, which the server knows, so only the client's
//! operand is masked; and all products that read input element `j` share
//! one mask `r[j]` (the same triple operand), so the online opening is one
//! element per *input* element, not per product. The OT cost stays ABY's:
//! `l` COTs per product (the masks are reused across products, the OTs are
//! not). Correctness and what each party learns are the same as with one
//! triple per product, since each `r[j]` is uniform and opened only once
//! (as `x_C[j] − r[j]`).
//!
//! **What each party learns.** From the OTs, nothing (the server is the COT
//! sender, sees one-time-padded choice corrections; the client sees
//! corrections padded by keys it does not hold). Online the server sees
//! `x_C − r`, uniformly random. The client's share `c` is uniformly random
//! on its own (the server's Gilboa outputs are uniform).

use std::sync::Arc;

use fusion_core::ring::Ring;
use fusion_nn::fixed::{FixedOp, PublicOp, Step};
use fusion_ot::{Iknp, OtEngine};
use rand::rngs::ChaCha20Rng;

use crate::backends::cheetah::he::blocking;
use crate::backends::delphi::linear::{ClientMask, ServerMask};
use crate::error::{SecureError, SecureResult};

/// The products of one linear step for one sample, in a fixed public order:
/// product `p` multiplies coefficient `weight[p]` (an index into the step's
/// weights: dense and convolution weights, channel-affine scales) with input
/// element `input[p]` and is added into output element `output[p]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Products {
    /// Coefficient index of each product.
    pub weight: Vec<u32>,
    /// Input element (of one sample) of each product.
    pub input: Vec<u32>,
    /// Output element (of one sample) of each product.
    pub output: Vec<u32>,
    /// Input elements per sample.
    pub in_len: usize,
    /// Output elements per sample.
    pub out_len: usize,
}

impl Products {
    /// Products per sample.
    pub fn len(&self) -> usize {
        self.weight.len()
    }

    /// Whether the step has no products.
    pub fn is_empty(&self) -> bool {
        self.weight.is_empty()
    }

    fn push(&mut self, w: usize, i: usize, o: usize) {
        // Sizes were checked to fit in u32 before enumerating.
        self.weight.push(w as u32);
        self.input.push(i as u32);
        self.output.push(o as u32);
    }
}

fn too_large(what: &str) -> SecureError {
    SecureError::Config(format!(
        "{what}: too many products for the aby backend's enumeration"
    ))
}

/// The products of the public linear `op` on inputs of per-sample shape
/// `in_shape` (`None` for an op that is not linear).
pub fn products(op: &PublicOp, in_shape: &[usize]) -> SecureResult<Option<Products>> {
    let in_len: usize = in_shape.iter().product();
    let fits = |v: usize| u32::try_from(v).is_ok();
    let mut p = Products {
        in_len,
        ..Products::default()
    };
    match *op {
        PublicOp::Dense {
            in_features,
            out_features,
        } => {
            let total = in_features
                .checked_mul(out_features)
                .filter(|&t| fits(t) && in_features == in_len)
                .ok_or_else(|| too_large("dense"))?;
            p.out_len = out_features;
            p.weight.reserve(total);
            p.input.reserve(total);
            p.output.reserve(total);
            for o in 0..out_features {
                for d in 0..in_features {
                    p.push(o * in_features + d, d, o);
                }
            }
        }
        PublicOp::Conv2d {
            in_channels,
            in_height,
            in_width,
            out_channels,
            kernel,
            stride,
            padding,
        } => {
            let g = fusion_nn::kernels::Window::new(
                in_channels,
                in_height,
                in_width,
                kernel,
                stride,
                padding,
            )
            .ok_or_else(|| SecureError::Config("conv2d window does not fit".into()))?;
            let macs = out_channels
                .checked_mul(g.out_positions())
                .and_then(|v| v.checked_mul(g.patch_len()))
                .filter(|&t| fits(t) && g.in_len() == in_len)
                .ok_or_else(|| too_large("conv2d"))?;
            p.out_len = out_channels * g.out_positions();
            p.weight.reserve(macs);
            p.input.reserve(macs);
            p.output.reserve(macs);
            let coord = |o: usize, k: usize, size: usize| {
                let q = o * stride + k;
                (q >= padding && q - padding < size).then(|| q - padding)
            };
            for co in 0..out_channels {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let out = (co * g.ho + oy) * g.wo + ox;
                        for c in 0..in_channels {
                            for ky in 0..kernel {
                                let Some(iy) = coord(oy, ky, in_height) else {
                                    continue;
                                };
                                for kx in 0..kernel {
                                    let Some(ix) = coord(ox, kx, in_width) else {
                                        continue;
                                    };
                                    let w = ((co * in_channels + c) * kernel + ky) * kernel + kx;
                                    p.push(w, (c * in_height + iy) * in_width + ix, out);
                                }
                            }
                        }
                    }
                }
            }
        }
        PublicOp::ChannelAffine { channels } => {
            if channels == 0 || !in_len.is_multiple_of(channels) || !fits(in_len) {
                return Err(too_large("channel_affine"));
            }
            let hw = in_len / channels;
            p.out_len = in_len;
            for i in 0..in_len {
                p.push(i / hw, i, i);
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(p))
}

/// The server's coefficients of a linear step, indexed as [`Products`]
/// indexes them.
fn coefficients(step: &Step) -> SecureResult<&[u64]> {
    match &step.op {
        FixedOp::Dense(d) => Ok(&d.weight),
        FixedOp::Conv2d(c) => Ok(&c.weight),
        FixedOp::ChannelAffine(a) => Ok(&a.scale),
        _ => Err(SecureError::Config(format!(
            "step `{}` is not a linear step",
            step.name
        ))),
    }
}

/// Maps an OT error of the triples of linear step `step`: whatever the peer
/// got wrong (a malformed or wrongly sized message, another operation or
/// size) is [`SecureError::Malformed`] naming the layer; the rest stays an
/// OT error.
fn ot_err(step: usize) -> impl Fn(fusion_ot::Error) -> SecureError {
    use fusion_net::NetError;
    move |e| match e {
        fusion_ot::Error::Malformed { .. }
        | fusion_ot::Error::PeerMismatch { .. }
        | fusion_ot::Error::Net(NetError::Malformed(_) | NetError::FrameTooLarge { .. }) => {
            SecureError::Malformed(format!("linear step {step}: multiplication triples: {e}"))
        }
        e => SecureError::Ot(e),
    }
}

/// Sums product shares into output shares: output `s·out_len + output[p]`
/// gets product `s·len + p`.
fn accumulate(prods: &Products, n: usize, shares: &[u64], ring: Ring) -> Vec<u64> {
    let mut out = vec![0u64; n * prods.out_len];
    let len = prods.len();
    for s in 0..n {
        let acc = &mut out[s * prods.out_len..(s + 1) * prods.out_len];
        for (p, &o) in prods.output.iter().enumerate() {
            acc[o as usize] = acc[o as usize].wrapping_add(shares[s * len + p]);
        }
    }
    out.iter().map(|&v| ring.reduce(v)).collect()
}

/// Preprocessing, client: draws the mask `r` of step `step` (`n` samples)
/// and obtains by Gilboa OT multiplication its share of `W·r`.
pub async fn client_offline(
    ot: &mut OtEngine<Iknp>,
    prods: Arc<Products>,
    step: usize,
    n: usize,
    ring: Ring,
    rng: &mut ChaCha20Rng,
) -> SecureResult<ClientMask> {
    let r: Vec<u64> = (0..n * prods.in_len).map(|_| ring.random(rng)).collect();
    let (pr, rr) = (prods.clone(), r.clone());
    let b: Vec<u64> = blocking(move || {
        Ok((0..n)
            .flat_map(|s| pr.input.iter().map(move |&i| (s, i)))
            .map(|(s, i)| rr[s * pr.in_len + i as usize])
            .collect())
    })
    .await?;
    let v = ot.gilboa_receive(&b).await.map_err(ot_err(step))?;
    drop(b);
    let share = blocking(move || Ok(accumulate(&prods, n, &v, ring))).await?;
    Ok(ClientMask { step, r, share })
}

/// Preprocessing, server: multiplies its coefficients of `step` with the
/// client's masks by Gilboa OT; returns its share of `W·r`.
pub async fn server_offline(
    ot: &mut OtEngine<Iknp>,
    prods: Arc<Products>,
    coeffs: Arc<Step>,
    step: usize,
    n: usize,
    ring: Ring,
) -> SecureResult<ServerMask> {
    let pr = prods.clone();
    let a: Vec<u64> = blocking(move || {
        let w = coefficients(&coeffs)?;
        let per: Vec<u64> = pr
            .weight
            .iter()
            .map(|&i| w.get(i as usize).copied().map(|v| ring.reduce(v)))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                SecureError::Config(format!(
                    "step `{}`: coefficients do not fit the products",
                    coeffs.name
                ))
            })?;
        Ok(per.repeat(n))
    })
    .await?;
    let u = ot.gilboa_send(&a).await.map_err(ot_err(step))?;
    drop(a);
    let share = blocking(move || Ok(accumulate(&prods, n, &u, ring))).await?;
    Ok(ServerMask { step, share })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_nn::fixed::{Conv2dOp, DenseOp};
    use fusion_nn::tensor::Tensor;
    use rand::{RngExt, SeedableRng};

    /// The product enumeration computes the step's linear part exactly.
    fn check(op: FixedOp, in_shape: &[usize], ring: Ring, seed: u64) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let step = Step {
            name: "t".into(),
            op: op.clone(),
            inputs: vec![0],
            shape: vec![],
            scale: 0,
        };
        let prods = products(&PublicOp::from(&op), in_shape).unwrap().unwrap();
        let n = 2;
        let x: Vec<u64> = (0..n * prods.in_len)
            .map(|_| rng.random::<u64>() & ring.mask())
            .collect();
        let w = coefficients(&step).unwrap();
        let per: Vec<u64> = (0..n)
            .flat_map(|s| {
                prods
                    .weight
                    .iter()
                    .zip(&prods.input)
                    .map(move |(&wi, &i)| (s, wi, i))
            })
            .map(|(s, wi, i)| ring.mul(w[wi as usize], x[s * prods.in_len + i as usize]))
            .collect();
        let got = accumulate(&prods, n, &per, ring);
        let mut shape = vec![n];
        shape.extend_from_slice(in_shape);
        let t = Tensor::new(shape.clone(), x).unwrap();
        let zero = Tensor::new(shape, vec![0; n * prods.in_len]).unwrap();
        let full = step.apply(ring, &[&t]).unwrap();
        let bias = step.apply(ring, &[&zero]).unwrap();
        let want: Vec<u64> = full
            .data()
            .iter()
            .zip(bias.data())
            .map(|(&a, &b)| ring.sub(a, b))
            .collect();
        assert_eq!(got, want);
    }

    /// Both parties' IKNP OT engines over a real loopback session (the
    /// sessions are returned to keep them alive).
    async fn parties(
        ring: Ring,
    ) -> (
        OtEngine<Iknp>,
        OtEngine<Iknp>,
        (fusion_net::Session, fusion_net::Session),
    ) {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(8)
            .build_global();
        let (mut srv, mut cli) = fusion_net::local_pair(&fusion_net::NetConfig::default())
            .await
            .unwrap();
        let cfg = fusion_ot::OtConfig {
            min_refill: 1 << 12,
            ..fusion_ot::OtConfig::default()
        };
        let (mut r0, mut r1) = (ChaCha20Rng::seed_from_u64(1), ChaCha20Rng::seed_from_u64(2));
        use fusion_ot::Role;
        let (s, c) = tokio::try_join!(
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
        (s, c, (srv, cli))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_parties_get_shares_of_w_r_and_a_peer_of_another_size_is_named() {
        let ring = Ring::new(37).unwrap();
        let (mut ot_s, mut ot_c, _sessions) = parties(ring).await;
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let half = 1u64 << 36;
        // Edge weights (0, 1, -1, 2^(l-1)) and random ones.
        let mut weight = vec![0, 1, ring.mask(), half, half - 1, 2];
        weight.extend((0..2 * 3 * 9 - 6).map(|_| rng.random::<u64>() & ring.mask()));
        let op = FixedOp::Conv2d(Conv2dOp {
            in_channels: 2,
            in_height: 4,
            in_width: 5,
            out_channels: 3,
            kernel: 3,
            stride: 1,
            padding: 1,
            weight,
            bias: vec![5, 6, 7],
        });
        let in_shape = [2usize, 4, 5];
        let step = Arc::new(Step {
            name: "conv".into(),
            op: op.clone(),
            inputs: vec![0],
            shape: vec![],
            scale: 0,
        });
        let prods = Arc::new(products(&PublicOp::from(&op), &in_shape).unwrap().unwrap());
        let n = 2;
        let mut crng = ChaCha20Rng::seed_from_u64(10);
        let (sm, cm) = tokio::try_join!(
            server_offline(&mut ot_s, prods.clone(), step.clone(), 4, n, ring),
            client_offline(&mut ot_c, prods.clone(), 4, n, ring, &mut crng),
        )
        .unwrap();
        // c + s = W·r exactly (the bias is the server's online term).
        let mut shape = vec![n];
        shape.extend_from_slice(&in_shape);
        let r = Tensor::new(shape.clone(), cm.r.clone()).unwrap();
        let zero = Tensor::new(shape, vec![0; cm.r.len()]).unwrap();
        let full = step.apply(ring, &[&r]).unwrap();
        let bias = step.apply(ring, &[&zero]).unwrap();
        for i in 0..cm.share.len() {
            let want = ring.sub(full.data()[i], bias.data()[i]);
            assert_eq!(ring.add(cm.share[i], sm.share[i]), want, "output {i}");
        }
        // The masks include the edge values' products with random masks;
        // the client's share alone is not the product.
        assert_ne!(cm.share, ring_sub_all(ring, full.data(), bias.data()));

        // A client preprocessing another batch size: the server's error
        // names the layer. (ROTs are generated first, so that the call
        // headers, not the OT extension, meet the mismatch.)
        tokio::try_join!(ot_s.preprocess_rots(1 << 17), ot_c.preprocess_rots(1 << 17)).unwrap();
        let (srv, _cli) = tokio::join!(
            server_offline(&mut ot_s, prods.clone(), step.clone(), 4, 2, ring),
            client_offline(&mut ot_c, prods, 4, 1, ring, &mut crng),
        );
        match srv {
            Err(SecureError::Malformed(m)) => assert!(m.contains("linear step 4"), "{m}"),
            Err(e) => panic!("expected a malformed-message error, got {e}"),
            Ok(_) => panic!("a peer of another size was accepted"),
        }
    }

    fn ring_sub_all(ring: Ring, a: &[u64], b: &[u64]) -> Vec<u64> {
        a.iter().zip(b).map(|(&x, &y)| ring.sub(x, y)).collect()
    }

    #[test]
    fn products_enumerate_dense_conv_and_affine_exactly() {
        let ring = Ring::new(37).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut v =
            |k: usize| -> Vec<u64> { (0..k).map(|_| rng.random::<u64>() & ring.mask()).collect() };
        check(
            FixedOp::Dense(DenseOp {
                in_features: 7,
                out_features: 5,
                weight: v(35),
                bias: v(5),
            }),
            &[7],
            ring,
            1,
        );
        for (stride, padding) in [(1, 0), (2, 1), (1, 2)] {
            check(
                FixedOp::Conv2d(Conv2dOp {
                    in_channels: 2,
                    in_height: 6,
                    in_width: 5,
                    out_channels: 3,
                    kernel: 3,
                    stride,
                    padding,
                    weight: v(3 * 2 * 9),
                    bias: v(3),
                }),
                &[2, 6, 5],
                ring,
                2,
            );
        }
        check(
            FixedOp::ChannelAffine(fusion_nn::fixed::ChannelAffineOp {
                channels: 3,
                scale: v(3),
                shift: v(3),
            }),
            &[3, 2, 2],
            ring,
            3,
        );
        assert_eq!(products(&PublicOp::Relu, &[4]).unwrap(), None);
    }
}
