/* plan.h - the execution plan of a prepared graph for one set of concrete input shapes:
 * every value's shape, the nodes to run, and one arena laid out by liveness (buffers reused,
 * views and in-place ops share storage). Values computable from shapes alone are folded into the
 * plan when it is built. A plan belongs to one exec; it is rebuilt only for new input shapes. */
#ifndef ACC_ENGINE_PLAN_H
#define ACC_ENGINE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "graph.h"

struct eng_ctx;

enum plan_kind { PV_NONE, PV_CONST, PV_INPUT, PV_ARENA, PV_FOLDED, PV_VIEW };

struct plan_val {
	struct eng_tensor t; /* dtype, dims, bytes; data bound by plan_bind */
	enum plan_kind kind;
	size_t off; /* PV_ARENA: offset in the arena */
	int root; /* PV_VIEW: the value whose storage this shares */
	void *owned; /* PV_FOLDED: heap data owned by the plan */
};

struct plan_step {
	int node;
	size_t scratch_off, scratch;
	struct eng_tensor **in, **out; /* pointers into the plan's values; NULL when absent */
};

struct plan {
	int64_t *sig; /* input shapes: ndims, dims... per input */
	size_t sig_len;
	const struct eg_graph *g;
	struct plan_val *vals;
	struct plan_step *steps;
	int n_steps;
	size_t *out_copy; /* per graph output: arena offset to copy into, or SIZE_MAX */
	size_t arena_size;
	uint64_t last_used;
};

/* Build the plan of g for these input tensors (dtypes and dims; data not read).
 * Returns 0, or -EINVAL/-ENOTSUP with *err set. */
int plan_build(const struct eg_graph *g, const struct eng_tensor *inputs, struct plan **out, char **err);
/* Free a plan (NULL is fine). */
void plan_free(struct plan *p);
/* Whether p was built for these input shapes. */
bool plan_matches(const struct plan *p, const struct eng_tensor *inputs, int n_inputs);
/* Point every value at its storage: inputs' data, arena (>= p->arena_size bytes, 64-aligned). */
void plan_bind(struct plan *p, void *arena, const struct eng_tensor *inputs);
/* Run the steps, then copy outputs needing it; fills outputs[] (n_outputs of g). */
int plan_run(struct plan *p, void *arena, struct eng_ctx *ctx, struct eng_tensor *outputs, char **err);

#endif
