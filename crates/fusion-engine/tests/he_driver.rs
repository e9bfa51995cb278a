//! The `cheetah` backend's HE driver ([`fusion_engine::backends::cheetah::he_driver`]):
//! both parties over a real local QUIC connection
//! (`cryprot_net::testing::local_conn`) and fusion-net's protocol channel, chaining
//! layers the way the engine does (with and without response packing), and
//! malformed frames from the peer.

use std::sync::Arc;

use cryprot_net::Connection;
use fusion_core::ring::Ring;
use fusion_engine::SecureError;
use fusion_engine::backends::cheetah::he::{ServerStep, StepPlan};
use fusion_engine::backends::cheetah::he_driver::{self, client_layer, server_layer};
use fusion_he::{
    BatchNormShape, Blocking, Conv2dShape, FcShape, HeClient, HeError, HeParams, HeServer,
    LayerKind, LinearPlan, Padding, PlanOptions, Preset, ServerLinear, reference,
};
use fusion_net::{Channel, MessageConfig, NetError};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use tokio::io::AsyncWriteExt;

/// The protocol channel on a connection (the engine opens it on the session).
async fn channel(conn: &mut Connection) -> Result<Channel, SecureError> {
    Ok(Channel::open(conn, None, &MessageConfig::default()).await?)
}

/// Opens the channel and runs the client's setup.
async fn client_setup(
    conn: &mut Connection,
    params: &HeParams,
    rng: &mut ChaCha20Rng,
) -> Result<(Arc<HeClient>, Channel), SecureError> {
    let mut ch = channel(conn).await?;
    let he = he_driver::client_setup(&mut ch, params, rng).await?;
    Ok((he, ch))
}

/// Opens the channel and runs the server's setup.
async fn server_setup(
    conn: &mut Connection,
    params: &HeParams,
) -> Result<(Arc<HeServer>, Channel), SecureError> {
    let mut ch = channel(conn).await?;
    let he = he_driver::server_setup(&mut ch, params).await?;
    Ok((he, ch))
}

/// `N = 4096`, `l = 37` parameters with reply packing at the default depth.
fn packed_params() -> HeParams {
    Preset::N4096
        .builder(Ring::new(37).expect("ring"))
        .reply_packing(fusion_he::DEFAULT_PACKING_LEVELS)
        .build()
        .expect("params")
}

/// A step of one part.
fn step(plan: &Arc<LinearPlan>) -> StepPlan {
    StepPlan::from_parts(vec![plan.clone()]).expect("one part")
}

/// The server's step of one part.
fn server_step(layer: &Arc<ServerLinear>) -> ServerStep {
    ServerStep::from_parts(vec![layer.clone()]).expect("one part")
}

/// A frame header (fusion-net: 4-byte big-endian length).
fn header(len: u32) -> [u8; 4] {
    len.to_be_bytes()
}

/// The output the two shares open to.
fn open(ring: Ring, client: &[u64], server: &[u64]) -> Vec<u64> {
    client
        .iter()
        .zip(server)
        .map(|(&a, &b)| ring.reconstruct(a, b))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conv_then_fc_over_local_quic_reconstructs_exactly() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = Preset::N4096
        .params(Ring::new(37).expect("ring"))
        .expect("params");
    let ring = params.ring();
    let opts = PlanOptions::default();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let conv = Conv2dShape::new(4, 1, 12, 12, 3, 5, 1, Padding::Valid); // -> 4 x 3 x 8 x 8
    let fc = FcShape::new(4, 3 * 8 * 8, 10);
    let conv_plan = Arc::new(LinearPlan::conv2d(&params, conv, &opts).expect("plan"));
    let fc_plan = Arc::new(LinearPlan::fc(&params, fc, &opts).expect("plan"));
    let wc: Vec<u64> = (0..conv.weight_len())
        .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
        .collect();
    let wf: Vec<u64> = (0..fc.in_features * fc.out_features)
        .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
        .collect();
    let bias: Vec<u64> = (0..10).map(|_| ring.random(&mut rng)).collect();
    let conv_layer =
        Arc::new(ServerLinear::conv2d((*conv_plan).clone(), &wc, None).expect("layer"));
    let fc_layer = Arc::new(ServerLinear::fc((*fc_plan).clone(), &wf, Some(&bias)).expect("layer"));
    // The client holds the input alone (first layer).
    let x: Vec<u64> = (0..conv.input_len())
        .map(|_| ring.random(&mut rng))
        .collect();

    let client = {
        let params = params.clone();
        let (conv_plan, fc_plan, x) = (conv_plan.clone(), fc_plan.clone(), x.clone());
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (he, mut ch) = client_setup(&mut cconn, &params, &mut rng).await?;
            let (y1, t1) = client_layer(&mut ch, &he, &step(&conv_plan), x, &mut rng).await?;
            assert_eq!(t1.client_to_server, conv_plan.stats().bytes_up);
            assert_eq!(t1.server_to_client, conv_plan.stats().bytes_down);
            let (y2, _) = client_layer(&mut ch, &he, &step(&fc_plan), y1, &mut rng).await?;
            Ok::<_, SecureError>(y2)
        }
    };
    let server = {
        let params = params.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let (he, mut ch) = server_setup(&mut sconn, &params).await?;
            let (y1, _) =
                server_layer(&mut ch, &he, &server_step(&conv_layer), None, &mut rng).await?;
            let (y2, _) =
                server_layer(&mut ch, &he, &server_step(&fc_layer), Some(y1), &mut rng).await?;
            Ok::<_, SecureError>(y2)
        }
    };
    let (yc, ys) = tokio::join!(client, server);
    let (yc, ys) = (yc.expect("client"), ys.expect("server"));
    let want = reference::fc(
        ring,
        &fc,
        &reference::conv2d(ring, &conv, &x, &wc, None),
        &wf,
        Some(&bias),
    );
    assert_eq!(open(ring, &yc, &ys), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejects_a_query_frame_of_the_wrong_size() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = Preset::N4096
        .params(Ring::new(37).expect("ring"))
        .expect("params");
    let plan =
        LinearPlan::fc(&params, FcShape::new(1, 8, 2), &PlanOptions::default()).expect("plan");
    let layer = Arc::new(ServerLinear::fc(plan, &[1; 16], None).expect("layer"));
    let client = async move {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        // The setup by hand, then a frame that claims 2 GiB: the server must refuse
        // before allocating.
        let client = fusion_he::HeClient::new(&params, &mut rng);
        let pk = client.public_key_msg();
        let (mut tx, rx) = cconn.byte_stream().await.expect("stream");
        tx.write_all(&header(pk.as_bytes().len() as u32))
            .await
            .expect("write");
        tx.write_all(pk.as_bytes()).await.expect("write");
        // The server may reset the stream before our flush completes.
        let _ = tx.write_all(&header(1 << 31)).await;
        let _ = tx.flush().await;
        (cconn, tx, rx)
    };
    let server = async move {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let p = Preset::N4096
            .params(Ring::new(37).expect("ring"))
            .expect("params");
        let (he, mut ch) = server_setup(&mut sconn, &p).await.expect("setup");
        server_layer(&mut ch, &he, &server_step(&layer), None, &mut rng).await
    };
    let (_c, res) = tokio::join!(client, server);
    assert!(
        matches!(
            res,
            Err(SecureError::Net(NetError::FrameTooLarge { len, .. })) if len == 1 << 31
        ),
        "{res:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_a_public_key_for_other_parameters() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let client = async move {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let p38 = Preset::N4096
            .params(Ring::new(38).expect("ring"))
            .expect("params");
        client_setup(&mut cconn, &p38, &mut rng)
            .await
            .map(|_| cconn)
    };
    let server = async move {
        let p37 = Preset::N4096
            .params(Ring::new(37).expect("ring"))
            .expect("params");
        server_setup(&mut sconn, &p37).await
    };
    let (c, s) = tokio::join!(client, server);
    assert!(c.is_ok());
    assert!(
        matches!(s, Err(SecureError::He(HeError::ParamMismatch(_)))),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_fc_chain_over_local_quic_reconstructs_exactly() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = packed_params();
    let ring = params.ring();
    let opts = PlanOptions::minimise_bytes();
    let mut rng = ChaCha20Rng::seed_from_u64(27);
    let fc1 = FcShape::new(32, 200, 64);
    let fc2 = FcShape::new(32, 64, 10);
    let p1 = Arc::new(LinearPlan::fc(&params, fc1, &opts).expect("plan"));
    let p2 = Arc::new(LinearPlan::fc(&params, fc2, &opts).expect("plan"));
    assert!(p1.packing().is_some() && p2.packing().is_some());
    let w1: Vec<u64> = (0..fc1.in_features * fc1.out_features)
        .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
        .collect();
    let w2: Vec<u64> = (0..fc2.in_features * fc2.out_features)
        .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
        .collect();
    let bias: Vec<u64> = (0..10).map(|_| ring.random(&mut rng)).collect();
    let l1 = Arc::new(ServerLinear::fc((*p1).clone(), &w1, None).expect("layer"));
    let l2 = Arc::new(ServerLinear::fc((*p2).clone(), &w2, Some(&bias)).expect("layer"));
    let x: Vec<u64> = (0..fc1.batch * fc1.in_features)
        .map(|_| ring.random(&mut rng))
        .collect();
    let client = {
        let params = params.clone();
        let (p1, p2, x) = (p1.clone(), p2.clone(), x.clone());
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (he, mut ch) = client_setup(&mut cconn, &params, &mut rng).await?;
            let (y1, t1) = client_layer(&mut ch, &he, &step(&p1), x, &mut rng).await?;
            assert_eq!(t1.client_to_server, p1.stats().bytes_up);
            assert_eq!(t1.server_to_client, p1.stats().bytes_down);
            let (y2, t2) = client_layer(&mut ch, &he, &step(&p2), y1, &mut rng).await?;
            assert_eq!(t2.server_to_client, p2.stats().bytes_down);
            Ok::<_, SecureError>(y2)
        }
    };
    let server = {
        let params = params.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let (he, mut ch) = server_setup(&mut sconn, &params).await?;
            assert!(he.has_galois_keys());
            let (y1, _) = server_layer(&mut ch, &he, &server_step(&l1), None, &mut rng).await?;
            let (y2, _) = server_layer(&mut ch, &he, &server_step(&l2), Some(y1), &mut rng).await?;
            Ok::<_, SecureError>(y2)
        }
    };
    let (yc, ys) = tokio::join!(client, server);
    let (yc, ys) = (yc.expect("client"), ys.expect("server"));
    let want = reference::fc(
        ring,
        &fc2,
        &reference::fc(ring, &fc1, &x, &w1, None),
        &w2,
        Some(&bias),
    );
    assert_eq!(open(ring, &yc, &ys), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_cut_in_two_parts_reconstructs_exactly_in_sample_order() {
    // cnn-mnist's first convolution at 16 samples: StepPlan::new cuts it into
    // 15 + 1 samples with different blockings; the shares of the whole chunk
    // must open to the convolution of every sample, in sample order.
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = packed_params();
    let ring = params.ring();
    let opts = PlanOptions::bytes_first();
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let shape = |n| Conv2dShape::new(n, 1, 28, 28, 16, 5, 1, Padding::Valid);
    let parts: Vec<Arc<LinearPlan>> = [15, 1]
        .map(|n| Arc::new(LinearPlan::conv2d(&params, shape(n), &opts).expect("plan")))
        .into();
    assert_ne!(parts[0].blocking(), parts[1].blocking());
    let whole = LinearPlan::conv2d(&params, shape(16), &opts).expect("plan");
    let split = StepPlan::from_parts(parts.clone()).expect("parts");
    assert!(split.bytes_down() < whole.stats().bytes_down);
    let w: Vec<u64> = (0..16 * 25)
        .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
        .collect();
    let bias: Vec<u64> = (0..16).map(|_| ring.random(&mut rng)).collect();
    let layers = parts
        .iter()
        .map(|p| Arc::new(ServerLinear::conv2d((**p).clone(), &w, Some(&bias)).expect("layer")))
        .collect();
    let server_parts = ServerStep::from_parts(layers).expect("parts");
    let x: Vec<u64> = (0..16 * 28 * 28).map(|_| ring.random(&mut rng)).collect();
    let xs: Vec<u64> = (0..16 * 28 * 28).map(|_| ring.random(&mut rng)).collect();
    let client = {
        let params = params.clone();
        let x = x.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (he, mut ch) = client_setup(&mut cconn, &params, &mut rng).await?;
            let (y, t) = client_layer(&mut ch, &he, &split, x, &mut rng).await?;
            assert_eq!(t.client_to_server, split.bytes_up());
            assert_eq!(t.server_to_client, split.bytes_down());
            Ok::<_, SecureError>(y)
        }
    };
    let server = {
        let params = params.clone();
        let xs = xs.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let (he, mut ch) = server_setup(&mut sconn, &params).await?;
            let (y, _) = server_layer(&mut ch, &he, &server_parts, Some(xs), &mut rng).await?;
            Ok::<_, SecureError>(y)
        }
    };
    let (yc, ys) = tokio::join!(client, server);
    let (yc, ys) = (yc.expect("client"), ys.expect("server"));
    let input: Vec<u64> = x.iter().zip(&xs).map(|(&a, &b)| ring.add(a, b)).collect();
    let want = reference::conv2d(ring, &shape(16), &input, &w, Some(&bias));
    assert_eq!(open(ring, &yc, &ys), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_an_oversized_galois_key_frame() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = packed_params();
    let p = params.clone();
    let client = async move {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let client = fusion_he::HeClient::new(&p, &mut rng);
        let pk = client.public_key_msg();
        let (mut tx, rx) = cconn.byte_stream().await.expect("stream");
        tx.write_all(&header(pk.as_bytes().len() as u32))
            .await
            .expect("write");
        tx.write_all(pk.as_bytes()).await.expect("write");
        // A Galois-key frame that claims 2 GiB: refused before any allocation (the
        // server may reset the stream before our flush completes).
        let _ = tx.write_all(&header(1 << 31)).await;
        let _ = tx.flush().await;
        (cconn, tx, rx)
    };
    let server = async move { server_setup(&mut sconn, &params).await };
    let (_c, res) = tokio::join!(client, server);
    assert!(
        matches!(
                    res,
        Err(SecureError::Net(NetError::FrameTooLarge { len, .. })) if len == 1 << 31
                ),
        "{res:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_conv_batch_norm_fc_chain_over_local_quic_reconstructs_exactly() {
    let (mut sconn, mut cconn) = cryprot_net::testing::local_conn()
        .await
        .expect("local connection");
    let params = packed_params();
    let ring = params.ring();
    let opts = PlanOptions::minimise_bytes();
    let mut rng = ChaCha20Rng::seed_from_u64(37);
    // conv 4x4 -> 1x1 (results with a stride), per-feature scaling, FC.
    let conv = Conv2dShape::new(32, 4, 4, 4, 16, 4, 1, Padding::Valid);
    let bn = BatchNormShape::new(32, 16, 1, 1);
    let fc = FcShape::new(32, 16, 10);
    let pc = Arc::new(LinearPlan::conv2d(&params, conv, &opts).expect("plan"));
    let blk = Blocking {
        images: 32,
        channels: 4,
        filters: 4,
        height: 1,
        width: 1,
    };
    let pb = Arc::new(
        LinearPlan::with_blocking(&params, LayerKind::BatchNorm(bn), blk, &opts).expect("plan"),
    );
    let pf = Arc::new(LinearPlan::fc(&params, fc, &opts).expect("plan"));
    assert!(pc.packing().is_some() && pb.packing().is_some() && pf.packing().is_some());
    let small = |rng: &mut ChaCha20Rng, len: usize| -> Vec<u64> {
        (0..len)
            .map(|_| ring.from_signed(rng.random_range(-4096..=4096)))
            .collect()
    };
    let (wc, sc, wf) = (
        small(&mut rng, conv.weight_len()),
        small(&mut rng, 16),
        small(&mut rng, 160),
    );
    let shift: Vec<u64> = (0..16).map(|_| ring.random(&mut rng)).collect();
    let lc = Arc::new(ServerLinear::conv2d((*pc).clone(), &wc, None).expect("layer"));
    let lb = Arc::new(ServerLinear::batch_norm((*pb).clone(), &sc, Some(&shift)).expect("layer"));
    let lf = Arc::new(ServerLinear::fc((*pf).clone(), &wf, None).expect("layer"));
    let x: Vec<u64> = (0..conv.input_len())
        .map(|_| ring.random(&mut rng))
        .collect();
    let client = {
        let params = params.clone();
        let (pc, pb, pf, x) = (pc.clone(), pb.clone(), pf.clone(), x.clone());
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let (he, mut ch) = client_setup(&mut cconn, &params, &mut rng).await?;
            let mut y = x;
            for plan in [&pc, &pb, &pf] {
                let (out, t) = client_layer(&mut ch, &he, &step(plan), y, &mut rng).await?;
                assert_eq!(t.client_to_server, plan.stats().bytes_up);
                assert_eq!(t.server_to_client, plan.stats().bytes_down);
                y = out;
            }
            Ok::<_, SecureError>(y)
        }
    };
    let server = {
        let params = params.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let (he, mut ch) = server_setup(&mut sconn, &params).await?;
            let (y1, _) = server_layer(&mut ch, &he, &server_step(&lc), None, &mut rng).await?;
            let (y2, _) = server_layer(&mut ch, &he, &server_step(&lb), Some(y1), &mut rng).await?;
            let (y3, _) = server_layer(&mut ch, &he, &server_step(&lf), Some(y2), &mut rng).await?;
            Ok::<_, SecureError>(y3)
        }
    };
    let (yc, ys) = tokio::join!(client, server);
    let (yc, ys) = (yc.expect("client"), ys.expect("server"));
    let y1 = reference::conv2d(ring, &conv, &x, &wc, None);
    let y2 = reference::batch_norm(ring, &bn, &y1, &sc, Some(&shift));
    let want = reference::fc(ring, &fc, &y2, &wf, None);
    assert_eq!(open(ring, &yc, &ys), want);
}
