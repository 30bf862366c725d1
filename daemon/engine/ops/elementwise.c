/* elementwise.c - unary, binary (numpy broadcasting), variadic, comparison, logical, Where,
 * Cast. fp32 is the compute type; integer types are supported where shape arithmetic needs them. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/broadcast.h"
#include "kernels/transcend.h"
#include "ops/ops.h"
#include "ops/vmath.h"
#include "threadpool.h"
#include "util.h"

/* ---- binary and variadic ---- */

enum bin_code {
	B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_PRELU,
	B_EQ, B_LT, B_GT, B_LE, B_GE, /* -> BOOL */
	B_AND, B_OR, B_XOR, /* BOOL -> BOOL */
	B_POW, B_MOD, B_FMOD,
};

static const struct {
	const char *name;
	enum bin_code code;
} bin_names[] = {
	{ "Add", B_ADD }, { "Sub", B_SUB }, { "Mul", B_MUL }, { "Div", B_DIV }, { "Max", B_MAX },
	{ "Min", B_MIN }, { "Sum", B_ADD }, { "Mean", B_ADD }, { "PRelu", B_PRELU }, { "Equal", B_EQ },
	{ "Less", B_LT }, { "Greater", B_GT }, { "LessOrEqual", B_LE }, { "GreaterOrEqual", B_GE },
	{ "And", B_AND }, { "Or", B_OR }, { "Xor", B_XOR }, { "Pow", B_POW }, { "Mod", B_MOD },
};

struct bin_params {
	enum bin_code code;
	bool mean, fmod;
};

struct bin_job {
	enum bin_code code;
	enum dtype dt, dt_b;
	const void *a, *b;
	void *o;
};

#define LOOP2(TA, TB, TO, EXPR)                                                                   \
	do {                                                                                          \
		const TA *a_ = (const TA *)j->a + off[0];                                                 \
		const TB *b_ = (const TB *)j->b + off[1];                                                 \
		TO *o_ = (TO *)j->o + oo;                                                                 \
		if (inc[0] && inc[1])                                                                     \
			for (int64_t i = 0; i < n; i++) {                                                     \
				TA x = a_[i];                                                                     \
				TB y = b_[i];                                                                     \
				o_[i] = (EXPR);                                                                   \
			}                                                                                     \
		else if (inc[0]) {                                                                        \
			TB y = b_[0];                                                                         \
			for (int64_t i = 0; i < n; i++) {                                                     \
				TA x = a_[i];                                                                     \
				o_[i] = (EXPR);                                                                   \
			}                                                                                     \
		} else if (inc[1]) {                                                                      \
			TA x = a_[0];                                                                         \
			for (int64_t i = 0; i < n; i++) {                                                     \
				TB y = b_[i];                                                                     \
				o_[i] = (EXPR);                                                                   \
			}                                                                                     \
		} else {                                                                                  \
			TA x = a_[0];                                                                         \
			TB y = b_[0];                                                                         \
			for (int64_t i = 0; i < n; i++)                                                       \
				o_[i] = (EXPR);                                                                   \
		}                                                                                         \
	} while (0)

/* Float ops (max/min propagate NaN like numpy). */
#define FLOAT_CASES(T, MODF)                                                                      \
	switch (j->code) {                                                                            \
	case B_ADD: LOOP2(T, T, T, x + y); break;                                                     \
	case B_SUB: LOOP2(T, T, T, x - y); break;                                                     \
	case B_MUL: LOOP2(T, T, T, x * y); break;                                                     \
	case B_DIV: LOOP2(T, T, T, x / y); break;                                                     \
	case B_MAX: LOOP2(T, T, T, (x > y || x != x) ? x : y); break;                                 \
	case B_MIN: LOOP2(T, T, T, (x < y || x != x) ? x : y); break;                                 \
	case B_PRELU: LOOP2(T, T, T, x < 0 ? x * y : x); break;                                       \
	case B_EQ: LOOP2(T, T, uint8_t, x == y); break;                                               \
	case B_LT: LOOP2(T, T, uint8_t, x < y); break;                                                \
	case B_GT: LOOP2(T, T, uint8_t, x > y); break;                                                \
	case B_LE: LOOP2(T, T, uint8_t, x <= y); break;                                               \
	case B_GE: LOOP2(T, T, uint8_t, x >= y); break;                                               \
	case B_FMOD: LOOP2(T, T, T, MODF(x, y)); break;                                               \
	case B_MOD: LOOP2(T, T, T, MODF(x, y) != 0 && ((MODF(x, y) < 0) != (y < 0)) ? MODF(x, y) + y : MODF(x, y)); break; \
	default: break;                                                                               \
	}

/* Integer ops wrap on overflow and give 0 on division by zero. */
#define INT_CASES(T, U)                                                                           \
	switch (j->code) {                                                                            \
	case B_ADD: LOOP2(T, T, T, (T)((U)x + (U)y)); break;                                          \
	case B_SUB: LOOP2(T, T, T, (T)((U)x - (U)y)); break;                                          \
	case B_MUL: LOOP2(T, T, T, (T)((U)x * (U)y)); break;                                          \
	case B_DIV: LOOP2(T, T, T, y == 0 ? 0 : y == -1 ? (T)(0 - (U)x) : x / y); break;               \
	case B_MAX: LOOP2(T, T, T, x > y ? x : y); break;                                             \
	case B_MIN: LOOP2(T, T, T, x < y ? x : y); break;                                             \
	case B_PRELU: LOOP2(T, T, T, x < 0 ? (T)((U)x * (U)y) : x); break;                            \
	case B_EQ: LOOP2(T, T, uint8_t, x == y); break;                                               \
	case B_LT: LOOP2(T, T, uint8_t, x < y); break;                                                \
	case B_GT: LOOP2(T, T, uint8_t, x > y); break;                                                \
	case B_LE: LOOP2(T, T, uint8_t, x <= y); break;                                               \
	case B_GE: LOOP2(T, T, uint8_t, x >= y); break;                                               \
	case B_FMOD: LOOP2(T, T, T, (y == 0 || y == -1) ? 0 : x % y); break;                          \
	case B_MOD: LOOP2(T, T, T, (y == 0 || y == -1) ? 0 : (x % y != 0 && ((x % y < 0) != (y < 0))) ? x % y + y : x % y); break; \
	default: break;                                                                               \
	}

/* Unsigned integer ops wrap on overflow and give 0 on division by zero. */
#define UINT_CASES(T)                                                                             \
	switch (j->code) {                                                                            \
	case B_ADD: LOOP2(T, T, T, (T)(x + y)); break;                                                \
	case B_SUB: LOOP2(T, T, T, (T)(x - y)); break;                                                \
	case B_MUL: LOOP2(T, T, T, (T)((uint64_t)x * (uint64_t)y)); break;                            \
	case B_DIV: LOOP2(T, T, T, y == 0 ? 0 : (T)(x / y)); break;                                   \
	case B_MAX: LOOP2(T, T, T, x > y ? x : y); break;                                             \
	case B_MIN: LOOP2(T, T, T, x < y ? x : y); break;                                             \
	case B_EQ: LOOP2(T, T, uint8_t, x == y); break;                                               \
	case B_LT: LOOP2(T, T, uint8_t, x < y); break;                                                \
	case B_GT: LOOP2(T, T, uint8_t, x > y); break;                                                \
	case B_LE: LOOP2(T, T, uint8_t, x <= y); break;                                               \
	case B_GE: LOOP2(T, T, uint8_t, x >= y); break;                                               \
	case B_FMOD:                                                                                  \
	case B_MOD: LOOP2(T, T, T, y == 0 ? 0 : (T)(x % y)); break;                                   \
	default: break;                                                                               \
	}

/* Element i of a numeric tensor as a double. */
static double load_f64(enum dtype t, const void *p, int64_t i)
{
	switch (t) {
	case DT_FP32: return ((const float *)p)[i];
	case DT_FP64: return ((const double *)p)[i];
	case DT_INT32: return ((const int32_t *)p)[i];
	case DT_INT64: return (double)((const int64_t *)p)[i];
	case DT_INT8: return ((const int8_t *)p)[i];
	case DT_INT16: return ((const int16_t *)p)[i];
	case DT_UINT8: return ((const uint8_t *)p)[i];
	case DT_UINT16: return ((const uint16_t *)p)[i];
	case DT_UINT32: return ((const uint32_t *)p)[i];
	case DT_UINT64: return (double)((const uint64_t *)p)[i];
	default: return 0;
	}
}

/* fp32 +, -, *, / over one run as loops that vectorise (o may be a: same index). ia, ib: whether
 * a and b advance (else they are one broadcast value). Returns false for other ops. */
VM_VEC static bool bin_f32_vec(enum bin_code code, const float *restrict a, bool ia, const float *restrict b,
			       bool ib, float *restrict o, int64_t n)
{
#define BIN_F32(OP)                                                                               \
	do {                                                                                          \
		if (ia && ib)                                                                             \
			for (int64_t i = 0; i < n; i++)                                                       \
				o[i] = a[i] OP b[i];                                                              \
		else if (ia) {                                                                            \
			float y = b[0];                                                                       \
			for (int64_t i = 0; i < n; i++)                                                       \
				o[i] = a[i] OP y;                                                                 \
		} else if (ib) {                                                                          \
			float x = a[0];                                                                       \
			for (int64_t i = 0; i < n; i++)                                                       \
				o[i] = x OP b[i];                                                                 \
		} else {                                                                                  \
			float v = a[0] OP b[0];                                                               \
			for (int64_t i = 0; i < n; i++)                                                       \
				o[i] = v;                                                                         \
		}                                                                                         \
	} while (0)
	switch (code) {
	case B_ADD: BIN_F32(+); return true;
	case B_SUB: BIN_F32(-); return true;
	case B_MUL: BIN_F32(*); return true;
	case B_DIV: BIN_F32(/); return true;
	default: return false;
	}
#undef BIN_F32
}

/* One run of a binary op. */
static void bin_run_inner(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t oo)
{
	struct bin_job *j = arg;
	if (j->dt == DT_FP32 && bin_f32_vec(j->code, (const float *)j->a + off[0], inc[0] != 0,
					    (const float *)j->b + off[1], inc[1] != 0, (float *)j->o + oo, n))
		return;
	if (j->code == B_POW) {
		for (int64_t i = 0; i < n; i++) {
			double x = load_f64(j->dt, j->a, off[0] + i * inc[0]);
			double y = load_f64(j->dt_b, j->b, off[1] + i * inc[1]);
			switch (j->dt) {
			case DT_FP32:
				((float *)j->o)[oo + i] = j->dt_b == DT_FP32 ? powf((float)x, (float)y) : (float)pow(x, y);
				break;
			case DT_FP64: ((double *)j->o)[oo + i] = pow(x, y); break;
			case DT_INT32: ((int32_t *)j->o)[oo + i] = (int32_t)pow(x, y); break;
			case DT_INT64: ((int64_t *)j->o)[oo + i] = (int64_t)pow(x, y); break;
			default: break;
			}
		}
		return;
	}
	switch (j->dt) {
	case DT_FP32: FLOAT_CASES(float, fmodf); break;
	case DT_FP64: FLOAT_CASES(double, fmod); break;
	case DT_INT32: INT_CASES(int32_t, uint32_t); break;
	case DT_INT64: INT_CASES(int64_t, uint64_t); break;
	case DT_INT8: INT_CASES(int8_t, uint8_t); break;
	case DT_INT16: INT_CASES(int16_t, uint16_t); break;
	case DT_UINT8: UINT_CASES(uint8_t); break;
	case DT_UINT16: UINT_CASES(uint16_t); break;
	case DT_UINT32: UINT_CASES(uint32_t); break;
	case DT_UINT64: UINT_CASES(uint64_t); break;
	case DT_BOOL:
		switch (j->code) {
		case B_AND: LOOP2(uint8_t, uint8_t, uint8_t, x && y); break;
		case B_OR: LOOP2(uint8_t, uint8_t, uint8_t, x || y); break;
		case B_XOR: LOOP2(uint8_t, uint8_t, uint8_t, (!x) != (!y)); break;
		case B_EQ: LOOP2(uint8_t, uint8_t, uint8_t, (!x) == (!y)); break;
		default: break;
		}
		break;
	default:
		break;
	}
}

/* o = a (op) b with broadcasting onto o's shape. */
static void bin_apply(enum bin_code code, const struct eng_tensor *a, const struct eng_tensor *b,
		      struct eng_tensor *o, struct tpool *pool)
{
	const struct eng_tensor *ins[2] = { a, b };
	struct bcast bc;
	bcast_init(&bc, 2, ins, o);
	struct bin_job j = { code, a->dtype, b->dtype, a->data, b->data, o->data };
	bcast_run(&bc, bin_run_inner, &j, pool);
}

/* Load-time checks of a binary or variadic op. */
static int bin_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	const char *op = n->op_type;
	bool variadic = !strcmp(op, "Sum") || !strcmp(op, "Mean") || !strcmp(op, "Max") || !strcmp(op, "Min");
	int rc = eng_check_arity(n, variadic ? 1 : 2, variadic ? 1 << 20 : 2, 1, err);
	if (rc)
		return rc;
	struct bin_params *p = xcalloc(1, sizeof(*p));
	n->params = p;
	for (size_t i = 0; i < ACC_ARRAY_LEN(bin_names); i++)
		if (!strcmp(bin_names[i].name, op))
			p->code = bin_names[i].code;
	p->mean = !strcmp(op, "Mean");
	if (p->code == B_MOD && eg_attr_int(n, "fmod", 0))
		p->code = B_FMOD;
	enum dtype t0 = eng_in_dtype(g, n, 0);
	for (int i = 0; i < n->n_in; i++) {
		if (n->in[i] < 0)
			return eng_node_err(err, -EINVAL, n, "input %d is missing", i);
		if ((rc = eng_check_type(g, n, i, n->op->types, err)))
			return rc;
		if (p->code != B_POW && eng_in_dtype(g, n, i) != t0)
			return eng_node_err(err, -EINVAL, n, "inputs have different types (%s, %s)",
					    dtype_name(t0), dtype_name(eng_in_dtype(g, n, i)));
	}
	if (p->code == B_POW && (rc = eng_check_type(g, n, 0, DTM_NUM, err)))
		return rc;
	if (p->code == B_MOD && (t0 == DT_FP32 || t0 == DT_FP64))
		return eng_node_err(err, -EINVAL, n, "Mod of floating-point inputs needs fmod=1");
	bool cmp = p->code >= B_EQ && p->code <= B_XOR;
	eng_set_out_dtype(g, n, 0, cmp ? DT_BOOL : t0);
	return 0;
}

/* Output shape: the broadcast of all inputs (PRelu: the slope broadcasts onto X). */
static int bin_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     size_t *scratch, char **err)
{
	if (eng_broadcast_shape(in, n->n_in, out[0]))
		return eng_node_err(err, -EINVAL, n, "input shapes cannot be broadcast together");
	if (!strcmp(n->op_type, "PRelu") && out[0]->ndims != in[0]->ndims)
		return eng_node_err(err, -EINVAL, n, "slope does not broadcast onto X");
	return 0;
}

/* Elementwise copy with broadcasting, by element size. */
struct copy_job {
	size_t esz;
	const uint8_t *src;
	uint8_t *dst;
};

/* One run of a broadcast copy. */
static void copy_inner(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t oo)
{
	struct copy_job *j = arg;
	if (inc[0]) {
		memcpy(j->dst + oo * j->esz, j->src + off[0] * j->esz, n * j->esz);
		return;
	}
	switch (j->esz) {
	case 1: memset(j->dst + oo, j->src[off[0]], n); break;
	case 2: { uint16_t v; memcpy(&v, j->src + off[0] * 2, 2); for (int64_t i = 0; i < n; i++) ((uint16_t *)j->dst)[oo + i] = v; break; }
	case 4: { uint32_t v; memcpy(&v, j->src + off[0] * 4, 4); for (int64_t i = 0; i < n; i++) ((uint32_t *)j->dst)[oo + i] = v; break; }
	default: for (int64_t i = 0; i < n; i++) memcpy(j->dst + (oo + i) * j->esz, j->src + off[0] * j->esz, j->esz); break;
	}
}

/* Copy src broadcast onto dst's shape (exported for Expand). */
void eng_broadcast_copy(const struct eng_tensor *src, struct eng_tensor *dst, struct tpool *pool);
void eng_broadcast_copy(const struct eng_tensor *src, struct eng_tensor *dst, struct tpool *pool)
{
	if (src->data == dst->data && src->bytes == dst->bytes)
		return; /* in place: already there */
	const struct eng_tensor *ins[1] = { src };
	struct bcast bc;
	bcast_init(&bc, 1, ins, dst);
	struct copy_job j = { dtype_size(src->dtype), src->data, dst->data };
	bcast_run(&bc, copy_inner, &j, pool);
}

struct scale_job {
	enum dtype dt;
	void *data;
	double k;
};

/* Divide a range by k (Mean). */
static void scale_part(void *arg, int64_t b, int64_t e)
{
	struct scale_job *j = arg;
	for (int64_t i = b; i < e; i++) {
		if (j->dt == DT_FP32)
			((float *)j->data)[i] = (float)(((float *)j->data)[i] / j->k);
		else if (j->dt == DT_FP64)
			((double *)j->data)[i] /= j->k;
		else if (j->dt == DT_INT32)
			((int32_t *)j->data)[i] = (int32_t)(((int32_t *)j->data)[i] / (int64_t)j->k);
		else if (j->dt == DT_INT64)
			((int64_t *)j->data)[i] /= (int64_t)j->k;
	}
}

/* Run a binary or variadic op. */
static int bin_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		   void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct bin_params *p = n->params;
	if (n->n_in == 1) {
		eng_broadcast_copy(in[0], out[0], ctx->pool);
		return 0;
	}
	bin_apply(p->code, in[0], in[1], out[0], ctx->pool);
	for (int i = 2; i < n->n_in; i++)
		bin_apply(p->code, out[0], in[i], out[0], ctx->pool);
	if (p->mean) {
		struct scale_job j = { out[0]->dtype, out[0]->data, (double)n->n_in };
		tpool_for(ctx->pool, eng_numel(out[0]), 65536, scale_part, &j);
	}
	return 0;
}

/* ---- Where ---- */

struct where_job {
	size_t esz;
	const uint8_t *c, *x, *y;
	uint8_t *o;
};

/* One run of Where. */
static void where_inner(void *arg, int64_t n, const int64_t *off, const int64_t *inc, int64_t oo)
{
	struct where_job *j = arg;
	size_t e = j->esz;
	for (int64_t i = 0; i < n; i++) {
		bool c = j->c[off[0] + i * inc[0]];
		const uint8_t *s = c ? j->x + (off[1] + i * inc[1]) * e : j->y + (off[2] + i * inc[2]) * e;
		switch (e) {
		case 1: j->o[oo + i] = *s; break;
		case 4: memcpy(j->o + (oo + i) * 4, s, 4); break;
		case 8: memcpy(j->o + (oo + i) * 8, s, 8); break;
		default: memcpy(j->o + (oo + i) * e, s, e); break;
		}
	}
}

/* Where: condition BOOL, X and Y of one type. */
static int where_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	int rc = eng_check_arity(n, 3, 3, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, DTB(DT_BOOL), err);
	if (!rc)
		rc = eng_check_type(g, n, 1, n->op->types, err);
	if (rc)
		return rc;
	if (eng_in_dtype(g, n, 1) != eng_in_dtype(g, n, 2))
		return eng_node_err(err, -EINVAL, n, "X and Y have different types");
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 1));
	return 0;
}

/* Run Where. */
static int where_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		     void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct eng_tensor *ins[3] = { in[0], in[1], in[2] };
	struct bcast bc;
	bcast_init(&bc, 3, ins, out[0]);
	struct where_job j = { dtype_size(out[0]->dtype), in[0]->data, in[1]->data, in[2]->data, out[0]->data };
	bcast_run(&bc, where_inner, &j, ctx->pool);
	return 0;
}

/* ---- unary ---- */

enum un_code {
	U_RELU, U_SIGMOID, U_TANH, U_EXP, U_LOG, U_SQRT, U_NEG, U_ABS, U_ERF, U_RECIP, U_FLOOR,
	U_CEIL, U_ROUND, U_SIGN, U_SIN, U_COS, U_SOFTPLUS, U_SOFTSIGN, U_LEAKY, U_ELU, U_SELU,
	U_HARDSIGMOID, U_HARDSWISH, U_CLIP, U_GELU, U_GELU_TANH, U_MISH, U_CELU, U_THRESH, U_NOT,
	U_IDENT,
};

static const struct {
	const char *name;
	enum un_code code;
} un_names[] = {
	{ "Relu", U_RELU }, { "Sigmoid", U_SIGMOID }, { "Tanh", U_TANH }, { "Exp", U_EXP },
	{ "Log", U_LOG }, { "Sqrt", U_SQRT }, { "Neg", U_NEG }, { "Abs", U_ABS }, { "Erf", U_ERF },
	{ "Reciprocal", U_RECIP }, { "Floor", U_FLOOR }, { "Ceil", U_CEIL }, { "Round", U_ROUND },
	{ "Sign", U_SIGN }, { "Sin", U_SIN }, { "Cos", U_COS }, { "Softplus", U_SOFTPLUS },
	{ "Softsign", U_SOFTSIGN }, { "LeakyRelu", U_LEAKY }, { "Elu", U_ELU }, { "Selu", U_SELU },
	{ "HardSigmoid", U_HARDSIGMOID }, { "HardSwish", U_HARDSWISH }, { "Clip", U_CLIP },
	{ "Gelu", U_GELU }, { "Mish", U_MISH }, { "Celu", U_CELU }, { "ThresholdedRelu", U_THRESH },
	{ "Not", U_NOT },
};

struct un_params {
	enum un_code code;
	float alpha, beta;
};

struct un_job {
	enum un_code code;
	enum dtype dt;
	float alpha, beta;
	const void *x;
	void *y;
};

/* Round half to even. */
static float round_even(float x)
{
	return nearbyintf(x);
}

/* The hot fp32 unary ops as loops that vectorise (y may be x: each element is read before it
 * is written). Returns false for the other ops. */
VM_VEC static bool un_f32_vec(enum un_code code, const float *restrict x, float *restrict y, int64_t n, float a,
			      float be)
{
	switch (code) {
	case U_RELU:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] > 0 || x[i] != x[i] ? x[i] : 0.0f;
		return true;
	case U_CLIP:
		for (int64_t i = 0; i < n; i++) {
			float v = x[i] < a ? a : x[i];
			y[i] = v > be ? be : v;
		}
		return true;
	case U_LEAKY:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] < 0 ? a * x[i] : x[i];
		return true;
	case U_HARDSIGMOID:
		for (int64_t i = 0; i < n; i++) {
			float v = a * x[i] + be;
			v = v > 0 ? v : 0.0f;
			y[i] = v < 1 ? v : 1.0f;
		}
		return true;
	case U_HARDSWISH:
		for (int64_t i = 0; i < n; i++) {
			float v = x[i] * (1.0f / 6) + 0.5f;
			v = v > 0 ? v : 0.0f;
			v = v < 1 ? v : 1.0f;
			y[i] = x[i] * v;
		}
		return true;
	case U_NEG:
		for (int64_t i = 0; i < n; i++)
			y[i] = -x[i];
		return true;
	case U_ABS:
		for (int64_t i = 0; i < n; i++)
			y[i] = x[i] < 0 ? -x[i] : x[i];
		return true;
	case U_EXP:
		for (int64_t i = 0; i < n; i++)
			y[i] = vm_exp(x[i]);
		return true;
	case U_SIGMOID:
		for (int64_t i = 0; i < n; i++)
			y[i] = 1.0f / (1.0f + vm_exp(-x[i]));
		return true;
	case U_ERF:
		for (int64_t i = 0; i < n; i++)
			y[i] = vm_erf(x[i]);
		return true;
	case U_GELU:
		ktrans_gelu(x, y, n);
		return true;
	default:
		return false;
	}
}

/* Unary fp32 over [b, e). */
static void un_f32(const struct un_job *j, int64_t b, int64_t e)
{
	const float *x = j->x;
	float *y = j->y, a = j->alpha, be = j->beta;
	if (un_f32_vec(j->code, x + b, y + b, e - b, a, be))
		return;
	switch (j->code) {
	case U_RELU: for (int64_t i = b; i < e; i++) y[i] = x[i] > 0 ? x[i] : (x[i] != x[i] ? x[i] : 0); break;
	case U_SIGMOID:
		for (int64_t i = b; i < e; i++)
			y[i] = x[i] >= 0 ? 1 / (1 + expf(-x[i])) : expf(x[i]) / (1 + expf(x[i]));
		break;
	case U_TANH: for (int64_t i = b; i < e; i++) y[i] = tanhf(x[i]); break;
	case U_EXP: for (int64_t i = b; i < e; i++) y[i] = expf(x[i]); break;
	case U_LOG: for (int64_t i = b; i < e; i++) y[i] = logf(x[i]); break;
	case U_SQRT: for (int64_t i = b; i < e; i++) y[i] = sqrtf(x[i]); break;
	case U_NEG: for (int64_t i = b; i < e; i++) y[i] = -x[i]; break;
	case U_ABS: for (int64_t i = b; i < e; i++) y[i] = fabsf(x[i]); break;
	case U_ERF: for (int64_t i = b; i < e; i++) y[i] = erff(x[i]); break;
	case U_RECIP: for (int64_t i = b; i < e; i++) y[i] = 1 / x[i]; break;
	case U_FLOOR: for (int64_t i = b; i < e; i++) y[i] = floorf(x[i]); break;
	case U_CEIL: for (int64_t i = b; i < e; i++) y[i] = ceilf(x[i]); break;
	case U_ROUND: for (int64_t i = b; i < e; i++) y[i] = round_even(x[i]); break;
	case U_SIGN: for (int64_t i = b; i < e; i++) y[i] = x[i] > 0 ? 1.f : x[i] < 0 ? -1.f : x[i]; break;
	case U_SIN: for (int64_t i = b; i < e; i++) y[i] = sinf(x[i]); break;
	case U_COS: for (int64_t i = b; i < e; i++) y[i] = cosf(x[i]); break;
	case U_SOFTPLUS: for (int64_t i = b; i < e; i++) y[i] = x[i] > 20 ? x[i] : log1pf(expf(x[i])); break;
	case U_SOFTSIGN: for (int64_t i = b; i < e; i++) y[i] = x[i] / (1 + fabsf(x[i])); break;
	case U_LEAKY: for (int64_t i = b; i < e; i++) y[i] = x[i] < 0 ? a * x[i] : x[i]; break;
	case U_ELU: for (int64_t i = b; i < e; i++) y[i] = x[i] < 0 ? a * expm1f(x[i]) : x[i]; break;
	case U_SELU: for (int64_t i = b; i < e; i++) y[i] = be * (x[i] <= 0 ? a * expm1f(x[i]) : x[i]); break;
	case U_HARDSIGMOID: for (int64_t i = b; i < e; i++) y[i] = fmaxf(0, fminf(1, a * x[i] + be)); break;
	case U_HARDSWISH: for (int64_t i = b; i < e; i++) y[i] = x[i] * fmaxf(0, fminf(1, x[i] / 6 + 0.5f)); break;
	case U_CLIP:
		for (int64_t i = b; i < e; i++) {
			float v = x[i];
			v = v < a ? a : v;
			y[i] = v > be ? be : v;
		}
		break;
	case U_GELU: for (int64_t i = b; i < e; i++) y[i] = 0.5f * x[i] * (1 + erff(x[i] * (float)M_SQRT1_2)); break;
	case U_GELU_TANH:
		for (int64_t i = b; i < e; i++)
			y[i] = 0.5f * x[i] * (1 + tanhf(0.7978845608028654f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
		break;
	case U_MISH:
		for (int64_t i = b; i < e; i++)
			y[i] = x[i] * tanhf(x[i] > 20 ? x[i] : log1pf(expf(x[i])));
		break;
	case U_CELU: for (int64_t i = b; i < e; i++) y[i] = fmaxf(0, x[i]) + fminf(0, a * expm1f(x[i] / a)); break;
	case U_THRESH: for (int64_t i = b; i < e; i++) y[i] = x[i] > a ? x[i] : 0; break;
	case U_IDENT: if (x != y) memcpy(y + b, x + b, (e - b) * sizeof(float)); break;
	default: break;
	}
}

#define UN_INT(T, U)                                                                              \
	do {                                                                                          \
		const T *x = j->x;                                                                        \
		T *y = j->y;                                                                              \
		for (int64_t i = b; i < e; i++) {                                                         \
			T v = x[i];                                                                           \
			switch (j->code) {                                                                    \
			case U_RELU: y[i] = v > 0 ? v : 0; break;                                             \
			case U_NEG: y[i] = (T)(0 - (U)v); break;                                              \
			case U_ABS: y[i] = v < 0 ? (T)(0 - (U)v) : v; break;                                  \
			case U_SIGN: y[i] = v > 0 ? 1 : v < 0 ? -1 : 0; break;                                \
			case U_CLIP: y[i] = v < (T)j->alpha ? (T)j->alpha : v > (T)j->beta ? (T)j->beta : v; break; \
			default: y[i] = v; break;                                                             \
			}                                                                                     \
		}                                                                                         \
	} while (0)

/* Unsigned types only reach Clip. */
#define UN_UINT(T)                                                                                \
	do {                                                                                          \
		const T *x = j->x;                                                                        \
		T *y = j->y, lo = (T)j->alpha, hi = (T)j->beta;                                           \
		for (int64_t i = b; i < e; i++)                                                           \
			y[i] = j->code != U_CLIP ? x[i] : x[i] < lo ? lo : x[i] > hi ? hi : x[i];             \
	} while (0)

/* Unary over [b, e). */
static void un_part(void *arg, int64_t b, int64_t e)
{
	const struct un_job *j = arg;
	switch (j->dt) {
	case DT_FP32: un_f32(j, b, e); break;
	case DT_INT32: UN_INT(int32_t, uint32_t); break;
	case DT_INT64: UN_INT(int64_t, uint64_t); break;
	case DT_INT8: UN_INT(int8_t, uint8_t); break;
	case DT_INT16: UN_INT(int16_t, uint16_t); break;
	case DT_UINT8: UN_UINT(uint8_t); break;
	case DT_UINT16: UN_UINT(uint16_t); break;
	case DT_BOOL:
		for (int64_t i = b; i < e; i++)
			((uint8_t *)j->y)[i] = !((const uint8_t *)j->x)[i];
		break;
	default: break;
	}
}

/* Load-time checks of a unary op, with its attributes. */
static int un_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool clip = !strcmp(n->op_type, "Clip");
	int rc = eng_check_arity(n, 1, clip ? 3 : 1, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	struct un_params *p = xcalloc(1, sizeof(*p));
	n->params = p;
	for (size_t i = 0; i < ACC_ARRAY_LEN(un_names); i++)
		if (!strcmp(un_names[i].name, n->op_type))
			p->code = un_names[i].code;
	switch (p->code) {
	case U_LEAKY: p->alpha = eg_attr_float(n, "alpha", 0.01f); break;
	case U_ELU: p->alpha = eg_attr_float(n, "alpha", 1.0f); break;
	case U_CELU: p->alpha = eg_attr_float(n, "alpha", 1.0f); break;
	case U_THRESH: p->alpha = eg_attr_float(n, "alpha", 1.0f); break;
	case U_SELU:
		p->alpha = eg_attr_float(n, "alpha", 1.67326319217681884765625f);
		p->beta = eg_attr_float(n, "gamma", 1.05070102214813232421875f);
		break;
	case U_HARDSIGMOID:
		p->alpha = eg_attr_float(n, "alpha", 0.2f);
		p->beta = eg_attr_float(n, "beta", 0.5f);
		break;
	case U_CLIP:
		p->alpha = eg_attr_float(n, "min", -INFINITY);
		p->beta = eg_attr_float(n, "max", INFINITY);
		for (int i = 1; i < n->n_in; i++)
			if (n->in[i] >= 0 && eng_in_dtype(g, n, i) != eng_in_dtype(g, n, 0))
				return eng_node_err(err, -EINVAL, n, "min/max type differs from the input's");
		break;
	case U_GELU: {
		const char *ap = eg_attr_str(n, "approximate", "none");
		if (!strcmp(ap, "tanh"))
			p->code = U_GELU_TANH;
		else if (strcmp(ap, "none"))
			return eng_node_err(err, -EINVAL, n, "approximate='%s' is not none or tanh", ap);
		break;
	}
	default: break;
	}
	eng_set_out_dtype(g, n, 0, eng_in_dtype(g, n, 0));
	return 0;
}

/* Output shape = input shape. */
static int same_infer(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		      size_t *scratch, char **err)
{
	out[0]->ndims = in[0]->ndims;
	memcpy(out[0]->dims, in[0]->dims, sizeof(out[0]->dims));
	return 0;
}

/* Run a unary op. */
static int un_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		  void *scratch, struct eng_ctx *ctx, char **err)
{
	const struct un_params *p = n->params;
	struct un_job j = { p->code, in[0]->dtype, p->alpha, p->beta, in[0]->data, out[0]->data };
	if (p->code == U_CLIP && n->n_in > 1) {
		/* Opset 11+: bounds are optional scalar inputs. */
		for (int i = 1; i < 3 && i < n->n_in; i++) {
			if (!in[i])
				continue;
			if (eng_numel(in[i]) != 1)
				return eng_node_err(err, -EINVAL, n, "min/max must be scalars");
			double v = load_f64(in[i]->dtype, in[i]->data, 0);
			if (i == 1)
				j.alpha = (float)v;
			else
				j.beta = (float)v;
		}
		if (in[0]->dtype != DT_FP32) {
			float lo, hi;
			switch (in[0]->dtype) {
			case DT_INT8: lo = INT8_MIN; hi = INT8_MAX; break;
			case DT_INT16: lo = INT16_MIN; hi = INT16_MAX; break;
			case DT_UINT8: lo = 0; hi = UINT8_MAX; break;
			case DT_UINT16: lo = 0; hi = UINT16_MAX; break;
			case DT_INT32: lo = (float)INT32_MIN; hi = (float)INT32_MAX; break;
			default: lo = -9.2e18f; hi = 9.2e18f; break;
			}
			if (!in[1])
				j.alpha = lo;
			if (n->n_in < 3 || !in[2])
				j.beta = hi;
			/* Bounds outside the type's range clamp nothing on that side. */
			j.alpha = j.alpha < lo ? lo : j.alpha > hi ? hi : j.alpha;
			j.beta = j.beta < lo ? lo : j.beta > hi ? hi : j.beta;
		}
	}
	tpool_for(ctx->pool, eng_numel(in[0]), 16384, un_part, &j);
	return 0;
}

/* ---- Cast / CastLike ---- */

/* Whether t is a cast type this engine converts. */
static bool cast_type(enum dtype t)
{
	return t != DT_INVALID && t != DT_BYTES && t != DT_FP16 && t != DT_BF16 && t < DT_COUNT;
}

/* Load-time checks of Cast. */
static int cast_prepare(struct eg_graph *g, struct eg_node *n, char **err)
{
	bool like = !strcmp(n->op_type, "CastLike");
	int rc = eng_check_arity(n, like ? 2 : 1, like ? 2 : 1, 1, err);
	if (!rc)
		rc = eng_check_type(g, n, 0, n->op->types, err);
	if (rc)
		return rc;
	enum dtype to;
	if (like) {
		to = eng_in_dtype(g, n, 1);
	} else {
		const struct eg_attr *a = eg_attr_find(n, "to");
		if (!a || a->type != EG_ATTR_INT)
			return eng_node_err(err, -EINVAL, n, "attribute 'to' is required");
		to = dtype_from_onnx((int)a->i);
		if (to == DT_INVALID && a->i > 0 && a->i < 64)
			return eng_node_err(err, -ENOTSUP, n, "cast to ONNX type %lld is not supported", (long long)a->i);
	}
	if (!cast_type(to))
		return eng_node_err(err, -ENOTSUP, n, "cast to %s is not supported", dtype_name(to));
	eng_set_out_dtype(g, n, 0, to);
	return 0;
}

struct cast_job {
	enum dtype from, to;
	const void *x;
	void *y;
};

/* Whether t is a floating-point type. */
static bool is_float(enum dtype t)
{
	return t == DT_FP32 || t == DT_FP64;
}

/* Convert [b, e). */
static void cast_part(void *arg, int64_t b, int64_t e)
{
	const struct cast_job *j = arg;
	for (int64_t i = b; i < e; i++) {
		double f = 0;
		int64_t v = 0;
		uint64_t u = 0;
		const void *x = j->x;
		switch (j->from) {
		case DT_FP32: f = ((const float *)x)[i]; break;
		case DT_FP64: f = ((const double *)x)[i]; break;
		case DT_BOOL: v = ((const uint8_t *)x)[i] != 0; break;
		case DT_UINT8: v = ((const uint8_t *)x)[i]; break;
		case DT_INT8: v = ((const int8_t *)x)[i]; break;
		case DT_UINT16: v = ((const uint16_t *)x)[i]; break;
		case DT_INT16: v = ((const int16_t *)x)[i]; break;
		case DT_UINT32: v = ((const uint32_t *)x)[i]; break;
		case DT_INT32: v = ((const int32_t *)x)[i]; break;
		case DT_UINT64: u = ((const uint64_t *)x)[i]; v = (int64_t)u; break;
		case DT_INT64: v = ((const int64_t *)x)[i]; break;
		default: break;
		}
		if (is_float(j->from)) {
			/* Float to integer: truncate; NaN and out-of-range values give 0 or wrap. */
			if (f != f)
				v = 0;
			else if (f >= 9.2233720368547758e18)
				v = INT64_MAX;
			else if (f <= -9.2233720368547758e18)
				v = INT64_MIN;
			else
				v = (int64_t)f;
			u = (uint64_t)v;
		} else {
			f = j->from == DT_UINT64 ? (double)u : (double)v;
			u = (uint64_t)v;
		}
		void *y = j->y;
		switch (j->to) {
		case DT_FP32: ((float *)y)[i] = is_float(j->from) ? (float)f : (j->from == DT_UINT64 ? (float)u : (float)v); break;
		case DT_FP64: ((double *)y)[i] = f; break;
		case DT_BOOL: ((uint8_t *)y)[i] = is_float(j->from) ? f != 0 : v != 0; break;
		case DT_UINT8: ((uint8_t *)y)[i] = (uint8_t)u; break;
		case DT_INT8: ((int8_t *)y)[i] = (int8_t)u; break;
		case DT_UINT16: ((uint16_t *)y)[i] = (uint16_t)u; break;
		case DT_INT16: ((int16_t *)y)[i] = (int16_t)u; break;
		case DT_UINT32: ((uint32_t *)y)[i] = (uint32_t)u; break;
		case DT_INT32: ((int32_t *)y)[i] = (int32_t)u; break;
		case DT_UINT64: ((uint64_t *)y)[i] = u; break;
		case DT_INT64: ((int64_t *)y)[i] = v; break;
		default: break;
		}
	}
}

/* Run Cast. */
static int cast_run(const struct eg_node *n, struct eng_tensor *const *in, struct eng_tensor *const *out,
		    void *scratch, struct eng_ctx *ctx, char **err)
{
	if (in[0]->dtype == out[0]->dtype) {
		if (in[0]->data != out[0]->data)
			memcpy(out[0]->data, in[0]->data, out[0]->bytes);
		return 0;
	}
	struct cast_job j = { in[0]->dtype, out[0]->dtype, in[0]->data, out[0]->data };
	tpool_for(ctx->pool, eng_numel(in[0]), 16384, cast_part, &j);
	return 0;
}

#define NUM DTM_NUM
/* Every integer width, for the arithmetic and comparison ops. */
#define NUMX (DTM_NUM | DTB(DT_INT8) | DTB(DT_INT16) | DTB(DT_UINT8) | DTB(DT_UINT16) | DTB(DT_UINT32) | \
	      DTB(DT_UINT64))
#define FI (DTB(DT_FP32) | DTB(DT_INT32) | DTB(DT_INT64))
#define FI8 (FI | DTB(DT_INT8) | DTB(DT_INT16))
#define CASTABLE (DTM_ALL & ~(DTB(DT_FP16) | DTB(DT_BF16)))
#define BIN(name, lo, types, attrs) { name, lo, ENG_OPSET_LATEST, types, attrs, ENG_OP_INPLACE, bin_prepare, bin_infer, bin_run, 0 }
#define UN(name, lo, types, attrs) { name, lo, ENG_OPSET_LATEST, types, attrs, ENG_OP_INPLACE, un_prepare, same_infer, un_run, 0 }

const struct eng_op eng_ops_elementwise[] = {
	BIN("Add", 7, NUMX, ""),
	BIN("Sub", 7, NUMX, ""),
	BIN("Mul", 7, NUMX, ""),
	BIN("Div", 7, NUMX, ""),
	BIN("Pow", 7, NUMX, ""),
	BIN("Mod", 10, NUMX, "fmod"),
	BIN("Max", 8, NUMX, ""),
	BIN("Min", 8, NUMX, ""),
	BIN("Sum", 8, NUMX, ""),
	BIN("Mean", 8, NUM, ""),
	BIN("PRelu", 9, DTB(DT_FP32) | DTB(DT_FP64) | DTB(DT_INT32) | DTB(DT_INT64), ""),
	BIN("Equal", 11, NUMX | DTB(DT_BOOL), ""),
	BIN("Less", 9, NUMX, ""),
	BIN("Greater", 9, NUMX, ""),
	BIN("LessOrEqual", 12, NUMX, ""),
	BIN("GreaterOrEqual", 12, NUMX, ""),
	BIN("And", 7, DTB(DT_BOOL), ""),
	BIN("Or", 7, DTB(DT_BOOL), ""),
	BIN("Xor", 7, DTB(DT_BOOL), ""),
	{ "Where", 9, ENG_OPSET_LATEST, DTM_ALL, "", 0, where_prepare, bin_infer, where_run, 0 },
	UN("Relu", 6, FI8, ""),
	UN("Sigmoid", 6, DTM_FLOAT, ""),
	UN("Tanh", 6, DTM_FLOAT, ""),
	UN("Exp", 6, DTM_FLOAT, ""),
	UN("Log", 6, DTM_FLOAT, ""),
	UN("Sqrt", 6, DTM_FLOAT, ""),
	UN("Neg", 6, FI8, ""),
	UN("Abs", 6, FI8, ""),
	UN("Erf", 9, DTM_FLOAT, ""),
	UN("Reciprocal", 6, DTM_FLOAT, ""),
	UN("Floor", 6, DTM_FLOAT, ""),
	UN("Ceil", 6, DTM_FLOAT, ""),
	UN("Round", 11, DTM_FLOAT, ""),
	UN("Sign", 9, FI8, ""),
	UN("Sin", 7, DTM_FLOAT, ""),
	UN("Cos", 7, DTM_FLOAT, ""),
	UN("Softplus", 1, DTM_FLOAT, ""),
	UN("Softsign", 1, DTM_FLOAT, ""),
	UN("LeakyRelu", 6, DTM_FLOAT, "alpha"),
	UN("Elu", 6, DTM_FLOAT, "alpha"),
	UN("Selu", 6, DTM_FLOAT, "alpha gamma"),
	UN("Celu", 12, DTM_FLOAT, "alpha"),
	UN("ThresholdedRelu", 10, DTM_FLOAT, "alpha"),
	UN("HardSigmoid", 6, DTM_FLOAT, "alpha beta"),
	UN("HardSwish", 14, DTM_FLOAT, ""),
	UN("Mish", 18, DTM_FLOAT, ""),
	UN("Gelu", 20, DTM_FLOAT, "approximate"),
	{ "Clip", 6, 10, DTM_FLOAT, "min max", ENG_OP_INPLACE, un_prepare, same_infer, un_run, 0 },
	{ "Clip", 11, ENG_OPSET_LATEST, FI8 | DTB(DT_UINT8) | DTB(DT_UINT16), "", ENG_OP_INPLACE, un_prepare, same_infer, un_run, 0 },
	UN("Not", 1, DTB(DT_BOOL), ""),
	{ "Cast", 6, ENG_OPSET_LATEST, CASTABLE, "to saturate", 0, cast_prepare, same_infer, cast_run, 0 },
	{ "CastLike", 15, ENG_OPSET_LATEST, CASTABLE, "saturate", 0, cast_prepare, same_infer, cast_run, 0 },
	{ NULL, 0, 0, 0, NULL, 0, NULL, NULL, NULL, 0 },
};
