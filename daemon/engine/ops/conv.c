/* conv.c - Conv (1-D to N-D, groups, dilations, auto_pad) and the window geometry shared with
 * the pools.
 *
 * Kernels, by shape (NCHW throughout):
 * - with oneDNN (HAVE_DNNL), 2-D depthwise and dense non-1x1 (or strided / padded 1x1) convolutions
 *   with constant weights: kernels/dnnl_conv.c (the rule and its measurements are there);
 *   anything it declines runs the paths below;
 * - depthwise 2-D (group == channels == outputs): kernels/dwconv.c, vectorised along rows;
 * - 1x1, stride 1, no pad: Y[n] = W * X[n] directly as a GEMM (no im2col);
 * - otherwise im2col of one image and group into the step's scratch, then the GEMM.
 * Constant weights are packed for the GEMM once, at the first run, into memory reserved in the
 * node's params at load time (the packed layout depends on the CPU's kernel family). Bias and
 * the fused activation (`_act...`, set by the graph optimiser) run in the GEMM's epilogue. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/act.h"
#include "kernels/broadcast.h"
#ifdef HAVE_DNNL
#include "kernels/dnnl_conv.h"
#endif
#include "kernels/dwconv.h"
#include "kernels/gemm.h"
#include "kernels/winograd.h"
#include "ops/ops.h"
#include "threadpool.h"

int eng_win_geom(const struct eg_node *n, int k, const int64_t *in, const int64_t *kern, bool ceil_mode,
		 struct eng_win *w, char **err)
{
	size_t cs, cd, cp;
	const int64_t *st = eg_attr_ints(n, "strides", &cs), *dl = eg_attr_ints(n, "dilations", &cd);
	const int64_t *pd = eg_attr_ints(n, "pads", &cp);
	const char *ap = eg_attr_str(n, "auto_pad", "NOTSET");
	if ((st && (int)cs != k) || (dl && (int)cd != k) || (pd && (int)cp != 2 * k))
		return eng_node_err(err, -EINVAL, n, "strides/dilations/pads do not match %d spatial dims", k);
	w->k = k;
	for (int i = 0; i < k; i++) {
		w->in[i] = in[i];
		w->kern[i] = kern[i];
		w->stride[i] = st ? st[i] : 1;
		w->dil[i] = dl ? dl[i] : 1;
		w->pb[i] = pd ? pd[i] : 0;
		w->pe[i] = pd ? pd[i + k] : 0;
		if (w->stride[i] < 1 || w->dil[i] < 1 || w->kern[i] < 1 || w->pb[i] < 0 || w->pe[i] < 0)
			return eng_node_err(err, -EINVAL, n, "bad stride, dilation, kernel or pad");
		int64_t ek = (w->kern[i] - 1) * w->dil[i] + 1;
		if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
			int64_t o = (in[i] + w->stride[i] - 1) / w->stride[i];
			int64_t tot = (o - 1) * w->stride[i] + ek - in[i];
			if (tot < 0)
				tot = 0;
			bool upper = !strcmp(ap, "SAME_UPPER");
			w->pb[i] = upper ? tot / 2 : tot - tot / 2;
			w->pe[i] = tot - w->pb[i];
			w->out[i] = o;
			continue;
		}
		if (!strcmp(ap, "VALID")) {
			w->pb[i] = w->pe[i] = 0;
		} else if (strcmp(ap, "NOTSET")) {
			return eng_node_err(err, -EINVAL, n, "auto_pad '%s' is unknown", ap);
		}
		int64_t span = in[i] + w->pb[i] + w->pe[i] - ek;
		if (span < 0)
			return eng_node_err(err, -EINVAL, n, "kernel larger than the padded input");
		int64_t o = (ceil_mode ? (span + w->stride[i] - 1) / w->stride[i] : span / w->stride[i]) + 1;
		/* The last window must start inside the input or its left padding. */
		if (ceil_mode && (o - 1) * w->stride[i] >= in[i] + w->pb[i])
			o--;
		w->out[i] = o;
	}
	return 0;
}

/* Per-node state: room for the packed weights, filled at the first run. One allocation (the
 * graph frees params with free()); the mutex holds no resources. */
struct conv_params {
	const struct eg_graph *g;
	pthread_mutex_t mu;
	const void *_Atomic src; /* W data the packed copy was made from; NULL until packed */
	int64_t G, Mg, K; /* shape the room was reserved for */
	size_t gbytes; /* room per group */
	struct kgemm_packed *pk; /* G entries, inside this block */
	float *room; /* G * gbytes, 64-byte aligned, inside this block */
#ifdef HAVE_DNNL
	struct kdnn_conv *_Atomic dn; /* oneDNN state, made at the first run that wants it */
	struct kdnn_conv_desc dnd; /* the geometry dn was made for */
#endif
	struct kwino *_Atomic wn; /* Winograd state (blocked 3x3 layers), made at the first such run */
	struct kwino_desc wnd; /* the geometry wn was made for */
};

/* Free a node's params and the oneDNN state they may hold. */
static void conv_free_params(void *params)
{
	struct conv_params *p = params;
#ifdef HAVE_DNNL
	if (p)
		kdnn_conv_free(p->dn);
#endif
	if (p)
		kwino_free(p->wn);
	free(p);
}

static int conv_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool sum = eg_attr_int(n, "_sum", 0) != 0;
	int rc = eng_prepare_fused(g, n, 2, sum ? 4 : 3, err);
	if (rc)
		return rc;
	if (sum && (n->n_in != 4 || n->in[3] < 0 || eg_attr_int(n, "group", 1) != 1))
		return eng_node_err(err, -EINVAL, n, "_sum needs a residual fourth input and group 1");
	/* Constant weights (not depthwise): reserve room to pack them. */
	const struct eg_value *w = &g->values[n->in[1]];
	int64_t G = eg_attr_int(n, "group", 1);
	if (w->konst && w->konst->dtype == DT_FP32 && w->konst->ndims >= 3 && G >= 1 && w->konst->dims[0] % G == 0) {
		int64_t M = w->konst->dims[0], K = shape_numel(w->konst->dims + 1, w->konst->ndims - 1);
		int64_t Mg = M / G;
		bool dw = Mg == 1 && w->konst->dims[1] == 1 && G > 1;
#ifdef HAVE_DNNL
		if (dw && K > 0) /* room for nothing: params hold the oneDNN state only */
			G = 1, Mg = K = 0;
		if (K > 0 || dw) {
#else
		if (!dw && K > 0) {
#endif
			size_t gb = (kgemm_pack_a_bytes(Mg, K) + 63) & ~(size_t)63;
			size_t head = (sizeof(struct conv_params) + G * sizeof(struct kgemm_packed) + 63) & ~(size_t)63;
			struct conv_params *p = aligned_alloc(64, head + G * gb);
			if (!p)
				return eng_node_err(err, -ENOMEM, n, "no memory for packed weights");
			memset(p, 0, head);
			p->g = g;
			pthread_mutex_init(&p->mu, NULL);
			p->G = G;
			p->Mg = Mg;
			p->K = K;
			p->gbytes = gb;
			p->pk = (struct kgemm_packed *)(p + 1);
			p->room = (float *)((char *)p + head);
			n->params = p;
			n->params_free = conv_free_params;
		}
	}
	return 0;
}

/* The packed weights for W (packing them on first use), or NULL when W is not the constant the
 * room was reserved for. */
static const struct kgemm_packed *conv_packed(const struct eg_node *n, const struct eng_tensor *W, int64_t G,
					      int64_t Mg, int64_t K)
{
	struct conv_params *p = n->params;
	if (!p || p->G != G || p->Mg != Mg || p->K != K)
		return NULL;
	const struct eng_tensor *k = p->g->values[n->in[1]].konst;
	if (!k || k->data != W->data)
		return NULL;
	if (atomic_load(&p->src) == W->data && kgemm_packed_ok(&p->pk[0]))
		return p->pk;
	pthread_mutex_lock(&p->mu);
	if (!(atomic_load(&p->src) == W->data && kgemm_packed_ok(&p->pk[0]))) {
		const float *w = W->data;
		for (int64_t g = 0; g < G; g++)
			kgemm_pack_a_to(&p->pk[g], false, Mg, K, w + g * Mg * K, K,
					(float *)((char *)p->room + g * p->gbytes));
		atomic_store(&p->src, W->data);
	}
	pthread_mutex_unlock(&p->mu);
	return p->pk;
}

/* Geometry of a Conv for concrete X and W shapes. */
static int conv_geom(const struct eg_node *n, struct eng_tensor *const *in, struct eng_win *w, char **err)
{
	const struct eng_tensor *X = in[0], *W = in[1];
	int k = X->ndims - 2;
	int64_t G = eg_attr_int(n, "group", 1);
	if (k < 1 || W->ndims != X->ndims)
		return eng_node_err(err, -EINVAL, n, "X and W must have the same rank >= 3");
	if (G < 1 || X->dims[1] % G || W->dims[0] % G || W->dims[1] * G != X->dims[1])
		return eng_node_err(err, -EINVAL, n, "channels (%lld) and group (%lld) do not match W",
				    (long long)X->dims[1], (long long)G);
	size_t ck;
	const int64_t *ks = eg_attr_ints(n, "kernel_shape", &ck);
	if (ks && (int)ck != k)
		return eng_node_err(err, -EINVAL, n, "kernel_shape has %zu dims", ck);
	for (int i = 0; ks && i < k; i++)
		if (ks[i] != W->dims[2 + i])
			return eng_node_err(err, -EINVAL, n, "kernel_shape differs from W");
	if (n->n_in > 2 && in[2] && (in[2]->ndims != 1 || in[2]->dims[0] != W->dims[0]))
		return eng_node_err(err, -EINVAL, n, "B must have M = %lld entries", (long long)W->dims[0]);
	return eng_win_geom(n, k, X->dims + 2, W->dims + 2, false, w, err);
}

/* Whether the convolution is a plain 1x1 (no im2col needed). */
static bool conv_is_pointwise(const struct eng_win *w)
{
	for (int i = 0; i < w->k; i++)
		if (w->kern[i] != 1 || w->stride[i] != 1 || w->pb[i] || w->pe[i])
			return false;
	return true;
}

#ifdef HAVE_DNNL
/* The oneDNN geometry of a 2-D convolution with constant weights (false for anything else). */
static bool conv_dnnl_desc(const struct eg_node *n, struct eng_tensor *const *in, const struct eng_win *w,
			   struct kdnn_conv_desc *d)
{
	struct conv_params *p = n->params;
	if (w->k != 2 || !p || !p->g->values[n->in[1]].konst || p->g->values[n->in[1]].konst->data != in[1]->data)
		return false;
	if (n->n_in > 2 && n->in[2] >= 0 &&
	    (!p->g->values[n->in[2]].konst || p->g->values[n->in[2]].konst->data != in[2]->data))
		return false;
	*d = (struct kdnn_conv_desc){ in[0]->dims[1], in[1]->dims[0], eg_attr_int(n, "group", 1), w->kern[0], w->kern[1],
				      w->stride[0], w->stride[1], w->dil[0], w->dil[1], w->pb[0], w->pb[1], w->pe[0], w->pe[1],
				      n->n_in > 3 && in[3] };
	return true;
}

/* The node's oneDNN state, made on first use when oneDNN can run d at all; NULL otherwise or
 * when d is not the geometry it was made for. */
static struct kdnn_conv *conv_dnnl_state(const struct eg_node *n, const struct kdnn_conv_desc *d, const struct kepi *e)
{
	struct conv_params *p = n->params;
	struct kdnn_conv *dn = atomic_load(&p->dn);
	if (!dn) {
		if (!kdnn_conv_possible(d, e))
			return NULL;
		pthread_mutex_lock(&p->mu);
		if (!(dn = atomic_load(&p->dn))) {
			p->dnd = *d;
			dn = kdnn_conv_new(d, e);
			atomic_store(&p->dn, dn);
		}
		pthread_mutex_unlock(&p->mu);
	}
	return memcmp(d, &p->dnd, sizeof(*d)) ? NULL : dn;
}

/* Layout flags of kdnn_conv_run for this step's input and output. */
static unsigned conv_layout_flags(const struct eng_tensor *x, const struct eng_tensor *y)
{
	return (x->layout == ENG_LAYOUT_NCHW8C ? KDNN_X_BLOCKED : 0) | (y->layout == ENG_LAYOUT_NCHW8C ? KDNN_Y_BLOCKED : 0);
}

/* Run the convolution through oneDNN when the rule (or a blocked layout) says so: 0 done,
 * -ENOTSUP to use our kernels. */
static int conv_dnnl(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *out,
		     const struct eng_win *w, const struct kepi *e, void *scratch, struct tpool *pool)
{
	struct kdnn_conv_desc d;
	unsigned flags = conv_layout_flags(in[0], out);
	if (!in[1]->data || !conv_dnnl_desc(n, in, w, &d) || (!flags && !kdnn_conv_wanted(&d, e)))
		return -ENOTSUP;
	struct kdnn_conv *dn = conv_dnnl_state(n, &d, e);
	if (!dn)
		return -ENOTSUP;
	return kdnn_conv_run(dn, in[1]->data, n->n_in > 2 && in[2] ? in[2]->data : NULL, in[0]->dims[0], w->in[0],
			     w->in[1], w->out[0], w->out[1], in[0]->data, out->data, scratch, flags, pool);
}
#endif

/* The Winograd geometry of a 3x3 stride-1 dense convolution with constant weights, on H x W
 * inputs with epilogue e, when that path wants it (false otherwise). */
static bool conv_wino_desc(const struct eg_node *n, struct eng_tensor *const *in, const struct eng_win *w,
			   const struct kepi *e, struct kwino_desc *d)
{
	struct conv_params *p = n->params;
	if (w->k != 2 || !p || !in[1]->data || eg_attr_int(n, "group", 1) != 1 || w->kern[0] != 3 || w->kern[1] != 3 ||
	    w->stride[0] != 1 || w->stride[1] != 1 || w->dil[0] != 1 || w->dil[1] != 1)
		return false;
	const struct eg_value *wv = &p->g->values[n->in[1]];
	if (!wv->konst || wv->konst->data != in[1]->data)
		return false;
	if (n->n_in > 2 && n->in[2] >= 0 && (!p->g->values[n->in[2]].konst || p->g->values[n->in[2]].konst->data != in[2]->data))
		return false;
	*d = (struct kwino_desc){ in[0]->dims[1], in[1]->dims[0], w->pb[0], w->pb[1], w->pe[0], w->pe[1] };
	return kwino_wanted(d, w->in[0], w->in[1], e);
}

/* Run a convolution whose input and output are both nChw8c by Winograd when that path wants
 * it: 0 done, -ENOTSUP to use another path. */
static int conv_wino(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *out,
		     const struct eng_win *w, const struct kepi *e, bool sum, void *scratch, struct tpool *pool)
{
	struct kwino_desc d;
	if (in[0]->layout != ENG_LAYOUT_NCHW8C || out->layout != ENG_LAYOUT_NCHW8C || !conv_wino_desc(n, in, w, e, &d))
		return -ENOTSUP;
	struct conv_params *p = n->params;
	struct kwino *k = atomic_load(&p->wn);
	if (!k) {
		pthread_mutex_lock(&p->mu);
		if (!(k = atomic_load(&p->wn))) {
			p->wnd = d;
			k = kwino_new(&d, in[1]->data, n->n_in > 2 && in[2] ? in[2]->data : NULL, e);
			atomic_store(&p->wn, k);
		}
		pthread_mutex_unlock(&p->mu);
	}
	if (memcmp(&d, &p->wnd, sizeof(d)))
		return -ENOTSUP;
	return kwino_run(k, in[0]->dims[0], w->in[0], w->in[1], in[0]->data, out->data, sum, scratch, pool);
}

bool eng_conv_layout_ok(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
			bool x_blocked, bool y_blocked)
{
#ifdef HAVE_DNNL
	struct eng_win w;
	struct kdnn_conv_desc d;
	struct kepi e;
	char *err = NULL;
	if (!in[1]->data || conv_geom(n, in, &w, &err) || !conv_dnnl_desc(n, in, &w, &d) || kepi_from_node(n, &e, &err)) {
		free(err);
		return false;
	}
	struct kdnn_conv *dn = conv_dnnl_state(n, &d, &e);
	return dn && kdnn_conv_can(dn, in[1]->data, n->n_in > 2 && in[2] ? in[2]->data : NULL, w.in[0], w.in[1],
				   (x_blocked ? KDNN_X_BLOCKED : 0) | (y_blocked ? KDNN_Y_BLOCKED : 0));
#else
	(void)n, (void)in, (void)out, (void)x_blocked, (void)y_blocked;
	return false;
#endif
}

/* The convolution's own result shape (before a residual broadcasts it): like out, N x M x w.out. */
static struct eng_tensor conv_result(const struct eng_tensor *out, int64_t N, int64_t M, const struct eng_win *w)
{
	struct eng_tensor cv = *out;
	cv.ndims = w->k + 2;
	cv.dims[0] = N;
	cv.dims[1] = M;
	for (int i = 0; i < w->k; i++)
		cv.dims[2 + i] = w->out[i];
	return cv;
}

/* Bytes reserved at the front of scratch for the convolution's own result (64-aligned). */
static size_t conv_tmp_bytes(const struct eng_tensor *cv)
{
	return ((size_t)eng_numel(cv) * sizeof(float) + 63) & ~(size_t)63;
}

static int conv_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	struct eng_win w;
	int rc = conv_geom(n, in, &w, err);
	if (rc)
		return rc;
	out[0]->ndims = in[0]->ndims;
	out[0]->dims[0] = in[0]->dims[0];
	out[0]->dims[1] = in[1]->dims[0];
	int64_t osz = 1, ksz = 1;
	for (int i = 0; i < w.k; i++) {
		out[0]->dims[2 + i] = w.out[i];
		osz *= w.out[i];
		ksz *= w.kern[i];
	}
	if (!conv_is_pointwise(&w))
		*scratch = (size_t)(in[1]->dims[1] * ksz * osz) * sizeof(float);
	/* A fused residual (_sum): the output is the broadcast of the convolution and the residual;
	 * when that is larger than the convolution, the convolution goes to the front of scratch. */
	if (n->n_in > 3 && in[3]) {
		struct eng_tensor cv = *out[0], bc = { 0 };
		struct eng_tensor *pair[2] = { &cv, in[3] };
		if (eng_broadcast_shape(pair, 2, &bc))
			return eng_node_err(err, -EINVAL, n, "residual input does not broadcast with the output");
		if (bc.ndims != cv.ndims || memcmp(bc.dims, cv.dims, cv.ndims * sizeof(int64_t))) {
			out[0]->ndims = bc.ndims;
			memcpy(out[0]->dims, bc.dims, sizeof(bc.dims));
			*scratch += conv_tmp_bytes(&cv);
		}
	}
	struct kwino_desc wd;
	struct kepi we;
	if (!kepi_from_node(n, &we, NULL) && conv_wino_desc(n, in, &w, &we, &wd)) {
		size_t s = kwino_scratch(&wd, in[0]->dims[0], w.in[0], w.in[1]);
		if (s > *scratch)
			*scratch = s;
	}
#ifdef HAVE_DNNL
	struct kdnn_conv_desc dd;
	struct kepi e;
	if (conv_dnnl_desc(n, in, &w, &dd) && !kepi_from_node(n, &e, NULL) && kdnn_conv_possible(&dd, &e)) {
		/* possible, not just wanted: the plan may pick a blocked output after this */
		size_t s = kdnn_conv_scratch(&dd, in[0]->dims[0], w.in[0], w.in[1]);
		if (s > *scratch)
			*scratch = s;
	}
#endif
	return 0;
}

/* y[run] = x[run]: one broadcast run of the residual copy. */
static void res_copy_run(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t out_off)
{
	const float *const *io = arg;
	const float *x = io[0] + off[0];
	float *y = (float *)io[1] + out_off;
	if (inc[0])
		memcpy(y, x, n * sizeof(float));
	else
		for (int64_t i = 0; i < n; i++)
			y[i] = x[0];
}

struct im2col_job {
	const struct eng_win *w;
	const float *x; /* one group's channels of one image */
	float *col;
	int64_t ksz, osz, isz;
};

/* Rows [r0, r1) of the column matrix: row = c * ksz + kernel offset. */
static void im2col_part(void *arg, int64_t r0, int64_t r1)
{
	const struct im2col_job *j = arg;
	const struct eng_win *w = j->w;
	int k = w->k;
	for (int64_t r = r0; r < r1; r++) {
		int64_t c = r / j->ksz, kk = r % j->ksz;
		int64_t koff[TENSOR_MAX_DIMS];
		for (int d = k - 1; d >= 0; d--) {
			koff[d] = (kk % w->kern[d]) * w->dil[d];
			kk /= w->kern[d];
		}
		const float *x = j->x + c * j->isz;
		float *dst = j->col + r * j->osz;
		/* Walk output positions; the last spatial dim is the inner loop. */
		int64_t oidx[TENSOR_MAX_DIMS] = { 0 }, inner = w->out[k - 1];
		int64_t outer = j->osz / (inner ? inner : 1);
		int64_t sl = w->stride[k - 1], ol = koff[k - 1] - w->pb[k - 1], inl = w->in[k - 1];
		for (int64_t o = 0; o < outer; o++) {
			bool ok = true;
			int64_t base = 0;
			for (int d = 0; d < k - 1; d++) {
				int64_t p = oidx[d] * w->stride[d] - w->pb[d] + koff[d];
				if (p < 0 || p >= w->in[d])
					ok = false;
				base = base * w->in[d] + p;
			}
			float *drow = dst + o * inner;
			if (!ok) {
				memset(drow, 0, inner * sizeof(float));
			} else {
				/* Zeros where the window hangs over the row's ends, a copy in between. */
				const float *xrow = x + base * inl;
				int64_t q = 0;
				for (; q < inner && q * sl + ol < 0; q++)
					drow[q] = 0.0f;
				int64_t qe = inl - ol > 0 ? (inl - ol + sl - 1) / sl : 0; /* first q with q*sl+ol >= inl */
				if (qe > inner)
					qe = inner;
				if (qe < q)
					qe = q;
				if (sl == 1) {
					memcpy(drow + q, xrow + q + ol, (qe - q) * sizeof(float));
				} else {
					const float *s = xrow + q * sl + ol;
					for (int64_t t = 0; t < qe - q; t++)
						drow[q + t] = s[t * sl];
				}
				for (q = qe; q < inner; q++)
					drow[q] = 0.0f;
			}
			for (int d = k - 2; d >= 0; d--) {
				if (++oidx[d] < w->out[d])
					break;
				oidx[d] = 0;
			}
		}
	}
}

static int conv_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	struct eng_win w;
	int rc = conv_geom(n, in, &w, err);
	if (rc)
		return rc;
	struct kepi epi;
	rc = kepi_from_node(n, &epi, err);
	if (rc)
		return rc;
	const struct eng_tensor *X = in[0], *W = in[1];
	epi.bias = n->n_in > 2 && in[2] ? in[2]->data : NULL;
	epi.bias_per_row = 1;
	int64_t N = X->dims[0], C = X->dims[1], M = W->dims[0], G = eg_attr_int(n, "group", 1);
	int64_t Cg = C / G, Mg = M / G, isz = 1, osz = 1, ksz = 1;
	for (int i = 0; i < w.k; i++) {
		isz *= w.in[i];
		osz *= w.out[i];
		ksz *= w.kern[i];
	}
	/* A fused residual R: pre-filled into y when it fits (the kernels then add to y: oneDNN's
	 * sum post-op, beta 1 for the GEMM); when it broadcasts the output larger, the convolution
	 * goes to scratch and the residual and activation follow. */
	const struct eng_tensor *R = n->n_in > 3 ? in[3] : NULL;
	float *y = out[0]->data, beta = 0.0f;
	struct kepi late = { .act = KACT_NONE };
	if (R && eng_numel(out[0]) == N * M * osz) {
		if (R->data != out[0]->data) {
			if (R->layout != out[0]->layout)
				return eng_node_err(err, -EIO, n, "internal: residual and output layouts differ");
			struct bcast bc;
			const struct eng_tensor *rs[1] = { R };
			const float *io[2] = { R->data, y };
			bcast_init(&bc, 1, rs, out[0]);
			bcast_run(&bc, res_copy_run, io, ctx->pool);
		}
		beta = 1.0f;
	} else if (R) {
		struct eng_tensor cv = conv_result(out[0], N, M, &w);
		y = scratch;
		scratch = (char *)scratch + conv_tmp_bytes(&cv);
		late = epi;
		late.bias = NULL;
		epi.act = KACT_NONE;
	}
	if (!(R && beta == 0.0f) && !conv_wino(n, in, out[0], &w, &epi, R != NULL, scratch, ctx->pool))
		return 0;
#ifdef HAVE_DNNL
	if (!(R && beta == 0.0f) && !conv_dnnl(n, in, out[0], &w, &epi, scratch, ctx->pool))
		return 0;
#endif
	if (in[0]->layout != ENG_LAYOUT_PLAIN || out[0]->layout != ENG_LAYOUT_PLAIN)
		return eng_node_err(err, -EIO, n, "internal: no kernel for its blocked layout");
	const float *x = X->data, *wt = W->data;
	float *col = scratch;
	if (w.k == 2 && Cg == 1 && Mg == 1 && G > 1) {
		struct kdw_geom dg = { N, C, w.in[0], w.in[1], w.out[0], w.out[1], w.kern[0], w.kern[1], w.stride[0],
				       w.stride[1], w.dil[0], w.dil[1], w.pb[0], w.pb[1] };
		kdwconv(&dg, x, wt, y, &epi, ctx->pool);
		return 0;
	}
	bool pw = conv_is_pointwise(&w);
	const struct kgemm_packed *pk = conv_packed(n, W, G, Mg, Cg * ksz);
	for (int64_t b = 0; b < N; b++)
		for (int64_t g = 0; g < G; g++) {
			const float *xg = x + (b * C + g * Cg) * isz;
			float *yg = y + (b * M + g * Mg) * osz;
			const float *src = xg;
			if (!pw) {
				struct im2col_job j = { &w, xg, col, ksz, osz, isz };
				tpool_for(ctx->pool, Cg * ksz, 1 + 16384 / (osz ? osz : 1), im2col_part, &j);
				src = col;
			}
			struct kepi ge = epi;
			if (ge.bias)
				ge.bias += g * Mg;
			kgemm_ex(false, false, Mg, osz, Cg * ksz, 1.0f, wt + g * Mg * Cg * ksz, Cg * ksz, pk ? &pk[g] : NULL,
				 src, osz, NULL, beta, yg, osz, &ge, ctx->pool);
		}
	if (R && beta == 0.0f) {
		struct eng_tensor cv = conv_result(out[0], N, M, &w);
		bcast_add_f32(&cv, y, R, R->data, out[0], out[0]->data, ctx->pool);
		if (late.act != KACT_NONE)
			kact_apply(&late, out[0]->data, eng_numel(out[0]));
	}
	return 0;
}

const struct eng_op eng_ops_conv[] = {
	{ "Conv", 1, ENG_OPSET_LATEST, DTM_FLOAT, "auto_pad dilations group kernel_shape pads strides _sum " KACT_ATTRS,
	  ENG_OP_INPLACE_SUM, conv_prepare, conv_infer, conv_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
