/* repo.h - the model repository: <repo>/<model>/config.json + <repo>/<model>/<version>/model.onnx.
 *
 * Thread-safe: every function may be called from any thread. A struct model is one loaded
 * version of a network; it is reference-counted: repo_get() returns a reference that the
 * caller drops with model_put(). A model unloaded while requests hold it is freed when the
 * last reference goes.
 */
#ifndef ACC_REPO_H
#define ACC_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dtype.h"

struct repo;
struct model;
struct device_manager;

enum model_state { MODEL_UNKNOWN = 0, MODEL_LOADING, MODEL_READY, MODEL_UNLOADING, MODEL_UNAVAILABLE };

/* A model input or output as the protocol reports it: the full shape, with -1 for a variable
 * dimension (the batch dimension first when max_batch_size > 0). */
struct model_io {
	char *name;
	enum dtype dtype;
	int ndims;
	int64_t dims[TENSOR_MAX_DIMS];
};

/* One row of RepositoryIndex. */
struct repo_index_entry {
	char *name;
	char *version; /* "" when no version is loaded */
	enum model_state state;
	char *reason; /* "" unless UNAVAILABLE */
};

/* Durations are in nanoseconds, summed over the requests counted. */
struct model_stat_duration {
	uint64_t count, ns;
};
struct model_batch_stat {
	uint64_t batch_size;
	struct model_stat_duration compute_input, compute_infer, compute_output;
};
struct model_stats {
	char *name, *version;
	uint64_t last_inference_ms; /* wall clock, ms since the epoch; 0 = never */
	uint64_t inference_count;   /* samples inferred (batch size summed) */
	uint64_t execution_count;   /* batches executed */
	struct model_stat_duration success, fail, queue, compute_input, compute_infer, compute_output;
	size_t n_batch;
	struct model_batch_stat *batch; /* one per batch size seen */
};

/* Open a repository rooted at path (not loaded yet). devices executes the models; threads
 * is each instance's intra-op thread count (0 = one per CPU). */
int repo_open(const char *path, struct device_manager *devices, int threads, struct repo **out,
	      char **err);
/* Load every model found under the root; failures are logged and kept as UNAVAILABLE. */
void repo_load_all(struct repo *r);
/* True once repo_load_all has finished (the server is ready). */
bool repo_ready(const struct repo *r);
/* Close: unload everything and free the repository (no other call may be running). */
void repo_close(struct repo *r);

/* Load (or reload) model name from disk; blocks until done. config_json, if non-NULL,
 * replaces config.json for this load. 0, or -ENOENT (no such model dir) / -EINVAL with *err. */
int repo_load(struct repo *r, const char *name, const char *config_json, char **err);
/* Unload model name; in-flight requests finish. 0 or -ENOENT. */
int repo_unload(struct repo *r, const char *name, char **err);
/* List every model in the repository (found on disk or loaded). ready_only filters. */
int repo_index(struct repo *r, bool ready_only, struct repo_index_entry **out, size_t *n);
/* Free an index listing. */
void repo_index_free(struct repo_index_entry *e, size_t n);

/* Look up a ready model; version NULL or "" = the latest loaded. Returns 0 with a reference,
 * -ENOENT (unknown model or version) or -EAGAIN (known but not ready: *err has the reason). */
int repo_get(struct repo *r, const char *name, const char *version, struct model **out, char **err);
/* State of a model version without taking a reference (MODEL_UNKNOWN if never seen). */
enum model_state repo_state(struct repo *r, const char *name, const char *version);
/* Statistics of one model (name NULL/"" = every loaded model); free with repo_stats_free.
 * -ENOENT if name is given and not loaded. */
int repo_stats(struct repo *r, const char *name, const char *version, struct model_stats **out,
	       size_t *n, char **err);
/* Free statistics. */
void repo_stats_free(struct model_stats *s, size_t n);

/* Take another reference. */
struct model *model_get(struct model *m);
/* Drop a reference. */
void model_put(struct model *m);
/* Accessors; strings live as long as the model. */
const char *model_name(const struct model *m);
const char *model_version(const struct model *m);
/* All versions currently loaded for this model's name, newest first ("1", "2"...). */
size_t model_versions(const struct model *m, const char ***out);
const char *model_platform(const struct model *m);
int model_max_batch_size(const struct model *m);
size_t model_n_inputs(const struct model *m);
size_t model_n_outputs(const struct model *m);
const struct model_io *model_input(const struct model *m, size_t i);
const struct model_io *model_output(const struct model *m, size_t i);
/* The effective configuration in Triton's JSON form (read-only, lives as long as the model). */
const json_t *model_config(const struct model *m);
/* Name of a state ("READY", "UNAVAILABLE", ...) as Triton's RepositoryIndex reports it. */
const char *model_state_name(enum model_state s);

#endif
