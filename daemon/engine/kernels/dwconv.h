/* dwconv.h - depthwise 2-D convolution (group == input channels == output channels), NCHW,
 * with the fused bias + activation epilogue; vectorised along output rows, threads over planes. */
#ifndef ACC_ENGINE_KDWCONV_H
#define ACC_ENGINE_KDWCONV_H

#include <stdint.h>

struct tpool;
struct kepi;

/* Geometry of a depthwise convolution. */
struct kdw_geom {
	int64_t n, c; /* images, channels */
	int64_t ih, iw, oh, ow; /* input and output plane sizes */
	int64_t kh, kw, sh, sw, dh, dw, ph, pw; /* kernel, stride, dilation, leading pad */
};

/* y[n][c] = epi(conv(x[n][c], w[c])) for every plane; w is [c][kh][kw]; epi's bias is per
 * channel (bias_per_row). */
void kdwconv(const struct kdw_geom *g, const float *x, const float *w, float *y, const struct kepi *epi,
	     struct tpool *pool);

#endif
