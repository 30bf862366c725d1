/* winograd.h - 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) on nChw8c
 * data (engine.h's ENG_LAYOUT_NCHW8C): each 4x4 output tile comes from a 6x6 input tile, and
 * the 9 x C x M multiply-adds per output pixel become 36 / 16 x C x M element-wise products of
 * transformed tiles and transformed weights, done as 36 GEMMs (tiles x C by C x M) with the
 * engine's packed kernels: 2.25x fewer multiplications, plus the two tile transforms.
 *
 * Weights are transformed and packed once (4x the original size); the caller keeps the
 * original weights for its other paths. */
#ifndef ACC_ENGINE_KWINO_H
#define ACC_ENGINE_KWINO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tpool;
struct kepi;

/* A Conv this path can run: 3x3, stride 1, dilation 1, group 1; pads per side. */
struct kwino_desc {
	int64_t C, M; /* input / output channels, multiples of 8 */
	int64_t pt, pl, pb, pr; /* pads: top, left, bottom, right (0..2) */
};

/* Per-node state: transformed, packed weights and the bias. Opaque. */
struct kwino;

/* Whether the path should run d on H x W inputs with epilogue e (bias, Relu/Clip/LeakyRelu or
 * none): channels, pads and activation supported, the layer wide enough that the transforms
 * pay (measured rule in winograd.c), and not turned off by ACCELD_ENGINE_WINOGRAD=0. */
bool kwino_wanted(const struct kwino_desc *d, int64_t H, int64_t W, const struct kepi *e);
/* Scratch bytes kwino_run needs for N images of H x W. */
size_t kwino_scratch(const struct kwino_desc *d, int64_t N, int64_t H, int64_t W);
/* Transform and pack w (M x C x 3 x 3) and copy b (M floats, may be NULL) and e's activation.
 * Caller frees with kwino_free. */
struct kwino *kwino_new(const struct kwino_desc *d, const float *w, const float *b, const struct kepi *e);
/* Free the state (NULL is fine). */
void kwino_free(void *k);
/* y = act(conv(x) + b [+ y when sum]) for N images of H x W, x and y in nChw8c; scratch holds
 * kwino_scratch bytes (64-aligned). -ENOTSUP when the packed weights no longer suit the GEMM
 * kernels (the caller then uses another path). Thread-safe. */
int kwino_run(struct kwino *k, int64_t N, int64_t H, int64_t W, const float *x, float *y, bool sum, void *scratch,
	      struct tpool *pool);

#endif
