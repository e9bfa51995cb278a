//! Both parties over a real local QUIC connection (`cryprot_net::testing::local_conn`),
//! chaining two layers the way the engine does, and malformed frames from the peer.

use std::sync::Arc;

use fusion_core::ring::Ring;
use fusion_he::{
    Conv2dShape, FcShape, HeError, LinearPlan, Padding, PlanOptions, Preset, ServerLinear,
    client_layer, client_setup, reference, server_layer, server_setup,
};
use rand::rngs::ChaCha20Rng;
use rand::{RngExt, SeedableRng};
use tokio::io::AsyncWriteExt;

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
            let (y1, t1) = client_layer(&mut ch, &he, &conv_plan, x, &mut rng).await?;
            assert_eq!(t1.client_to_server, conv_plan.stats().bytes_up);
            assert_eq!(t1.server_to_client, conv_plan.stats().bytes_down);
            let (y2, _) = client_layer(&mut ch, &he, &fc_plan, y1, &mut rng).await?;
            Ok::<_, HeError>(y2)
        }
    };
    let server = {
        let params = params.clone();
        async move {
            let mut rng = ChaCha20Rng::seed_from_u64(2);
            let (he, mut ch) = server_setup(&mut sconn, &params).await?;
            let (y1, _) = server_layer(&mut ch, &he, &conv_layer, None, &mut rng).await?;
            let (y2, _) = server_layer(&mut ch, &he, &fc_layer, Some(y1), &mut rng).await?;
            Ok::<_, HeError>(y2)
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
    let got: Vec<u64> = yc
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| ring.reconstruct(a, b))
        .collect();
    assert_eq!(got, want);
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
        // The setup by hand, then a frame that claims 1 TB: the server must refuse
        // before allocating.
        let client = fusion_he::HeClient::new(&params, &mut rng);
        let pk = client.public_key_msg();
        let (mut tx, rx) = cconn.byte_stream().await.expect("stream");
        tx.write_all(&(pk.as_bytes().len() as u64).to_le_bytes())
            .await
            .expect("write");
        tx.write_all(pk.as_bytes()).await.expect("write");
        tx.write_all(&(1u64 << 40).to_le_bytes())
            .await
            .expect("write");
        tx.flush().await.expect("flush");
        (cconn, tx, rx)
    };
    let server = async move {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let p = Preset::N4096
            .params(Ring::new(37).expect("ring"))
            .expect("params");
        let (he, mut ch) = server_setup(&mut sconn, &p).await.expect("setup");
        server_layer(&mut ch, &he, &layer, None, &mut rng).await
    };
    let (_c, res) = tokio::join!(client, server);
    assert!(
        matches!(res, Err(HeError::MessageLength { what: "query", .. })),
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
    assert!(matches!(s, Err(HeError::ParamMismatch(_))), "{s:?}");
}
