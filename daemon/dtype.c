/* dtype.c - element type tables. */
#include "config.h"
#include "dtype.h"

#include <string.h>

static const struct {
	const char *name, *config;
	size_t size;
	int onnx;
} dtypes[DT_COUNT] = {
	[DT_INVALID] = { "INVALID", "TYPE_INVALID", 0, 0 },
	[DT_BOOL] = { "BOOL", "TYPE_BOOL", 1, 9 },
	[DT_UINT8] = { "UINT8", "TYPE_UINT8", 1, 2 },
	[DT_UINT16] = { "UINT16", "TYPE_UINT16", 2, 4 },
	[DT_UINT32] = { "UINT32", "TYPE_UINT32", 4, 12 },
	[DT_UINT64] = { "UINT64", "TYPE_UINT64", 8, 13 },
	[DT_INT8] = { "INT8", "TYPE_INT8", 1, 3 },
	[DT_INT16] = { "INT16", "TYPE_INT16", 2, 5 },
	[DT_INT32] = { "INT32", "TYPE_INT32", 4, 6 },
	[DT_INT64] = { "INT64", "TYPE_INT64", 8, 7 },
	[DT_FP16] = { "FP16", "TYPE_FP16", 2, 10 },
	[DT_FP32] = { "FP32", "TYPE_FP32", 4, 1 },
	[DT_FP64] = { "FP64", "TYPE_FP64", 8, 11 },
	[DT_BF16] = { "BF16", "TYPE_BF16", 2, 16 },
	[DT_BYTES] = { "BYTES", "TYPE_STRING", 0, 8 },
};

/* Element size. */
size_t dtype_size(enum dtype t)
{
	return (unsigned)t < DT_COUNT ? dtypes[t].size : 0;
}

/* Protocol name. */
const char *dtype_name(enum dtype t)
{
	return (unsigned)t < DT_COUNT ? dtypes[t].name : "INVALID";
}

/* Config name. */
const char *dtype_config_name(enum dtype t)
{
	return (unsigned)t < DT_COUNT ? dtypes[t].config : "TYPE_INVALID";
}

/* Parse a protocol name. */
enum dtype dtype_from_name(const char *s)
{
	for (int t = 1; s && t < DT_COUNT; t++)
		if (strcmp(s, dtypes[t].name) == 0)
			return (enum dtype)t;
	return DT_INVALID;
}

/* Parse a config name. */
enum dtype dtype_from_config_name(const char *s)
{
	for (int t = 1; s && t < DT_COUNT; t++)
		if (strcmp(s, dtypes[t].config) == 0)
			return (enum dtype)t;
	return DT_INVALID;
}

/* From ONNX. */
enum dtype dtype_from_onnx(int onnx_type)
{
	for (int t = 1; t < DT_COUNT; t++)
		if (dtypes[t].onnx == onnx_type)
			return (enum dtype)t;
	return DT_INVALID;
}

/* To ONNX. */
int dtype_to_onnx(enum dtype t)
{
	return (unsigned)t < DT_COUNT ? dtypes[t].onnx : 0;
}

/* Element count. */
int64_t shape_numel(const int64_t *dims, int ndims)
{
	int64_t n = 1;
	for (int i = 0; i < ndims; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] && n > INT64_MAX / dims[i])
			return -1;
		n *= dims[i];
	}
	return n;
}
