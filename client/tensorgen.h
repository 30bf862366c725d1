/* tensorgen.h - input tensors made from model metadata, for accelctl and loadgen.
 *
 * Not part of the installed library: a helper compiled into the two programs.
 */
#ifndef ACC_CLIENT_TENSORGEN_H
#define ACC_CLIENT_TENSORGEN_H

#include <stddef.h>
#include <stdint.h>

#include "acceld/client.h"

#define TENSORGEN_MAX_DIMS 16

/* Resolve md's shape for a generated input: a variable first dimension becomes batch, any
 * other variable dimension is an error. dims has room for TENSORGEN_MAX_DIMS. 0 or -EINVAL
 * with *err (caller frees). */
int tensorgen_shape(const struct acc_tensor_metadata *md, int64_t batch, int64_t *dims,
		    size_t *ndims, char **err);
/* Number of elements of a fully known shape; -1 if a dim is negative or it overflows. */
int64_t tensorgen_numel(const int64_t *dims, size_t ndims);
/* Fill n elements of datatype at p: value 0 or 1, or (value < 0) random numbers from *rng
 * (floats in [0, 1), integers in 0..9, booleans 0/1). -EINVAL for datatypes it cannot make. */
int tensorgen_fill(const char *datatype, void *p, size_t n, int value, uint64_t *rng);
/* A freshly allocated random input for md (shape resolved as tensorgen_shape does): fills t,
 * whose shape and data the caller frees; t->name and t->datatype borrow md's strings. */
int tensorgen_make(const struct acc_tensor_metadata *md, int64_t batch, int value, uint64_t *rng,
		   struct acc_tensor *t, char **err);

#endif
