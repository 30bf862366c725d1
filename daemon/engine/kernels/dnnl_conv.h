/* dnnl_conv.h - 2-D convolutions (dense and depthwise) through oneDNN's JIT primitives, driven
 * by the exec's own thread pool: each pool task runs a single-threaded oneDNN primitive on one
 * image and one slice of output channels (or, for a one-slice layer at small batch, one half of
 * its input channels, the halves summed after). NCHW input or output is reordered per slice while it
 * is in cache; data the plan keeps in nChw8c (KDNN_X_BLOCKED / KDNN_Y_BLOCKED) is used as is.
 * Only built with HAVE_DNNL; ops/conv.c falls back to its own kernels whenever
 * kdnn_conv_wanted says no or kdnn_conv_run returns -ENOTSUP (never for blocked data). */
#ifndef ACC_ENGINE_KDNN_CONV_H
#define ACC_ENGINE_KDNN_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpool;
struct kepi;

/* Geometry of one Conv node (2-D, NCHW) independent of the batch and input size. */
struct kdnn_conv_desc {
	int64_t C, M, G; /* input channels, output channels, groups */
	int64_t kh, kw, sh, sw, dh, dw; /* kernel, stride, dilation (1 = none) */
	int64_t pt, pl, pb, pr; /* pads: top, left, bottom, right */
	int64_t sum; /* 1: y holds a residual on entry, added before the activation (dense only) */
};

/* Per-node state: primitives per input size, weights reordered once. Opaque. */
struct kdnn_conv;

/* Set up the calling thread's oneDNN stream (and one OpenMP thread) now rather than at its first
 * convolution, so that later runs allocate nothing for it. */
void kdnn_thread_setup(void);
/* Whether oneDNN should run this convolution on NCHW data (the rule measured in dnnl_conv.c),
 * given the fused epilogue (its activation must map to a oneDNN post-op). */
bool kdnn_conv_wanted(const struct kdnn_conv_desc *d, const struct kepi *e);
/* Whether oneDNN could run it at all (2-D, dense or depthwise, activation with a post-op): the
 * precondition for keeping its input or output in nChw8c order. */
bool kdnn_conv_possible(const struct kdnn_conv_desc *d, const struct kepi *e);
/* Plan scratch bytes kdnn_conv_run needs for N images of H x W. */
size_t kdnn_conv_scratch(const struct kdnn_conv_desc *d, int64_t N, int64_t H, int64_t W);
/* New state for a node (nothing is created until the first run). Caller frees with
 * kdnn_conv_free. */
struct kdnn_conv *kdnn_conv_new(const struct kdnn_conv_desc *d, const struct kepi *e);
/* Free the state (NULL is fine). */
void kdnn_conv_free(void *c);
/* Layout flags of kdnn_conv_run: x and/or y are in nChw8c order (engine.h) instead of NCHW. */
enum { KDNN_X_BLOCKED = 1, KDNN_Y_BLOCKED = 2 };

/* Whether the convolution can run on H x W inputs with these layout flags (creating its
 * primitives now; w and b as for kdnn_conv_run). False when oneDNN cannot, or the blocked side
 * has channels that are not a multiple of 8. A convolution with sum needs KDNN_Y_BLOCKED. */
bool kdnn_conv_can(struct kdnn_conv *c, const float *w, const float *b, int64_t H, int64_t W, unsigned flags);
/* y = act(conv(x, w) + b [+ y when d->sum]) for N images of H x W (output OH x OW), NCHW in and
 * out unless flags say blocked. w (oihw) and b (M floats, may be NULL) must be the node's constants: they are
 * reordered/copied at the first run and never read again. scratch holds kdnn_conv_scratch
 * bytes. Returns 0, or -ENOTSUP when oneDNN cannot do it (the caller then runs its own kernels;
 * never for flags that kdnn_conv_can accepted). Thread-safe. */
int kdnn_conv_run(struct kdnn_conv *c, const float *w, const float *b, int64_t N, int64_t H, int64_t W,
		  int64_t OH, int64_t OW, const float *x, float *y, void *scratch, unsigned flags,
		  struct tpool *pool);

#endif
