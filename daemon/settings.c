/* settings.c - settings table, JSON file loading, command-line overrides. */
#include "config.h"
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

enum cfg_type { CFG_INT, CFG_STR, CFG_STRV };

struct cfg_def {
	const char *name;
	enum cfg_type type;
	long long min, max, def_int;
	const char *def_str; /* CFG_STRV: entries separated by ',' */
	bool reloadable;
	const char *help;
};

static const struct cfg_def table[] = {
	{ "listen", CFG_STRV, 0, 0, 0, "127.0.0.1:8001,unix:/run/acceld/acceld.sock", false,
	  "addresses to serve gRPC on: host:port or unix:/path" },
	{ "model_repository", CFG_STR, 0, 0, 0, "/var/lib/acceld/models", false,
	  "model repository directory" },
	{ "log_level", CFG_STR, 0, 0, 0, "info", true, "error, warning, notice, info or debug" },
	{ "threads", CFG_INT, 0, 1024, 0, NULL, false,
	  "intra-op threads per model instance (0 = one per CPU)" },
	{ "grpc_threads", CFG_INT, 1, 8, 2, NULL, false, "gRPC completion-queue threads" },
	{ "max_message_bytes", CFG_INT, 4096, 2147483647, 67108864, NULL, false,
	  "largest gRPC message accepted or sent" },
};
#define N_SETTINGS ACC_ARRAY_LEN(table)

struct cfg_val {
	long long i;
	char *s;
	size_t n;
	char **v;
	bool cli_set; /* list already replaced by the command line */
};

struct settings {
	struct cfg_val val[N_SETTINGS];
};

/* Index of a setting, or -1. */
static int find(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(table[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Index of a setting the code asks for by name: absence is a programming error. */
static int must_find(const char *name)
{
	int i = find(name);
	if (i < 0)
		fatal("config: no setting named '%s'", name);
	return i;
}

/* Empty a list value. */
static void strv_clear(struct cfg_val *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

/* Append to a list value. */
static void strv_add(struct cfg_val *v, const char *s)
{
	v->v = xreallocarray(v->v, v->n + 1, sizeof(*v->v));
	v->v[v->n++] = xstrdup(s);
}

/* Free one value's storage. */
static void val_clear(struct cfg_val *v)
{
	free(v->s);
	v->s = NULL;
	strv_clear(v);
}

/* Copy a value. */
static void val_copy(struct cfg_val *dst, const struct cfg_val *src)
{
	val_clear(dst);
	dst->i = src->i;
	dst->s = xstrdup(src->s);
	for (size_t k = 0; k < src->n; k++)
		strv_add(dst, src->v[k]);
}

/* Defaults. */
struct settings *settings_new(void)
{
	struct settings *c = xcalloc(1, sizeof(*c));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		struct cfg_val *v = &c->val[i];
		v->i = table[i].def_int;
		if (table[i].type == CFG_STR)
			v->s = xstrdup(table[i].def_str);
		if (table[i].type == CFG_STRV) {
			char *copy = xstrdup(table[i].def_str), *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
				strv_add(v, t);
			free(copy);
		}
	}
	return c;
}

/* Free. */
void settings_free(struct settings *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < N_SETTINGS; i++)
		val_clear(&c->val[i]);
	free(c);
}

/* Check a string setting's value (log_level must parse). */
static int check_str(const struct cfg_def *d, const char *s, char **err)
{
	enum log_level l;
	if (strcmp(d->name, "log_level") == 0 && log_level_parse(s, &l) < 0)
		return acc_err(err, -EINVAL, "%s: unknown level '%s' (%s)", d->name, s, d->help);
	if (!*s)
		return acc_err(err, -EINVAL, "%s: must not be empty", d->name);
	return 0;
}

/* Set one value from JSON into v. */
static int set_json(const struct cfg_def *d, struct cfg_val *v, const json_t *j, char **err)
{
	switch (d->type) {
	case CFG_INT:
		if (!json_is_integer(j))
			return acc_err(err, -EINVAL, "%s: expected an integer", d->name);
		if (json_integer_value(j) < d->min || json_integer_value(j) > d->max)
			return acc_err(err, -EINVAL, "%s: %lld is outside %lld..%lld", d->name,
				       (long long)json_integer_value(j), d->min, d->max);
		v->i = json_integer_value(j);
		return 0;
	case CFG_STR:
		if (!json_is_string(j))
			return acc_err(err, -EINVAL, "%s: expected a string", d->name);
		if (check_str(d, json_string_value(j), err) < 0)
			return -EINVAL;
		free(v->s);
		v->s = xstrdup(json_string_value(j));
		return 0;
	case CFG_STRV: {
		if (!json_is_array(j))
			return acc_err(err, -EINVAL, "%s: expected an array of strings", d->name);
		size_t k;
		const json_t *e;
		json_array_foreach(j, k, e)
			if (!json_is_string(e) || !*json_string_value(e))
				return acc_err(err, -EINVAL, "%s[%zu]: expected a non-empty string", d->name, k);
		strv_clear(v);
		json_array_foreach(j, k, e)
			strv_add(v, json_string_value(e));
		return 0;
	}
	}
	return -EINVAL;
}

/* Load a JSON file: all or nothing. */
int settings_load_file(struct settings *c, const char *path, char **err)
{
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return acc_err(err, -EINVAL, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return acc_err(err, -EINVAL, "%s: expected a JSON object", path);
	}
	struct cfg_val tmp[N_SETTINGS];
	memset(tmp, 0, sizeof(tmp));
	for (size_t i = 0; i < N_SETTINGS; i++)
		val_copy(&tmp[i], &c->val[i]);
	int rc = 0;
	const char *key;
	json_t *j;
	json_object_foreach(root, key, j) {
		int i = find(key);
		char *msg = NULL;
		if (i < 0) {
			rc = acc_err(err, -EINVAL, "%s: unknown setting '%s'", path, key);
			break;
		}
		if (set_json(&table[i], &tmp[i], j, &msg) < 0) {
			rc = acc_err(err, -EINVAL, "%s: %s", path, msg);
			free(msg);
			break;
		}
	}
	json_decref(root);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		if (rc == 0) {
			tmp[i].cli_set = c->val[i].cli_set;
			val_clear(&c->val[i]);
			c->val[i] = tmp[i];
		} else {
			val_clear(&tmp[i]);
		}
	}
	return rc;
}

/* Set from text. */
int settings_set(struct settings *c, const char *name, const char *value, char **err)
{
	int i = find(name);
	if (i < 0)
		return acc_err(err, -EINVAL, "unknown setting '%s'", name);
	const struct cfg_def *d = &table[i];
	struct cfg_val *v = &c->val[i];
	switch (d->type) {
	case CFG_INT: {
		char *end;
		errno = 0;
		long long x = strtoll(value, &end, 10);
		if (!*value || *end || errno)
			return acc_err(err, -EINVAL, "%s: '%s' is not an integer", name, value);
		if (x < d->min || x > d->max)
			return acc_err(err, -EINVAL, "%s: %lld is outside %lld..%lld", name, x, d->min, d->max);
		v->i = x;
		return 0;
	}
	case CFG_STR:
		if (check_str(d, value, err) < 0)
			return -EINVAL;
		free(v->s);
		v->s = xstrdup(value);
		return 0;
	case CFG_STRV:
		if (!*value)
			return acc_err(err, -EINVAL, "%s: must not be empty", name);
		if (!v->cli_set)
			strv_clear(v);
		v->cli_set = true;
		strv_add(v, value);
		return 0;
	}
	return -EINVAL;
}

/* Apply reloadable settings; report one fixed setting that changed. */
void settings_apply_reloadable(struct settings *dst, const struct settings *src, const char **which)
{
	*which = NULL;
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct cfg_val *a = &dst->val[i], *b = &src->val[i];
		bool same = a->i == b->i && ((!a->s && !b->s) || (a->s && b->s && strcmp(a->s, b->s) == 0)) &&
			    a->n == b->n;
		for (size_t k = 0; same && k < a->n; k++)
			same = strcmp(a->v[k], b->v[k]) == 0;
		if (same)
			continue;
		if (table[i].reloadable)
			val_copy(&dst->val[i], b);
		else if (!*which)
			*which = table[i].name;
	}
}

/* Integer getter. */
long long settings_int(const struct settings *c, const char *name)
{
	int i = must_find(name);
	return c->val[i].i;
}

/* String getter. */
const char *settings_str(const struct settings *c, const char *name)
{
	int i = must_find(name);
	return c->val[i].s;
}

/* List getter. */
size_t settings_strv(const struct settings *c, const char *name, const char *const **out)
{
	int i = must_find(name);
	*out = (const char *const *)c->val[i].v;
	return c->val[i].n;
}

/* Describe the table. */
void settings_describe(void)
{
	static const char *types[] = { "integer", "string", "list of strings" };
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct cfg_def *d = &table[i];
		printf("  %-18s %s; %s", d->name, types[d->type], d->help);
		if (d->type == CFG_INT)
			printf(" [%lld..%lld, default %lld]", d->min, d->max, d->def_int);
		else
			printf(" [default %s]", d->def_str);
		printf("%s\n", d->reloadable ? " (reloaded on SIGHUP)" : "");
	}
}
