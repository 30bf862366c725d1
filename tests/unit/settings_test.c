/* settings_test.c - the settings table: defaults, file loading, overrides, reload. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "settings.h"

/* Write text to a fresh temporary file; returns its path (caller frees and unlinks). */
static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/acceld-settings-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_defaults(void **state)
{
	struct settings *c = settings_new();
	const char *const *v;
	assert_int_equal(settings_strv(c, "listen", &v), 2);
	assert_string_equal(v[0], "127.0.0.1:8001");
	assert_string_equal(v[1], "unix:/run/acceld/acceld.sock");
	assert_int_equal(settings_int(c, "grpc_threads"), 2);
	assert_string_equal(settings_str(c, "log_level"), "info");
	settings_free(c);
}

static void test_file_and_overrides(void **state)
{
	char *p = write_tmp("{\"listen\": [\"127.0.0.1:9\"], \"threads\": 3, \"log_level\": \"debug\"}");
	struct settings *c = settings_new();
	char *err = NULL;
	assert_int_equal(settings_load_file(c, p, &err), 0);
	const char *const *v;
	assert_int_equal(settings_strv(c, "listen", &v), 1);
	assert_string_equal(v[0], "127.0.0.1:9");
	assert_int_equal(settings_int(c, "threads"), 3);
	/* The first --listen replaces the list, later ones append. */
	assert_int_equal(settings_set(c, "listen", "unix:/tmp/a.sock", &err), 0);
	assert_int_equal(settings_set(c, "listen", "127.0.0.1:10", &err), 0);
	assert_int_equal(settings_strv(c, "listen", &v), 2);
	assert_string_equal(v[0], "unix:/tmp/a.sock");
	assert_string_equal(v[1], "127.0.0.1:10");
	settings_free(c);
	unlink(p);
	free(p);
}

static void test_errors_leave_settings_unchanged(void **state)
{
	static const char *bad[] = {
		"{\"threads\": 5, \"nonsense\": 1}",   /* unknown key */
		"{\"threads\": \"two\"}",              /* wrong type */
		"{\"grpc_threads\": 0}",               /* out of bounds */
		"{\"log_level\": \"loud\"}",           /* bad value */
		"{\"listen\": [1]}",                   /* wrong element type */
		"[1, 2]",                              /* not an object */
		"{\"threads\": 1",                     /* truncated */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *p = write_tmp(bad[i]);
		struct settings *c = settings_new();
		char *err = NULL;
		assert_int_not_equal(settings_load_file(c, p, &err), 0);
		assert_non_null(err);
		assert_int_equal(settings_int(c, "threads"), 0);
		assert_int_equal(settings_int(c, "grpc_threads"), 2);
		free(err);
		settings_free(c);
		unlink(p);
		free(p);
	}
	struct settings *c = settings_new();
	char *err = NULL;
	assert_int_not_equal(settings_set(c, "threads", "12x", &err), 0);
	free(err);
	err = NULL;
	assert_int_not_equal(settings_set(c, "threads", "99999", &err), 0);
	free(err);
	err = NULL;
	assert_int_not_equal(settings_set(c, "no_such", "1", &err), 0);
	free(err);
	settings_free(c);
}

static void test_reload(void **state)
{
	struct settings *a = settings_new(), *b = settings_new();
	char *err = NULL;
	assert_int_equal(settings_set(b, "log_level", "debug", &err), 0);
	assert_int_equal(settings_set(b, "threads", "4", &err), 0);
	const char *fixed = NULL;
	settings_apply_reloadable(a, b, &fixed);
	assert_string_equal(settings_str(a, "log_level"), "debug"); /* reloadable: applied */
	assert_int_equal(settings_int(a, "threads"), 0);            /* needs a restart */
	assert_string_equal(fixed, "threads");
	settings_free(a);
	settings_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file_and_overrides),
		cmocka_unit_test(test_errors_leave_settings_unchanged),
		cmocka_unit_test(test_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
