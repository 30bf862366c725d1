/* modelcfg.c - Triton-style model configuration: parse, check against the graph, derive. */
#include "config.h"
#include "modelcfg.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MODELCFG_MAX_BATCH 1048576
#define MODELCFG_DERIVED_MAX_BATCH 64
#define MODELCFG_MAX_INSTANCES 64

struct modelcfg {
	char *platform;
	int max_batch_size;
	size_t n_in, n_out;
	struct model_io *in, *out;
	size_t n_groups;
	struct modelcfg_group *groups;
	struct sched_options sched;
	int *preferred;
	json_t *json;
};

/* An integer from a JSON number or a numeric string (protobuf's JSON form of int64). */
static int json_int(const json_t *v, long long *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		long long x = strtoll(s, &end, 10);
		if (*s && !*end && !errno) {
			*out = x;
			return 0;
		}
	}
	return -EINVAL;
}

/* Read an optional integer field within [lo, hi]. */
static int get_int(const json_t *obj, const char *key, long long lo, long long hi, long long def,
		   long long *out, const char *where, char **err)
{
	const json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (json_int(v, out) < 0)
		return acc_err(err, -EINVAL, "%s%s: expected an integer", where, key);
	if (*out < lo || *out > hi)
		return acc_err(err, -EINVAL, "%s%s: %lld is outside %lld..%lld", where, key, *out, lo, hi);
	return 0;
}

/* Read an optional string field. */
static int get_str(const json_t *obj, const char *key, const char **out, const char *where, char **err)
{
	const json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return acc_err(err, -EINVAL, "%s%s: expected a string", where, key);
	*out = json_string_value(v);
	return 0;
}

/* Check the tensor list under key (input/output) for shape and types. */
static int check_tensors(const json_t *cfg, const char *key, char **err)
{
	const json_t *arr = json_object_get(cfg, key);
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return acc_err(err, -EINVAL, "config %s: expected an array", key);
	size_t i;
	const json_t *t;
	json_array_foreach(arr, i, t) {
		char where[64];
		snprintf(where, sizeof(where), "config %s[%zu].", key, i);
		const char *name, *dt;
		if (!json_is_object(t))
			return acc_err(err, -EINVAL, "config %s[%zu]: expected an object", key, i);
		if (get_str(t, "name", &name, where, err) < 0 || get_str(t, "data_type", &dt, where, err) < 0)
			return -EINVAL;
		if (!name || !*name)
			return acc_err(err, -EINVAL, "%sname is missing", where);
		if (dt && dtype_from_config_name(dt) == DT_INVALID)
			return acc_err(err, -EINVAL, "%sdata_type: unknown type '%s'", where, dt);
		const json_t *dims = json_object_get(t, "dims");
		if (dims && !json_is_array(dims))
			return acc_err(err, -EINVAL, "%sdims: expected an array", where);
		if (dims && json_array_size(dims) > TENSOR_MAX_DIMS - 1)
			return acc_err(err, -EINVAL, "%sdims: more than %d dimensions", where, TENSOR_MAX_DIMS - 1);
		size_t k;
		const json_t *d;
		json_array_foreach(dims, k, d) {
			long long x;
			if (json_int(d, &x) < 0 || x < -1 || x == 0 || x > (1ll << 40))
				return acc_err(err, -EINVAL, "%sdims[%zu]: expected -1 or a positive integer", where, k);
		}
		if (json_is_true(json_object_get(t, "is_shape_tensor")))
			return acc_err(err, -ENOTSUP, "%sis_shape_tensor is not supported", where);
		if (json_object_get(t, "reshape"))
			return acc_err(err, -ENOTSUP, "%sreshape is not supported", where);
	}
	return 0;
}

/* Parse and type-check a configuration. */
int modelcfg_parse(const char *name, const char *text, json_t **out, char **err)
{
	*out = NULL;
	if (!text)
		return 0;
	json_error_t je;
	json_t *cfg = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!cfg)
		return acc_err(err, -EINVAL, "config.json: line %d column %d: %s", je.line, je.column, je.text);
	int rc = -EINVAL;
	const char *s;
	long long x;
	if (!json_is_object(cfg)) {
		acc_err(err, -EINVAL, "config.json: expected a JSON object");
		goto bad;
	}
	if (get_str(cfg, "name", &s, "config ", err) < 0)
		goto bad;
	if (s && *s && strcmp(s, name) != 0) {
		acc_err(err, -EINVAL, "config name '%s' does not match the model directory '%s'", s, name);
		goto bad;
	}
	if (get_str(cfg, "platform", &s, "config ", err) < 0)
		goto bad;
	if (s && *s && strcmp(s, "onnxruntime_onnx") != 0 && strcmp(s, "onnx") != 0) {
		rc = acc_err(err, -ENOTSUP, "platform '%s' is not supported (acceld serves ONNX networks: use \"onnxruntime_onnx\")", s);
		goto bad;
	}
	if (get_str(cfg, "backend", &s, "config ", err) < 0)
		goto bad;
	if (s && *s && strcmp(s, "onnxruntime") != 0 && strcmp(s, "acceld") != 0) {
		rc = acc_err(err, -ENOTSUP, "backend '%s' is not supported (use \"onnxruntime\" or omit it)", s);
		goto bad;
	}
	if (get_str(cfg, "default_model_filename", &s, "config ", err) < 0)
		goto bad;
	if (s && (!*s || strchr(s, '/') || strcmp(s, "..") == 0)) {
		acc_err(err, -EINVAL, "config default_model_filename '%s' is not a file name", s);
		goto bad;
	}
	if (get_int(cfg, "max_batch_size", 0, MODELCFG_MAX_BATCH, 0, &x, "config ", err) < 0)
		goto bad;
	if (check_tensors(cfg, "input", err) < 0 || check_tensors(cfg, "output", err) < 0)
		goto bad;
	const json_t *vp = json_object_get(cfg, "version_policy");
	if (vp && !json_is_object(vp)) {
		acc_err(err, -EINVAL, "config version_policy: expected an object");
		goto bad;
	}
	if (vp) {
		const json_t *latest = json_object_get(vp, "latest"), *spec = json_object_get(vp, "specific");
		if (latest && get_int(latest, "num_versions", 1, 1000, 1, &x, "config version_policy.latest.", err) < 0)
			goto bad;
		if (spec) {
			const json_t *vs = json_object_get(spec, "versions");
			size_t i;
			const json_t *v;
			if (!json_is_array(vs)) {
				acc_err(err, -EINVAL, "config version_policy.specific.versions: expected an array");
				goto bad;
			}
			json_array_foreach(vs, i, v) {
				if (json_int(v, &x) < 0 || x <= 0) {
					acc_err(err, -EINVAL, "config version_policy.specific.versions[%zu]: expected a positive integer", i);
					goto bad;
				}
			}
		}
	}
	const json_t *ig = json_object_get(cfg, "instance_group");
	if (ig && !json_is_array(ig)) {
		acc_err(err, -EINVAL, "config instance_group: expected an array");
		goto bad;
	}
	size_t i;
	const json_t *g;
	long long instances = 0;
	json_array_foreach(ig, i, g) {
		char where[64];
		snprintf(where, sizeof(where), "config instance_group[%zu].", i);
		if (!json_is_object(g) || get_int(g, "count", 1, 64, 1, &x, where, err) < 0 ||
		    get_str(g, "kind", &s, where, err) < 0) {
			if (!json_is_object(g))
				acc_err(err, -EINVAL, "config instance_group[%zu]: expected an object", i);
			goto bad;
		}
		instances += x;
		if (instances > MODELCFG_MAX_INSTANCES) {
			acc_err(err, -EINVAL, "config instance_group: more than %d instances in all",
				MODELCFG_MAX_INSTANCES);
			goto bad;
		}
		if (s && strcmp(s, "KIND_CPU") != 0 && strcmp(s, "KIND_AUTO") != 0 && strcmp(s, "KIND_GPU") != 0) {
			rc = acc_err(err, -ENOTSUP, "%skind '%s' is not supported (KIND_CPU, KIND_GPU, KIND_AUTO)", where, s);
			goto bad;
		}
		const json_t *gpus = json_object_get(g, "gpus");
		if (gpus && (!json_is_array(gpus) || json_array_size(gpus) > 16)) {
			acc_err(err, -EINVAL, "%sgpus: expected an array of at most 16 device indices", where);
			goto bad;
		}
	}
	const json_t *db = json_object_get(cfg, "dynamic_batching");
	if (db && !json_is_object(db)) {
		acc_err(err, -EINVAL, "config dynamic_batching: expected an object");
		goto bad;
	}
	if (db) {
		const char *w = "config dynamic_batching.";
		if (get_int(db, "max_queue_delay_microseconds", 0, 10000000, 0, &x, w, err) < 0 ||
		    get_int(db, "priority_levels", 0, 16, 0, &x, w, err) < 0 ||
		    get_int(db, "default_priority_level", 0, 16, 0, &x, w, err) < 0)
			goto bad;
		const json_t *pb = json_object_get(db, "preferred_batch_size");
		if (pb && !json_is_array(pb)) {
			acc_err(err, -EINVAL, "%spreferred_batch_size: expected an array", w);
			goto bad;
		}
		const json_t *qp = json_object_get(db, "default_queue_policy");
		if (qp && (!json_is_object(qp) ||
			   get_int(qp, "max_queue_size", 0, 1 << 24, 0, &x, "config dynamic_batching.default_queue_policy.", err) < 0)) {
			if (!json_is_object(qp))
				acc_err(err, -EINVAL, "%sdefault_queue_policy: expected an object", w);
			goto bad;
		}
	}
	*out = cfg;
	return 0;
bad:
	json_decref(cfg);
	return rc;
}

/* Model file name in a version directory. */
const char *modelcfg_filename(const json_t *cfg)
{
	const json_t *v = cfg ? json_object_get(cfg, "default_model_filename") : NULL;
	return json_is_string(v) ? json_string_value(v) : "model.onnx";
}

/* Apply version_policy to the available versions. */
long long *modelcfg_select_versions(const json_t *cfg, const long long *avail, size_t n_avail, size_t *n)
{
	long long *sel = xcalloc(n_avail ? n_avail : 1, sizeof(*sel));
	const json_t *vp = cfg ? json_object_get(cfg, "version_policy") : NULL;
	const json_t *spec = vp ? json_object_get(vp, "specific") : NULL;
	*n = 0;
	if (vp && json_object_get(vp, "all")) {
		memcpy(sel, avail, n_avail * sizeof(*sel));
		*n = n_avail;
	} else if (spec) {
		const json_t *vs = json_object_get(spec, "versions");
		for (size_t i = 0; i < n_avail; i++) {
			size_t k;
			const json_t *v;
			json_array_foreach(vs, k, v) {
				long long x;
				if (json_int(v, &x) == 0 && x == avail[i]) {
					sel[(*n)++] = avail[i];
					break;
				}
			}
		}
	} else {
		long long keep = 1;
		const json_t *latest = vp ? json_object_get(vp, "latest") : NULL;
		if (latest)
			json_int(json_object_get(latest, "num_versions"), &keep);
		for (size_t i = 0; i < n_avail && (long long)*n < keep; i++)
			sel[(*n)++] = avail[i];
	}
	return sel;
}

/* Find a tensor entry by name in a config array. */
static const json_t *find_tensor(const json_t *arr, const char *name)
{
	size_t i;
	const json_t *t;
	json_array_foreach(arr, i, t) {
		const json_t *n = json_object_get(t, "name");
		if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
			return t;
	}
	return NULL;
}

/* Names of the graph's tensors, for error messages (fresh string). */
static char *graph_names(const struct eng_model *eng, bool inputs)
{
	size_t n = inputs ? eng_model_n_inputs(eng) : eng_model_n_outputs(eng);
	char *s = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		const struct eng_io *io = inputs ? eng_model_input(eng, i) : eng_model_output(eng, i);
		char *t = xasprintf("%s%s'%s'", s, i ? ", " : "", io->name);
		free(s);
		s = t;
	}
	return s;
}

/* Merge one graph tensor with its config entry (may be NULL) into io. */
static int merge_io(const char *kind, const struct eng_io *g, const json_t *t, int mbs,
		    struct model_io *io, char **err)
{
	io->name = xstrdup(g->name);
	io->dtype = g->dtype;
	io->ndims = g->ndims;
	memcpy(io->dims, g->dims, sizeof(io->dims));
	/* An output may leave its rank undeclared (reported with an empty shape); an input may not:
	 * requests are checked against it. */
	if (g->ndims < 0 && (strcmp(kind, "input") == 0 || (t && json_object_get(t, "dims"))))
		return acc_err(err, -EINVAL, "%s '%s' has no declared shape in the ONNX graph", kind, g->name);
	if (mbs > 0 && (g->ndims < 1 || g->dims[0] >= 0))
		return acc_err(err, -EINVAL,
			       "max_batch_size is %d but %s '%s' has no variable first (batch) dimension in the ONNX graph",
			       mbs, kind, g->name);
	if (!t)
		return 0;
	const char *dt = json_string_value(json_object_get(t, "data_type"));
	if (dt && dtype_from_config_name(dt) != g->dtype)
		return acc_err(err, -EINVAL, "%s '%s': config data_type %s, the ONNX graph has %s", kind,
			       g->name, dt, dtype_config_name(g->dtype));
	const json_t *dims = json_object_get(t, "dims");
	if (!dims)
		return 0;
	int off = mbs > 0 ? 1 : 0;
	int nd = (int)json_array_size(dims) + off;
	if (nd != g->ndims)
		return acc_err(err, -EINVAL, "%s '%s': config dims give %d dimensions%s, the ONNX graph has %d",
			       kind, g->name, nd, off ? " (with the batch dimension)" : "", g->ndims);
	for (int d = off; d < nd; d++) {
		long long x = 0;
		json_int(json_array_get(dims, (size_t)(d - off)), &x);
		if (x >= 0 && g->dims[d] >= 0 && x != g->dims[d])
			return acc_err(err, -EINVAL, "%s '%s': config dimension %d is %lld, the ONNX graph has %lld",
				       kind, g->name, d, x, (long long)g->dims[d]);
		if (x >= 0)
			io->dims[d] = x;
	}
	return 0;
}

/* Config JSON of one tensor. */
static json_t *io_json(const struct model_io *io, int mbs)
{
	json_t *dims = json_array();
	for (int d = mbs > 0 ? 1 : 0; d < io->ndims; d++)
		json_array_append_new(dims, json_integer(io->dims[d]));
	return json_pack("{s:s, s:s, s:o}", "name", io->name, "data_type", dtype_config_name(io->dtype),
			 "dims", dims);
}

/* Build the effective configuration. */
int modelcfg_build(const char *name, const json_t *cfg, const struct eng_model *eng,
		   struct modelcfg **out, char **err)
{
	struct modelcfg *c = xcalloc(1, sizeof(*c));
	int rc = 0;
	long long x;
	const char *plat = cfg ? json_string_value(json_object_get(cfg, "platform")) : NULL;
	c->platform = xstrdup(plat && *plat ? plat : "onnxruntime_onnx");

	size_t n_in = eng_model_n_inputs(eng), n_out = eng_model_n_outputs(eng);
	bool derived_batch = false;
	if (cfg) {
		get_int(cfg, "max_batch_size", 0, MODELCFG_MAX_BATCH, 0, &x, "", NULL);
		c->max_batch_size = (int)x;
	} else {
		/* Without a config, batch when every input and output has a variable first dim. */
		bool all = n_in > 0;
		for (size_t i = 0; i < n_in; i++)
			all = all && eng_model_input(eng, i)->ndims > 0 && eng_model_input(eng, i)->dims[0] < 0;
		for (size_t i = 0; i < n_out; i++)
			all = all && eng_model_output(eng, i)->ndims > 0 && eng_model_output(eng, i)->dims[0] < 0;
		c->max_batch_size = all ? MODELCFG_DERIVED_MAX_BATCH : 0;
		derived_batch = all;
	}
	const json_t *cin = cfg ? json_object_get(cfg, "input") : NULL;
	const json_t *cout = cfg ? json_object_get(cfg, "output") : NULL;
	c->n_in = n_in;
	c->n_out = n_out;
	c->in = xcalloc(n_in ? n_in : 1, sizeof(*c->in));
	c->out = xcalloc(n_out ? n_out : 1, sizeof(*c->out));
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		const json_t *arr = pass ? cout : cin;
		size_t i;
		const json_t *t;
		json_array_foreach(arr, i, t) {
			const char *tn = json_string_value(json_object_get(t, "name"));
			bool found = false;
			for (size_t k = 0; k < (pass ? n_out : n_in) && !found; k++)
				found = strcmp((pass ? eng_model_output(eng, k) : eng_model_input(eng, k))->name, tn) == 0;
			if (!found) {
				char *names = graph_names(eng, !pass);
				rc = acc_err(err, -EINVAL, "config %s '%s' is not in the ONNX graph (graph %ss: %s)",
					     pass ? "output" : "input", tn, pass ? "output" : "input", names);
				free(names);
				break;
			}
		}
	}
	for (size_t i = 0; i < n_in && rc == 0; i++) {
		const struct eng_io *g = eng_model_input(eng, i);
		const json_t *t = cin ? find_tensor(cin, g->name) : NULL;
		if (cin && !t)
			rc = acc_err(err, -EINVAL, "ONNX input '%s' is missing from the config's input list", g->name);
		else
			rc = merge_io("input", g, t, c->max_batch_size, &c->in[i], err);
	}
	for (size_t i = 0; i < n_out && rc == 0; i++) {
		const struct eng_io *g = eng_model_output(eng, i);
		rc = merge_io("output", g, cout ? find_tensor(cout, g->name) : NULL, c->max_batch_size,
			      &c->out[i], err);
	}
	if (rc < 0)
		goto fail;

	/* Instance groups. */
	const json_t *ig = cfg ? json_object_get(cfg, "instance_group") : NULL;
	size_t n_groups = json_is_array(ig) && json_array_size(ig) ? json_array_size(ig) : 1;
	c->groups = xcalloc(n_groups, sizeof(*c->groups));
	c->n_groups = n_groups;
	for (size_t i = 0; i < n_groups; i++) {
		const json_t *g = json_is_array(ig) ? json_array_get(ig, i) : NULL;
		struct modelcfg_group *grp = &c->groups[i];
		const char *kind = g ? json_string_value(json_object_get(g, "kind")) : NULL;
		snprintf(grp->kind, sizeof(grp->kind), "%s",
			 !kind || strcmp(kind, "KIND_AUTO") == 0 ? "KIND_CPU" : kind);
		x = 1;
		if (g)
			get_int(g, "count", 1, 64, 1, &x, "", NULL);
		grp->count = (int)x;
		const json_t *gpus = g ? json_object_get(g, "gpus") : NULL;
		size_t k;
		const json_t *v;
		json_array_foreach(gpus, k, v) {
			long long idx;
			if (json_int(v, &idx) < 0 || idx < 0 || idx > 1024) {
				rc = acc_err(err, -EINVAL, "config instance_group[%zu].gpus[%zu]: expected a device index", i, k);
				goto fail;
			}
			grp->devices[grp->n_devices++] = (int)idx;
		}
	}

	/* Scheduling. */
	const json_t *db = cfg ? json_object_get(cfg, "dynamic_batching") : NULL;
	c->sched.max_batch_size = c->max_batch_size;
	c->sched.dynamic_batching = (db != NULL || derived_batch) && c->max_batch_size > 0;
	c->sched.priority_levels = 1;
	c->sched.default_priority = 1;
	if (db) {
		get_int(db, "max_queue_delay_microseconds", 0, 10000000, 0, &x, "", NULL);
		c->sched.max_queue_delay_us = (uint64_t)x;
		get_int(db, "priority_levels", 0, 16, 0, &x, "", NULL);
		c->sched.priority_levels = x > 0 ? (int)x : 1;
		get_int(db, "default_priority_level", 0, 16, 0, &x, "", NULL);
		c->sched.default_priority = x > 0 ? (int)x : (c->sched.priority_levels + 1) / 2;
		const json_t *qp = json_object_get(db, "default_queue_policy");
		if (qp) {
			get_int(qp, "max_queue_size", 0, 1 << 24, 0, &x, "", NULL);
			c->sched.max_queue_size = (size_t)x;
		}
		const json_t *pb = json_object_get(db, "preferred_batch_size");
		size_t k;
		const json_t *v;
		c->preferred = xcalloc(json_array_size(pb) + 1, sizeof(int));
		json_array_foreach(pb, k, v) {
			if (json_int(v, &x) < 0 || x < 1 || x > c->max_batch_size) {
				rc = acc_err(err, -EINVAL, "config dynamic_batching.preferred_batch_size[%zu]: expected 1..max_batch_size", k);
				goto fail;
			}
			c->preferred[c->sched.n_preferred++] = (int)x;
		}
		c->sched.preferred_batch_sizes = c->preferred;
	}

	/* The effective configuration, as Triton would report it. */
	json_t *j = json_object();
	json_object_set_new(j, "name", json_string(name));
	json_object_set_new(j, "platform", json_string(c->platform));
	json_object_set_new(j, "backend", json_string("acceld"));
	json_object_set_new(j, "max_batch_size", json_integer(c->max_batch_size));
	json_t *ji = json_array(), *jo = json_array(), *jg = json_array();
	for (size_t i = 0; i < n_in; i++)
		json_array_append_new(ji, io_json(&c->in[i], c->max_batch_size));
	for (size_t i = 0; i < n_out; i++)
		json_array_append_new(jo, io_json(&c->out[i], c->max_batch_size));
	json_object_set_new(j, "input", ji);
	json_object_set_new(j, "output", jo);
	const json_t *vp = cfg ? json_object_get(cfg, "version_policy") : NULL;
	json_object_set_new(j, "version_policy",
			    vp ? json_deep_copy(vp) : json_pack("{s:{s:i}}", "latest", "num_versions", 1));
	for (size_t i = 0; i < n_groups; i++) {
		json_t *g = json_pack("{s:s, s:s, s:i}", "name", "", "kind", c->groups[i].kind, "count",
				      c->groups[i].count);
		json_object_set_new(g, "name", json_string_nocheck(name));
		if (c->groups[i].n_devices) {
			json_t *gp = json_array();
			for (size_t k = 0; k < c->groups[i].n_devices; k++)
				json_array_append_new(gp, json_integer(c->groups[i].devices[k]));
			json_object_set_new(g, "gpus", gp);
		}
		json_array_append_new(jg, g);
	}
	json_object_set_new(j, "instance_group", jg);
	if (c->sched.dynamic_batching) {
		json_t *pb = json_array();
		for (size_t i = 0; i < c->sched.n_preferred; i++)
			json_array_append_new(pb, json_integer(c->preferred[i]));
		json_object_set_new(j, "dynamic_batching",
				    json_pack("{s:o, s:I, s:i, s:i}", "preferred_batch_size", pb,
					      "max_queue_delay_microseconds", (json_int_t)c->sched.max_queue_delay_us,
					      "priority_levels", c->sched.priority_levels,
					      "default_priority_level", c->sched.default_priority));
	}
	json_object_set_new(j, "default_model_filename", json_string(modelcfg_filename(cfg)));
	c->json = j;
	*out = c;
	return 0;
fail:
	modelcfg_free(c);
	return rc;
}

/* Free a configuration. */
void modelcfg_free(struct modelcfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_in; i++)
		free(c->in[i].name);
	for (size_t i = 0; i < c->n_out; i++)
		free(c->out[i].name);
	free(c->in);
	free(c->out);
	free(c->groups);
	free(c->preferred);
	free(c->platform);
	json_decref(c->json);
	free(c);
}

const char *modelcfg_platform(const struct modelcfg *c) { return c->platform; }
int modelcfg_max_batch_size(const struct modelcfg *c) { return c->max_batch_size; }
size_t modelcfg_n_inputs(const struct modelcfg *c) { return c->n_in; }
size_t modelcfg_n_outputs(const struct modelcfg *c) { return c->n_out; }
const struct model_io *modelcfg_input(const struct modelcfg *c, size_t i) { return &c->in[i]; }
const struct model_io *modelcfg_output(const struct modelcfg *c, size_t i) { return &c->out[i]; }
size_t modelcfg_n_groups(const struct modelcfg *c) { return c->n_groups; }
const struct modelcfg_group *modelcfg_group(const struct modelcfg *c, size_t i) { return &c->groups[i]; }
const struct sched_options *modelcfg_sched(const struct modelcfg *c) { return &c->sched; }
const json_t *modelcfg_json(const struct modelcfg *c) { return c->json; }
