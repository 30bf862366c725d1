/* pool_fixture.h - cmocka fixtures for kernel tests that run with and without a thread pool:
 * setup_pool puts a 3-thread pool in *state (teardown_pool frees it), setup_none puts NULL. */
#ifndef ACC_TEST_POOL_FIXTURE_H
#define ACC_TEST_POOL_FIXTURE_H

#include "threadpool.h"

static int setup_pool(void **state)
{
	*state = tpool_create(3);
	return 0;
}

static int teardown_pool(void **state)
{
	tpool_free(*state);
	return 0;
}

static int setup_none(void **state)
{
	*state = NULL;
	return 0;
}

#endif
