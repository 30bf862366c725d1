#!/usr/bin/python3
"""Write acceld's example model repository, reproducibly.

Usage:
  /usr/bin/python3 conf/make_models.py --out DIR      write DIR/<model>/...
  /usr/bin/python3 conf/make_models.py --verify DIR   check DIR against the ONNX files in it

For each model NAME it writes
  DIR/NAME/config.json        Triton's model configuration, in its JSON form
  DIR/NAME/1/model.onnx       the network (ONNX IR 8, opset 13, dynamic batch dimension "N")
  DIR/NAME/sample_input.bin   a batch-1 input: the inputs in config order, raw little-endian fp32
  DIR/NAME/sample_output.bin  the expected outputs for it, in config order, same encoding
  DIR/NAME/expected.json      names, shapes and byte offsets of the sample tensors, and the
                              tolerance a float32 engine should meet against them

Weights come from fixed seeds through numpy's legacy RandomState (its streams are frozen) and
are quantised to multiples of a power of two, so every value is exact and the files are the
same, byte for byte, on every machine. The expected outputs come from a forward pass written
here in numpy, in float64, then rounded to float32: no ONNX runtime is involved. --verify
walks each model.onnx node by node with a small numpy interpreter and compares its outputs
with sample_output.bin, which checks the graph's wiring against the reference.

Needs Debian's python3-onnx and python3-numpy.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRODUCER = "acceld-make-models"
PRODUCER_VERSION = "1"
IR_VERSION = 8
OPSET = 13
BATCH = "N"

# The operators acceld's engine supports today; the tool refuses to emit anything else.
ALLOWED_OPS = {
    "Gemm", "MatMul", "Add", "Mul", "Relu", "Sigmoid", "Softmax", "Reshape", "Flatten", "Conv",
    "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Concat", "Transpose",
    "Identity", "Constant",
}

# Tolerance for a float32 engine against the float64 reference (|got - want| <= atol + rtol*|want|).
ATOL, RTOL = 1e-5, 1e-4


# ---------------------------------------------------------------------------------------------
# Deterministic parameters


def quantised_uniform(rng, shape, limit_log2, levels=128):
    """Uniform values in [-2^limit_log2, 2^limit_log2] on a grid of `levels` steps per side."""
    k = rng.randint(-levels, levels + 1, size=shape).astype(np.float64)
    return (k * (2.0 ** limit_log2) / levels).astype(np.float32)


def he_uniform(rng, shape, fan_in):
    """He-like init: uniform with a bound of sqrt(6/fan_in) rounded to a power of two."""
    limit_log2 = int(np.round(np.log2(np.sqrt(6.0 / fan_in))))
    return quantised_uniform(rng, shape, limit_log2)


def unit_input(rng, shape):
    """A sample input in [0, 1] on a 1/256 grid (like a normalised 8-bit image)."""
    return (rng.randint(0, 257, size=shape).astype(np.float64) / 256.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Reference operators in float64 (shared by the forward passes and the --verify interpreter)


def ref_gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=0, trans_b=0):
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    if c is not None:
        y = y + beta * c.astype(np.float64)
    return y


def ref_relu(x):
    return np.maximum(x, 0.0)


def ref_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ref_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def ref_conv(x, w, b=None, pads=(0, 0, 0, 0), strides=(1, 1), dilations=(1, 1), group=1):
    """2-D convolution, NCHW; pads are (top, left, bottom, right) as in ONNX."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    assert c == cg * group and m % group == 0
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (xp.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                hi, wj = i * dilations[0], j * dilations[1]
                patch = xs[:, :, hi:hi + strides[0] * (oh - 1) + 1:strides[0],
                           wj:wj + strides[1] * (ow - 1) + 1:strides[1]]
                y[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    if b is not None:
        y += b.astype(np.float64).reshape(1, m, 1, 1)
    return y


def _pool(x, kernel, strides, pads, reduce_fn, pad_value):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])),
                constant_values=pad_value)
    oh = (xp.shape[2] - kernel[0]) // strides[0] + 1
    ow = (xp.shape[3] - kernel[1]) // strides[1] + 1
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * strides[0]:i * strides[0] + kernel[0],
                     j * strides[1]:j * strides[1] + kernel[1]]
            y[:, :, i, j] = reduce_fn(win, axis=(2, 3))
    return y


def ref_maxpool(x, kernel, strides=None, pads=(0, 0, 0, 0)):
    return _pool(x, kernel, strides or (1, 1), pads, np.max, -np.inf)


def ref_avgpool(x, kernel, strides=None, pads=(0, 0, 0, 0)):
    """AveragePool with count_include_pad=0 (padding is not counted)."""
    ones = np.ones((1, 1) + x.shape[2:])
    s = _pool(x, kernel, strides or (1, 1), pads, np.sum, 0.0)
    cnt = _pool(ones, kernel, strides or (1, 1), pads, np.sum, 0.0)
    return s / cnt


def ref_global_avgpool(x):
    return np.mean(x, axis=(2, 3), keepdims=True)


def ref_batchnorm(x, scale, bias, mean, var, epsilon=1e-5):
    shp = (1, -1) + (1,) * (x.ndim - 2)
    inv = 1.0 / np.sqrt(var.astype(np.float64) + epsilon)
    return ((x - mean.astype(np.float64).reshape(shp)) * (scale.astype(np.float64) * inv).reshape(shp)
            + bias.astype(np.float64).reshape(shp))


def ref_flatten(x, axis=1):
    lead = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(lead, -1)


# ---------------------------------------------------------------------------------------------
# Models: each returns (graph, config, sample inputs, reference outputs)


def f32(name, dims):
    """A float32 graph input/output with a dynamic batch dimension first."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH] + list(dims))


def init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def config(name, max_batch, inputs, outputs, dynamic_batching=True, count=1):
    """Triton's model configuration (JSON form); dims exclude the batch dimension."""
    cfg = {
        "name": name,
        "platform": "onnxruntime_onnx",
        "max_batch_size": max_batch,
        "input": [{"name": n, "data_type": "TYPE_FP32", "dims": list(d)} for n, d in inputs],
        "output": [{"name": n, "data_type": "TYPE_FP32", "dims": list(d)} for n, d in outputs],
        "instance_group": [{"kind": "KIND_CPU", "count": count}],
    }
    if dynamic_batching:
        cfg["dynamic_batching"] = {"max_queue_delay_microseconds": 100}
    return cfg


def make_mlp():
    """MLP classifier 784-256-128-10 for flattened 28x28 images."""
    rng = np.random.RandomState(1)
    sizes = [784, 256, 128, 10]
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights.append(he_uniform(rng, (fan_out, fan_in), fan_in))  # [out, in]: Gemm transB=1
        biases.append(quantised_uniform(rng, (fan_out,), -4))
    nodes, inits, prev = [], [], "input"
    for i, (w, b) in enumerate(zip(weights, biases), start=1):
        inits += [init(f"fc{i}.weight", w), init(f"fc{i}.bias", b)]
        out = f"fc{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"fc{i}.weight", f"fc{i}.bias"], [out],
                                      name=f"fc{i}", transB=1))
        prev = out
        if i < len(weights):
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
            prev = f"relu{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=-1))
    graph = helper.make_graph(nodes, "mlp", [f32("input", [784])], [f32("probabilities", [10])],
                              inits)

    x = unit_input(np.random.RandomState(101), (1, 784))
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = ref_gemm(h, w, b, trans_b=1)
        if i < len(weights) - 1:
            h = ref_relu(h)
    y = ref_softmax(h, axis=-1)
    cfg = config("mlp", 64, [("input", [784])], [("probabilities", [10])])
    return graph, cfg, [x], [y]


def make_cnn():
    """Small CNN for 1x28x28 images: conv-bn-relu, maxpool, conv-relu, global pool, fc, softmax."""
    rng = np.random.RandomState(2)
    w1 = he_uniform(rng, (8, 1, 3, 3), 1 * 9)
    b1 = quantised_uniform(rng, (8,), -4)
    bn_scale = (1.0 + quantised_uniform(rng, (8,), -2)).astype(np.float32)
    bn_bias = quantised_uniform(rng, (8,), -3)
    bn_mean = quantised_uniform(rng, (8,), -2)
    bn_var = (0.5 + np.abs(quantised_uniform(rng, (8,), 0))).astype(np.float32)
    w2 = he_uniform(rng, (16, 8, 3, 3), 8 * 9)
    b2 = quantised_uniform(rng, (16,), -4)
    w3 = he_uniform(rng, (10, 16), 16)
    b3 = quantised_uniform(rng, (10,), -4)
    eps = 1e-5

    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization",
                         ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["bn1"],
                         name="bn1", epsilon=eps),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2",
                         kernel_shape=[3, 3], pads=[0, 0, 0, 0], strides=[1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["relu2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    inits = [init("conv1.weight", w1), init("conv1.bias", b1), init("bn1.scale", bn_scale),
             init("bn1.bias", bn_bias), init("bn1.mean", bn_mean), init("bn1.var", bn_var),
             init("conv2.weight", w2), init("conv2.bias", b2), init("fc.weight", w3),
             init("fc.bias", b3)]
    graph = helper.make_graph(nodes, "cnn", [f32("image", [1, 28, 28])],
                              [f32("probabilities", [10])], inits)

    x = unit_input(np.random.RandomState(102), (1, 1, 28, 28))
    h = ref_conv(x, w1, b1, pads=(1, 1, 1, 1))                    # [1, 8, 28, 28]
    h = ref_relu(ref_batchnorm(h, bn_scale, bn_bias, bn_mean, bn_var, eps))
    h = ref_maxpool(h, (2, 2), (2, 2))                            # [1, 8, 14, 14]
    h = ref_relu(ref_conv(h, w2, b2))                             # [1, 16, 12, 12]
    h = ref_flatten(ref_global_avgpool(h))                        # [1, 16]
    y = ref_softmax(ref_gemm(h, w3, b3, trans_b=1), axis=-1)      # [1, 10]
    cfg = config("cnn", 32, [("image", [1, 28, 28])], [("probabilities", [10])])
    return graph, cfg, [x], [y]


def make_add_sub():
    """Two inputs, two outputs: sum = a + b, difference = a + (-1 * b)."""
    nodes = [
        helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
        helper.make_node("Constant", [], ["minus_one"], name="minus_one",
                         value=helper.make_tensor("minus_one", TensorProto.FLOAT, [], [-1.0])),
        helper.make_node("Mul", ["b", "minus_one"], ["neg_b"], name="negate"),
        helper.make_node("Add", ["a", "neg_b"], ["difference"], name="subtract"),
    ]
    graph = helper.make_graph(nodes, "add_sub", [f32("a", [16]), f32("b", [16])],
                              [f32("sum", [16]), f32("difference", [16])])
    rng = np.random.RandomState(103)
    a = quantised_uniform(rng, (1, 16), 3)
    b = quantised_uniform(rng, (1, 16), 3)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cfg = config("add_sub", 8, [("a", [16]), ("b", [16])],
                 [("sum", [16]), ("difference", [16])], dynamic_batching=False)
    return graph, cfg, [a, b], [a64 + b64, a64 - b64]


MODELS = {"mlp": make_mlp, "cnn": make_cnn, "add_sub": make_add_sub}


# ---------------------------------------------------------------------------------------------
# Writing


def build_model(graph):
    model = helper.make_model(graph, producer_name=PRODUCER, producer_version=PRODUCER_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    bad = sorted({n.op_type for n in model.graph.node} - ALLOWED_OPS)
    if bad:
        sys.exit(f"make_models: {graph.name} uses unsupported operators: {', '.join(bad)}")
    onnx.checker.check_model(model, full_check=True)
    return model


def dump_json(obj, indent=0):
    """JSON with objects one key per line and lists of numbers or strings on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + dump_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj)


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tensor_table(specs, arrays, file_name):
    """Layout of tensors concatenated in one .bin file, for expected.json."""
    rows, off = [], 0
    for spec, arr in zip(specs, arrays):
        size = arr.size * 4
        rows.append({"name": spec["name"], "datatype": "FP32", "shape": list(arr.shape),
                     "file": file_name, "offset": off, "byte_size": size})
        off += size
    return rows


def to_f32le(arrays):
    return b"".join(np.asarray(a, dtype="<f4").tobytes(order="C") for a in arrays)


def write_model(out, name):
    graph, cfg, inputs, outputs = MODELS[name]()
    model = build_model(graph)
    mdir = os.path.join(out, name)
    write_bytes(os.path.join(mdir, "1", "model.onnx"), model.SerializeToString())
    write_bytes(os.path.join(mdir, "config.json"),
                (dump_json(cfg) + "\n").encode())
    write_bytes(os.path.join(mdir, "sample_input.bin"), to_f32le(inputs))
    write_bytes(os.path.join(mdir, "sample_output.bin"), to_f32le(outputs))
    expected = {
        "model": name,
        "version": "1",
        "inputs": tensor_table(cfg["input"], inputs, "sample_input.bin"),
        "outputs": tensor_table(cfg["output"], outputs, "sample_output.bin"),
        "tolerance": {"atol": ATOL, "rtol": RTOL},
    }
    write_bytes(os.path.join(mdir, "expected.json"),
                (dump_json(expected) + "\n").encode())
    size = os.path.getsize(os.path.join(mdir, "1", "model.onnx"))
    print(f"{name}: {len(model.graph.node)} nodes, {size} bytes")


# ---------------------------------------------------------------------------------------------
# Verification: interpret the written ONNX file and compare with the sample files


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def run_onnx(model, feeds):
    """Evaluate a model of ALLOWED_OPS with numpy (float64); returns {name: array}."""
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    env.update({k: v.astype(np.float64) for k, v in feeds.items()})
    for node in model.graph.node:
        a = _attrs(node)
        x = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op not in ALLOWED_OPS:
            raise ValueError(f"unsupported operator {op}")
        if op == "Gemm":
            y = ref_gemm(x[0], x[1], x[2] if len(x) > 2 else None, a.get("alpha", 1.0),
                         a.get("beta", 1.0), a.get("transA", 0), a.get("transB", 0))
        elif op == "MatMul":
            y = x[0] @ x[1]
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "Mul":
            y = x[0] * x[1]
        elif op == "Relu":
            y = ref_relu(x[0])
        elif op == "Sigmoid":
            y = ref_sigmoid(x[0])
        elif op == "Softmax":
            y = ref_softmax(x[0], a.get("axis", -1))
        elif op == "Reshape":
            shape = [d if d != 0 else x[0].shape[i] for i, d in enumerate(x[1].astype(np.int64))]
            y = x[0].reshape(shape)
        elif op == "Flatten":
            y = ref_flatten(x[0], a.get("axis", 1))
        elif op == "Conv":
            y = ref_conv(x[0], x[1], x[2] if len(x) > 2 else None,
                         tuple(a.get("pads", (0, 0, 0, 0))), tuple(a.get("strides", (1, 1))),
                         tuple(a.get("dilations", (1, 1))), a.get("group", 1))
        elif op == "MaxPool":
            y = ref_maxpool(x[0], tuple(a["kernel_shape"]), tuple(a.get("strides", (1, 1))),
                            tuple(a.get("pads", (0, 0, 0, 0))))
        elif op == "AveragePool":
            y = ref_avgpool(x[0], tuple(a["kernel_shape"]), tuple(a.get("strides", (1, 1))),
                            tuple(a.get("pads", (0, 0, 0, 0))))
        elif op == "GlobalAveragePool":
            y = ref_global_avgpool(x[0])
        elif op == "BatchNormalization":
            y = ref_batchnorm(x[0], x[1], x[2], x[3], x[4], a.get("epsilon", 1e-5))
        elif op == "Concat":
            y = np.concatenate(x, axis=a["axis"])
        elif op == "Transpose":
            y = np.transpose(x[0], a.get("perm"))
        elif op == "Identity":
            y = x[0]
        elif op == "Constant":
            y = numpy_helper.to_array(a["value"]).astype(np.float64)
        env[node.output[0]] = y
    return env


def read_tensors(mdir, rows):
    out = []
    for r in rows:
        with open(os.path.join(mdir, r["file"]), "rb") as f:
            f.seek(r["offset"])
            data = f.read(r["byte_size"])
        out.append(np.frombuffer(data, dtype="<f4").reshape(r["shape"]))
    return out


def verify(root):
    """Check every model under root: config matches the graph, outputs match the samples."""
    failures = 0
    for name in sorted(os.listdir(root)):
        mdir = os.path.join(root, name)
        if not os.path.isfile(os.path.join(mdir, "config.json")):
            continue
        with open(os.path.join(mdir, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(mdir, "expected.json")) as f:
            exp = json.load(f)
        model = onnx.load(os.path.join(mdir, "1", "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        errs = []
        g_in = [i.name for i in model.graph.input
                if i.name not in {t.name for t in model.graph.initializer}]
        if g_in != [i["name"] for i in cfg["input"]]:
            errs.append(f"graph inputs {g_in} != config inputs")
        if [o.name for o in model.graph.output] != [o["name"] for o in cfg["output"]]:
            errs.append("graph outputs != config outputs")
        ins = read_tensors(mdir, exp["inputs"])
        want = read_tensors(mdir, exp["outputs"])
        env = run_onnx(model, {r["name"]: t for r, t in zip(exp["inputs"], ins)})
        for r, w in zip(exp["outputs"], want):
            got = env[r["name"]]
            if got.shape != w.shape:
                errs.append(f"{r['name']}: shape {got.shape} != {w.shape}")
                continue
            bad = np.abs(got - w) > ATOL + RTOL * np.abs(w)
            if bad.any():
                errs.append(f"{r['name']}: {int(bad.sum())} values off, max |diff| "
                            f"{float(np.max(np.abs(got - w))):.3g}")
        print(f"{name}: {'FAIL ' + '; '.join(errs) if errs else 'ok'}")
        failures += bool(errs)
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", metavar="DIR", help="write the example models under DIR")
    g.add_argument("--verify", metavar="DIR", help="check the models under DIR")
    p.add_argument("models", nargs="*", help=f"models to write (default: {' '.join(MODELS)})")
    args = p.parse_args()
    if args.verify:
        return 1 if verify(args.verify) else 0
    for name in args.models or MODELS:
        if name not in MODELS:
            p.error(f"unknown model {name}")
        write_model(args.out, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
