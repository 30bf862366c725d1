/* resize.c - Resize (opsets 10-latest) and Upsample (7-9) for fp32: nearest (four rounding
 * modes), linear and cubic interpolation, with or without antialiasing, every
 * coordinate_transformation_mode (half_pixel, half_pixel_symmetric, pytorch_half_pixel,
 * align_corners, asymmetric, tf_half_pixel_for_nn, tf_crop_and_resize), exclude_outside, axes and
 * keep_aspect_ratio_policy.
 *
 * Interpolation is separable: per output axis, each output index gets a few (input index, weight)
 * taps; an output element is the sum over the product of its axes' taps. Taps outside the input
 * are clamped to the edge, as the specification's reference does.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "threadpool.h"
#include "util.h"

enum rs_mode { RS_NEAREST, RS_LINEAR, RS_CUBIC };
enum rs_coord { RC_HALF_PIXEL, RC_HALF_PIXEL_SYM, RC_PYTORCH, RC_ALIGN, RC_ASYM, RC_TF_NN, RC_CROP };
enum rs_round { RN_PREFER_FLOOR, RN_PREFER_CEIL, RN_FLOOR, RN_CEIL, RN_SIMPLE };
enum rs_keep { RK_STRETCH, RK_NOT_LARGER, RK_NOT_SMALLER };

struct rs_params {
	enum rs_mode mode;
	enum rs_coord coord;
	enum rs_round round;
	enum rs_keep keep;
	bool antialias, exclude_outside, upsample;
	float cubic_a, extrapolation;
	int in_roi, in_scales, in_sizes; /* input slots, -1 when the version has none */
	int n_axes;
	int64_t axes[TENSOR_MAX_DIMS];
};

/* Index of s in names (n entries), or -1. */
static int pick(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static int rs_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool up = !strcmp(n->op_type, "Upsample");
	int lo = 1, hi = 4;
	if (up)
		lo = hi = n->opset >= 9 ? 2 : 1;
	else if (n->opset < 11)
		lo = hi = 2;
	int rc = eng_check_arity(n, lo, hi, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	struct rs_params *p = xcalloc(1, sizeof(*p));
	n->params = p;
	p->upsample = up;
	p->in_roi = p->in_scales = p->in_sizes = -1;
	if (up || n->opset < 11) {
		p->in_scales = lo == 2 ? 1 : -1;
		p->coord = RC_ASYM;
		p->round = RN_SIMPLE;
	} else {
		p->in_roi = 1;
		p->in_scales = 2;
		p->in_sizes = 3;
	}
	if (p->in_roi >= 0 && p->in_roi < n->n_in && n->in[p->in_roi] >= 0 &&
	    (rc = eng_check_type(g, n, p->in_roi, DTB(DT_FP32), err)))
		return rc;
	if (p->in_scales >= 0 && p->in_scales < n->n_in && n->in[p->in_scales] >= 0 &&
	    (rc = eng_check_type(g, n, p->in_scales, DTB(DT_FP32), err)))
		return rc;
	if (p->in_sizes >= 0 && p->in_sizes < n->n_in && n->in[p->in_sizes] >= 0 &&
	    (rc = eng_check_type(g, n, p->in_sizes, DTB(DT_INT64), err)))
		return rc;

	static const char *const modes[] = { "nearest", "linear", "cubic" };
	const char *m = eg_attr_str(n, "mode", "nearest");
	int v = pick(m, modes, up || n->opset < 11 ? 2 : 3);
	if (v < 0 && (up || n->opset < 11) && !strcmp(m, "bilinear"))
		v = RS_LINEAR;
	if (v < 0)
		return eng_node_err(err, -EINVAL, n, "mode '%s' is unknown", m);
	p->mode = (enum rs_mode)v;
	if (!up && n->opset >= 11) {
		static const char *const coords[] = { "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
						      "align_corners", "asymmetric", "tf_half_pixel_for_nn",
						      "tf_crop_and_resize" };
		const char *c = eg_attr_str(n, "coordinate_transformation_mode", "half_pixel");
		v = pick(c, coords, 7);
		if (v < 0 || (v == RC_HALF_PIXEL_SYM && n->opset < 19) || (v == RC_TF_NN && n->opset >= 13))
			return eng_node_err(err, -EINVAL, n, "coordinate_transformation_mode '%s' is unknown", c);
		p->coord = (enum rs_coord)v;
		static const char *const rounds[] = { "round_prefer_floor", "round_prefer_ceil", "floor", "ceil" };
		const char *r = eg_attr_str(n, "nearest_mode", "round_prefer_floor");
		if ((v = pick(r, rounds, 4)) < 0)
			return eng_node_err(err, -EINVAL, n, "nearest_mode '%s' is unknown", r);
		p->round = (enum rs_round)v;
		p->cubic_a = eg_attr_float(n, "cubic_coeff_a", -0.75f);
		p->exclude_outside = eg_attr_int(n, "exclude_outside", 0) != 0;
		p->extrapolation = eg_attr_float(n, "extrapolation_value", 0.0f);
		p->antialias = eg_attr_int(n, "antialias", 0) != 0;
		if (p->antialias && p->mode == RS_NEAREST)
			return eng_node_err(err, -EINVAL, n, "antialias needs mode linear or cubic");
		static const char *const keeps[] = { "stretch", "not_larger", "not_smaller" };
		const char *k = eg_attr_str(n, "keep_aspect_ratio_policy", "stretch");
		if ((v = pick(k, keeps, 3)) < 0)
			return eng_node_err(err, -EINVAL, n, "keep_aspect_ratio_policy '%s' is unknown", k);
		p->keep = (enum rs_keep)v;
		size_t na;
		const int64_t *ax = eg_attr_ints(n, "axes", &na);
		if (ax) {
			if (na > TENSOR_MAX_DIMS)
				return eng_node_err(err, -EINVAL, n, "too many axes");
			p->n_axes = (int)na;
			memcpy(p->axes, ax, na * sizeof(int64_t));
		} else {
			p->n_axes = -1;
		}
	} else {
		p->n_axes = -1;
	}
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	return 0;
}

/* Present, non-empty input slot i (or NULL). */
static const struct eng_tensor *opt_in(const struct eg_node *n, struct eng_tensor *const *in, int i)
{
	if (i < 0 || i >= n->n_in || !in[i] || eng_numel(in[i]) == 0)
		return NULL;
	return in[i];
}

/* Per-dim scale factors and output sizes of x, and the axes resized (ax[d] true). */
static int rs_geom(const struct eg_node *n, struct eng_tensor *const *in, double *scale, int64_t *osz,
		   bool *ax, char **err)
{
	const struct rs_params *p = n->params;
	int r = in[0]->ndims;
	int axes[TENSOR_MAX_DIMS], na = r;
	for (int d = 0; d < r; d++) {
		axes[d] = d;
		ax[d] = false;
	}
	if (p->n_axes >= 0) {
		na = p->n_axes;
		for (int i = 0; i < na; i++) {
			axes[i] = eng_axis(p->axes[i], r);
			if (axes[i] < 0 || ax[axes[i]])
				return eng_node_err(err, -EINVAL, n, "axes out of range or repeated");
			ax[axes[i]] = true;
		}
	} else {
		for (int d = 0; d < r; d++)
			ax[d] = true;
	}
	for (int d = 0; d < r; d++) {
		scale[d] = 1.0;
		osz[d] = in[0]->dims[d];
	}
	const struct eng_tensor *sc = opt_in(n, in, p->in_scales), *sz = opt_in(n, in, p->in_sizes);
	if (p->upsample && n->opset < 9) {
		size_t cnt;
		const float *f = NULL;
		const struct eg_attr *a = eg_attr_find(n, "scales");
		if (a && a->type == EG_ATTR_FLOATS) {
			f = a->floats;
			cnt = a->n;
		}
		if (!f || (int)cnt != r)
			return eng_node_err(err, -EINVAL, n, "scales must have %d entries", r);
		for (int d = 0; d < r; d++) {
			scale[d] = f[d];
			osz[d] = (int64_t)floor(scale[d] * (double)in[0]->dims[d]);
		}
		return 0;
	}
	if (sc && sz)
		return eng_node_err(err, -EINVAL, n, "only one of scales and sizes may be given");
	if (sz) {
		if (!sz->data)
			return eng_node_err(err, -ENOTSUP, n, "sizes must be known before running");
		if (eng_numel(sz) != na)
			return eng_node_err(err, -EINVAL, n, "sizes has %lld entries for %d axes", (long long)eng_numel(sz), na);
		for (int i = 0; i < na; i++) {
			int64_t s = eng_get_int(sz, i);
			if (s < 0)
				return eng_node_err(err, -EINVAL, n, "negative size");
			osz[axes[i]] = s;
			scale[axes[i]] = in[0]->dims[axes[i]] ? (double)s / (double)in[0]->dims[axes[i]] : 1.0;
		}
		if (p->keep != RK_STRETCH) {
			double s = scale[axes[0]];
			for (int i = 1; i < na; i++)
				if (p->keep == RK_NOT_LARGER ? scale[axes[i]] < s : scale[axes[i]] > s)
					s = scale[axes[i]];
			for (int i = 0; i < na; i++) {
				scale[axes[i]] = s;
				osz[axes[i]] = (int64_t)(s * (double)in[0]->dims[axes[i]] + 0.5);
			}
		}
	} else if (sc) {
		if (!sc->data)
			return eng_node_err(err, -ENOTSUP, n, "scales must be known before running");
		if (eng_numel(sc) != na)
			return eng_node_err(err, -EINVAL, n, "scales has %lld entries for %d axes", (long long)eng_numel(sc), na);
		for (int i = 0; i < na; i++) {
			double s = ((const float *)sc->data)[i];
			if (!(s > 0))
				return eng_node_err(err, -EINVAL, n, "scales must be positive");
			scale[axes[i]] = s;
			osz[axes[i]] = (int64_t)floor(s * (double)in[0]->dims[axes[i]]);
		}
	} else {
		return eng_node_err(err, -EINVAL, n, "one of scales and sizes is required");
	}
	return 0;
}

static int rs_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    size_t *scratch, char **err)
{
	double scale[TENSOR_MAX_DIMS];
	bool ax[TENSOR_MAX_DIMS];
	int rc = rs_geom(n, in, scale, out[0]->dims, ax, err);
	if (rc)
		return rc;
	out[0]->ndims = in[0]->ndims;
	return 0;
}

/* The taps of one axis: for output index x, taps w[x * nt + t] at input index ix[x * nt + t]
 * (the nonzero ones first; nt is the widest count of nonzero taps). out[x] marks a
 * tf_crop_and_resize position outside the input (extrapolated). */
struct rs_axis {
	int nt;
	int64_t *ix;
	double *w;
	bool *outside;
};

/* Nearest-neighbour weights of the two taps around a point at ratio r in (0, 1]. */
static void nearest_w(enum rs_round m, double r, double scale, double *w)
{
	bool right;
	if (r == 1.0)
		right = true;
	else if (m == RN_PREFER_FLOOR)
		right = r > 0.5;
	else if (m == RN_PREFER_CEIL)
		right = r >= 0.5;
	else if (m == RN_FLOOR)
		right = false;
	else if (m == RN_CEIL)
		right = true;
	else
		right = scale < 1.0; /* simple: floor, ceil when downsampling (r < 1 here) */
	w[0] = right ? 0 : 1;
	w[1] = right ? 1 : 0;
}

/* Keys cubic kernel with coefficient a at distance x. */
static double cubic_k(double x, double a)
{
	x = fabs(x);
	if (x <= 1)
		return ((a + 2) * x - (a + 3)) * x * x + 1;
	if (x < 2)
		return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
	return 0;
}

/* Build the taps of axis d (in inputs, out outputs, scale s, roi start/end). */
static void rs_axis_build(const struct rs_params *p, int64_t in, int64_t out, double s, double r0, double r1,
			  struct rs_axis *a)
{
	int nt;
	int start = 0; /* first tap's offset from base */
	double sa = p->antialias && s < 1.0 ? s : 1.0;
	if (p->mode == RS_NEAREST) {
		nt = 2;
	} else if (p->mode == RS_LINEAR) {
		start = p->antialias ? (int)floor(-1.0 / sa) + 1 : 0;
		nt = 2 - 2 * start;
	} else {
		start = p->antialias ? (int)floor(-2.0 / sa) + 1 : -1;
		nt = 2 - 2 * start;
	}
	a->ix = xcalloc((size_t)(out ? out : 1) * nt, sizeof(int64_t));
	a->w = xcalloc((size_t)(out ? out : 1) * nt, sizeof(double));
	a->outside = xcalloc((size_t)(out ? out : 1), sizeof(bool));
	double ow = s * (double)in; /* the output length as the scale implies, not rounded */
	double *wt = xcalloc((size_t)nt, sizeof(double));
	int64_t *it = xcalloc((size_t)nt, sizeof(int64_t));
	int widest = 1;
	for (int64_t x = 0; x < out; x++) {
		double xo;
		switch (p->coord) {
		case RC_ALIGN: xo = ow == 1 ? 0 : (double)x * (double)(in - 1) / (ow - 1); break;
		case RC_ASYM: xo = (double)x / s; break;
		case RC_TF_NN: xo = ((double)x + 0.5) / s; break;
		case RC_PYTORCH: xo = ow == 1 ? -0.5 : ((double)x + 0.5) / s - 0.5; break;
		case RC_HALF_PIXEL_SYM: {
			double adj = (double)out / ow, center = (double)in / 2;
			xo = center * (1 - adj) + ((double)x + 0.5) / s - 0.5;
			break;
		}
		case RC_CROP:
			xo = ow == 1 ? (r1 - r0) * (double)(in - 1) / 2 : (double)x * (r1 - r0) * (double)(in - 1) / (ow - 1);
			xo += r0 * (double)(in - 1);
			if (xo < 0 || xo > (double)(in - 1))
				a->outside[x] = true;
			break;
		default: xo = ((double)x + 0.5) / s - 0.5; break;
		}
		/* base + ratio with ratio in (0, 1]: an integer point sits at ratio 1. */
		double fl = floor(xo);
		double ratio = xo - fl;
		int64_t base = (int64_t)fl;
		if (ratio == 0) {
			ratio = 1;
			base -= 1;
		}
		if (p->mode == RS_NEAREST) {
			nearest_w(p->round, ratio, s, wt);
		} else if (p->mode == RS_LINEAR && !p->antialias) {
			wt[0] = 1 - ratio;
			wt[1] = ratio;
		} else {
			double sum = 0;
			for (int t = 0; t < nt; t++) {
				double dx = ((double)(start + t) - ratio) * sa;
				wt[t] = p->mode == RS_LINEAR ? fmax(0, 1 - fabs(dx)) : cubic_k(dx, p->cubic_a);
				sum += wt[t];
			}
			if (p->antialias)
				for (int t = 0; t < nt; t++)
					wt[t] /= sum;
		}
		for (int t = 0; t < nt; t++)
			it[t] = base + start + t;
		if (p->exclude_outside) {
			double sum = 0;
			for (int t = 0; t < nt; t++) {
				if (it[t] < 0 || it[t] >= in)
					wt[t] = 0;
				sum += wt[t];
			}
			for (int t = 0; t < nt && sum != 0; t++)
				wt[t] /= sum;
		}
		/* Clamp to the edge and move the nonzero taps first. */
		int k = 0;
		for (int t = 0; t < nt; t++) {
			if (wt[t] == 0)
				continue;
			int64_t i = it[t] < 0 ? 0 : it[t] >= in ? in - 1 : it[t];
			a->ix[x * nt + k] = i;
			a->w[x * nt + k] = wt[t];
			k++;
		}
		if (k > widest)
			widest = k;
	}
	free(wt);
	free(it);
	a->nt = nt;
	/* Keep only the widest count of nonzero taps per position. */
	if (widest < nt) {
		for (int64_t x = 0; x < out; x++)
			for (int t = 0; t < widest; t++) {
				a->ix[x * widest + t] = a->ix[x * nt + t];
				a->w[x * widest + t] = a->w[x * nt + t];
			}
		a->nt = widest;
	}
}

struct rs_job {
	int r;
	const struct rs_axis *ax;
	const int64_t *idims, *odims;
	int64_t istride[TENSOR_MAX_DIMS];
	const float *x;
	float *y;
	float extrapolation;
};

/* Output rows [r0, r1) (a row is one position of all dims but the last). */
static void rs_part(void *arg, int64_t r0, int64_t r1)
{
	const struct rs_job *j = arg;
	int r = j->r;
	int64_t ol = j->odims[r - 1];
	const struct rs_axis *last = &j->ax[r - 1];
	for (int64_t row = r0; row < r1; row++) {
		int64_t pos[TENSOR_MAX_DIMS], rem = row;
		bool outside = false;
		for (int d = r - 2; d >= 0; d--) {
			pos[d] = rem % j->odims[d];
			rem /= j->odims[d];
			outside |= j->ax[d].outside[pos[d]];
		}
		float *y = j->y + row * ol;
		if (outside) {
			for (int64_t q = 0; q < ol; q++)
				y[q] = j->extrapolation;
			continue;
		}
		/* Enumerate the tap combinations of the outer dims: offset and weight of each. */
		int64_t tap[TENSOR_MAX_DIMS] = { 0 };
		for (int64_t q = 0; q < ol; q++)
			y[q] = 0;
		for (;;) {
			double w = 1;
			int64_t off = 0;
			for (int d = 0; d < r - 1; d++) {
				const struct rs_axis *a = &j->ax[d];
				w *= a->w[pos[d] * a->nt + tap[d]];
				off += a->ix[pos[d] * a->nt + tap[d]] * j->istride[d];
			}
			if (w != 0) {
				const float *x = j->x + off;
				for (int64_t q = 0; q < ol; q++) {
					double acc = 0;
					for (int t = 0; t < last->nt; t++)
						acc += last->w[q * last->nt + t] * x[last->ix[q * last->nt + t]];
					y[q] += (float)(w * acc);
				}
			}
			int d = r - 2;
			for (; d >= 0; d--) {
				if (++tap[d] < j->ax[d].nt)
					break;
				tap[d] = 0;
			}
			if (d < 0)
				break;
		}
		for (int64_t q = 0; q < ol; q++)
			if (last->outside[q])
				y[q] = j->extrapolation;
	}
}

static int rs_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		  void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct rs_params *p = n->params;
	double scale[TENSOR_MAX_DIMS];
	int64_t osz[TENSOR_MAX_DIMS];
	bool axm[TENSOR_MAX_DIMS];
	int rc = rs_geom(n, in, scale, osz, axm, err);
	if (rc)
		return rc;
	int r = in[0]->ndims;
	if (r == 0) {
		memcpy(out[0]->data, in[0]->data, out[0]->bytes);
		return 0;
	}
	if (!out[0]->bytes)
		return 0;
	for (int d = 0; d < r; d++)
		if (in[0]->dims[d] == 0)
			return eng_node_err(err, -EINVAL, n, "cannot resize an empty input to a non-empty output");
	/* roi: starts then ends, over the resized axes (all dims without the axes attribute). */
	double r0[TENSOR_MAX_DIMS], r1[TENSOR_MAX_DIMS];
	for (int d = 0; d < r; d++) {
		r0[d] = 0;
		r1[d] = 1;
	}
	const struct eng_tensor *roi = opt_in(n, in, p->in_roi);
	if (p->coord == RC_CROP && roi) {
		int na = 0, axes[TENSOR_MAX_DIMS];
		if (p->n_axes >= 0)
			for (int i = 0; i < p->n_axes; i++)
				axes[na++] = eng_axis(p->axes[i], r);
		else
			for (int d = 0; d < r; d++)
				axes[na++] = d;
		if (eng_numel(roi) != 2 * na)
			return eng_node_err(err, -EINVAL, n, "roi has %lld entries for %d axes", (long long)eng_numel(roi), na);
		const float *rv = roi->data;
		for (int i = 0; i < na; i++) {
			r0[axes[i]] = rv[i];
			r1[axes[i]] = rv[na + i];
		}
	}
	struct rs_axis ax[TENSOR_MAX_DIMS];
	struct rs_job j = { .r = r, .ax = ax, .idims = in[0]->dims, .odims = out[0]->dims, .x = in[0]->data,
			    .y = out[0]->data, .extrapolation = p->extrapolation };
	int64_t st = 1;
	for (int d = r - 1; d >= 0; d--) {
		j.istride[d] = st;
		st *= in[0]->dims[d];
	}
	for (int d = 0; d < r; d++) {
		if (axm[d]) {
			rs_axis_build(p, in[0]->dims[d], out[0]->dims[d], scale[d], r0[d], r1[d], &ax[d]);
		} else {
			/* Not resized: the identity. */
			int64_t len = out[0]->dims[d];
			ax[d].nt = 1;
			ax[d].ix = xcalloc((size_t)len, sizeof(int64_t));
			ax[d].w = xcalloc((size_t)len, sizeof(double));
			ax[d].outside = xcalloc((size_t)len, sizeof(bool));
			for (int64_t i = 0; i < len; i++) {
				ax[d].ix[i] = i;
				ax[d].w[i] = 1;
			}
		}
	}
	int64_t ol = out[0]->dims[r - 1];
	tpool_for(ctx->pool, eng_numel(out[0]) / ol, 1 + 4096 / (ol + 1), rs_part, &j);
	for (int d = 0; d < r; d++) {
		free(ax[d].ix);
		free(ax[d].w);
		free(ax[d].outside);
	}
	return 0;
}

#define RS_ATTRS11 "coordinate_transformation_mode cubic_coeff_a exclude_outside extrapolation_value mode nearest_mode"

const struct eng_op eng_ops_resize[] = {
	{ "Upsample", 7, 8, DTM_FLOAT, "mode scales", 0, rs_prepare, rs_infer, rs_run, 0 },
	{ "Upsample", 9, 9, DTM_FLOAT, "mode", 0, rs_prepare, rs_infer, rs_run, 1u << 1 },
	{ "Resize", 10, 10, DTM_FLOAT, "mode", 0, rs_prepare, rs_infer, rs_run, 1u << 1 },
	{ "Resize", 11, 17, DTM_FLOAT, RS_ATTRS11, 0, rs_prepare, rs_infer, rs_run, (1u << 2) | (1u << 3) },
	{ "Resize", 18, ENG_OPSET_LATEST, DTM_FLOAT, RS_ATTRS11 " antialias axes keep_aspect_ratio_policy", 0,
	  rs_prepare, rs_infer, rs_run, (1u << 2) | (1u << 3) },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
