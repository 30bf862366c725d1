/* dnnl_conv.h - 2-D convolutions (dense and depthwise) through oneDNN's JIT primitives, driven
 * by the exec's own thread pool: each pool task runs a single-threaded oneDNN primitive on one
 * image and one slice of output channels, with the NCHW <-> blocked reorders done per slice
 * while it is in cache. Only built with HAVE_DNNL; ops/conv.c falls back to its own kernels
 * whenever kdnn_conv_wanted says no or kdnn_conv_run returns -ENOTSUP. */
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
};

/* Per-node state: primitives per input size, weights reordered once. Opaque. */
struct kdnn_conv;

/* Whether oneDNN should run this convolution (the rule measured in dnnl_conv.c), given the
 * fused epilogue (its activation must map to a oneDNN post-op). */
bool kdnn_conv_wanted(const struct kdnn_conv_desc *d, const struct kepi *e);
/* Plan scratch bytes kdnn_conv_run needs for N images of H x W. */
size_t kdnn_conv_scratch(const struct kdnn_conv_desc *d, int64_t N, int64_t H, int64_t W);
/* New state for a node (nothing is created until the first run). Caller frees with
 * kdnn_conv_free. */
struct kdnn_conv *kdnn_conv_new(const struct kdnn_conv_desc *d, const struct kepi *e);
/* Free the state (NULL is fine). */
void kdnn_conv_free(void *c);
/* y = act(conv(x, w) + b) for N images of H x W (output OH x OW), NCHW in and out. w (oihw) and b
 * (M floats, may be NULL) must be the node's constants: they are reordered/copied at the first
 * run and never read again. scratch holds kdnn_conv_scratch bytes. Returns 0, or -ENOTSUP when
 * oneDNN cannot do it (the caller then runs its own kernels). Thread-safe. */
int kdnn_conv_run(struct kdnn_conv *c, const float *w, const float *b, int64_t N, int64_t H, int64_t W,
		  int64_t OH, int64_t OW, const float *x, float *y, void *scratch, struct tpool *pool);

#endif
