/*
 * test_agent_backoff.c - the agent's retry delays: within [cap/2, cap], the
 * cap doubling up to the maximum, jitter that differs between agents, and a
 * reset after success.
 */
#include "agent_backoff.h"
#include "testlib.h"

static void test_growth_and_bounds(void **state)
{
    (void)state;
    qr_backoff_t b;
    qr_backoff_init(&b, 100, 5000, 42);
    int64_t cap = 100;
    for (int i = 0; i < 40; i++) {
        int64_t d = qr_backoff_next(&b);
        assert_true(d >= cap / 2);
        assert_true(d <= cap);
        cap = cap * 2 > 5000 ? 5000 : cap * 2;
    }
    qr_backoff_reset(&b);
    int64_t d = qr_backoff_next(&b);
    assert_true(d >= 50 && d <= 100);
}

static void test_jitter_spreads_agents(void **state)
{
    (void)state;
    /* Ten agents failing together at their 6th attempt (cap 3200 ms) do not
     * all pick the same delay. */
    int64_t first = -1;
    int distinct = 0;
    for (uint64_t seed = 1; seed <= 10; seed++) {
        qr_backoff_t b;
        qr_backoff_init(&b, 100, 60000, seed);
        int64_t d = 0;
        for (int i = 0; i < 6; i++)
            d = qr_backoff_next(&b);
        assert_true(d >= 1600 && d <= 3200);
        if (first < 0)
            first = d;
        distinct += d != first;
    }
    assert_true(distinct > 0);
}

static void test_degenerate_settings(void **state)
{
    (void)state;
    qr_backoff_t b;
    qr_backoff_init(&b, 0, -5, 7); /* clamped to 1 ms */
    for (int i = 0; i < 2000; i++) {
        int64_t d = qr_backoff_next(&b);
        assert_true(d >= 0 && d <= 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_and_bounds),
        cmocka_unit_test(test_jitter_spreads_agents),
        cmocka_unit_test(test_degenerate_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
