/* onnx.h - read ONNX protobuf bytes (ModelProto, TensorProto) into the engine's own structures.
 * The protobuf messages are freed before these functions return; weights are kept once, in the
 * graph's constant tensors. */
#ifndef ACC_ENGINE_ONNX_H
#define ACC_ENGINE_ONNX_H

#include <stddef.h>

#include "engine.h"
#include "graph.h"

/* Parse a serialized ModelProto into a fresh graph (not yet checked: see eg_graph_prepare).
 * Returns 0, -EINVAL (malformed) or -ENOTSUP (valid but unsupported: external data, sparse
 * initializers, non-tensor types...), with *err set. */
int onnx_parse_model(const void *buf, size_t len, struct eg_graph **out, char **err);
/* Parse a serialized TensorProto into a fresh tensor (free with eg_tensor_free); *name (may be
 * NULL) receives a copy of its name. Returns 0, -EINVAL or -ENOTSUP with *err set. */
int onnx_parse_tensor(const void *buf, size_t len, struct eng_tensor **out, char **name, char **err);

#endif
