/* broadcast.c - coalesced broadcast iteration. */
#include "config.h"

#include <string.h>

#include "kernels/broadcast.h"
#include "threadpool.h"

void bcast_init(struct bcast *b, int k, const struct eng_tensor *const *in, const struct eng_tensor *out)
{
	int nd = out->ndims;
	int64_t st[BCAST_MAX_IN][TENSOR_MAX_DIMS];
	memset(b, 0, sizeof(*b));
	b->k = k;
	/* Per-input strides aligned to the output's dims (0 where the input has size 1 or lacks
	 * the dim). */
	for (int i = 0; i < k; i++) {
		int off = nd - in[i]->ndims;
		int64_t s = 1;
		for (int d = nd - 1; d >= 0; d--) {
			int id = d - off;
			if (id < 0 || in[i]->dims[id] == 1) {
				st[i][d] = 0;
			} else {
				st[i][d] = s;
			}
			if (id >= 0)
				s *= in[i]->dims[id];
		}
	}
	/* Drop size-1 dims, then merge neighbours whose inputs are all contiguous across them. */
	int m = 0;
	for (int d = 0; d < nd; d++) {
		if (out->dims[d] == 1)
			continue;
		bool merge = m > 0;
		for (int i = 0; merge && i < k; i++)
			if (b->strides[i][m - 1] != st[i][d] * out->dims[d])
				merge = false;
		if (merge) {
			b->dims[m - 1] *= out->dims[d];
			for (int i = 0; i < k; i++)
				b->strides[i][m - 1] = st[i][d];
		} else {
			b->dims[m] = out->dims[d];
			for (int i = 0; i < k; i++)
				b->strides[i][m] = st[i][d];
			m++;
		}
	}
	if (m == 0) {
		b->dims[0] = 1;
		for (int i = 0; i < k; i++)
			b->strides[i][0] = 0;
		m = 1;
	}
	b->nd = m;
	b->inner = b->dims[m - 1];
	b->total = 1;
	for (int d = 0; d < m; d++)
		b->total *= b->dims[d];
	b->runs = b->inner ? b->total / b->inner : 0;
	if (!b->total)
		b->runs = 0;
}

struct bcast_job {
	const struct bcast *b;
	bcast_fn fn;
	void *arg;
};

/* Runs [r0, r1). */
static void bcast_part(void *arg, int64_t r0, int64_t r1)
{
	struct bcast_job *j = arg;
	const struct bcast *b = j->b;
	int nd = b->nd;
	int64_t idx[TENSOR_MAX_DIMS] = { 0 }, off[BCAST_MAX_IN], inc[BCAST_MAX_IN];
	for (int i = 0; i < b->k; i++)
		inc[i] = b->strides[i][nd - 1] ? 1 : 0;
	/* Decompose r0 into the outer index. */
	int64_t r = r0;
	for (int d = nd - 2; d >= 0; d--) {
		idx[d] = r % b->dims[d];
		r /= b->dims[d];
	}
	for (int64_t run = r0; run < r1; run++) {
		for (int i = 0; i < b->k; i++) {
			off[i] = 0;
			for (int d = 0; d < nd - 1; d++)
				off[i] += idx[d] * b->strides[i][d];
		}
		j->fn(j->arg, b->inner, off, inc, run * b->inner);
		for (int d = nd - 2; d >= 0; d--) {
			if (++idx[d] < b->dims[d])
				break;
			idx[d] = 0;
		}
	}
}

void bcast_run(const struct bcast *b, bcast_fn fn, void *arg, struct tpool *pool)
{
	struct bcast_job j = { b, fn, arg };
	if (!b->runs)
		return;
	int64_t grain = b->inner >= 32768 ? 1 : 32768 / (b->inner ? b->inner : 1);
	tpool_for(pool, b->runs, grain, bcast_part, &j);
}

/* y[run] = a[run] + b[run]: one run of bcast_add_f32. */
static void add_run(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t out_off)
{
	const float *const *io = arg;
	const float *a = io[0] + off[0], *b = io[1] + off[1];
	float *y = (float *)io[2] + out_off;
	for (int64_t i = 0; i < n; i++)
		y[i] = a[i * inc[0]] + b[i * inc[1]];
}

void bcast_add_f32(const struct eng_tensor *a, const float *ad, const struct eng_tensor *b, const float *bd,
		   const struct eng_tensor *out, float *y, struct tpool *pool)
{
	struct bcast bc;
	const struct eng_tensor *ts[2] = { a, b };
	const float *io[3] = { ad, bd, y };
	bcast_init(&bc, 2, ts, out);
	bcast_run(&bc, add_run, io, pool);
}
