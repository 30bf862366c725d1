#!/usr/bin/python3
"""Write the model repository the integration tests serve.

Usage: /usr/bin/python3 make_test_models.py --out DIR --expected FILE [--examples CONF_MODELS_DIR]

Models (each DIR/NAME/config.json + DIR/NAME/1/model.onnx, Triton's JSON configuration):
  tiny        y = Relu(x @ W^T + b), x [N,4] -> y [N,3], FP32, max_batch_size 8
  pair        sum = a + b, prod = a * b, a/b [N,4] -> [N,4], FP32, max_batch_size 8
  ident_T     y = Identity(x), x [N,5], for T in fp32 fp64 int32 int64 uint8 bool
  broken      a valid config.json next to a model.onnx of garbage bytes
  mlp         (with --examples) a copy of the example MLP, for the load generator

FILE (JSON) holds, for tiny and pair, an input and the outputs numpy computes for it
(float64, rounded to float32), so the tests never trust the server for expected values.
Exits 77 when python3-onnx or python3-numpy is missing (the test is then skipped).
"""
import argparse
import json
import os
import shutil
import sys

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:  # an external dependency missing: skip, don't fail
    print(f"make_test_models: {e}: install python3-onnx and python3-numpy", file=sys.stderr)
    sys.exit(77)

OPSET = 13
IR_VERSION = 8

DTYPES = {
    # name: (ONNX element type, config data_type)
    "fp32": (TensorProto.FLOAT, "TYPE_FP32"),
    "fp64": (TensorProto.DOUBLE, "TYPE_FP64"),
    "int32": (TensorProto.INT32, "TYPE_INT32"),
    "int64": (TensorProto.INT64, "TYPE_INT64"),
    "uint8": (TensorProto.UINT8, "TYPE_UINT8"),
    "bool": (TensorProto.BOOL, "TYPE_BOOL"),
}


def io(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, ["N"] + list(dims))


def save(out, name, graph, cfg):
    model = helper.make_model(graph, producer_name="acceld-tests",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    os.makedirs(os.path.join(out, name, "1"), exist_ok=True)
    with open(os.path.join(out, name, "1", "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    write_config(out, name, cfg)


def write_config(out, name, cfg):
    os.makedirs(os.path.join(out, name), exist_ok=True)
    with open(os.path.join(out, name, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def config(name, max_batch, inputs, outputs):
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch,
        "input": [{"name": n, "data_type": t, "dims": d} for n, t, d in inputs],
        "output": [{"name": n, "data_type": t, "dims": d} for n, t, d in outputs],
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }


def make_tiny(out):
    # Exact binary fractions, so float32 and float64 agree to the last bit where possible.
    w = (np.arange(12, dtype=np.float64).reshape(3, 4) / 8.0 - 0.75).astype(np.float32)
    b = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["y"])],
        "tiny", [io("x", TensorProto.FLOAT, [4])], [io("y", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    save(out, "tiny", graph,
         config("tiny", 8, [("x", "TYPE_FP32", [4])], [("y", "TYPE_FP32", [3])]))
    x = np.array([[1.0, 2.0, 3.0, 4.0], [-1.5, 0.25, 2.0, -3.0]], dtype=np.float32)
    y = np.maximum(x.astype(np.float64) @ w.astype(np.float64).T + b, 0.0).astype(np.float32)
    return {"x": x.ravel().tolist(), "x_shape": list(x.shape),
            "y": y.ravel().tolist(), "y_shape": list(y.shape)}


def make_pair(out):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["prod"])],
        "pair", [io("a", TensorProto.FLOAT, [4]), io("b", TensorProto.FLOAT, [4])],
        [io("sum", TensorProto.FLOAT, [4]), io("prod", TensorProto.FLOAT, [4])])
    save(out, "pair", graph,
         config("pair", 8, [("a", "TYPE_FP32", [4]), ("b", "TYPE_FP32", [4])],
                [("sum", "TYPE_FP32", [4]), ("prod", "TYPE_FP32", [4])]))
    a = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    b = np.array([[0.5, -2.0, 8.0, 0.0]], dtype=np.float32)
    return {"a": a.ravel().tolist(), "b": b.ravel().tolist(), "shape": list(a.shape),
            "sum": (a + b).ravel().tolist(), "prod": (a * b).ravel().tolist()}


def make_ident(out, tname):
    elem, cfg_type = DTYPES[tname]
    name = f"ident_{tname}"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name,
                              [io("x", elem, [5])], [io("y", elem, [5])])
    save(out, name, graph, config(name, 4, [("x", cfg_type, [5])], [("y", cfg_type, [5])]))


def make_broken(out):
    write_config(out, "broken",
                 config("broken", 8, [("x", "TYPE_FP32", [4])], [("y", "TYPE_FP32", [3])]))
    os.makedirs(os.path.join(out, "broken", "1"), exist_ok=True)
    with open(os.path.join(out, "broken", "1", "model.onnx"), "wb") as f:
        f.write(b"\xff\xfe this is not an ONNX model \x00\x01\x02" * 7)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--examples", help="conf/models, to copy the example MLP from")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    expected = {"tiny": make_tiny(args.out), "pair": make_pair(args.out)}
    for t in DTYPES:
        make_ident(args.out, t)
    make_broken(args.out)
    if args.examples:
        shutil.copytree(os.path.join(args.examples, "mlp"), os.path.join(args.out, "mlp"))
    with open(args.expected, "w") as f:
        json.dump(expected, f, indent=2)


if __name__ == "__main__":
    main()
