/* dtype.h - tensor element types shared by the engine, drivers, scheduler and transport. */
#ifndef ACC_DTYPE_H
#define ACC_DTYPE_H

#include <stddef.h>
#include <stdint.h>

enum dtype {
	DT_INVALID = 0,
	DT_BOOL,
	DT_UINT8,
	DT_UINT16,
	DT_UINT32,
	DT_UINT64,
	DT_INT8,
	DT_INT16,
	DT_INT32,
	DT_INT64,
	DT_FP16,
	DT_FP32,
	DT_FP64,
	DT_BF16,
	DT_BYTES, /* variable-length strings: not a fixed element size */
	DT_COUNT
};

#define TENSOR_MAX_DIMS 8

/* Bytes per element (0 for DT_BYTES and DT_INVALID). */
size_t dtype_size(enum dtype t);
/* The v2 protocol's datatype name ("FP32", "INT64", "BOOL", "BYTES"...); "INVALID" if none. */
const char *dtype_name(enum dtype t);
/* Parse a v2 protocol datatype name; DT_INVALID if unknown. */
enum dtype dtype_from_name(const char *s);
/* The Triton model-config name ("TYPE_FP32", "TYPE_STRING"...). */
const char *dtype_config_name(enum dtype t);
/* Parse a Triton model-config name; DT_INVALID if unknown. */
enum dtype dtype_from_config_name(const char *s);
/* Map an ONNX TensorProto.DataType value; DT_INVALID if unsupported. */
enum dtype dtype_from_onnx(int onnx_type);
/* Map to an ONNX TensorProto.DataType value (0 for DT_INVALID). */
int dtype_to_onnx(enum dtype t);

/* Number of elements of a shape; -1 if any dim is negative or the product overflows. */
int64_t shape_numel(const int64_t *dims, int ndims);

#endif
