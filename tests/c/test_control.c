/* Stream control and errors: pause/resume (explicit, from a callback, with a timeout),
 * stats, client-side filters, cancellation from another thread, freeing a running stream,
 * a server error after some rows, and the log callback. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

static bool stats_of(const fw_stream *s, fw_stats *st) {
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    return fw_stream_stats(s, st) == FW_OK;
}

/* Wait (polling) until the stream's state is `want`; false after `ms`. */
static bool wait_state(fw_stream *s, fw_stream_state want, long ms) {
    double deadline = fwt_now_ms() + (double)ms * fwt_slow();
    while (fw_stream_state_snapshot(s) != want) {
        if (fwt_now_ms() > deadline) return false;
        fwt_sleep_ms(10);
    }
    return true;
}

void test_pause_resume(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_row row;
    fw_status st;
    fw_stats a, b;
    long rows = 0;
    double t0;
    REQUIRE(s != NULL);
    while (rows < 3 && fw_stream_next(s, &row, -1) == FW_OK) rows++;
    REQUIRE(rows == 3);

    REQUIRE_ST(fw_stream_pause(s), FW_OK);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_PAUSED);
    CHECK_ST(fw_stream_pause(s), FW_OK); /* idempotent */
    CHECK_ST(fw_stream_pause_with_reason(s, "again"), FW_OK);
    REQUIRE(stats_of(s, &a));
    CHECK_INT(a.pause_count, 1);
    CHECK_INT(a.state, FW_STATE_PAUSED);

    /* Buffered rows are still delivered, then FW_PAUSED without waiting for the timeout. */
    t0 = fwt_now_ms();
    while ((st = fw_stream_next(s, &row, 5000)) == FW_OK) rows++;
    CHECK_ST(st, FW_PAUSED);
    CHECK(fwt_now_ms() - t0 < 2000 * fwt_slow());
    CHECK_ST(fw_stream_try_next(s, &row), FW_PAUSED);
    {
        size_t n = 3;
        fw_row rs[4];
        CHECK_ST(fw_stream_next_batch(s, rs, 4, &n, -1), FW_PAUSED);
        CHECK_INT(n, 0);
    }

    /* While paused nothing is read from the socket: 500 ms would bring ~5 rows. */
    REQUIRE(stats_of(s, &a));
    fwt_sleep_ms(500);
    REQUIRE(stats_of(s, &b));
    CHECK(b.total_rows_received <= a.total_rows_received + 1);
    CHECK_INT(b.total_rows_received, b.total_rows_yielded + b.items_buffered + b.total_rows_filtered);
    CHECK(b.paused_ms_total >= 450);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_PAUSED);

    REQUIRE_ST(fw_stream_resume(s), FW_OK);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_RUNNING);
    CHECK_ST(fw_stream_resume(s), FW_OK); /* idempotent */
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) {
        rows++;
        CHECK_INT(fwt_json_int(row.data, "i"), rows);
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(rows, 20);
    REQUIRE(stats_of(s, &b));
    CHECK_INT(b.pause_count, 1);
    CHECK_INT(b.pause_timeouts, 0);
    CHECK(b.paused_ms_total >= 450);
    CHECK_INT(b.total_rows_received, 20);
    CHECK_INT(b.total_rows_yielded, 20);
    CHECK_INT(b.items_buffered, 0);

    /* Pause and resume on a terminal stream are state errors. */
    CHECK_ST(fw_stream_pause(s), FW_E_STATE);
    CHECK_LAST_ERROR(FW_E_STATE, NULL);
    CHECK_ST(fw_stream_pause_with_reason(s, "late"), FW_E_STATE);
    CHECK_ST(fw_stream_resume(s), FW_E_STATE);
    CHECK_ST(fw_stream_set_pause_timeout(s, 100), FW_E_STATE);
    CHECK_ST(fw_stream_cancel(s), FW_E_STATE);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_COMPLETED);
    fw_stream_free(s);
}

struct pause_cb_ctx {
    fw_stream *s;
    long rows;
};

static int pause_after_5(void *ud, const char *json, size_t len) {
    struct pause_cb_ctx *c = ud;
    (void)json;
    (void)len;
    if (++c->rows == 5) fw_stream_pause(c->s);
    return 0;
}

void test_pause_in_for_each(void) {
    struct pause_cb_ctx c;
    fw_stream *s = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_stats st;
    REQUIRE(s != NULL);
    c.s = s;
    c.rows = 0;
    /* The callback pauses the stream: for_each drains what is buffered and returns. */
    CHECK_ST(fw_stream_for_each(s, pause_after_5, &c), FW_PAUSED);
    CHECK(c.rows >= 5 && c.rows < 20);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_PAUSED);
    CHECK_ST(fw_stream_for_each(s, pause_after_5, &c), FW_PAUSED);
    REQUIRE_ST(fw_stream_resume(s), FW_OK);
    CHECK_ST(fw_stream_for_each(s, pause_after_5, &c), FW_DONE);
    CHECK_INT(c.rows, 20);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.pause_count, 1);
    fw_stream_free(s);
}

void test_pause_timeout(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_row row;
    fw_status st;
    fw_stats stats;
    long rows = 0;
    double t0;
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_set_pause_timeout(s, 300), FW_OK);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    rows++;
    t0 = fwt_now_ms();
    REQUIRE_ST(fw_stream_pause(s), FW_OK);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_PAUSED);
    /* Nobody resumes it: the timeout does. */
    CHECK(wait_state(s, FW_STATE_RUNNING, 5000));
    CHECK(fwt_now_ms() - t0 >= 280);
    REQUIRE(stats_of(s, &stats));
    CHECK_INT(stats.pause_count, 1);
    CHECK_INT(stats.pause_timeouts, 1);
    CHECK(stats.paused_ms_total >= 280);
    /* No limit any more: a pause lasts until resume. */
    REQUIRE_ST(fw_stream_set_pause_timeout(s, 0), FW_OK);
    REQUIRE_ST(fw_stream_pause(s), FW_OK);
    fwt_sleep_ms(500);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_PAUSED);
    REQUIRE_ST(fw_stream_resume(s), FW_OK);
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) rows++;
    CHECK_ST(st, FW_DONE);
    CHECK_INT(rows, 20);
    REQUIRE(stats_of(s, &stats));
    CHECK_INT(stats.pause_count, 2);
    CHECK_INT(stats.pause_timeouts, 1);
    fw_stream_free(s);
}

void test_stats_struct_size(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", "(data->>'id')::int <= 10");
    fw_stats st;
    unsigned char *raw = (unsigned char *)&st;
    size_t min = offsetof(fw_stats, elapsed_us) + sizeof st.elapsed_us, i;
    fw_status end;
    REQUIRE(s != NULL);
    CHECK_INT(fwt_drain(s, &end, NULL), 10);

    memset(&st, 0xAB, sizeof st);
    st.struct_size = 0;
    CHECK_ST(fw_stream_stats(s, &st), FW_E_INVALID_ARGUMENT);
    CHECK(strstr(fwt_last_msg(), "struct_size") != NULL);
    st.struct_size = min - 1;
    CHECK_ST(fw_stream_stats(s, &st), FW_E_INVALID_ARGUMENT);
    CHECK(raw[sizeof(size_t)] == 0xAB); /* nothing written on failure */

    /* The minimum size: fields after elapsed_us are left alone. */
    memset(&st, 0xAB, sizeof st);
    st.struct_size = min;
    REQUIRE_ST(fw_stream_stats(s, &st), FW_OK);
    CHECK_INT(st.struct_size, min);
    CHECK_INT(st.total_rows_received, 10);
    CHECK_INT(st.total_rows_yielded, 10);
    CHECK_INT(st.state, FW_STATE_COMPLETED);
    for (i = min; i < sizeof st; i++)
        if (raw[i] != 0xAB) {
            fwt_fail(__FILE__, __LINE__, "byte %zu beyond struct_size %zu was written", i, min);
            break;
        }

    /* A bigger struct (a newer header) is accepted; only our fields are written. */
    {
        unsigned char big[sizeof(fw_stats) + 64];
        fw_stats *bs = (fw_stats *)(void *)big;
        memset(big, 0xCD, sizeof big);
        bs->struct_size = sizeof big;
        REQUIRE_ST(fw_stream_stats(s, bs), FW_OK);
        CHECK_INT(bs->total_rows_received, 10);
        CHECK(big[sizeof(fw_stats) + 10] == 0xCD);
    }
    fw_stream_free(s);
}

struct pred_ctx {
    long calls;
    long bad;
    int modulo;
    pthread_t caller;
    long wrong_thread;
};

static bool keep_multiple(void *ud, const char *json, size_t len) {
    struct pred_ctx *c = ud;
    long long id = fwt_json_int(json, "id");
    c->calls++;
    if (!fwt_row_ok(json, len)) c->bad++;
    if (!pthread_equal(pthread_self(), c->caller)) c->wrong_thread++;
    return id % c->modulo == 0;
}

void test_filter(void) {
    fw_query *q = NULL;
    fw_stream *s = NULL;
    struct pred_ctx three, five;
    fw_stats st;
    fw_status end;
    long long ids = 0;
    long n;
    memset(&three, 0, sizeof three);
    memset(&five, 0, sizeof five);
    three.modulo = 3;
    five.modulo = 5;
    three.caller = five.caller = pthread_self();

    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_filter(q, keep_multiple, &three), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    n = fwt_drain(s, &end, &ids);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 333);
    CHECK_INT(ids, 3LL * (333 * 334 / 2));
    CHECK_INT(three.calls, 1000);
    CHECK_INT(three.bad, 0);
    CHECK_INT(three.wrong_thread, 0);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.total_rows_received, 1000);
    CHECK_INT(st.total_rows_yielded, 333);
    CHECK_INT(st.total_rows_filtered, 667);
    CHECK_INT(st.items_buffered, 0);
    CHECK_INT(st.total_rows_received, st.total_rows_yielded + st.total_rows_filtered + st.items_buffered);
    fw_stream_free(s);

    /* Several filters AND together (and combine with where_sql). */
    REQUIRE_ST(fw_query_filter(q, keep_multiple, &five), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "(data->>'id')::int <= 600"), FW_OK);
    three.calls = 0;
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    ids = 0;
    n = fwt_drain(s, &end, &ids);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 40); /* multiples of 15 up to 600 */
    CHECK_INT(ids, 15LL * (40 * 41 / 2));
    CHECK_INT(three.calls, 600);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.total_rows_received, 600);
    CHECK_INT(st.total_rows_filtered, 560);
    CHECK_INT(st.total_rows_received, st.total_rows_yielded + st.total_rows_filtered + st.items_buffered);
    fw_stream_free(s);

    /* Filters apply to next_batch and for_each as well. */
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    {
        fw_row rows[16];
        size_t k, got = 0, i;
        long wrong = 0;
        while (fw_stream_next_batch(s, rows, 16, &k, -1) == FW_OK) {
            for (i = 0; i < k; i++)
                if (fwt_json_int(rows[i].data, "id") % 15 != 0) wrong++;
            got += k;
        }
        CHECK_INT(got, 40);
        CHECK_INT(wrong, 0);
    }
    fw_stream_free(s);
    fw_query_free(q);
}

/* The built-in predicate: evaluated by the library's reader, no callback. */
void test_filter_json(void) {
    fw_query *q = NULL;
    fw_stream *s = NULL;
    struct pred_ctx three;
    fw_stats st;
    fw_status end;
    long long ids = 0;
    long n;
    memset(&three, 0, sizeof three);
    three.modulo = 3;
    three.caller = pthread_self();

    CHECK_ST(fw_query_filter_json(NULL, "/n", FW_JSON_EQ, "1"), FW_E_NULL);
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    CHECK_ST(fw_query_filter_json(q, NULL, FW_JSON_EQ, "1"), FW_E_NULL);
    CHECK_ST(fw_query_filter_json(q, "n", FW_JSON_EQ, "1"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_filter_json(q, "/n", 99, "1"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_filter_json(q, "/n", -1, "1"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_filter_json(q, "/n", FW_JSON_EQ, "{not json"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_filter_json(q, "/n", FW_JSON_EQ, "\xff"), FW_E_INVALID_ARGUMENT);
    CHECK_LAST_ERROR(FW_E_INVALID_ARGUMENT, NULL);

    /* Rejected predicates were not added: this query returns all 1000 rows. */
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_INT(fwt_drain(s, &end, NULL), 1000);
    fw_stream_free(s);

    /* One city in five (ids 5, 10, ... 1000), nested pointer, unicode string constant. */
    REQUIRE_ST(fw_query_filter_json(q, "/address/city", FW_JSON_EQ, "\"Z\xc3\xbcrich\""), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    n = fwt_drain(s, &end, &ids);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 200);
    CHECK_INT(ids, 5LL * (200 * 201 / 2));
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.total_rows_yielded, 200);
    CHECK_INT(st.total_rows_filtered, 800);
    CHECK_INT(st.total_rows_received, st.total_rows_yielded + st.total_rows_filtered + st.items_buffered);
    fw_stream_free(s);

    /* With where_sql and a C predicate: ids <= 600, multiples of 5 and of 3. */
    REQUIRE_ST(fw_query_where_sql(q, "(data->>'id')::int <= 600"), FW_OK);
    REQUIRE_ST(fw_query_filter(q, keep_multiple, &three), FW_OK);
    REQUIRE_ST(fw_query_filter_json(q, "/tags", FW_JSON_CONTAINS, "\"emoji-\xf0\x9f\x98\x80\""), FW_OK);
    REQUIRE_ST(fw_query_filter_json(q, "/address/geo", FW_JSON_EXISTS, NULL), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    ids = 0;
    n = fwt_drain(s, &end, &ids);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 40);
    CHECK_INT(ids, 15LL * (40 * 41 / 2));
    /* the C predicate only sees rows the built-in one kept */
    CHECK_INT(three.calls, 120);
    CHECK_INT(three.wrong_thread, 0);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.total_rows_yielded, 40);
    CHECK_INT(st.total_rows_received, st.total_rows_yielded + st.total_rows_filtered + st.items_buffered);
    CHECK_INT(st.items_buffered, 0);
    fw_stream_free(s);
    fw_query_free(q);

    /* Numeric comparison: n > 990 leaves 10 rows. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_filter_json(q, "/n", FW_JSON_GT, "990"), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    ids = 0;
    CHECK_INT(fwt_drain(s, &end, &ids), 10);
    CHECK_INT(ids, 9955);
    fw_stream_free(s);
    fw_query_free(q);
}

struct canceller {
    fw_stream *s;
    long delay_ms;
    fw_status result;
    double at;
};

static void *cancel_later(void *arg) {
    struct canceller *c = arg;
    double t0;
    fwt_sleep_ms(c->delay_ms);
    t0 = fwt_now_ms();
    c->result = fw_stream_cancel(c->s);
    c->at = fwt_now_ms();
    /* never blocks */
    if (c->at - t0 > 500 * fwt_slow()) c->result = FW_E_PANIC;
    return NULL;
}

/* Whether a query containing `marker` is running on the server (other than ours). */
static int running_on_server(const char *marker) {
    char pred[512];
    snprintf(pred, sizeof pred,
             "EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
             "AND state = 'active' AND query LIKE '%%%s%%')",
             marker);
    return fwt_server_true(pred);
}

static bool wait_gone(const char *marker, long ms, double *took) {
    double t0 = fwt_now_ms(), deadline = t0 + (double)ms * fwt_slow();
    for (;;) {
        int r = running_on_server(marker);
        if (r == 0) {
            *took = fwt_now_ms() - t0;
            return true;
        }
        if (r < 0 || fwt_now_ms() > deadline) return false;
        fwt_sleep_ms(20);
    }
}

void test_cancel_from_thread(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_sleep30", "'fw-cancel-marker-1' <> ''");
    struct canceller c;
    pthread_t t;
    fw_row row;
    fw_status st;
    double returned, took = 0;
    REQUIRE(s != NULL);
    CHECK_INT(running_on_server("fw-cancel-marker-1"), 1);
    c.s = s;
    c.delay_ms = 300;
    c.result = FW_E_PANIC;
    c.at = 0;
    REQUIRE(pthread_create(&t, NULL, cancel_later, &c) == 0);
    st = fw_stream_next(s, &row, -1); /* blocks until the other thread cancels */
    returned = fwt_now_ms();
    pthread_join(t, NULL);
    CHECK_ST(c.result, FW_OK);
    CHECK_ST(st, FW_E_CANCELLED);
    CHECK_LAST_ERROR(FW_E_CANCELLED, NULL);
    CHECK(c.at > 0 && returned - c.at < 1000 * fwt_slow());
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_CANCELLED);
    fwt_check_error(__FILE__, __LINE__, fw_stream_error(s), FW_E_CANCELLED, NULL);
    CHECK_ST(fw_stream_cancel(s), FW_OK); /* no-op on a cancelled stream */
    CHECK_ST(fw_stream_next(s, &row, 0), FW_E_CANCELLED);
    CHECK_ST(fw_stream_pause(s), FW_E_STATE);
    /* The server query is gone too (CancelRequest). */
    if (!wait_gone("fw-cancel-marker-1", 1000, &took))
        fwt_fail(__FILE__, __LINE__, "the cancelled query still runs on the server after 1 s");
    fw_stream_free(s);
    /* the client works afterwards */
    CHECK_INT(fwt_server_true("true"), 1);
}

void test_free_running_stream(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_sleep30", "'fw-free-marker-2' <> ''");
    double t0, took = 0;
    REQUIRE(s != NULL);
    CHECK_INT(running_on_server("fw-free-marker-2"), 1);
    t0 = fwt_now_ms();
    fw_stream_free(s); /* cancels the running query */
    CHECK(fwt_now_ms() - t0 < 500 * fwt_slow());
    if (!wait_gone("fw-free-marker-2", 1000, &took))
        fwt_fail(__FILE__, __LINE__, "the freed stream's query still runs on the server after 1 s");
}

void test_cancel_buffered(void) {
    /* Cancelling drops buffered rows: the next call reports the cancellation at once. */
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    fw_row row;
    fw_stats st;
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    REQUIRE_ST(fw_stream_cancel(s), FW_OK);
    CHECK_ST(fw_stream_next(s, &row, -1), FW_E_CANCELLED);
    CHECK_ST(fw_stream_try_next(s, &row), FW_E_CANCELLED);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.state, FW_STATE_CANCELLED);
    CHECK_INT(st.items_buffered, 0);
    CHECK_ST(fw_stream_resume(s), FW_E_STATE);
    CHECK_ST(fw_stream_set_pause_timeout(s, 5), FW_E_STATE);
    fw_stream_free(s);
}

void test_error_after_rows(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_div_zero_after", NULL);
    fw_row row;
    fw_status st;
    long rows = 0;
    const fw_error *e;
    fw_stats stats;
    REQUIRE(s != NULL);
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) {
        rows++;
        CHECK_INT(fwt_json_int(row.data, "i"), rows);
    }
    /* the 50 good rows first, then the error */
    CHECK_INT(rows, 50);
    CHECK_ST(st, FW_E_SERVER);
    CHECK_LAST_ERROR(FW_E_SERVER, "22012");
    CHECK(strstr(fwt_last_msg(), "division by zero") != NULL);
    e = fw_stream_error(s);
    fwt_check_error(__FILE__, __LINE__, e, FW_E_SERVER, "22012");
    CHECK(fw_stream_error(s) == e); /* stable until fw_stream_free */
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_FAILED);
    /* sticky */
    CHECK_ST(fw_stream_next(s, &row, -1), FW_E_SERVER);
    CHECK_ST(fw_stream_for_each(s, NULL, NULL), FW_E_NULL);
    REQUIRE(stats_of(s, &stats));
    CHECK_INT(stats.total_rows_yielded, 50);
    CHECK_INT(stats.state, FW_STATE_FAILED);
    /* A failing call on this thread does not invalidate the stream's error. */
    CHECK_ST(fw_query_limit(NULL, 1), FW_E_NULL);
    CHECK_STR(fw_error_sqlstate(fw_stream_error(s)), "22012");
    CHECK_ST(fw_stream_cancel(s), FW_E_STATE);
    fw_stream_free(s);
    CHECK_INT(fwt_server_true("true"), 1);

    /* The same error through next_batch and for_each: rows first, then the error. */
    s = fwt_exec(fwt_client(), "v_div_zero_after", NULL);
    REQUIRE(s != NULL);
    {
        fw_row rows16[16];
        size_t n, total = 0;
        while ((st = fw_stream_next_batch(s, rows16, 16, &n, -1)) == FW_OK) total += n;
        CHECK_INT(total, 50);
        CHECK_ST(st, FW_E_SERVER);
    }
    fw_stream_free(s);
}

struct log_ctx {
    long calls;
    long wrong_thread;
    long matched;
    long debug;
    pthread_t caller;
    const char *needle;
};

static void log_cb(void *ud, fw_log_level level, const char *message) {
    struct log_ctx *c = ud;
    c->calls++;
    if (!pthread_equal(pthread_self(), c->caller)) c->wrong_thread++;
    if (level == FW_LOG_DEBUG) c->debug++;
    if (message && c->needle && strstr(message, c->needle)) c->matched++;
}

void test_log_callback(void) {
    struct log_ctx c;
    fw_stream *s;
    fw_status end;
    memset(&c, 0, sizeof c);
    c.caller = pthread_self();
    c.needle = "fw-reason-42";

    CHECK_ST(fw_set_log_callback(7, log_cb, &c), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_set_log_callback(-1, log_cb, &c), FW_E_INVALID_ARGUMENT);
    REQUIRE_ST(fw_set_log_callback(FW_LOG_DEBUG, log_cb, &c), FW_OK);

    s = fwt_exec(fwt_client(), "v_slow", NULL);
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_pause_with_reason(s, "fw-reason-42"), FW_OK);
    /* delivered during that very call, on this thread */
    CHECK(c.matched >= 1);
    CHECK(c.debug >= 1);
    CHECK_INT(c.wrong_thread, 0);
    REQUIRE_ST(fw_stream_resume(s), FW_OK);

    /* Above the message's level: not delivered. */
    REQUIRE_ST(fw_set_log_callback(FW_LOG_WARN, log_cb, &c), FW_OK);
    c.matched = 0;
    c.needle = "fw-reason-43";
    REQUIRE_ST(fw_stream_pause_with_reason(s, "fw-reason-43"), FW_OK);
    REQUIRE_ST(fw_stream_resume(s), FW_OK);
    CHECK_INT(c.matched, 0);

    /* Removed: nothing more. */
    REQUIRE_ST(fw_set_log_callback(FW_LOG_DEBUG, NULL, NULL), FW_OK);
    c.calls = 0;
    c.needle = "fw-reason-44";
    REQUIRE_ST(fw_stream_pause_with_reason(s, "fw-reason-44"), FW_OK);
    REQUIRE_ST(fw_stream_resume(s), FW_OK);
    CHECK_INT(fwt_drain(s, &end, NULL), 20);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(c.calls, 0);
    CHECK_INT(c.wrong_thread, 0);
    fw_stream_free(s);
}
