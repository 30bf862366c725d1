/* dnnl_conv.c - 2-D convolutions through oneDNN (see dnnl_conv.h).
 *
 * Why and when (measured on the 2-core AVX2 dev box, single Conv+Relu nodes, oneDNN 2.6.3
 * jit:avx2 / jit_dw:avx2 / jit_1x1:avx2, one thread each, median of 9, machine shared):
 *   layer (batch 1)              ours ms   oneDNN conv only   oneDNN + NCHW<->blocked reorders
 *   3->64 7x7 s2 @224               13.0        6.8                3.8 (src stays NCHW)
 *   64->64 3x3 @56                  10.2        6.2                3.5
 *   128->128 3x3 @28                 3.7        2.8                3.0
 *   256->256 3x3 @14                 3.7        3.4                3.0
 *   512->512 3x3 @7                  5.8        4.5                3.5
 *   64->128 3x3 s2 @56               2.8        1.4                1.7
 *   512->1024 1x1 s2 @28             5.5        3.5                3.1
 *   1x1 s1 (64->256 @56, 256->64 @56, 1024->256 @14, MobileNetV2 pointwise)
 *                                    0.2-1.9   0.1-1.3            0.5x-1.3x of ours: no clear win
 *   depthwise 3x3 (96 @112 s2, 144 @56, 384 @14, 960 @7)
 *                                    0.7-3.0   0.05-0.33          0.14-1.2 (2.2x-4.9x faster)
 * (numbers drift +-50% with the other helpers' load; the ratios held over repeated runs).
 * Rule: oneDNN runs 2-D depthwise convolutions (group == C == M) and dense (group 1) 2-D
 * convolutions except plain 1x1 stride-1 unpadded ones, which stay on our packed GEMM (no
 * im2col there, and the layout reorders eat oneDNN's margin); grouped non-depthwise
 * convolutions, non-2-D ones and activations without a post-op stay on our kernels.
 * ACCELD_ENGINE_DNNL=0 turns the path off, =2 sends plain 1x1 ones to oneDNN too (A/B runs).
 * Whole models, this path vs ACCELD_ENGINE_DNNL=0, engine-bench interleaved, median of 3 paired
 * rounds, 2 threads: ResNet-18 b1 1.40x b8 1.59x, MobileNetV2 b1 2.02x b8 1.55x, ResNet-50 b1
 * 1.03x b8 1.17x (its time is in 1x1 convolutions), parity unchanged, peak RSS +7..10 MiB.
 * With =2 (1x1 too) vs the rule: MobileNetV2 1.14x / 1.20x, ResNet-50 1.02x / 0.94x, and per
 * layer (2 threads) ResNet-50's 1x1 at batch 1 ran 0.55-0.77x: not a clear win, left off.
 *
 * Threading: Debian builds oneDNN with OpenMP. OpenMP teams and our pool would fight over the
 * cores (and a static OpenMP split stalls whenever a shared machine deschedules one thread), so
 * every primitive is created and run with one OpenMP thread (omp_set_num_threads(1) in each
 * calling thread: a per-thread setting), and our pool spreads tasks of (image, slice of output
 * channels) over its threads, each with its own stream and scratch buffer. A layer whose
 * outputs make one slice (MobileNetV2's 24-channel projections) would leave all threads but one
 * idle at batch 1: below KPART_MAX_N images, blocked in and out and without activation, its two
 * halves of input channels are separate tasks instead (each half is a contiguous run of 8-channel
 * blocks), summed into the output after (those two layers 0.32 + 0.25 -> 0.19 + 0.14 ms, the model
 * 1.035x, median of 16 paired runs).
 *
 * Layout: the primitives pick their blocked layouts (format_tag_any); a dense conv reorders
 * each image once into the plan's scratch (in channel slices when the layout is nChw8c), then
 * each task convolves into its thread buffer and reorders its slice straight into the NCHW
 * output; a depthwise task reorders its own channel slice in, convolves, reorders out. Weights
 * are reordered into the blocked layout once, per slice, at the first run.
 *
 * Blocked chains: the primitives are created with nChw8c source and destination wherever the
 * channels allow (AVX2 oneDNN picks that anyway), so when the plan keeps a value in nChw8c
 * (KDNN_X_BLOCKED / KDNN_Y_BLOCKED) a task convolves straight from / into it, with no reorder
 * and no thread buffer; a slice of output channels of one image is then a contiguous run of
 * whole 8-channel blocks. In a chain the plain 1x1 rule above does not apply (there is no
 * reorder to pay for): one thread, batch 1, the 1x1 layers of ResNet-50 run at 73-84 GFLOP/s
 * (256->1024 @14: 1.23 ms), near the core's FMA peak (~90 GFLOP/s measured); in the batch-8
 * profile, two threads, 256->1024 @14 took 5.9 ms blocked in oneDNN against 9.1 ms as our GEMM
 * on NCHW data (139 vs 90 GFLOP/s), 1024->256 @14 5.9 vs 9.3 ms. Splitting
 * a layer's output channels into 2 or 4 primitives costs nothing measurable (within 3 %), so
 * the slices stay. A residual (d->sum) uses oneDNN's sum post-op: the caller pre-fills y. */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "kernels/act.h"
#include "kernels/dnnl_conv.h"
#include "threadpool.h"
#include "util.h"

/* libgomp's (oneDNN's OpenMP runtime); declared here so no omp.h is needed to build. */
extern void omp_set_num_threads(int n);

#define MEM_THREADS 64 /* threads with memory objects cached per entry (a bit each in a word) */
enum { MEM_SRC, MEM_DST, MEM_PAD, MEM_ROLES };

/* Primitives for one input size. */
struct entry {
	struct entry *next;
	int64_t H, W;
	bool ok; /* false: oneDNN could not do it; run our kernels */
	bool src8, dst8; /* the primitive reads / writes nChw8c (so blocked callers skip a reorder) */
	dnnl_primitive_t conv, rsrc, rdst; /* rsrc / rdst NULL when no reorder is needed */
	dnnl_memory_desc_t src_md, dst_md, xs_md, yd_md; /* conv's src / dst, NCHW slices in / out */
	dnnl_memory_desc_t pad_md; /* the primitive's scratchpad */
	int64_t cr; /* channels per source reorder slice (dense) */
	size_t src_bytes, dst_bytes, pad_bytes; /* one image's blocked src, one dst slice, scratchpad */
	/* Memory objects of conv's arguments, one set per thread (struct tls idx), made with the
	 * entry (or at a later thread's first task) and re-pointed per task: creating three per
	 * task cost a malloc / free each, ~3 % of MobileNetV2 at batch 1. */
	dnnl_memory_t mem[MEM_THREADS][MEM_ROLES];
};

struct kdnn_conv {
	struct kdnn_conv_desc d;
	struct kepi e;
	bool dw;
	int64_t mc, nm; /* output channels per slice, slices (input-channel parts for a kpart) */
	/* Set in the two-part object of a layer with one slice (kpart_wanted): its primitive reads
	 * half the input channels, part j's weights are columns [j C/2, (j + 1) C/2) of the
	 * node's (full_c of them), and only part 0 adds the bias. */
	int64_t full_c;
	struct kdnn_conv *kpart; /* that object, when this layer has one */
	pthread_mutex_t mu;
	struct entry *entries;
	dnnl_memory_desc_t wei_md; /* one slice's weights */
	float *wei; /* nm slices of wei_md, NULL until the first entry */
	float *bias; /* M floats (zeros when the node has none) */
	dnnl_memory_t *wmem, *bmem; /* nm each */
};

static dnnl_engine_t g_eng;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static bool g_off, g_all; /* ACCELD_ENGINE_DNNL=0: never; =2: plain 1x1 ones too */

/* Per-thread stream and scratch buffer. */
struct tls {
	dnnl_stream_t st;
	void *buf;
	size_t cap;
	int idx; /* this thread's number, for the entries' memory objects */
};

static atomic_uint_fast64_t g_idx_used; /* bit i: a live thread has idx i (MEM_THREADS of them) */

/* The lowest free thread number (MEM_THREADS when all are taken), marked used. */
static int idx_take(void)
{
	uint64_t u = atomic_load(&g_idx_used);
	for (;;) {
		if (u == UINT64_MAX)
			return MEM_THREADS;
		int i = __builtin_ctzll(~u);
		if (atomic_compare_exchange_weak(&g_idx_used, &u, u | (uint64_t)1 << i))
			return i;
	}
}

/* Free a thread's stream and buffer when it exits. */
static void tls_free(void *p)
{
	struct tls *t = p;
	if (t->idx < MEM_THREADS)
		atomic_fetch_and(&g_idx_used, ~((uint64_t)1 << t->idx));
	if (t->st)
		dnnl_stream_destroy(t->st);
	free(t->buf);
	free(t);
}

/* Create the process-wide engine. */
static void global_init(void)
{
	const char *e = getenv("ACCELD_ENGINE_DNNL");
	g_off = e && !strcmp(e, "0");
	g_all = e && !strcmp(e, "2");
	pthread_key_create(&g_key, tls_free);
	if (dnnl_engine_create(&g_eng, dnnl_cpu, 0) != dnnl_success)
		g_eng = NULL;
}

/* This thread's state with a buffer of at least need bytes (NULL on failure); limits oneDNN to
 * this thread. */
static struct tls *tls_get(size_t need)
{
	struct tls *t = pthread_getspecific(g_key);
	if (!t) {
		omp_set_num_threads(1);
		t = xcalloc(1, sizeof(*t));
		if (dnnl_stream_create(&t->st, g_eng, dnnl_stream_default_flags) != dnnl_success) {
			free(t);
			return NULL;
		}
		t->idx = idx_take();
		pthread_setspecific(g_key, t);
	}
	if (need > t->cap) {
		free(t->buf);
		t->cap = (need + 4095) & ~(size_t)4095;
		t->buf = aligned_alloc(64, t->cap);
		if (!t->buf) {
			t->cap = 0;
			return NULL;
		}
	}
	return t;
}

void kdnn_thread_setup(void)
{
	pthread_once(&g_once, global_init);
	if (g_eng && !g_off)
		tls_get(0);
}

/* The oneDNN eltwise post-op for e (false when there is none that matches). */
static bool act_alg(const struct kepi *e, dnnl_alg_kind_t *alg, float *a, float *b)
{
	*a = *b = 0;
	switch (e->act) {
	case KACT_NONE:
		*alg = dnnl_alg_kind_undef;
		return true;
	case KACT_RELU:
		*alg = dnnl_eltwise_relu;
		return true;
	case KACT_LEAKYRELU:
		*alg = dnnl_eltwise_relu;
		*a = e->alpha;
		return true;
	case KACT_CLIP:
		if (isnan(e->min) || isnan(e->max))
			return false;
		*alg = dnnl_eltwise_clip;
		*a = e->min < -FLT_MAX ? -FLT_MAX : e->min;
		*b = e->max > FLT_MAX ? FLT_MAX : e->max;
		return true;
	case KACT_SIGMOID:
		*alg = dnnl_eltwise_logistic;
		return true;
	case KACT_HARDSWISH:
		*alg = dnnl_eltwise_hardswish; /* x * relu6(x + 3) / 6, as ONNX's */
		return true;
	case KACT_GELU:
		*alg = dnnl_eltwise_gelu_erf;
		return true;
	case KACT_TANH:
		*alg = dnnl_eltwise_tanh;
		return true;
	}
	return false;
}

bool kdnn_conv_possible(const struct kdnn_conv_desc *d, const struct kepi *e)
{
	pthread_once(&g_once, global_init);
	dnnl_alg_kind_t alg;
	float a, b;
	if (g_off || !g_eng || !act_alg(e, &alg, &a, &b))
		return false;
	return d->G == 1 || (d->G == d->C && d->G == d->M && !d->sum);
}

bool kdnn_conv_wanted(const struct kdnn_conv_desc *d, const struct kepi *e)
{
	if (!kdnn_conv_possible(d, e))
		return false;
	if (d->G == d->C && d->G == d->M && d->G > 1)
		return true;
	bool plain1x1 = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && !d->pt && !d->pl && !d->pb && !d->pr;
	return !plain1x1 || g_all;
}

/* The largest divisor of n that is at most cap (>= 1). */
static int64_t divisor_upto(int64_t n, int64_t cap)
{
	for (int64_t k = cap < n ? cap : n; k > 1; k--)
		if (n % k == 0)
			return k;
	return 1;
}

/* Slices of output channels per image: whole 8-channel blocks, up to 4 for dense (its source is
 * re-read per slice), up to 8 for depthwise (each slice is independent). Dense slices keep at
 * least 16 channels (one thread, 1x1 layers of MobileNetV2: slices of 16 cost nothing
 * measurable, slices of 8 take 1.5-1.9x the time in all), except that 16 outputs still split
 * in two: at batch 1 a layer in one slice leaves the other threads idle. */
static int64_t out_slices(const struct kdnn_conv_desc *d)
{
	bool dw = d->G > 1;
	int64_t nm = d->M % 8 ? 1 : divisor_upto(d->M / 8, dw ? 8 : 4);
	if (!dw)
		while (nm > 1 && d->M / nm < 16 && d->M != 16)
			nm = divisor_upto(d->M / 8, nm - 1);
	return nm;
}

#define KPART_MAX_N 4 /* images up to which a one-slice layer may split its input channels */
#define KPART_MIN_MACS 2e6 /* per image */

/* Whether a dense layer left in one slice (MobileNetV2's 24-channel projections: 0.5 ms of
 * batch 1 on one thread) should also have a two-part form: each half of the input channels
 * convolved by its own task into scratch, the halves summed after. Only without activation
 * (which would have to come after the sum). */
static bool kpart_wanted(const struct kdnn_conv_desc *d)
{
	return d->G == 1 && d->C % 16 == 0 && d->M % 8 == 0 && out_slices(d) == 1;
}

/* The output size for H x W inputs. */
static void out_hw(const struct kdnn_conv_desc *d, int64_t H, int64_t W, int64_t *OH, int64_t *OW)
{
	*OH = (H + d->pt + d->pb - ((d->kh - 1) * d->dh + 1)) / d->sh + 1;
	*OW = (W + d->pl + d->pr - ((d->kw - 1) * d->dw + 1)) / d->sw + 1;
}

size_t kdnn_conv_scratch(const struct kdnn_conv_desc *d, int64_t N, int64_t H, int64_t W)
{
	if (d->G != 1 || d->C < 8) /* depthwise tasks reorder in their own buffers; few channels stay NCHW */
		return 0;
	size_t src = (size_t)(N * ((d->C + 15) / 16 * 16) * H * W) * sizeof(float);
	int64_t OH, OW;
	out_hw(d, H, W, &OH, &OW);
	size_t parts = kpart_wanted(d) && N <= KPART_MAX_N ? (size_t)(2 * N * d->M * OH * OW) * sizeof(float) : 0;
	return (src > parts ? src : parts) + 64;
}

struct kdnn_conv *kdnn_conv_new(const struct kdnn_conv_desc *d, const struct kepi *e)
{
	pthread_once(&g_once, global_init);
	struct kdnn_conv *c = xcalloc(1, sizeof(*c));
	c->d = *d;
	c->e = *e;
	c->e.bias = NULL;
	c->dw = d->G > 1;
	c->nm = out_slices(d);
	c->mc = d->M / c->nm;
	pthread_mutex_init(&c->mu, NULL);
	if (kpart_wanted(d) && e->act == KACT_NONE) {
		struct kdnn_conv_desc hd = *d;
		hd.C = d->C / 2;
		hd.sum = 0;
		struct kdnn_conv *h = xcalloc(1, sizeof(*h));
		h->d = hd;
		h->e = c->e;
		h->nm = 2;
		h->mc = d->M;
		h->full_c = d->C;
		pthread_mutex_init(&h->mu, NULL);
		c->kpart = h;
	}
	return c;
}

void kdnn_conv_free(void *p)
{
	struct kdnn_conv *c = p;
	if (!c)
		return;
	for (struct entry *en = c->entries, *nx; en; en = nx) {
		nx = en->next;
		if (en->conv)
			dnnl_primitive_destroy(en->conv);
		if (en->rsrc)
			dnnl_primitive_destroy(en->rsrc);
		if (en->rdst)
			dnnl_primitive_destroy(en->rdst);
		for (int i = 0; i < MEM_THREADS; i++)
			for (int r = 0; r < MEM_ROLES; r++)
				if (en->mem[i][r])
					dnnl_memory_destroy(en->mem[i][r]);
		free(en);
	}
	for (int64_t j = 0; c->wmem && j < c->nm; j++)
		if (c->wmem[j])
			dnnl_memory_destroy(c->wmem[j]);
	for (int64_t j = 0; c->bmem && j < c->nm; j++)
		if (c->bmem[j])
			dnnl_memory_destroy(c->bmem[j]);
	free(c->wmem);
	free(c->bmem);
	free(c->wei);
	free(c->bias);
	kdnn_conv_free(c->kpart);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* A reorder primitive from a to b, or NULL. */
static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t p = NULL;
	if (dnnl_reorder_primitive_desc_create(&pd, a, g_eng, b, g_eng, NULL) != dnnl_success)
		return NULL;
	if (dnnl_primitive_create(&p, pd) != dnnl_success)
		p = NULL;
	dnnl_primitive_desc_destroy(pd);
	return p;
}

/* Run a reorder from a to b on this thread's stream. */
static int run_reorder(struct tls *t, dnnl_primitive_t r, const dnnl_memory_desc_t *amd, void *a,
		       const dnnl_memory_desc_t *bmd, void *b)
{
	dnnl_memory_t ma, mb;
	if (dnnl_memory_create(&ma, amd, g_eng, a) != dnnl_success)
		return -ENOMEM;
	if (dnnl_memory_create(&mb, bmd, g_eng, b) != dnnl_success) {
		dnnl_memory_destroy(ma);
		return -ENOMEM;
	}
	dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, ma }, { DNNL_ARG_TO, mb } };
	dnnl_status_t s = dnnl_primitive_execute(r, t->st, 2, args);
	dnnl_memory_destroy(ma);
	dnnl_memory_destroy(mb);
	return s == dnnl_success ? 0 : -EIO;
}

/* Reorder the weights (and copy the bias) of every slice, once; c->mu held. */
static int load_weights(struct kdnn_conv *c, const dnnl_memory_desc_t *wmd, const float *w, const float *b)
{
	const struct kdnn_conv_desc *d = &c->d;
	struct tls *t = tls_get(0);
	if (!t)
		return -ENOMEM;
	c->wei_md = *wmd;
	size_t wb = (dnnl_memory_desc_get_size(wmd) + 63) & ~(size_t)63;
	c->wei = acc_alloc_big(wb * c->nm);
	c->bias = xcalloc(c->nm * c->mc, sizeof(float)); /* a kpart's second part adds zeros */
	c->wmem = xcalloc(c->nm, sizeof(*c->wmem));
	c->bmem = xcalloc(c->nm, sizeof(*c->bmem));
	if (!c->wei)
		return -ENOMEM;
	if (b)
		memcpy(c->bias, b, d->M * sizeof(float));
	dnnl_memory_desc_t umd, bmd;
	int64_t cin = c->dw ? 1 : d->C;
	dnnl_dims_t wd5 = { c->mc, 1, 1, d->kh, d->kw }, wd4 = { c->mc, cin, d->kh, d->kw }, bd = { c->mc };
	dnnl_dims_t wst = { c->full_c * d->kh * d->kw, d->kh * d->kw, d->kw, 1 }; /* a kpart's columns */
	dnnl_status_t ws;
	if (c->full_c)
		ws = dnnl_memory_desc_init_by_strides(&umd, 4, wd4, dnnl_f32, wst);
	else if (c->dw)
		ws = dnnl_memory_desc_init_by_tag(&umd, 5, wd5, dnnl_f32, dnnl_goihw);
	else
		ws = dnnl_memory_desc_init_by_tag(&umd, 4, wd4, dnnl_f32, dnnl_oihw);
	if (ws != dnnl_success)
		return -ENOTSUP;
	if (dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x))
		return -ENOTSUP;
	dnnl_primitive_t r = make_reorder(&umd, wmd);
	if (!r)
		return -ENOTSUP;
	int rc = 0;
	/* slices of output channels follow each other; a kpart's parts are column blocks */
	size_t per = (size_t)((c->full_c ? 1 : c->mc) * cin * d->kh * d->kw);
	for (int64_t j = 0; !rc && j < c->nm; j++) {
		void *dst = (char *)c->wei + j * wb;
		rc = run_reorder(t, r, &umd, (void *)(w + j * per), wmd, dst);
		if (!rc && (dnnl_memory_create(&c->wmem[j], wmd, g_eng, dst) ||
			    dnnl_memory_create(&c->bmem[j], &bmd, g_eng, c->bias + j * c->mc)))
			rc = -ENOMEM;
	}
	dnnl_stream_wait(t->st);
	dnnl_primitive_destroy(r);
	return rc;
}

/* Create the primitives for H x W inputs into en; c->mu held. */
static void make_entry(struct kdnn_conv *c, struct entry *en, const float *w, const float *b)
{
	const struct kdnn_conv_desc *d = &c->d;
	int64_t H = en->H, W = en->W;
	int64_t OH, OW;
	out_hw(d, H, W, &OH, &OW);
	int64_t cin = c->dw ? c->mc : d->C;
	dnnl_dims_t xd = { 1, cin, H, W }, yd = { 1, c->mc, OH, OW }, bd = { c->mc };
	dnnl_dims_t wd4 = { c->mc, cin, d->kh, d->kw }, wd5 = { c->mc, 1, 1, d->kh, d->kw };
	dnnl_dims_t st = { d->sh, d->sw }, dl = { d->dh - 1, d->dw - 1 }, pl = { d->pt, d->pl }, pr = { d->pb, d->pr };
	dnnl_memory_desc_t xa, ya, wa, bmd;
	/* nChw8c wherever the channels allow (oneDNN's AVX2 convolutions prefer it anyway), so that
	 * blocked neighbours need no reorder; any (NCHW for few channels) otherwise. */
	if (dnnl_memory_desc_init_by_tag(&xa, 4, xd, dnnl_f32, cin % 8 ? dnnl_format_tag_any : dnnl_nChw8c) ||
	    dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, c->mc % 8 ? dnnl_format_tag_any : dnnl_nChw8c) ||
	    dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x) ||
	    (c->dw ? dnnl_memory_desc_init_by_tag(&wa, 5, wd5, dnnl_f32, dnnl_format_tag_any)
		   : dnnl_memory_desc_init_by_tag(&wa, 4, wd4, dnnl_f32, dnnl_format_tag_any)))
		return;
	dnnl_convolution_desc_t cd;
	if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &xa, &wa,
						       &bmd, &ya, st, dl, pl, pr))
		return;
	dnnl_primitive_attr_t at = NULL;
	dnnl_post_ops_t po = NULL;
	dnnl_primitive_desc_t pd = NULL;
	dnnl_alg_kind_t alg;
	float a, bb;
	act_alg(&c->e, &alg, &a, &bb);
	bool good = !dnnl_primitive_attr_create(&at) &&
		    !dnnl_primitive_attr_set_scratchpad_mode(at, dnnl_scratchpad_mode_user) && !dnnl_post_ops_create(&po) &&
		    (!d->sum || !dnnl_post_ops_append_sum(po, 1.0f)) &&
		    (alg == dnnl_alg_kind_undef || !dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, bb)) &&
		    !dnnl_primitive_attr_set_post_ops(at, po);
	tls_get(0); /* one OpenMP thread in this thread before the primitive picks its blocking */
	if (good && dnnl_primitive_desc_create(&pd, &cd, at, g_eng, NULL) != dnnl_success)
		pd = NULL;
	if (po)
		dnnl_post_ops_destroy(po);
	if (at)
		dnnl_primitive_attr_destroy(at);
	if (!pd)
		return;
	en->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
	en->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
	const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	if (smd)
		en->pad_md = *smd;
	en->pad_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
	bool wok = c->wei ? dnnl_memory_desc_equal(wmd, &c->wei_md) : !load_weights(c, wmd, w, b);
	if (!wok || dnnl_primitive_create(&en->conv, pd) != dnnl_success) {
		dnnl_primitive_desc_destroy(pd);
		return;
	}
	dnnl_primitive_desc_destroy(pd);
	en->src_bytes = dnnl_memory_desc_get_size(&en->src_md);
	en->dst_bytes = dnnl_memory_desc_get_size(&en->dst_md);
	dnnl_memory_desc_t b8;
	en->src8 = !dnnl_memory_desc_init_by_tag(&b8, 4, xd, dnnl_f32, dnnl_nChw8c) && dnnl_memory_desc_equal(&en->src_md, &b8);
	en->dst8 = !dnnl_memory_desc_init_by_tag(&b8, 4, yd, dnnl_f32, dnnl_nChw8c) && dnnl_memory_desc_equal(&en->dst_md, &b8);
	/* Source: as is when the primitive reads NCHW; dense nChw8c in channel slices; else whole. */
	dnnl_memory_desc_t xu, x8;
	dnnl_memory_desc_init_by_tag(&xu, 4, xd, dnnl_f32, dnnl_nchw);
	en->cr = cin;
	if (!dnnl_memory_desc_equal(&en->src_md, &xu)) {
		if (!c->dw && d->C % 8 == 0 && !dnnl_memory_desc_init_by_tag(&x8, 4, xd, dnnl_f32, dnnl_nChw8c) &&
		    dnnl_memory_desc_equal(&en->src_md, &x8))
			en->cr = d->C / divisor_upto(d->C / 8, 4);
		dnnl_dims_t rd = { 1, en->cr, H, W };
		dnnl_memory_desc_init_by_tag(&en->xs_md, 4, rd, dnnl_f32, dnnl_nchw);
		dnnl_memory_desc_t to;
		if (en->cr == cin)
			to = en->src_md;
		else
			dnnl_memory_desc_init_by_tag(&to, 4, rd, dnnl_f32, dnnl_nChw8c);
		if (!(en->rsrc = make_reorder(&en->xs_md, &to)))
			return;
	}
	dnnl_memory_desc_init_by_tag(&en->yd_md, 4, yd, dnnl_f32, dnnl_nchw);
	if (!dnnl_memory_desc_equal(&en->dst_md, &en->yd_md) && !(en->rdst = make_reorder(&en->dst_md, &en->yd_md)))
		return;
	/* The memory objects of every thread set up so far (the pools' threads, kdnn_thread_setup),
	 * made now so that a thread's first task here, however many runs in, allocates nothing. */
	uint64_t used = atomic_load(&g_idx_used);
	const dnnl_memory_desc_t *mds[MEM_ROLES] = { &en->src_md, &en->dst_md, en->pad_bytes ? &en->pad_md : NULL };
	for (int i = 0; i < MEM_THREADS; i++)
		for (int r = 0; r < MEM_ROLES && (used >> i & 1); r++)
			if (mds[r] && dnnl_memory_create(&en->mem[i][r], mds[r], g_eng, DNNL_MEMORY_NONE) != dnnl_success)
				en->mem[i][r] = NULL; /* made at the thread's first task instead */
	en->ok = true;
}

/* The entry for H x W, created on first use (NULL when out of memory). */
static struct entry *get_entry(struct kdnn_conv *c, int64_t H, int64_t W, const float *w, const float *b)
{
	pthread_mutex_lock(&c->mu);
	struct entry *en = c->entries;
	while (en && !(en->H == H && en->W == W))
		en = en->next;
	if (!en) {
		en = xcalloc(1, sizeof(*en));
		en->H = H;
		en->W = W;
		make_entry(c, en, w, b);
		en->next = c->entries;
		c->entries = en;
	}
	pthread_mutex_unlock(&c->mu);
	return en;
}

/* A memory object for role r of entry en described by md over data, this thread's own; *own
 * is set when the caller must destroy it after use (threads beyond MEM_THREADS). */
static int task_mem(struct entry *en, const struct tls *t, int r, const dnnl_memory_desc_t *md, void *data,
		    dnnl_memory_t *m, bool *own)
{
	*own = t->idx >= MEM_THREADS;
	dnnl_memory_t *slot = *own ? m : &en->mem[t->idx][r];
	if (*own || !*slot) {
		if (dnnl_memory_create(slot, md, g_eng, data) != dnnl_success) {
			*slot = NULL;
			return -ENOMEM;
		}
	} else if (dnnl_memory_set_data_handle(*slot, data) != dnnl_success) {
		return -EIO;
	}
	*m = *slot;
	return 0;
}

struct job {
	struct kdnn_conv *c;
	struct entry *en;
	int64_t H, W, OH, OW;
	const float *x;
	float *y, *xb; /* xb: blocked images (dense, when the source is reordered) */
	int64_t ns; /* source slices per image */
	bool xblk, yblk; /* x / y already in the primitive's nChw8c order */
	int _Atomic rc;
};

/* Dense: reorder source slices [i0, i1) (image-major) into the blocked buffer. */
static void src_part(void *arg, int64_t i0, int64_t i1)
{
	struct job *j = arg;
	struct entry *en = j->en;
	struct tls *t = tls_get(0);
	for (int64_t i = i0; i < i1 && t; i++) {
		int64_t b = i / j->ns, s = i % j->ns, hw = j->H * j->W;
		const float *xs = j->x + (b * j->c->d.C + s * en->cr) * hw;
		float *xd = (float *)((char *)j->xb + b * en->src_bytes) + s * en->cr * hw;
		dnnl_memory_desc_t to = en->src_md;
		if (j->ns > 1) {
			dnnl_dims_t rd = { 1, en->cr, j->H, j->W };
			dnnl_memory_desc_init_by_tag(&to, 4, rd, dnnl_f32, dnnl_nChw8c);
		}
		int rc = run_reorder(t, en->rsrc, &en->xs_md, (void *)xs, &to, xd);
		if (rc)
			atomic_store(&j->rc, rc);
	}
	if (!t)
		atomic_store(&j->rc, -ENOMEM);
}

/* Convolve tasks [i0, i1): task = image * slices + slice of output channels. */
static void conv_part(void *arg, int64_t i0, int64_t i1)
{
	struct job *j = arg;
	struct kdnn_conv *c = j->c;
	struct entry *en = j->en;
	bool rsrc = en->rsrc && !j->xblk, rdst = en->rdst && !j->yblk;
	size_t sb = c->dw && rsrc ? (en->src_bytes + 63) & ~(size_t)63 : 0;
	size_t db = rdst ? (en->dst_bytes + 63) & ~(size_t)63 : 0;
	struct tls *t = tls_get(sb + db + en->pad_bytes + 64);
	if (!t) {
		atomic_store(&j->rc, -ENOMEM);
		return;
	}
	int64_t hw = j->H * j->W, ohw = j->OH * j->OW;
	for (int64_t i = i0; i < i1; i++) {
		int64_t b = i / c->nm, s = i % c->nm;
		const float *xs;
		if (c->dw) {
			xs = j->x + (b * c->d.C + s * c->mc) * hw;
			if (rsrc) {
				int rc = run_reorder(t, en->rsrc, &en->xs_md, (void *)xs, &en->src_md, t->buf);
				if (rc) {
					atomic_store(&j->rc, rc);
					return;
				}
				xs = t->buf;
			}
		} else if (rsrc) {
			xs = (const float *)((char *)j->xb + b * en->src_bytes);
		} else if (c->full_c) {
			xs = j->x + (b * c->full_c + s * c->d.C) * hw; /* a kpart: part s's channel blocks */
		} else {
			xs = j->x + b * c->d.C * hw;
		}
		/* slices of an image's channels follow each other (a kpart's parts: whole outputs) */
		float *yo = j->y + (b * c->nm + s) * c->mc * ohw;
		void *yb = rdst ? (char *)t->buf + sb : (void *)yo;
		dnnl_memory_t ms = NULL, md = NULL, mp = NULL;
		bool os = false, od = false, op = false;
		int rc = task_mem(en, t, MEM_SRC, &en->src_md, (void *)xs, &ms, &os);
		if (!rc)
			rc = task_mem(en, t, MEM_DST, &en->dst_md, yb, &md, &od);
		if (!rc && en->pad_bytes)
			rc = task_mem(en, t, MEM_PAD, &en->pad_md, (char *)t->buf + sb + db, &mp, &op);
		dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, ms },
					    { DNNL_ARG_WEIGHTS, c->wmem[s] },
					    { DNNL_ARG_BIAS, c->bmem[s] },
					    { DNNL_ARG_DST, md },
					    { DNNL_ARG_SCRATCHPAD, mp } };
		if (!rc && dnnl_primitive_execute(en->conv, t->st, mp ? 5 : 4, args) != dnnl_success)
			rc = -EIO;
		if (os && ms)
			dnnl_memory_destroy(ms);
		if (od && md)
			dnnl_memory_destroy(md);
		if (op && mp)
			dnnl_memory_destroy(mp);
		if (!rc && rdst)
			rc = run_reorder(t, en->rdst, &en->dst_md, yb, &en->yd_md, yo);
		if (rc) {
			atomic_store(&j->rc, rc);
			return;
		}
	}
}

bool kdnn_conv_can(struct kdnn_conv *c, const float *w, const float *b, int64_t H, int64_t W, unsigned flags)
{
	if (!c || !g_eng)
		return false;
	struct entry *en = get_entry(c, H, W, w, b);
	if (c->d.sum && !(flags & KDNN_Y_BLOCKED))
		return false; /* the residual would have to be reordered into the primitive's dst first */
	return en && en->ok && (!(flags & KDNN_X_BLOCKED) || en->src8) && (!(flags & KDNN_Y_BLOCKED) || en->dst8);
}

struct ksum_job {
	const float *p; /* per image: part 0's output, then part 1's */
	float *y;
	int64_t per; /* floats per image and part */
	int64_t chunks; /* per image */
	bool sum;
};

/* y = (y when sum) + part 0 + part 1 over chunks [i0, i1) (image-major). */
static void ksum_part(void *arg, int64_t i0, int64_t i1)
{
	const struct ksum_job *j = arg;
	for (int64_t i = i0; i < i1; i++) {
		int64_t b = i / j->chunks, k = i % j->chunks, per = j->per;
		int64_t lo = k * per / j->chunks, hi = (k + 1) * per / j->chunks;
		const float *p0 = j->p + 2 * b * per, *p1 = p0 + per;
		float *y = j->y + b * per;
		if (j->sum)
			for (int64_t e = lo; e < hi; e++)
				y[e] += p0[e] + p1[e];
		else
			for (int64_t e = lo; e < hi; e++)
				y[e] = p0[e] + p1[e];
	}
}

/* A one-slice layer on fewer images than threads, blocked in and out: the two halves of the
 * input channels convolved by separate tasks into scratch, then summed into y (with the
 * residual). -ENOTSUP when the parts cannot run (the caller runs the whole layer). */
static int run_kparts(struct kdnn_conv *c, const float *w, const float *b, int64_t N, int64_t H, int64_t W,
		      int64_t OH, int64_t OW, const float *x, float *y, void *scratch, struct tpool *pool)
{
	struct kdnn_conv *h = c->kpart;
	if ((double)c->d.C * c->d.M * c->d.kh * c->d.kw * OH * OW < KPART_MIN_MACS)
		return -ENOTSUP;
	struct entry *en = get_entry(h, H, W, w, b);
	if (!en || !en->ok || !en->src8 || !en->dst8)
		return -ENOTSUP;
	float *parts = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
	struct job j = { h, en, H, W, OH, OW, x, parts, NULL, 1, true, true, 0 };
	tpool_for(pool, N * 2, 1, conv_part, &j);
	if (atomic_load(&j.rc))
		return -EIO;
	int64_t per = c->d.M * OH * OW;
	struct ksum_job sj = { parts, y, per, per >= 16384 ? 8 : 1, c->d.sum != 0 };
	tpool_for(pool, N * sj.chunks, 1, ksum_part, &sj);
	return 0;
}

int kdnn_conv_run(struct kdnn_conv *c, const float *w, const float *b, int64_t N, int64_t H, int64_t W,
		  int64_t OH, int64_t OW, const float *x, float *y, void *scratch, unsigned flags,
		  struct tpool *pool)
{
	if (!c || !g_eng)
		return -ENOTSUP;
	struct entry *en = get_entry(c, H, W, w, b);
	if (!en || !en->ok || ((flags & KDNN_X_BLOCKED) && !en->src8) || ((flags & KDNN_Y_BLOCKED) && !en->dst8) ||
	    (c->d.sum && !(flags & KDNN_Y_BLOCKED)))
		return -ENOTSUP;
	if (c->kpart && N <= KPART_MAX_N && N < tpool_size(pool) && (flags & KDNN_X_BLOCKED) &&
	    (flags & KDNN_Y_BLOCKED)) {
		int rc = run_kparts(c, w, b, N, H, W, OH, OW, x, y, scratch, pool);
		if (rc != -ENOTSUP)
			return rc;
	}
	struct job j = { c, en, H, W, OH, OW, x, y, scratch, 1, flags & KDNN_X_BLOCKED, flags & KDNN_Y_BLOCKED, 0 };
	if (!c->dw && en->rsrc && !j.xblk) {
		if ((size_t)N * en->src_bytes > kdnn_conv_scratch(&c->d, N, H, W))
			return -ENOTSUP;
		j.ns = c->d.C / en->cr;
		tpool_for(pool, N * j.ns, 1, src_part, &j);
	}
	if (!atomic_load(&j.rc))
		tpool_for(pool, N * c->nm, 1, conv_part, &j);
	return atomic_load(&j.rc) ? -EIO : 0;
}
