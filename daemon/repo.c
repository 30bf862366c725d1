/* repo.c - model repository: discovery, configuration, versions, load and unload. */
#include "config.h"
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "engine/engine.h"
#include "log.h"
#include "modelcfg.h"
#include "scheduler.h"
#include "util.h"

struct model {
	atomic_int refs;
	char *name, *version;
	long long version_num;
	struct modelcfg *cfg;
	struct eng_model *eng;
	struct sched *sched;
	size_t n_versions;
	const char **versions; /* names of the versions loaded together, newest first */
	char **version_store;
};

/* One model name in the repository and its loaded versions (newest first). */
struct entry {
	char *name;
	enum model_state state;
	char *reason;
	size_t n;
	struct model **versions;
};

struct repo {
	char *root;
	struct device_manager *dm;
	int threads;
	pthread_mutex_t lock;      /* entries and their states */
	pthread_mutex_t load_lock; /* one load or unload at a time */
	size_t n;
	struct entry **entries;
	atomic_bool ready;
};

/* Triton's names for model states. */
const char *model_state_name(enum model_state s)
{
	switch (s) {
	case MODEL_LOADING: return "LOADING";
	case MODEL_READY: return "READY";
	case MODEL_UNLOADING: return "UNLOADING";
	case MODEL_UNAVAILABLE: return "UNAVAILABLE";
	default: return "UNKNOWN";
	}
}

/* A model name must be one safe path component. */
static int check_name(const char *name, char **err)
{
	if (!name || !*name)
		return acc_err(err, -EINVAL, "model name is empty");
	if (strlen(name) > 200 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    name[0] == '.')
		return acc_err(err, -EINVAL, "invalid model name '%s'", name);
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x20)
			return acc_err(err, -EINVAL, "invalid model name (control character)");
	return 0;
}

/* Open a repository. */
int repo_open(const char *path, struct device_manager *devices, int threads, struct repo **out,
	      char **err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return acc_err(err, -errno, "model repository %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return acc_err(err, -ENOTDIR, "model repository %s is not a directory", path);
	struct repo *r = xcalloc(1, sizeof(*r));
	r->root = xstrdup(path);
	r->dm = devices;
	r->threads = threads;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->load_lock, NULL);
	*out = r;
	return 0;
}

/* Find an entry (lock held). */
static struct entry *find_entry(struct repo *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->entries[i]->name, name) == 0)
			return r->entries[i];
	return NULL;
}

/* Find or add an entry (lock held). */
static struct entry *get_entry(struct repo *r, const char *name)
{
	struct entry *e = find_entry(r, name);
	if (e)
		return e;
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->state = MODEL_UNKNOWN;
	e->reason = xstrdup("");
	r->entries = xreallocarray(r->entries, r->n + 1, sizeof(*r->entries));
	r->entries[r->n++] = e;
	return e;
}

/* Set an entry's state and reason (lock held). */
static void set_state(struct entry *e, enum model_state s, const char *reason)
{
	e->state = s;
	free(e->reason);
	e->reason = xstrdup(reason ? reason : "");
}

/* Free a model whose last reference is gone. */
static void model_free(struct model *m)
{
	if (m->sched)
		sched_free(m->sched);
	if (m->eng)
		eng_model_free(m->eng);
	modelcfg_free(m->cfg);
	for (size_t i = 0; i < m->n_versions; i++)
		free(m->version_store[i]);
	free(m->version_store);
	free(m->versions);
	free(m->name);
	free(m->version);
	free(m);
}

/* Take a reference. */
struct model *model_get(struct model *m)
{
	atomic_fetch_add(&m->refs, 1);
	return m;
}

/* Drop a reference. */
void model_put(struct model *m)
{
	if (m && atomic_fetch_sub(&m->refs, 1) == 1)
		model_free(m);
}

/* Version numbers present under dir (numeric subdirectories), sorted descending. */
static size_t scan_versions(const char *dir, long long **out)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	long long *v = NULL;
	if (!d) {
		*out = NULL;
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		errno = 0;
		long long x = strtoll(de->d_name, &end, 10);
		if (*end || end == de->d_name || errno || x <= 0 || de->d_name[0] == '+' || de->d_name[0] == '-')
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		struct stat st;
		int isdir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		free(p);
		if (!isdir)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n++] = x;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && v[j - 1] < v[j]; j--) {
			long long t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*out = v;
	return n;
}

/* Load one version: ONNX → engine model → config check → instances → scheduler. */
static int load_version(struct repo *r, const char *name, const char *dir, long long ver,
			const json_t *cfg, struct model **out, char **err)
{
	char *path = NULL, *bytes = NULL, *msg = NULL;
	size_t len;
	struct model *m = xcalloc(1, sizeof(*m));
	atomic_init(&m->refs, 1);
	m->name = xstrdup(name);
	m->version = xasprintf("%lld", ver);
	m->version_num = ver;
	int rc;

	path = xasprintf("%s/%lld/%s", dir, ver, modelcfg_filename(cfg));
	rc = acc_read_file(path, &bytes, &len, &msg);
	if (rc < 0)
		goto fail;
	struct eng_options eo = { .threads = r->threads };
	rc = eng_model_load(bytes, len, &eo, &m->eng, &msg);
	free(bytes);
	bytes = NULL;
	if (rc < 0) {
		char *m2 = xasprintf("%s: %s", path, msg);
		free(msg);
		msg = m2;
		goto fail;
	}
	rc = modelcfg_build(name, cfg, m->eng, &m->cfg, &msg);
	if (rc < 0)
		goto fail;

	size_t n_inst = 0;
	struct device_instance **inst = NULL;
	for (size_t g = 0; g < modelcfg_n_groups(m->cfg); g++) {
		const struct modelcfg_group *grp = modelcfg_group(m->cfg, g);
		for (int k = 0; k < grp->count; k++) {
			struct device *dev = device_find(r->dm, grp->kind, grp->n_devices ? grp->devices[k % grp->n_devices] : 0);
			if (!dev) {
				rc = acc_err(&msg, -ENODEV, "instance_group %zu: no usable device of kind %s",
					     g, grp->kind);
				break;
			}
			struct device_instance *in;
			rc = device_instance_create(dev, m->eng, &in, &msg);
			if (rc < 0)
				break;
			inst = xreallocarray(inst, n_inst + 1, sizeof(*inst));
			inst[n_inst++] = in;
		}
		if (rc < 0)
			break;
	}
	if (rc == 0)
		rc = sched_create(modelcfg_sched(m->cfg), m, inst, n_inst, &m->sched, &msg);
	if (rc < 0) {
		for (size_t i = 0; i < n_inst; i++)
			device_instance_free(inst[i]);
		free(inst);
		goto fail;
	}
	free(inst);
	free(path);
	*out = m;
	return 0;
fail:
	free(path);
	free(bytes);
	model_put(m);
	acc_err(err, rc, "version %lld: %s", ver, msg ? msg : "load failed");
	free(msg);
	return rc;
}

/* Stop a model's scheduler and drop the repository's reference. */
static void retire(struct model *m)
{
	if (m->sched)
		sched_shutdown(m->sched);
	model_put(m);
}

/* Load or reload a model. */
int repo_load(struct repo *r, const char *name, const char *config_json, char **err)
{
	int rc = check_name(name, err);
	if (rc < 0)
		return rc;
	char *dir = xasprintf("%s/%s", r->root, name);
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(dir);
		return acc_err(err, -ENOENT, "no model '%s' in the repository %s", name, r->root);
	}
	pthread_mutex_lock(&r->load_lock);
	pthread_mutex_lock(&r->lock);
	struct entry *e = get_entry(r, name);
	enum model_state before = e->state;
	if (e->n == 0) /* a reload keeps the loaded versions serving until the swap */
		set_state(e, MODEL_LOADING, "");
	pthread_mutex_unlock(&r->lock);

	char *cfg_text = NULL, *msg = NULL;
	json_t *cfg = NULL;
	size_t n_new = 0;
	struct model **fresh = NULL;
	long long *vers = NULL;
	size_t nv = 0;
	if (config_json) {
		cfg_text = xstrdup(config_json);
	} else {
		char *p = xasprintf("%s/config.json", dir);
		size_t len;
		if (access(p, F_OK) == 0 && (rc = acc_read_file(p, &cfg_text, &len, &msg)) < 0) {
			free(p);
			goto done;
		}
		free(p);
	}
	rc = modelcfg_parse(name, cfg_text, &cfg, &msg);
	if (rc < 0)
		goto done;
	nv = scan_versions(dir, &vers);
	size_t n_sel = 0;
	long long *sel = modelcfg_select_versions(cfg, vers, nv, &n_sel);
	if (n_sel == 0) {
		rc = acc_err(&msg, -ENOENT, "no version directory to load (looked for %s/<N>/model.onnx)", dir);
		free(sel);
		goto done;
	}
	fresh = xcalloc(n_sel, sizeof(*fresh));
	for (size_t i = 0; i < n_sel; i++) {
		rc = load_version(r, name, dir, sel[i], cfg, &fresh[n_new], &msg);
		if (rc < 0)
			break;
		n_new++;
	}
	free(sel);
	if (rc == 0) {
		const char **names = xcalloc(n_new, sizeof(*names));
		for (size_t i = 0; i < n_new; i++)
			names[i] = fresh[i]->version;
		for (size_t i = 0; i < n_new; i++) {
			fresh[i]->version_store = xcalloc(n_new, sizeof(char *));
			fresh[i]->versions = xcalloc(n_new, sizeof(char *));
			for (size_t k = 0; k < n_new; k++)
				fresh[i]->versions[k] = fresh[i]->version_store[k] = xstrdup(names[k]);
			fresh[i]->n_versions = n_new;
		}
		free(names);
	}
done:
	free(vers);
	free(cfg_text);
	json_decref(cfg);
	free(dir);
	struct model **old = NULL;
	size_t n_old = 0;
	pthread_mutex_lock(&r->lock);
	if (rc == 0) {
		old = e->versions;
		n_old = e->n;
		e->versions = fresh;
		e->n = n_new;
		fresh = NULL;
		set_state(e, MODEL_READY, "");
		log_info("model %s: loaded (%zu version%s, newest %s)", name, n_new, n_new == 1 ? "" : "s",
			 e->versions[0]->version);
	} else if (e->n > 0) {
		/* A failed reload keeps the versions that were serving. */
		set_state(e, before == MODEL_UNKNOWN ? MODEL_READY : before, "");
		log_warn("model %s: reload failed, previous version keeps serving: %s", name, msg);
	} else {
		set_state(e, MODEL_UNAVAILABLE, msg);
		log_warn("model %s: unavailable: %s", name, msg);
	}
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n_old; i++)
		retire(old[i]);
	free(old);
	for (size_t i = 0; i < n_new && fresh; i++)
		retire(fresh[i]);
	free(fresh);
	pthread_mutex_unlock(&r->load_lock);
	if (rc < 0) {
		acc_err(err, rc, "model '%s': %s", name, msg ? msg : "load failed");
		free(msg);
		return rc;
	}
	return 0;
}

/* Unload a model. */
int repo_unload(struct repo *r, const char *name, char **err)
{
	int rc = check_name(name, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&r->load_lock);
	pthread_mutex_lock(&r->lock);
	struct entry *e = find_entry(r, name);
	if (!e || (e->n == 0 && e->state != MODEL_UNAVAILABLE)) {
		pthread_mutex_unlock(&r->lock);
		pthread_mutex_unlock(&r->load_lock);
		return acc_err(err, -ENOENT, "model '%s' is not loaded", name);
	}
	struct model **old = e->versions;
	size_t n_old = e->n;
	e->versions = NULL;
	e->n = 0;
	set_state(e, MODEL_UNLOADING, "");
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n_old; i++)
		retire(old[i]);
	free(old);
	pthread_mutex_lock(&r->lock);
	set_state(e, MODEL_UNAVAILABLE, "unloaded");
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_unlock(&r->load_lock);
	log_info("model %s: unloaded", name);
	return 0;
}

/* Load every model directory under the root. */
void repo_load_all(struct repo *r)
{
	DIR *d = opendir(r->root);
	if (d) {
		char **names = NULL;
		size_t n = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", r->root, de->d_name);
			struct stat st;
			if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
				names = xreallocarray(names, n + 1, sizeof(*names));
				names[n++] = xstrdup(de->d_name);
			}
			free(p);
		}
		closedir(d);
		for (size_t i = 0; i < n; i++) {
			char *msg = NULL;
			repo_load(r, names[i], NULL, &msg); /* failures are logged and kept */
			free(msg);
			free(names[i]);
		}
		free(names);
	} else {
		log_err("cannot read model repository %s: %s", r->root, strerror(errno));
	}
	atomic_store(&r->ready, true);
}

/* Ready once the initial load is done. */
bool repo_ready(const struct repo *r)
{
	return atomic_load(&((struct repo *)r)->ready);
}

/* Unload everything and free. */
void repo_close(struct repo *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		struct entry *e = r->entries[i];
		for (size_t k = 0; k < e->n; k++)
			retire(e->versions[k]);
		free(e->versions);
		free(e->name);
		free(e->reason);
		free(e);
	}
	free(r->entries);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->load_lock);
	free(r->root);
	free(r);
}

/* Add one index row. */
static void index_add(struct repo_index_entry **out, size_t *n, const char *name, const char *ver,
		      enum model_state s, const char *reason)
{
	*out = xreallocarray(*out, *n + 1, sizeof(**out));
	struct repo_index_entry *x = &(*out)[(*n)++];
	x->name = xstrdup(name);
	x->version = xstrdup(ver);
	x->state = s;
	x->reason = xstrdup(reason);
}

/* List the repository: loaded entries plus model directories never loaded. */
int repo_index(struct repo *r, bool ready_only, struct repo_index_entry **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		struct entry *e = r->entries[i];
		if (e->n == 0) {
			if (!ready_only)
				index_add(out, n, e->name, "", e->state, e->reason);
			continue;
		}
		for (size_t k = 0; k < e->n; k++)
			if (!ready_only || e->state == MODEL_READY)
				index_add(out, n, e->name, e->versions[k]->version, e->state, e->reason);
	}
	pthread_mutex_unlock(&r->lock);
	if (ready_only)
		return 0;
	DIR *d = opendir(r->root);
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", r->root, de->d_name);
		struct stat st;
		int isdir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
		free(p);
		if (!isdir)
			continue;
		bool known = false;
		for (size_t i = 0; i < *n && !known; i++)
			known = strcmp((*out)[i].name, de->d_name) == 0;
		if (!known)
			index_add(out, n, de->d_name, "", MODEL_UNKNOWN, "");
	}
	closedir(d);
	return 0;
}

/* Free an index. */
void repo_index_free(struct repo_index_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].version);
		free(e[i].reason);
	}
	free(e);
}

/* Find a ready version (lock held); NULL if none. */
static struct model *find_version(struct entry *e, const char *version)
{
	if (e->state != MODEL_READY || e->n == 0)
		return NULL;
	if (!version || !*version)
		return e->versions[0];
	for (size_t k = 0; k < e->n; k++)
		if (strcmp(e->versions[k]->version, version) == 0)
			return e->versions[k];
	return NULL;
}

/* Look up a ready model. */
int repo_get(struct repo *r, const char *name, const char *version, struct model **out, char **err)
{
	if (!name || !*name)
		return acc_err(err, -EINVAL, "model name is empty");
	pthread_mutex_lock(&r->lock);
	struct entry *e = find_entry(r, name);
	if (!e) {
		pthread_mutex_unlock(&r->lock);
		return acc_err(err, -ENOENT, "unknown model '%s'", name);
	}
	struct model *m = find_version(e, version);
	if (m) {
		*out = model_get(m);
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	int rc;
	if (e->state == MODEL_READY)
		rc = acc_err(err, -ENOENT, "model '%s' has no version '%s'", name, version);
	else
		rc = acc_err(err, -EAGAIN, "model '%s' is not ready (%s%s%s)", name,
			     model_state_name(e->state), *e->reason ? ": " : "", e->reason);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* State of a model or version. */
enum model_state repo_state(struct repo *r, const char *name, const char *version)
{
	pthread_mutex_lock(&r->lock);
	struct entry *e = name ? find_entry(r, name) : NULL;
	enum model_state s = MODEL_UNKNOWN;
	if (e) {
		s = e->state;
		if (s == MODEL_READY && version && *version && !find_version(e, version))
			s = MODEL_UNKNOWN;
	}
	pthread_mutex_unlock(&r->lock);
	return s;
}

/* Statistics of loaded models. */
int repo_stats(struct repo *r, const char *name, const char *version, struct model_stats **out,
	       size_t *n, char **err)
{
	*out = NULL;
	*n = 0;
	struct model **ms = NULL;
	size_t nm = 0;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		struct entry *e = r->entries[i];
		if (name && *name && strcmp(e->name, name) != 0)
			continue;
		for (size_t k = 0; k < e->n; k++) {
			if (version && *version && strcmp(e->versions[k]->version, version) != 0)
				continue;
			ms = xreallocarray(ms, nm + 1, sizeof(*ms));
			ms[nm++] = model_get(e->versions[k]);
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (name && *name && nm == 0)
		return acc_err(err, -ENOENT, "model '%s'%s%s is not loaded", name,
			       version && *version ? " version " : "", version ? version : "");
	struct model_stats *s = xcalloc(nm ? nm : 1, sizeof(*s));
	for (size_t i = 0; i < nm; i++) {
		s[i].name = xstrdup(ms[i]->name);
		s[i].version = xstrdup(ms[i]->version);
		sched_stats(ms[i]->sched, &s[i]);
		model_put(ms[i]);
	}
	free(ms);
	*out = s;
	*n = nm;
	return 0;
}

/* Free statistics. */
void repo_stats_free(struct model_stats *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].version);
		free(s[i].batch);
	}
	free(s);
}

/* The scheduler of a model (infer.c uses it to submit). */
struct sched *repo_model_sched(struct model *m);
struct sched *repo_model_sched(struct model *m)
{
	return m->sched;
}

const char *model_name(const struct model *m) { return m->name; }
const char *model_version(const struct model *m) { return m->version; }
size_t model_versions(const struct model *m, const char ***out) { *out = m->versions; return m->n_versions; }
const char *model_platform(const struct model *m) { return modelcfg_platform(m->cfg); }
int model_max_batch_size(const struct model *m) { return modelcfg_max_batch_size(m->cfg); }
size_t model_n_inputs(const struct model *m) { return modelcfg_n_inputs(m->cfg); }
size_t model_n_outputs(const struct model *m) { return modelcfg_n_outputs(m->cfg); }
const struct model_io *model_input(const struct model *m, size_t i) { return modelcfg_input(m->cfg, i); }
const struct model_io *model_output(const struct model *m, size_t i) { return modelcfg_output(m->cfg, i); }
const json_t *model_config(const struct model *m) { return modelcfg_json(m->cfg); }
