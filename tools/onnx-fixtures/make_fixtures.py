#!/usr/bin/env python3
"""Makes the ONNX fixtures in data/onnx/ with real exporters (run once, by hand).

* digits-mlp.onnx: scikit-learn Pipeline(StandardScaler, MLPClassifier(32 ReLU))
  trained on the training split of the UCI digits data that the repository ships,
  exported by skl2onnx (StandardScaler with the converter's `div` option, so the
  normalisation is Sub + Div; `zipmap=False`, so probabilities are a tensor).
* mnist-cnn-small.onnx: a small PyTorch CNN (normalisation Sub/Div inside the
  graph, conv + batch norm, max pool, a residual block, average pool, global
  average pool, two Gemm layers, final Softmax) trained one epoch on the MNIST
  training images that the repository ships, exported by torch.onnx.export with
  a symbolic batch dimension.

For each model, `<name>.reference.json` holds onnxruntime's outputs on held-out
samples (the test split, as `fusion_nn::data::load(.., Part::Test)` loads it):
the logits (the input of the final Softmax, exposed as an extra graph output in
a copy of the model that is not committed) and the probabilities.
`versions.json` records the tool versions and the training figures.

The digits splits come from `fusion samples` (the seeded stratified split is
defined in Rust), so build the CLI first:

    cargo build -p fusion-cli
    python3 -m venv /tmp/onnxvenv && /tmp/onnxvenv/bin/pip install -r tools/onnx-fixtures/requirements.txt
    /tmp/onnxvenv/bin/python tools/onnx-fixtures/make_fixtures.py --fusion target/debug/fusion
"""

import argparse
import csv
import gzip
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(REPO, "data")
OUT = os.path.join(DATA, "onnx")
SEED = 2023


def read_samples(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    label = header.index("label")
    x = np.array([[float(v) for i, v in enumerate(r) if i != label] for r in rows], np.float32)
    y = np.array([int(r[label]) for r in rows], np.int64)
    return x, y


def fusion_split(fusion, name, split, count):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s.csv")
        subprocess.run(
            [fusion, "samples", "--data", name, "--split", split, "--count", str(count),
             "--with-labels", "--out", path],
            check=True, env={**os.environ, "FUSION_DATA": DATA},
        )
        return read_samples(path)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw[16:], np.uint8).reshape(n, 1, rows, cols)
    return np.frombuffer(raw[8:], np.uint8).astype(np.int64)


def with_logits_output(model_path):
    """A copy of the model whose extra output is the input of its final Softmax."""
    m = onnx.load(model_path)
    soft = [n for n in m.graph.node if n.op_type == "Softmax"]
    if len(soft) != 1:
        raise SystemExit(f"{model_path}: expected one final Softmax, found {len(soft)}")
    logits = soft[0].input[0]
    m.graph.output.append(onnx.helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
    return m.SerializeToString(), logits


def reference(model_path, x, indices, dataset, note):
    blob, logits_name = with_logits_output(model_path)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    prob_name = [n for n in names if n != logits_name and sess.get_outputs()[names.index(n)].type == "tensor(float)"][0]
    logits, probs = sess.run([logits_name, prob_name], {inp: x})
    return {
        "model": os.path.basename(model_path),
        "dataset": dataset,
        "split": "test",
        "indices": [int(i) for i in indices],
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "note": note,
        "logits_name": logits_name,
        "probabilities_name": prob_name,
        "logits": np.round(logits.astype(np.float64), 7).tolist(),
        "probabilities": np.round(probs.astype(np.float64), 7).tolist(),
    }


def digits_mlp(fusion, info):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    xtr, ytr = fusion_split(fusion, "digits", "train", 1438)
    xte, yte = fusion_split(fusion, "digits", "test", 359)
    scaler = StandardScaler()
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=SEED)
    pipe = Pipeline([("scaler", scaler), ("mlp", mlp)]).fit(xtr, ytr)
    acc = float((pipe.predict(xte) == yte).mean())
    onx = convert_sklearn(
        pipe,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(scaler): {"div": "div"}, id(mlp): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path = os.path.join(OUT, "digits-mlp.onnx")
    onnx.save(onx, path)
    ref = reference(path, xte, range(len(xte)), "digits",
                    "all 359 samples of the digits test split")
    info["digits-mlp"] = {"exporter": "skl2onnx", "train_samples": len(xtr),
                          "test_accuracy_sklearn": acc}
    return ref


def mnist_cnn(info):
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            return torch.relu(x + self.b2(self.c2(y)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 5, padding=2), nn.BatchNorm2d(8)
            self.pool1 = nn.MaxPool2d(2)
            self.block = Block(8)
            self.pool2 = nn.AvgPool2d(2)
            self.conv3 = nn.Conv2d(8, 32, 3, padding=1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flat = nn.Flatten()
            self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 10)

        def forward(self, x):
            x = (x - 33.32) / 78.57  # raw pixels 0..255 in, MNIST mean/std
            x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
            x = self.pool2(self.block(x))
            x = self.gap(torch.relu(self.conv3(x)))
            x = torch.relu(self.fc1(self.flat(x)))
            return torch.softmax(self.fc2(x), dim=1)

    xtr = torch.tensor(read_idx(os.path.join(DATA, "mnist/train-images-idx3-ubyte.gz")), dtype=torch.float32)
    ytr = torch.tensor(read_idx(os.path.join(DATA, "mnist/train-labels-idx1-ubyte.gz")))
    xte = read_idx(os.path.join(DATA, "mnist/t10k-images-idx3-ubyte.gz")).astype(np.float32)
    yte = read_idx(os.path.join(DATA, "mnist/t10k-labels-idx1-ubyte.gz"))
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    epochs = 2
    for _ in range(epochs):
        perm = torch.randperm(len(xtr))
        net.train()
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            probs = net(xtr[idx])
            loss = nn.functional.nll_loss(torch.log(probs + 1e-9), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.tensor(xte)).argmax(1).numpy() == yte).mean())
    path = os.path.join(OUT, "mnist-cnn-small.onnx")
    torch.onnx.export(
        net, (torch.zeros(1, 1, 28, 28),), path,
        input_names=["pixels"], output_names=["probabilities"],
        dynamic_axes={"pixels": {0: "batch"}, "probabilities": {0: "batch"}},
        dynamo=False, opset_version=17,
        # keep BatchNormalization nodes (the eval export would fold them into the convs)
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    n = 1000
    ref = reference(path, xte[:n], range(n), "mnist", f"the first {n} images of the MNIST test set")
    info["mnist-cnn-small"] = {"exporter": "torch.onnx.export (TorchScript exporter, opset 17, TrainingMode.PRESERVE on the eval-mode model)",
                               "train_samples": len(xtr), "epochs": epochs,
                               "test_accuracy_torch": acc}
    return ref


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fusion", default=os.path.join(REPO, "target/debug/fusion"),
                    help="the fusion binary (for `fusion samples`)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    import sklearn
    import skl2onnx
    import torch
    info = {"tools": {"python": platform.python_version(), "numpy": np.__version__,
                      "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                      "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                      "torch": torch.__version__}}
    for name, ref in [("digits-mlp", digits_mlp(args.fusion, info)), ("mnist-cnn-small", mnist_cnn(info))]:
        with open(os.path.join(OUT, f"{name}.reference.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
            f.write("\n")
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    sys.exit(main())
