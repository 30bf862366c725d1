/* broadcast.h - walk the numpy-style broadcast of up to 3 inputs onto an output shape as a
 * sequence of inner runs in which each input advances by 0 or 1 element per output element. */
#ifndef ACC_ENGINE_BROADCAST_H
#define ACC_ENGINE_BROADCAST_H

#include <stdint.h>

#include "engine.h"

struct tpool;

#define BCAST_MAX_IN 3

struct bcast {
	int k; /* inputs */
	int nd; /* coalesced dims */
	int64_t dims[TENSOR_MAX_DIMS];
	int64_t strides[BCAST_MAX_IN][TENSOR_MAX_DIMS]; /* in elements; 0 where broadcast */
	int64_t inner; /* elements per run (dims[nd-1]) */
	int64_t runs; /* number of runs */
	int64_t total;
};

/* One inner run: n output elements from out_off; input i starts at off[i], advancing inc[i]
 * (0 or 1) per element. */
typedef void (*bcast_fn)(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t out_off);

/* Describe broadcasting k input shapes onto out's shape (which must be their broadcast). */
void bcast_init(struct bcast *b, int k, const struct eng_tensor *const *in, const struct eng_tensor *out);
/* Call fn for every run, split over pool when large. */
void bcast_run(const struct bcast *b, bcast_fn fn, void *arg, struct tpool *pool);
/* y = a + b (fp32) broadcast onto out's shape; y holds eng_numel(out) floats (out's data is not
 * used) and may be neither input unless that input already has out's shape. */
void bcast_add_f32(const struct eng_tensor *a, const float *ad, const struct eng_tensor *b, const float *bd,
		   const struct eng_tensor *out, float *y, struct tpool *pool);

#endif
