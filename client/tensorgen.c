/* tensorgen.c - generated input tensors (random, zeros, ones) from model metadata. */
#include "config.h"
#include "tensorgen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/util.h"

/* Resolve a generated input's shape. */
int tensorgen_shape(const struct acc_tensor_metadata *md, int64_t batch, int64_t *dims,
		    size_t *ndims, char **err)
{
	if (md->ndims > TENSORGEN_MAX_DIMS)
		return acc_err(err, -EINVAL, "input %s has %zu dimensions", md->name, md->ndims);
	for (size_t i = 0; i < md->ndims; i++) {
		dims[i] = md->shape[i];
		if (dims[i] >= 0)
			continue;
		if (i != 0)
			return acc_err(err, -EINVAL,
				       "input %s has variable dimension %zu: its shape must be given",
				       md->name, i);
		dims[i] = batch;
	}
	*ndims = md->ndims;
	return 0;
}

/* Elements of a known shape. */
int64_t tensorgen_numel(const int64_t *dims, size_t ndims)
{
	int64_t p = 1;
	for (size_t i = 0; i < ndims; i++) {
		if (dims[i] < 0 || (dims[i] && p > INT64_MAX / dims[i]))
			return -1;
		p *= dims[i];
	}
	return p;
}

/* xorshift64*: the generator behind random inputs. */
static uint64_t rng_next(uint64_t *s)
{
	if (!*s)
		*s = 0x9E3779B97F4A7C15ULL;
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* IEEE half-precision bits of a float in [0, 2] (the only values generated). */
static uint16_t half_bits(float f)
{
	if (f == 0.0f)
		return 0;
	int e;
	float m = frexpf(f, &e); /* f = m * 2^e, m in [0.5, 1) */
	int he = e - 1 + 15;
	if (he <= 0)
		return 0;
	return (uint16_t)((he << 10) | (uint16_t)((m * 2.0f - 1.0f) * 1024.0f));
}

/* Fill n elements. */
int tensorgen_fill(const char *dt, void *p, size_t n, int value, uint64_t *rng)
{
	size_t es = acc_datatype_size(dt);
	if (!es)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = value < 0 ? rng_next(rng) : 0;
		float f = value < 0 ? (float)(r >> 40) / (float)(1u << 24) : (float)value;
		uint64_t k = value < 0 ? r % 10 : (uint64_t)value;
		if (!strcmp(dt, "FP32")) {
			((float *)p)[i] = f;
		} else if (!strcmp(dt, "FP64")) {
			((double *)p)[i] = f;
		} else if (!strcmp(dt, "FP16")) {
			((uint16_t *)p)[i] = half_bits(f);
		} else if (!strcmp(dt, "BF16")) {
			uint32_t b;
			memcpy(&b, &f, 4);
			((uint16_t *)p)[i] = (uint16_t)(b >> 16);
		} else if (!strcmp(dt, "BOOL")) {
			((uint8_t *)p)[i] = value < 0 ? (uint8_t)(r & 1) : (uint8_t)value;
		} else if (es == 1) {
			((uint8_t *)p)[i] = (uint8_t)k;
		} else if (es == 2) {
			((uint16_t *)p)[i] = (uint16_t)k;
		} else if (es == 4) {
			((uint32_t *)p)[i] = (uint32_t)k;
		} else {
			((uint64_t *)p)[i] = k;
		}
	}
	return 0;
}

/* A generated input for md. */
int tensorgen_make(const struct acc_tensor_metadata *md, int64_t batch, int value, uint64_t *rng,
		   struct acc_tensor *t, char **err)
{
	int64_t *dims = xcalloc(TENSORGEN_MAX_DIMS, sizeof(int64_t));
	size_t nd;
	int rc = tensorgen_shape(md, batch, dims, &nd, err);
	size_t es = acc_datatype_size(md->datatype);
	if (rc == 0 && !es)
		rc = acc_err(err, -EINVAL, "input %s: datatype %s cannot be generated", md->name,
			     md->datatype);
	int64_t n = rc == 0 ? tensorgen_numel(dims, nd) : -1;
	if (rc == 0 && (n < 0 || (uint64_t)n > SIZE_MAX / es))
		rc = acc_err(err, -EINVAL, "input %s: shape too large", md->name);
	if (rc < 0) {
		free(dims);
		return rc;
	}
	void *data = xmalloc((size_t)n * es);
	tensorgen_fill(md->datatype, data, (size_t)n, value, rng);
	t->name = md->name;
	t->datatype = md->datatype;
	t->ndims = nd;
	t->shape = dims;
	t->data = data;
	t->bytes = (size_t)n * es;
	return 0;
}
