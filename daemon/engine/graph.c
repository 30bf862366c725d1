/* graph.c - the engine's IR: construction, attribute access, checking, ordering, folding. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ops/ops.h"
#include "util.h"

/* Free one attribute's contents. */
static void attr_clear(struct eg_attr *a)
{
	free(a->name);
	free(a->s);
	free(a->floats);
	free(a->ints);
	for (size_t i = 0; a->strings && i < a->n; i++)
		free(a->strings[i]);
	free(a->strings);
	eg_tensor_free(a->t);
}

/* Free one node's contents. */
static void node_clear(struct eg_node *n)
{
	free(n->name);
	free(n->op_type);
	free(n->domain);
	free(n->in);
	free(n->out);
	for (int i = 0; i < n->n_attrs; i++)
		attr_clear(&n->attrs[i]);
	free(n->attrs);
	if (n->params_free)
		n->params_free(n->params);
	else
		free(n->params);
}

void eg_node_clear(struct eg_node *n)
{
	node_clear(n);
	memset(n, 0, sizeof(*n));
}

void eg_graph_free(struct eg_graph *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->n_values; i++) {
		free(g->values[i].name);
		eg_tensor_free(g->values[i].konst);
	}
	free(g->values);
	for (int i = 0; i < g->n_nodes; i++)
		node_clear(&g->nodes[i]);
	free(g->nodes);
	free(g->inputs);
	free(g->outputs);
	free(g->producer);
	free(g);
}

int eg_value_add(struct eg_graph *g, const char *name)
{
	if (g->n_values == g->cap_values) {
		g->cap_values = g->cap_values ? 2 * g->cap_values : 16;
		g->values = xreallocarray(g->values, g->cap_values, sizeof(*g->values));
	}
	struct eg_value *v = &g->values[g->n_values];
	memset(v, 0, sizeof(*v));
	v->name = xstrdup(name ? name : "");
	v->ndims = -1;
	v->producer = -1;
	return g->n_values++;
}

int eg_node_add(struct eg_graph *g)
{
	if (g->n_nodes == g->cap_nodes) {
		g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 16;
		g->nodes = xreallocarray(g->nodes, g->cap_nodes, sizeof(*g->nodes));
	}
	memset(&g->nodes[g->n_nodes], 0, sizeof(g->nodes[0]));
	return g->n_nodes++;
}

struct eng_tensor *eg_tensor_new(enum dtype dt, int ndims, const int64_t *dims)
{
	struct eng_tensor *t = xcalloc(1, sizeof(*t));
	t->dtype = dt;
	t->ndims = ndims;
	if (ndims)
		memcpy(t->dims, dims, ndims * sizeof(dims[0]));
	int64_t n = shape_numel(dims, ndims);
	t->bytes = (size_t)(n < 0 ? 0 : n) * dtype_size(dt);
	size_t alloc = (t->bytes + 63) & ~(size_t)63;
	t->data = xaligned_alloc(64, alloc ? alloc : 64);
	memset(t->data, 0, alloc ? alloc : 64);
	return t;
}

void eg_tensor_free(struct eng_tensor *t)
{
	if (!t)
		return;
	free(t->data);
	free(t);
}

const struct eg_attr *eg_attr_find(const struct eg_node *n, const char *name)
{
	for (int i = 0; i < n->n_attrs; i++)
		if (!strcmp(n->attrs[i].name, name))
			return &n->attrs[i];
	return NULL;
}

int64_t eg_attr_int(const struct eg_node *n, const char *name, int64_t def)
{
	const struct eg_attr *a = eg_attr_find(n, name);
	return a && a->type == EG_ATTR_INT ? a->i : def;
}

float eg_attr_float(const struct eg_node *n, const char *name, float def)
{
	const struct eg_attr *a = eg_attr_find(n, name);
	return a && a->type == EG_ATTR_FLOAT ? a->f : def;
}

const char *eg_attr_str(const struct eg_node *n, const char *name, const char *def)
{
	const struct eg_attr *a = eg_attr_find(n, name);
	return a && a->type == EG_ATTR_STRING ? a->s : def;
}

const int64_t *eg_attr_ints(const struct eg_node *n, const char *name, size_t *cnt)
{
	const struct eg_attr *a = eg_attr_find(n, name);
	if (!a || a->type != EG_ATTR_INTS) {
		*cnt = 0;
		return NULL;
	}
	*cnt = a->n;
	return a->ints;
}

char *eg_node_desc(const struct eg_node *n)
{
	return xasprintf("node '%s' (%s, opset %lld)", n->name && *n->name ? n->name : "<unnamed>",
			 n->op_type, (long long)n->opset);
}

/* Whether word occurs in the space-separated list. */
static bool word_in(const char *list, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = list; p && *p;) {
		while (*p == ' ')
			p++;
		const char *e = strchr(p, ' ');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == len && !strncmp(p, word, len))
			return true;
		p = e ? e : p + l;
	}
	return false;
}

/* Find the op for node n and check its domain, opset and attribute names. */
static int bind_op(struct eg_node *n, char **err)
{
	if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx"))
		return eng_node_err(err, -ENOTSUP, n, "operator domain '%s' is not supported", n->domain);
	n->op = eng_op_find(n->op_type, n->opset);
	if (!n->op) {
		int lo, hi;
		if (eng_op_known(n->op_type, &lo, &hi))
			return eng_node_err(err, -ENOTSUP, n, "operator %s is supported at opsets %d-%d only",
					    n->op_type, lo, hi);
		return eng_node_err(err, -ENOTSUP, n, "unsupported operator %s", n->op_type);
	}
	for (int i = 0; i < n->n_attrs; i++) {
		const struct eg_attr *a = &n->attrs[i];
		if (!word_in(n->op->attrs, a->name))
			return eng_node_err(err, -ENOTSUP, n, "unsupported attribute '%s'", a->name);
		for (int j = 0; j < i; j++)
			if (!strcmp(n->attrs[j].name, a->name))
				return eng_node_err(err, -EINVAL, n, "attribute '%s' given twice", a->name);
	}
	return 0;
}

/* Order live nodes topologically (dropping nodes no graph output depends on). */
static int topo_sort(struct eg_graph *g, char **err)
{
	int nv = g->n_values, nn = g->n_nodes, rc = 0;
	int *prod = xmalloc((nv + 1) * sizeof(int));
	for (int v = 0; v < nv; v++)
		prod[v] = -1;
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < g->nodes[i].n_out; j++) {
			int v = g->nodes[i].out[j];
			if (v < 0)
				continue;
			if (prod[v] >= 0 || g->values[v].konst || g->values[v].is_input) {
				rc = acc_err(err, -EINVAL, "value '%s' is produced twice", g->values[v].name);
				goto out_prod;
			}
			prod[v] = i;
		}
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < g->nodes[i].n_in; j++) {
			int v = g->nodes[i].in[j];
			if (v >= 0 && prod[v] < 0 && !g->values[v].konst && !g->values[v].is_input) {
				char *d = eg_node_desc(&g->nodes[i]);
				rc = acc_err(err, -EINVAL, "%s uses undefined value '%s'", d, g->values[v].name);
				free(d);
				goto out_prod;
			}
		}
	for (int i = 0; i < g->n_outputs; i++) {
		int v = g->outputs[i];
		if (prod[v] < 0 && !g->values[v].konst && !g->values[v].is_input) {
			rc = acc_err(err, -EINVAL, "graph output '%s' is never produced", g->values[v].name);
			goto out_prod;
		}
	}

	/* Liveness: walk back from the outputs. */
	bool *live = xcalloc(nn + 1, sizeof(bool));
	int *stack = xmalloc((nv + 1) * sizeof(int)), sp = 0;
	bool *seen = xcalloc(nv + 1, sizeof(bool));
	for (int i = 0; i < g->n_outputs; i++)
		if (!seen[g->outputs[i]]) {
			seen[g->outputs[i]] = true;
			stack[sp++] = g->outputs[i];
		}
	while (sp) {
		int v = stack[--sp], p = prod[v];
		if (p < 0 || live[p])
			continue;
		live[p] = true;
		for (int j = 0; j < g->nodes[p].n_in; j++) {
			int u = g->nodes[p].in[j];
			if (u >= 0 && !seen[u]) {
				seen[u] = true;
				stack[sp++] = u;
			}
		}
	}

	/* Sweep in file order, taking each node whose producers are all done: one sweep when the
	 * file is already sorted (as ONNX requires), a few more otherwise. */
	int *order = xmalloc((nn + 1) * sizeof(int)), no = 0;
	bool *done = xcalloc(nn + 1, sizeof(bool));
	bool progress = true;
	int n_live = 0;
	for (int i = 0; i < nn; i++)
		n_live += live[i];
	while (no < n_live && progress) {
		progress = false;
		for (int i = 0; i < nn; i++) {
			if (!live[i] || done[i])
				continue;
			bool ready = true;
			for (int j = 0; ready && j < g->nodes[i].n_in; j++) {
				int v = g->nodes[i].in[j];
				if (v >= 0 && prod[v] >= 0 && !done[prod[v]])
					ready = false;
			}
			if (!ready)
				continue;
			done[i] = true;
			order[no++] = i;
			progress = true;
		}
	}
	if (no < n_live) {
		rc = acc_err(err, -EINVAL, "the graph has a cycle");
	} else {
		struct eg_node *nodes = xcalloc(no + 1, sizeof(*nodes));
		for (int i = 0; i < no; i++)
			nodes[i] = g->nodes[order[i]];
		for (int i = 0; i < nn; i++)
			if (!live[i])
				node_clear(&g->nodes[i]);
		free(g->nodes);
		g->nodes = nodes;
		g->n_nodes = g->cap_nodes = no;
		for (int v = 0; v < nv; v++)
			g->values[v].producer = -1;
		for (int i = 0; i < no; i++)
			for (int j = 0; j < nodes[i].n_out; j++)
				if (nodes[i].out[j] >= 0)
					g->values[nodes[i].out[j]].producer = i;
	}
	free(order);
	free(done);
	free(live);
	free(stack);
	free(seen);
out_prod:
	free(prod);
	return rc;
}

int eg_graph_prepare(struct eg_graph *g, char **err)
{
	int rc = topo_sort(g, err);
	if (rc)
		return rc;
	for (int i = 0; i < g->n_nodes; i++) {
		struct eg_node *n = &g->nodes[i];
		if ((rc = bind_op(n, err)))
			return rc;
		for (int j = 0; j < n->n_in; j++) {
			int v = n->in[j];
			if (v >= 0 && g->values[v].dtype == DT_INVALID)
				return eng_node_err(err, -EINVAL, n, "input '%s' has no known type",
						    g->values[v].name);
		}
		if ((rc = n->op->prepare(g, n, err)))
			return rc;
		for (int j = 0; j < n->n_out; j++) {
			int v = n->out[j];
			if (v >= 0 && g->values[v].dtype == DT_INVALID)
				return eng_node_err(err, -EINVAL, n, "output %d has no type", j);
		}
	}
	for (int i = 0; i < g->n_outputs; i++)
		if (g->values[g->outputs[i]].dtype == DT_INVALID)
			return acc_err(err, -EINVAL, "graph output '%s' has no type",
				       g->values[g->outputs[i]].name);
	return 0;
}

#define FOLD_MAX_BYTES ((size_t)64 << 20) /* larger constant results are computed at run time */

/* Evaluate node n, all of whose inputs are constant, and store its outputs as constants;
 * 1 (nothing done) when an output would be too large to keep in the model. */
static int fold_node(struct eg_graph *g, struct eg_node *n, char **err)
{
	struct eng_tensor **in = xcalloc(n->n_in + 1, sizeof(*in));
	struct eng_tensor **out = xcalloc(n->n_out + 1, sizeof(*out));
	struct eng_tensor *shapes = xcalloc(n->n_out + 1, sizeof(*shapes));
	for (int j = 0; j < n->n_in; j++)
		in[j] = n->in[j] >= 0 ? g->values[n->in[j]].konst : NULL;
	for (int j = 0; j < n->n_out; j++) {
		shapes[j].dtype = n->out[j] >= 0 ? g->values[n->out[j]].dtype : DT_INVALID;
		out[j] = n->out[j] >= 0 ? &shapes[j] : NULL;
	}
	size_t scratch = 0, total = 0;
	int rc = n->op->infer(n, in, out, &scratch, err);
	for (int j = 0; !rc && j < n->n_out; j++) {
		if (!out[j])
			continue;
		int64_t cnt = shape_numel(out[j]->dims, out[j]->ndims);
		if (cnt < 0 || out[j]->dtype == DT_INVALID)
			rc = eng_node_err(err, -EINVAL, n, "bad output shape");
		else if ((uint64_t)cnt > FOLD_MAX_BYTES || (total += (size_t)cnt * dtype_size(out[j]->dtype)) > FOLD_MAX_BYTES)
			rc = 1;
	}
	if (!rc && scratch > FOLD_MAX_BYTES)
		rc = 1;
	if (rc)
		goto out;
	for (int j = 0; j < n->n_out; j++)
		if (out[j])
			out[j] = eg_tensor_new(shapes[j].dtype, shapes[j].ndims, shapes[j].dims);
	void *s = scratch ? xaligned_alloc(64, (scratch + 63) & ~(size_t)63) : NULL;
	struct eng_ctx ctx = { .pool = NULL };
	rc = n->op->run(n, in, out, s, &ctx, err);
	free(s);
	for (int j = 0; j < n->n_out; j++) {
		if (!out[j])
			continue;
		if (rc) {
			eg_tensor_free(out[j]);
			continue;
		}
		struct eg_value *v = &g->values[n->out[j]];
		v->konst = out[j];
		v->ndims = out[j]->ndims;
		memcpy(v->dims, out[j]->dims, sizeof(v->dims));
		v->producer = -1;
	}
out:
	free(in);
	free(out);
	free(shapes);
	return rc;
}

int eg_graph_fold(struct eg_graph *g, char **err)
{
	int kept = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		struct eg_node *n = &g->nodes[i];
		bool all_const = true;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0 && !g->values[n->in[j]].konst)
				all_const = false;
		if (all_const) {
			int rc = fold_node(g, n, err);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				node_clear(n);
				continue;
			}
		}
		g->nodes[kept++] = *n;
	}
	g->n_nodes = kept;
	for (int i = 0; i < kept; i++)
		for (int j = 0; j < g->nodes[i].n_out; j++)
			if (g->nodes[i].out[j] >= 0)
				g->values[g->nodes[i].out[j]].producer = i;
	return 0;
}

void eg_graph_mark_plan_data(struct eg_graph *g)
{
	for (int v = 0; v < g->n_values; v++)
		g->values[v].plan_data = false;
	for (int i = g->n_nodes - 1; i >= 0; i--) {
		const struct eg_node *n = &g->nodes[i];
		bool needed = false;
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0 && g->values[n->out[j]].plan_data)
				needed = true;
		/* Shape-only ops need their input's shape, never its values. */
		if (n->op->flags & ENG_OP_SHAPE_ONLY)
			needed = false;
		for (int j = 0; j < n->n_in; j++)
			if (n->in[j] >= 0 && (needed || (j < 32 && (n->op->data_in >> j) & 1)))
				g->values[n->in[j]].plan_data = true;
	}
}
