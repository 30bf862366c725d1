/* onnx_builder.h - a small ModelProto builder for the engine's tests: models are built in
 * memory, field by field, and serialised. Every string, array and sub-message it makes is
 * malloc'ed and owned by the model; mb_pack and mb_free release the whole model. */
#ifndef ACCELD_TESTS_ONNX_BUILDER_H
#define ACCELD_TESTS_ONNX_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "util.h"

/* ONNX TensorProto element types the tests use. */
#define MB_FLOAT 1
#define MB_INT64 7

/* Append p to the protobuf-c repeated field arr of length n (n is incremented). */
#define MB_PUSH(n, arr, p)                                                                        \
	do {                                                                                          \
		(arr) = xreallocarray((arr), (n) + 1, sizeof(*(arr)));                                    \
		(arr)[(n)++] = (p);                                                                       \
	} while (0)

/* A NULL-terminated list of names, for mb_node's inputs and outputs. */
#define MB_L(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* A model (IR version 8) importing the default domain at opset, with an empty graph "g";
 * producer may be NULL (left unset). */
Onnx__ModelProto *mb_new(int64_t opset, const char *producer);

/* A tensor ValueInfo of elem type; ndims < 0 leaves the shape out; dims[i] < 0 becomes the
 * symbolic dimension "N". */
Onnx__ValueInfoProto *mb_vi(const char *name, int elem, int ndims, const int64_t *dims);

/* Append a graph input (shape as for mb_vi). */
void mb_input(Onnx__ModelProto *m, const char *name, int elem, int ndims, const int64_t *dims);

/* Append a graph output without a shape. */
void mb_output(Onnx__ModelProto *m, const char *name, int elem);

/* Append an initializer of elem type (MB_FLOAT or MB_INT64) copied from data (raw_data). */
Onnx__TensorProto *mb_init(Onnx__ModelProto *m, const char *name, int elem, int ndims, const int64_t *dims,
			   const void *data);

/* Append an fp32 initializer of values in [-0.25, 0.25] drawn with rand_r(seed). */
Onnx__TensorProto *mb_init_rand(Onnx__ModelProto *m, const char *name, int ndims, const int64_t *dims,
				unsigned *seed);

/* Append a scalar fp32 initializer. */
void mb_scalar(Onnx__ModelProto *m, const char *name, float v);

/* Append a node; ins and outs are NULL-terminated (MB_L); name may be NULL (left unset). */
Onnx__NodeProto *mb_node(Onnx__ModelProto *m, const char *op, const char *name, const char *const *ins,
			 const char *const *outs);

/* Append a node named "<op>_<index in the graph>". */
Onnx__NodeProto *mb_node_auto(Onnx__ModelProto *m, const char *op, const char *const *ins, const char *const *outs);

/* Append an attribute of type (ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__*) with no value to n. */
Onnx__AttributeProto *mb_attr(Onnx__NodeProto *n, const char *name, int type);

/* Append an INT attribute. */
void mb_attr_int(Onnx__NodeProto *n, const char *name, int64_t v);

/* Append an INTS attribute of k values. */
void mb_attr_ints(Onnx__NodeProto *n, const char *name, int k, const int64_t *v);

/* Append a FLOAT attribute. */
void mb_attr_float(Onnx__NodeProto *n, const char *name, float v);

/* Append a STRING attribute. */
void mb_attr_string(Onnx__NodeProto *n, const char *name, const char *s);

/* Serialise m into a new buffer (*len bytes, caller frees) and free m. */
uint8_t *mb_pack(Onnx__ModelProto *m, size_t *len);

/* Free m and everything in it. */
void mb_free(Onnx__ModelProto *m);

#endif
