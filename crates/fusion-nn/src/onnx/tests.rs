use proptest::prelude::*;
use prost::Message as _;

use super::proto::*;
use super::*;
use crate::float;

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.into()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(v),
        ..Default::default()
    }
}

fn node(op: &str, ins: &[&str], out: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        name: Some(format!("{op}_{out}")),
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    }
}

fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: d.is_none().then(|| "batch".to_string()),
                            denotation: None,
                        })
                        .collect(),
                }),
            }),
            denotation: None,
        }),
        doc_string: None,
    }
}

fn model(
    input: &[Option<i64>],
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    out: &str,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("test".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer: inits,
            input: vec![value("x", input)],
            output: vec![value(out, &[None, Some(2)])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn opts() -> ImportOptions {
    ImportOptions {
        name: "t".into(),
        output: None,
    }
}

/// x [3] -> (x - m) / s -> Gemm(transB) -> Relu -> MatMul + Add -> Softmax.
fn mlp() -> Vec<u8> {
    model(
        &[None, Some(3)],
        vec![
            node("Sub", &["x", "m"], "a", vec![]),
            node("Div", &["a", "s"], "b", vec![]),
            node("Gemm", &["b", "w1", "b1"], "c", vec![int("transB", 1)]),
            node("Relu", &["c"], "d", vec![]),
            node("MatMul", &["d", "w2"], "e", vec![]),
            node("Add", &["e", "b2"], "f", vec![]),
            node("Softmax", &["f"], "y", vec![int("axis", 1)]),
        ],
        vec![
            tensor("m", &[3], &[1.0, 2.0, 3.0]),
            tensor("s", &[1], &[2.0]),
            tensor("w1", &[2, 3], &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]),
            tensor("b1", &[2], &[0.25, -0.25]),
            tensor("w2", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            tensor("b2", &[1, 2], &[0.5, -0.5]),
        ],
        "y",
    )
}

fn import_err(bytes: &[u8]) -> NnError {
    import(bytes, &opts()).expect_err("must fail")
}

#[test]
fn mlp_maps_to_dense_layers_with_the_normalisation_as_preprocessing() {
    let imp = import(&mlp(), &opts()).expect("import");
    let g = &imp.model.graph;
    let tags: Vec<&str> = g.nodes.iter().map(|n| n.op.tag()).collect();
    assert_eq!(tags, ["input", "dense", "relu", "dense"]);
    assert_eq!(
        imp.model.meta.preprocess,
        Preprocess::Standardize {
            mean: vec![1.0, 2.0, 3.0],
            std: vec![2.0; 3]
        }
    );
    assert_eq!(imp.model.meta.classes, 2);
    assert_eq!(imp.batch, BatchDim::Symbolic("batch".into()));
    assert!(
        imp.notes.iter().any(|n| n.contains("Softmax")),
        "{:?}",
        imp.notes
    );
    // By hand: x = [3, 4, 7] -> b = [1, 1, 2] -> c = [1 - 2 + .25, 2 - .25] = [-.75, 1.75]
    // -> d = [0, 1.75] -> f = [0 + 1.75 * 3 + .5, 0 + 1.75 * 4 - .5] = [5.75, 6.5].
    let x = Tensor::new(vec![1, 3], vec![3.0, 4.0, 7.0]).expect("t");
    let pre = imp.model.meta.preprocess.apply(&x).expect("pre");
    let y = float::forward(&imp.model, &pre).expect("forward");
    assert_eq!(y.data(), &[5.75, 6.5]);
}

#[test]
fn conv_batch_norm_pools_and_residual_add_map_to_layers() {
    let bytes = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: None,
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: vec![
                node(
                    "Conv",
                    &["x", "cw", "cb"],
                    "c",
                    vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
                ),
                node(
                    "BatchNormalization",
                    &["c", "g", "be", "mu", "var"],
                    "bn",
                    vec![],
                ),
                node("Relu", &["bn"], "r", vec![]),
                node("Add", &["r", "c2"], "sum", vec![]),
                node(
                    "MaxPool",
                    &["sum"],
                    "mp",
                    vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
                ),
                node(
                    "AveragePool",
                    &["mp"],
                    "ap",
                    vec![ints("kernel_shape", &[2, 2]), ints("strides", &[1, 1])],
                ),
                node("GlobalAveragePool", &["ap"], "gap", vec![]),
                node("Flatten", &["gap"], "fl", vec![]),
                node("Gemm", &["fl", "fw"], "y", vec![]),
                node(
                    "Conv",
                    &["x", "cw"],
                    "c2",
                    vec![ints("pads", &[1, 1, 1, 1]), ints("strides", &[1, 1])],
                ),
            ]
            .into_iter()
            .enumerate()
            .map(|(i, n)| (if i == 9 { 0 } else { i + 1 }, n))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect(),
            initializer: vec![
                tensor("cw", &[2, 1, 3, 3], &[0.1; 18]),
                tensor("cb", &[2], &[0.0, 1.0]),
                tensor("g", &[2], &[1.0, 2.0]),
                tensor("be", &[2], &[0.0, 0.5]),
                tensor("mu", &[2], &[0.1, 0.2]),
                tensor("var", &[2], &[1.0, 4.0]),
                tensor("fw", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
            ],
            input: vec![value("x", &[Some(1), Some(1), Some(6), Some(6)])],
            output: vec![value("y", &[Some(1), Some(2)])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let imp = import(&bytes, &opts()).expect("import");
    let tags: Vec<&str> = imp.model.graph.nodes.iter().map(|n| n.op.tag()).collect();
    assert_eq!(
        tags,
        [
            "input",
            "conv2d",
            "conv2d",
            "batch_norm2d",
            "relu",
            "add",
            "max_pool2d",
            "avg_pool2d",
            "global_avg_pool",
            "dense"
        ]
    );
    assert_eq!(imp.batch, BatchDim::Fixed(1));
    let shapes = imp.model.graph.shapes().expect("shapes");
    assert_eq!(shapes[6], vec![2, 3, 3]);
    assert_eq!(shapes[7], vec![2, 2, 2]);
    assert!(
        imp.mapping
            .iter()
            .any(|m| m.contains("Flatten") && m.contains("nothing"))
    );
}

#[test]
fn batch_norm_after_gemm_folds_into_its_weights() {
    let bytes = model(
        &[None, Some(2)],
        vec![
            node("Gemm", &["x", "w", "b"], "h", vec![]),
            node(
                "BatchNormalization",
                &["h", "g", "be", "mu", "var"],
                "y",
                vec![],
            ),
        ],
        vec![
            tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            tensor("b", &[2], &[1.0, -1.0]),
            tensor("g", &[2], &[2.0, 1.0]),
            tensor("be", &[2], &[0.5, 0.0]),
            tensor("mu", &[2], &[1.0, 0.0]),
            tensor("var", &[2], &[4.0, 1.0]),
        ],
        "y",
    );
    let imp = import(&bytes, &opts()).expect("import");
    assert_eq!(imp.model.graph.nodes.len(), 2);
    let x = Tensor::new(vec![1, 2], vec![1.0, 1.0]).expect("t");
    let y = float::forward(&imp.model, &x).expect("forward");
    // h = [1 + 3 + 1, 2 + 4 - 1] = [5, 5]; bn eps 1e-5: [2 (5 - 1) / 2 + .5, 5]
    let want = [
        2.0 * 4.0 / (4.0f64 + 1e-5).sqrt() + 0.5,
        5.0 / (1.0f64 + 1e-5).sqrt(),
    ];
    for (a, b) in y.data().iter().zip(want) {
        assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn mul_by_a_scalar_becomes_the_scale_preprocessing() {
    let bytes = model(
        &[None, Some(2)],
        vec![
            node("Mul", &["k", "x"], "a", vec![]),
            node("Gemm", &["a", "w"], "y", vec![]),
        ],
        vec![
            tensor("k", &[], &[0.5]),
            tensor("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
        ],
        "y",
    );
    let imp = import(&bytes, &opts()).expect("import");
    assert_eq!(imp.model.meta.preprocess, Preprocess::Scale { factor: 0.5 });
}

#[test]
fn unsupported_operators_name_the_node_the_op_and_what_is_supported() {
    let bytes = model(
        &[None, Some(2)],
        vec![node("Sigmoid", &["x"], "y", vec![])],
        vec![],
        "y",
    );
    let err = import_err(&bytes).to_string();
    assert!(
        err.contains("Sigmoid_y") && err.contains("`Sigmoid`") && err.contains("Gemm"),
        "{err}"
    );
}

fn conv_model(attrs: Vec<AttributeProto>) -> Vec<u8> {
    model(
        &[None, Some(1), Some(4), Some(4)],
        vec![
            node("Conv", &["x", "w"], "c", attrs),
            node("GlobalAveragePool", &["c"], "p", vec![]),
            node("Flatten", &["p"], "y", vec![]),
        ],
        vec![tensor("w", &[2, 1, 3, 3], &[0.5; 18])],
        "y",
    )
}

#[test]
fn unsupported_attribute_values_are_errors_naming_the_attribute() {
    assert!(import(&conv_model(vec![]), &opts()).is_ok());
    let string = |name: &str, v: &str| AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::STRING),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    };
    for (attr, want) in [
        (int("group", 2), "group"),
        (ints("dilations", &[2, 2]), "dilations"),
        (string("auto_pad", "SAME_UPPER"), "auto_pad"),
        (ints("strides", &[1, 2]), "strides"),
        (ints("pads", &[0, 1, 0, 1]), "pads"),
        (int("frobnicate", 1), "frobnicate"),
    ] {
        let err = import_err(&conv_model(vec![attr]));
        assert!(
            matches!(err, NnError::OnnxUnsupported { ref node, .. } if node == "Conv_c")
                && err.to_string().contains(want),
            "{want}: {err}"
        );
    }
}

#[test]
fn a_dynamic_dimension_other_than_the_batch_is_an_error() {
    let bytes = model(
        &[None, None],
        vec![node("Relu", &["x"], "y", vec![])],
        vec![],
        "y",
    );
    let err = import_err(&bytes).to_string();
    assert!(
        err.contains("dynamic dimension") && err.contains("axis 1"),
        "{err}"
    );
}

#[test]
fn truncated_and_foreign_bytes_are_malformed_file_errors() {
    let good = mlp();
    for cut in [0, 1, 7, good.len() / 3, good.len() / 2, good.len() - 1] {
        let err = import_err(&good[..cut]);
        assert!(matches!(err, NnError::Onnx(_)), "cut {cut}: {err}");
    }
    for junk in [&b"PK\x03\x04 not onnx"[..], b"{\"format\": 1}", &[0xff; 64]] {
        assert!(matches!(import_err(junk), NnError::Onnx(_)));
    }
}

#[test]
fn a_tensor_whose_data_does_not_match_its_dims_is_rejected_before_allocation() {
    let mut m = ModelProto::decode(mlp().as_slice()).expect("decode");
    let g = m.graph.as_mut().expect("graph");
    g.initializer[2].dims = vec![1 << 40, 1 << 20];
    let err = import_err(&m.encode_to_vec());
    assert!(matches!(err, NnError::Onnx(_)), "{err}");
    g_mut(&mut m).initializer[2].dims = vec![2, 4];
    assert!(matches!(import_err(&m.encode_to_vec()), NnError::Onnx(_)));
}

fn g_mut(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().expect("graph")
}

#[test]
fn softmax_before_the_output_is_not_dropped() {
    let bytes = model(
        &[None, Some(2)],
        vec![
            node("Softmax", &["x"], "s", vec![]),
            node("Gemm", &["s", "w"], "y", vec![]),
        ],
        vec![tensor("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0])],
        "y",
    );
    let err = import_err(&bytes).to_string();
    assert!(err.contains("Softmax") && err.contains("last"), "{err}");
}

#[test]
fn a_flat_input_is_adapted_to_image_samples_by_a_first_flatten() {
    let mut imp = import(&mlp(), &opts()).expect("import");
    assert!(matches!(
        imp.adapt_input(&[1, 2, 2]),
        Err(NnError::InputShape { .. })
    ));
    let before = imp.model.clone();
    imp.adapt_input(&[3, 1, 1]).expect("adapt");
    assert_eq!(imp.model.graph.input_shape, vec![3, 1, 1]);
    assert_eq!(imp.model.graph.nodes[1].op, Op::Flatten);
    let x = Tensor::new(vec![1, 3], vec![3.0, 4.0, 7.0]).expect("t");
    let a = float::forward(&before, &before.meta.preprocess.apply(&x).expect("p")).expect("a");
    let x3 = x.reshape(vec![1, 3, 1, 1]).expect("r");
    let b = float::forward(
        &imp.model,
        &imp.model.meta.preprocess.apply(&x3).expect("p"),
    )
    .expect("b");
    assert_eq!(a, b);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = import(&bytes, &opts());
    }

    #[test]
    fn mutated_models_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        conv in any::<bool>(),
    ) {
        let mut bytes = if conv { conv_model(vec![]) } else { mlp() };
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let keep = cut.index(bytes.len() + 1);
        let _ = import(&bytes[..keep], &opts());
        let _ = import(&bytes, &opts());
    }
}
