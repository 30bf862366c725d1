/* modelcfg.h - a model's configuration: Triton's model configuration in its JSON form
 * (config.json), checked against the ONNX graph, or derived from the graph when absent. */
#ifndef ACC_MODELCFG_H
#define ACC_MODELCFG_H

#include <stddef.h>

#include <jansson.h>

#include "engine/engine.h"
#include "repo.h"
#include "scheduler.h"

struct modelcfg;

/* One instance_group entry: count instances of kind on the listed device indices. */
struct modelcfg_group {
	char kind[16];
	int count;
	size_t n_devices;
	int devices[16];
};

/* Parse config text (NULL = none: *out = NULL). Checks JSON syntax, that "name" (if given)
 * equals name, and the types of the fields acceld reads. The caller owns *out (json_decref). */
int modelcfg_parse(const char *name, const char *text, json_t **out, char **err);
/* The model file name inside a version directory ("model.onnx" unless
 * default_model_filename says otherwise); points into cfg. */
const char *modelcfg_filename(const json_t *cfg);
/* Which of the available versions (sorted newest first) the version_policy selects; a fresh
 * array of *n entries. */
long long *modelcfg_select_versions(const json_t *cfg, const long long *avail, size_t n_avail, size_t *n);
/* Build the effective configuration of name from cfg (may be NULL) and the loaded graph. */
int modelcfg_build(const char *name, const json_t *cfg, const struct eng_model *eng,
		   struct modelcfg **out, char **err);
/* Free a configuration. */
void modelcfg_free(struct modelcfg *c);

/* Accessors; everything lives as long as c. */
const char *modelcfg_platform(const struct modelcfg *c);
int modelcfg_max_batch_size(const struct modelcfg *c);
size_t modelcfg_n_inputs(const struct modelcfg *c);
size_t modelcfg_n_outputs(const struct modelcfg *c);
/* Input/output i in graph order, with the batch dimension (-1) first when batching. */
const struct model_io *modelcfg_input(const struct modelcfg *c, size_t i);
const struct model_io *modelcfg_output(const struct modelcfg *c, size_t i);
size_t modelcfg_n_groups(const struct modelcfg *c);
const struct modelcfg_group *modelcfg_group(const struct modelcfg *c, size_t i);
/* Scheduler options (dynamic batching, priorities, queue policy). */
const struct sched_options *modelcfg_sched(const struct modelcfg *c);
/* The complete effective configuration as Triton JSON. */
const json_t *modelcfg_json(const struct modelcfg *c);

#endif
