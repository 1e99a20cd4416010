/* Consuming streams: next, try_next, next_batch, for_each, the readiness fd with poll(),
 * timeouts, row content and length, NULL data, big rows, chunking and memory limits. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

static bool stats_of(fw_stream *s, fw_stats *st) {
    memset(st, 0, sizeof *st);
    st->struct_size = sizeof *st;
    return fw_stream_stats(s, st) == FW_OK;
}

/* After the end: every row received was yielded or filtered, nothing is buffered. */
static void check_final_stats(fw_stream *s, uint64_t received, uint64_t yielded) {
    fw_stats st;
    if (!stats_of(s, &st)) {
        fwt_fail(__FILE__, __LINE__, "fw_stream_stats failed: %s", fwt_last_msg());
        return;
    }
    CHECK_INT(st.total_rows_received, received);
    CHECK_INT(st.total_rows_yielded, yielded);
    CHECK_INT(st.total_rows_received, st.total_rows_yielded + st.total_rows_filtered + st.items_buffered);
    CHECK_INT(st.items_buffered, 0);
    CHECK_INT(st.state, FW_STATE_COMPLETED);
    CHECK(st.struct_size == sizeof st);
}

void test_stream_next_content(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    fw_row row;
    fw_status st;
    long n = 0, bad = 0, seen_big = 0, seen_unicode = 0, seen_escape = 0;
    long long ids = 0;
    uint64_t bytes = 0;
    REQUIRE(s != NULL);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_RUNNING);
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) {
        n++;
        bytes += row.len;
        if (!fwt_row_ok(row.data, row.len) || row.data[0] != '{' || row.data[row.len - 1] != '}')
            bad++;
        ids += fwt_json_int(row.data, "id");
        /* numbers that do not fit a double are passed through as text, untouched */
        if (strstr(row.data, "\"big\": 123456789012345678901234567890.123456789") &&
            strstr(row.data, "\"tiny\": 0.000000000000000000000000000001"))
            seen_big++;
        if (strstr(row.data, "Zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8e\x89 \xc3\xb1 \xe2\x82\xac \xf0\x9d\x84\x9e"))
            seen_unicode++;
        if (strstr(row.data, "quote \\\" backslash \\\\ slash / newline \\n tab \\t cr \\r ctrl \\u0001 end"))
            seen_escape++;
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(n, 1000);
    CHECK_INT(bad, 0);
    CHECK_INT(ids, 500500);
    CHECK_INT(seen_big, 1000);
    CHECK_INT(seen_unicode, 1000);
    CHECK_INT(seen_escape, 1000);
    /* The end is sticky. */
    CHECK_ST(fw_stream_next(s, &row, -1), FW_DONE);
    CHECK_ST(fw_stream_try_next(s, &row), FW_DONE);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_COMPLETED);
    CHECK(fw_stream_error(s) == NULL);
    check_final_stats(s, 1000, 1000);
    {
        fw_stats stt;
        REQUIRE(stats_of(s, &stt));
        CHECK_INT(stt.total_bytes_received, bytes);
        CHECK(stt.chunks_received >= 1);
        CHECK(stt.elapsed_us > 0);
        CHECK(stt.time_to_first_row_us > 0 && stt.time_to_first_row_us <= stt.elapsed_us);
        CHECK(stt.memory_limit > 0 && stt.peak_memory <= stt.memory_limit);
        CHECK_INT(stt.pause_count, 0);
    }
    fw_stream_free(s);
}

void test_stream_json_verbatim(void) {
    /* app.tv_order is json (not jsonb): the server's text is handed over byte for byte,
     * including its own spacing and the newline escape inside a string. */
    fw_stream *s = fwt_exec(fwt_client(), "app.tv_order", "(data->>'id')::int = 10");
    fw_row row;
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    CHECK(fwt_row_ok(row.data, row.len));
    CHECK(strncmp(row.data, "{\"id\" : 10, \"user_id\" : 131,", 28) == 0);
    CHECK(strstr(row.data, "\"label\" : \"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65\"") != NULL);
    CHECK(strstr(row.data, "\"note\" : \"line1\\nline2 \\\"quoted\\\"\"") != NULL);
    CHECK_ST(fw_stream_next(s, &row, -1), FW_DONE);
    fw_stream_free(s);
}

void test_stream_empty_and_null(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_empty", NULL);
    fw_row row = {NULL, 99};
    REQUIRE(s != NULL);
    CHECK_ST(fw_stream_next(s, &row, -1), FW_DONE);
    CHECK(row.data == NULL && row.len == 99); /* not written without a row */
    check_final_stats(s, 0, 0);
    fw_stream_free(s);

    s = fwt_exec(fwt_client(), "v_null", NULL);
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    CHECK_STR(row.data, "{\"i\": 1}");
    CHECK_INT(row.len, 8);
    /* A SQL NULL `data` is delivered as the JSON text null. */
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    CHECK_STR(row.data, "null");
    CHECK_INT(row.len, 4);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    CHECK_STR(row.data, "{\"i\": 3}");
    CHECK_ST(fw_stream_next(s, &row, -1), FW_DONE);
    check_final_stats(s, 3, 3);
    fw_stream_free(s);
}

void test_stream_big_rows(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_big", NULL);
    fw_row row;
    fw_status st;
    long n = 0;
    REQUIRE(s != NULL);
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) {
        n++;
        CHECK(row.len > 1000000);
        CHECK(fwt_row_ok(row.data, row.len));
        CHECK_INT(fwt_json_int(row.data, "i"), n);
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(n, 5);
    fw_stream_free(s);
}

/* Run `source` on `c` with a memory budget (0 = the default); return the rows, the final
 * status in *end and the stats in *st. Waits are bounded: a stalled stream ends with
 * FW_TIMEOUT. */
static long run_budget(fw_client *c, const char *source, size_t budget, fw_status *end,
                       fw_stats *st) {
    fw_query *q = NULL;
    fw_stream *s = NULL;
    long n;
    *end = FW_E_PANIC;
    if (fw_query_new(c, source, &q) != FW_OK) return -1;
    if (budget && fw_query_max_memory(q, budget, 0.5, 1.0) != FW_OK) {
        fw_query_free(q);
        return -1;
    }
    if ((*end = fw_query_execute(q, &s)) != FW_OK) {
        fw_query_free(q);
        return -1;
    }
    n = fwt_drain(s, end, NULL);
    if (*end == FW_E_MEMORY_LIMIT) {
        CHECK_LAST_ERROR(FW_E_MEMORY_LIMIT, NULL);
        fwt_check_error(__FILE__, __LINE__, fw_stream_error(s), FW_E_MEMORY_LIMIT, NULL);
        CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_FAILED);
        /* sticky */
        {
            fw_row row;
            CHECK_ST(fw_stream_next(s, &row, 0), FW_E_MEMORY_LIMIT);
        }
    }
    stats_of(s, st);
    fw_stream_free(s);
    fw_query_free(q);
    return n;
}

void test_stream_memory_limit(void) {
    fw_client *c = NULL;
    fw_status end;
    fw_stats st;
    long n;
    /* A client of its own, so that every stream below reuses the same pooled connection. */
    REQUIRE_ST(fw_client_new(fwt_conninfo_socket(), &c), FW_OK);

    /* Default budget (4 MiB): the five 1 MB rows fit. */
    n = run_budget(c, "v_big", 0, &end, &st);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 5);
    CHECK(st.peak_memory <= st.memory_limit);

    /* A 64 KiB budget cannot hold a 1 MB row: FW_E_MEMORY_LIMIT before any row, also on a
     * connection whose earlier stream had a larger budget. */
    n = run_budget(c, "v_big", 64 * 1024, &end, &st);
    CHECK_ST(end, FW_E_MEMORY_LIMIT);
    CHECK_INT(n, 0);
    CHECK_INT(st.memory_limit, 64 * 1024);
    CHECK(st.peak_memory <= 64 * 1024);

    /* Small rows stream under small budgets, never holding more than the budget. */
    n = run_budget(c, "v_user", 64 * 1024, &end, &st);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 1000);
    CHECK_INT(st.memory_limit, 64 * 1024);
    CHECK(st.peak_memory > 0);
    if (st.peak_memory > 64 * 1024)
        fwt_fail(__FILE__, __LINE__, "peak_memory %llu is over the 64 KiB budget",
                 (unsigned long long)st.peak_memory);
    n = run_budget(c, "v_user", 16 * 1024, &end, &st);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(n, 1000);
    CHECK(st.peak_memory <= 16 * 1024);
    fw_client_free(c);
}

void test_stream_chunking(void) {
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_stats st;
    fw_status end;
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    /* fixed chunks of at most 10 rows (adaptive chunking off) */
    REQUIRE_ST(fw_query_adaptive_chunking(q, false, 0, 0), FW_OK);
    REQUIRE_ST(fw_query_chunk_size(q, 10), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_INT(fwt_drain(s, &end, NULL), 1000);
    CHECK_ST(end, FW_DONE);
    REQUIRE(stats_of(s, &st));
    CHECK_INT(st.current_chunk_size, 10);
    CHECK(st.chunks_received >= 100);
    fw_stream_free(s);

    REQUIRE_ST(fw_query_adaptive_chunking(q, true, 4, 64), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_INT(fwt_drain(s, &end, NULL), 1000);
    CHECK_ST(end, FW_DONE);
    REQUIRE(stats_of(s, &st));
    CHECK(st.current_chunk_size >= 4 && st.current_chunk_size <= 64);
    CHECK(st.chunks_received >= 1000 / 64);
    fw_stream_free(s);
    fw_query_free(q);
}

void test_stream_try_next(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    fw_row row;
    fw_status st;
    long n = 0, would_block = 0;
    long long ids = 0;
    double deadline = fwt_now_ms() + 60000 * fwt_slow();
    REQUIRE(s != NULL);
    for (;;) {
        double t0 = fwt_now_ms();
        st = fw_stream_try_next(s, &row);
        /* never blocks */
        if (fwt_now_ms() - t0 > 500 * fwt_slow())
            fwt_fail(__FILE__, __LINE__, "fw_stream_try_next blocked for %.0f ms", fwt_now_ms() - t0);
        if (st == FW_OK) {
            n++;
            ids += fwt_json_int(row.data, "id");
            CHECK(fwt_row_ok(row.data, row.len));
        } else if (st == FW_WOULD_BLOCK) {
            would_block++;
            fwt_sleep_ms(1);
        } else {
            break;
        }
        if (fwt_now_ms() > deadline) break;
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(n, 1000);
    CHECK_INT(ids, 500500);
    check_final_stats(s, 1000, 1000);
    fw_stream_free(s);
}

void test_stream_next_batch(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    fw_row rows[64];
    size_t n = 0, i;
    fw_status st;
    long total = 0, batches = 0, bad = 0;
    long long ids = 0, prev_first = -1;
    REQUIRE(s != NULL);
    CHECK_ST(fw_stream_next_batch(s, rows, 0, &n, 0), FW_E_INVALID_ARGUMENT);
    for (;;) {
        n = 9999;
        st = fw_stream_next_batch(s, rows, 64, &n, -1);
        if (st != FW_OK) {
            CHECK_INT(n, 0);
            break;
        }
        batches++;
        CHECK(n >= 1 && n <= 64);
        /* every row of the batch is still valid here, after the whole batch was taken */
        for (i = 0; i < n; i++) {
            if (!fwt_row_ok(rows[i].data, rows[i].len)) bad++;
            ids += fwt_json_int(rows[i].data, "id");
        }
        CHECK(fwt_json_int(rows[0].data, "id") != prev_first);
        prev_first = fwt_json_int(rows[0].data, "id");
        total += (long)n;
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(total, 1000);
    CHECK_INT(bad, 0);
    CHECK_INT(ids, 500500);
    CHECK(batches >= 1000 / 64);
    n = 5;
    CHECK_ST(fw_stream_next_batch(s, rows, 64, &n, -1), FW_DONE);
    CHECK_INT(n, 0);
    check_final_stats(s, 1000, 1000);
    fw_stream_free(s);

    /* Mixing next and next_batch on one stream keeps order and loses nothing. */
    s = fwt_exec(fwt_client(), "app.tv_order", NULL);
    REQUIRE(s != NULL);
    total = 0;
    for (;;) {
        fw_row one;
        st = fw_stream_next(s, &one, -1);
        if (st != FW_OK) break;
        total++;
        st = fw_stream_next_batch(s, rows, 7, &n, -1);
        if (st != FW_OK) break;
        total += (long)n;
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(total, 500);
    fw_stream_free(s);
}

struct each_ctx {
    long rows;
    long stop_after;
    long long ids;
    long bad;
    pthread_t caller;
    long wrong_thread;
    fw_stream *s;
    fw_status reentrant;
};

static int each_cb(void *ud, const char *json, size_t len) {
    struct each_ctx *c = ud;
    fw_row r;
    c->rows++;
    if (!fwt_row_ok(json, len)) c->bad++;
    c->ids += fwt_json_int(json, "id");
    if (!pthread_equal(pthread_self(), c->caller)) c->wrong_thread++;
    if (c->s && c->rows == 1) c->reentrant = fw_stream_next(c->s, &r, 0);
    return c->stop_after > 0 && c->rows >= c->stop_after;
}

void test_stream_for_each(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    struct each_ctx c;
    fw_row row;
    REQUIRE(s != NULL);
    memset(&c, 0, sizeof c);
    c.caller = pthread_self();
    c.stop_after = 10;
    c.s = s;
    c.reentrant = FW_OK;
    CHECK_ST(fw_stream_for_each(s, each_cb, &c), FW_STOPPED);
    CHECK_INT(c.rows, 10);
    /* The callback may not consume the stream it is called for. */
    CHECK_ST(c.reentrant, FW_E_STATE);
    /* After a stop, the stream goes on with the next row. */
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    c.ids += fwt_json_int(row.data, "id");
    c.stop_after = 0;
    c.s = NULL;
    CHECK_ST(fw_stream_for_each(s, each_cb, &c), FW_DONE);
    CHECK_INT(c.rows, 999);
    CHECK_INT(c.ids, 500500);
    CHECK_INT(c.bad, 0);
    CHECK_INT(c.wrong_thread, 0);
    CHECK_ST(fw_stream_for_each(s, each_cb, &c), FW_DONE);
    CHECK_INT(c.rows, 999);
    check_final_stats(s, 1000, 1000);
    fw_stream_free(s);
}

/* v_slow: 20 rows about 100 ms apart. */
void test_stream_timeouts(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_row row;
    fw_status st;
    long rows = 0, timeouts = 0, would_block = 0;
    fw_stats stats;
    REQUIRE(s != NULL);
    for (;;) {
        double t0 = fwt_now_ms(), took;
        st = fw_stream_next(s, &row, 30);
        took = fwt_now_ms() - t0;
        if (st == FW_TIMEOUT) {
            timeouts++;
            if (took < 25)
                fwt_fail(__FILE__, __LINE__, "FW_TIMEOUT after %.1f ms (< 30 ms)", took);
            if (took > 1000 * fwt_slow())
                fwt_fail(__FILE__, __LINE__, "FW_TIMEOUT after %.1f ms", took);
            /* timeout 0 does not wait */
            t0 = fwt_now_ms();
            st = fw_stream_next(s, &row, 0);
            if (st == FW_TIMEOUT) would_block++;
            CHECK(fwt_now_ms() - t0 < 25 * fwt_slow());
            if (st != FW_OK && st != FW_TIMEOUT) break;
            if (st == FW_OK) rows++;
            continue;
        }
        if (st != FW_OK) break;
        rows++;
        CHECK(fwt_row_ok(row.data, row.len));
        CHECK_INT(fwt_json_int(row.data, "i"), rows);
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(rows, 20);
    /* rows 100 ms apart and 30 ms timeouts: many timeouts, and the stream went on after each */
    CHECK(timeouts >= 10);
    CHECK(would_block >= 1);
    REQUIRE(stats_of(&*s, &stats));
    /* The first row arrived long before the last: nothing waited for a chunk to fill. */
    CHECK(stats.time_to_first_row_us < 1000000 * fwt_slow());
    CHECK(stats.elapsed_us >= 1800000);
    CHECK(stats.time_to_first_row_us * 3 < stats.elapsed_us);
    fw_stream_free(s);
}

void test_stream_fd_poll(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_row row;
    fw_status st;
    struct pollfd pfd;
    int fd;
    long rows = 0, waits = 0, spurious = 0, quiet_checks = 0, busy = 0;
    REQUIRE(s != NULL);
    fd = fw_stream_fd(s);
    REQUIRE(fd >= 0);
    CHECK_INT(fw_stream_fd(s), fd); /* the same descriptor every time */
    for (;;) {
        st = fw_stream_try_next(s, &row);
        if (st == FW_OK) {
            rows++;
            CHECK_INT(fwt_json_int(row.data, "i"), rows);
            continue;
        }
        if (st != FW_WOULD_BLOCK) break;
        /* Nothing ready: the fd is not readable now (unless a row arrived just now). */
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) == 0) {
            quiet_checks++;
        } else {
            st = fw_stream_try_next(s, &row);
            if (st == FW_WOULD_BLOCK) busy++;
            else if (st == FW_OK) { rows++; continue; }
            else break;
        }
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)(5000 * fwt_slow())) != 1 || !(pfd.revents & POLLIN)) {
            fwt_fail(__FILE__, __LINE__, "fd not readable within 5 s with %ld rows read", rows);
            break;
        }
        waits++;
        /* readable: try_next has something */
        st = fw_stream_try_next(s, &row);
        if (st == FW_WOULD_BLOCK) {
            spurious++;
            continue;
        }
        if (st != FW_OK) break;
        rows++;
        CHECK_INT(fwt_json_int(row.data, "i"), rows);
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(rows, 20);
    CHECK(waits >= 10);
    CHECK(quiet_checks >= 10);
    CHECK_INT(busy, 0);
    CHECK_INT(spurious, 0);
    /* At the end the fd stays readable (the end is something to return). */
    pfd.fd = fd;
    pfd.events = POLLIN;
    CHECK_INT(poll(&pfd, 1, 0), 1);
    CHECK_ST(fw_stream_try_next(s, &row), FW_DONE);
    fw_stream_free(s);

    /* An fd asked for after the rows arrived is readable at once. */
    s = fwt_exec(fwt_client(), "v_user", "(data->>'id')::int <= 3");
    REQUIRE(s != NULL);
    REQUIRE_ST(fw_stream_next(s, &row, -1), FW_OK);
    fd = fw_stream_fd(s);
    REQUIRE(fd >= 0);
    pfd.fd = fd;
    pfd.events = POLLIN;
    CHECK_INT(poll(&pfd, 1, (int)(5000 * fwt_slow())), 1);
    CHECK_INT(fwt_drain(s, &st, NULL), 2);
    CHECK_ST(st, FW_DONE);
    fw_stream_free(s);
}

/* Check one block's layout (fw_block's doc comment) and fold its rows into the counters. */
static void check_block(const fw_block *b, size_t max_rows, long *rows, long long *ids, long *bad) {
    size_t i;
    CHECK(b->n >= 1 && b->n <= max_rows);
    CHECK(b->data != NULL && b->offsets != NULL);
    CHECK_INT(b->offsets[0], 0);
    CHECK_INT(b->offsets[b->n], b->len);
    for (i = 0; i < b->n; i++) {
        const char *row = b->data + b->offsets[i];
        size_t len;
        if (b->offsets[i + 1] <= b->offsets[i]) {
            (*bad)++;
            continue;
        }
        len = b->offsets[i + 1] - b->offsets[i] - 1;
        /* the row is followed by its NUL, holds none itself (strlen), and is a whole row */
        if (row[len] != '\0' || strlen(row) != len || !fwt_row_ok(row, len)) (*bad)++;
        *ids += fwt_json_int(row, "id");
    }
    *rows += (long)b->n;
}

void test_stream_next_block(void) {
    fw_stream *s = fwt_exec(fwt_client(), "v_user", NULL);
    fw_block b, sentinel;
    fw_status st;
    long total = 0, blocks = 0, bad = 0;
    long long ids = 0;
    REQUIRE(s != NULL);
    CHECK_ST(fw_stream_next_block(NULL, &b, 64, 0, 0), FW_E_NULL);
    CHECK_ST(fw_stream_next_block(s, NULL, 64, 0, 0), FW_E_NULL);
    CHECK_ST(fw_stream_next_block(s, &b, 0, 0, 0), FW_E_INVALID_ARGUMENT);
    for (;;) {
        memset(&b, 0xab, sizeof b);
        st = fw_stream_next_block(s, &b, 64, 0, -1);
        if (st != FW_OK) break;
        blocks++;
        check_block(&b, 64, &total, &ids, &bad);
    }
    CHECK_ST(st, FW_DONE);
    /* out-parameters are written on success only */
    memset(&sentinel, 0xab, sizeof sentinel);
    CHECK(memcmp(&b, &sentinel, sizeof b) == 0);
    CHECK_INT(total, 1000);
    CHECK_INT(bad, 0);
    CHECK_INT(ids, 500500);
    CHECK(blocks >= 1000 / 64 && blocks < 1000);
    CHECK_ST(fw_stream_next_block(s, &b, 64, 0, -1), FW_DONE);
    check_final_stats(s, 1000, 1000);
    fw_stream_free(s);

    /* A byte limit below one row: one row per block. */
    s = fwt_exec(fwt_client(), "v_user", NULL);
    REQUIRE(s != NULL);
    total = 0, ids = 0, bad = 0;
    while ((st = fw_stream_next_block(s, &b, 64, 1, -1)) == FW_OK) {
        CHECK_INT(b.n, 1);
        check_block(&b, 1, &total, &ids, &bad);
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(total, 1000);
    CHECK_INT(ids, 500500);
    CHECK_INT(bad, 0);
    fw_stream_free(s);

    /* SQL NULL is the JSON null. */
    s = fwt_exec(fwt_client(), "v_null", NULL);
    REQUIRE(s != NULL);
    REQUIRE(fw_stream_next_block(s, &b, 64, 0, -1) == FW_OK);
    CHECK_INT(b.n, 3);
    CHECK_INT(b.len, strlen("{\"i\": 1}") + 1 + strlen("null") + 1 + strlen("{\"i\": 3}") + 1);
    CHECK(memcmp(b.data, "{\"i\": 1}\0null\0{\"i\": 3}\0", b.len) == 0);
    CHECK_ST(fw_stream_next_block(s, &b, 64, 0, -1), FW_DONE);
    fw_stream_free(s);

    /* Rows received before a server error come first, then the error. */
    s = fwt_exec(fwt_client(), "v_div_zero_after", NULL);
    REQUIRE(s != NULL);
    total = 0;
    while ((st = fw_stream_next_block(s, &b, 16, 0, -1)) == FW_OK) total += (long)b.n;
    CHECK_ST(st, FW_E_SERVER);
    CHECK_INT(total, 50);
    REQUIRE(fw_stream_error(s) != NULL);
    CHECK_STR(fw_error_sqlstate(fw_stream_error(s)), "22012");
    fw_stream_free(s);

    /* Mixing next and next_block on one stream keeps order and loses nothing. */
    s = fwt_exec(fwt_client(), "app.tv_order", NULL);
    REQUIRE(s != NULL);
    total = 0;
    for (;;) {
        fw_row one;
        st = fw_stream_next(s, &one, -1);
        if (st != FW_OK) break;
        total++;
        st = fw_stream_next_block(s, &b, 7, 0, -1);
        if (st != FW_OK) break;
        CHECK(b.n >= 1 && b.n <= 7);
        total += (long)b.n;
    }
    CHECK_ST(st, FW_DONE);
    CHECK_INT(total, 500);
    fw_stream_free(s);
}

/* Append code point `c` to `out` as UTF-8. */
static size_t put_utf8(unsigned char *out, unsigned long c) {
    if (c < 0x80) { out[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { out[0] = (unsigned char)(0xC0 | (c >> 6)); out[1] = (unsigned char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* Check fw_block_transcode on block `b`: every row, turned back into UTF-8 from its Latin-1
 * or UTF-16LE form, is the row's bytes, and its kind is Latin-1 exactly when every character
 * is below U+0100 (no UTF-8 lead byte above 0xC3). Counts the rows of each kind. */
static void check_transcoded(const fw_block *b, long *latin1, long *utf16) {
    size_t cap = 2 * b->len;
    unsigned char *out = malloc(cap), *back = malloc(b->len + 1);
    size_t *ends = malloc(b->n * sizeof *ends);
    uint8_t *kinds = malloc(b->n);
    REQUIRE(out && back && ends && kinds);
    CHECK_ST(fw_block_transcode(b, out, cap - 1, ends, kinds), FW_E_INVALID_ARGUMENT);
    REQUIRE_ST(fw_block_transcode(b, out, cap, ends, kinds), FW_OK);
    size_t start = 0;
    for (size_t i = 0; i < b->n; i++) {
        const unsigned char *row = (const unsigned char *)b->data + b->offsets[i];
        size_t len = b->offsets[i + 1] - b->offsets[i] - 1, m = 0;
        bool wide = false;
        for (size_t k = 0; k < len; k++) wide = wide || row[k] > 0xC3;
        CHECK_INT(kinds[i], wide ? 2 : 1);
        REQUIRE(ends[i] >= start && ends[i] <= cap);
        if (kinds[i] == 1) {
            (*latin1)++;
            for (size_t k = start; k < ends[i]; k++) m += put_utf8(back + m, out[k]);
        } else {
            (*utf16)++;
            CHECK((ends[i] - start) % 2 == 0);
            for (size_t k = start; k + 1 < ends[i]; k += 2) {
                unsigned long u = out[k] | (unsigned long)out[k + 1] << 8;
                if (u >= 0xD800 && u < 0xDC00 && k + 3 < ends[i]) {
                    unsigned long lo = out[k + 2] | (unsigned long)out[k + 3] << 8;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    k += 2;
                }
                m += put_utf8(back + m, u);
            }
        }
        if (m != len || memcmp(back, row, len) != 0)
            fwt_fail(__FILE__, __LINE__, "row %zu of the block differs after transcoding", i);
        start = ends[i];
    }
    free(out);
    free(back);
    free(ends);
    free(kinds);
}

void test_block_transcode(void) {
    /* A block laid out by hand: ASCII, Latin-1 letters, beyond U+00FF (BMP and not). */
    static const char data[] = "{\"a\":1}\0\"Z\xC3\xBCrich\"\0\"\xE6\x9D\xB1\"\0\"\xF0\x9F\x9A\x80\"\0";
    size_t offsets[] = {0, 8, 18, 24, 31};
    fw_block b = {data, sizeof data - 1, offsets, 4};
    unsigned char out[64];
    size_t ends[4], sentinel_ends[4];
    uint8_t kinds[4];
    long latin1 = 0, utf16 = 0;
    REQUIRE(offsets[4] == sizeof data - 1);
    CHECK_ST(fw_block_transcode(NULL, out, sizeof out, ends, kinds), FW_E_NULL);
    CHECK_ST(fw_block_transcode(&b, NULL, sizeof out, ends, kinds), FW_E_NULL);
    CHECK_ST(fw_block_transcode(&b, out, sizeof out, NULL, kinds), FW_E_NULL);
    CHECK_ST(fw_block_transcode(&b, out, sizeof out, ends, NULL), FW_E_NULL);
    /* offsets that do not end at len, or do not rise: refused, nothing written */
    memset(ends, 0xab, sizeof ends);
    memcpy(sentinel_ends, ends, sizeof ends);
    fw_block bad = b;
    bad.len = b.len - 1;
    CHECK_ST(fw_block_transcode(&bad, out, sizeof out, ends, kinds), FW_E_INVALID_ARGUMENT);
    size_t flat[] = {0, 8, 8, 24, 31};
    bad = b;
    bad.offsets = flat;
    CHECK_ST(fw_block_transcode(&bad, out, sizeof out, ends, kinds), FW_E_INVALID_ARGUMENT);
    CHECK(memcmp(ends, sentinel_ends, sizeof ends) == 0);
    REQUIRE_ST(fw_block_transcode(&b, out, sizeof out, ends, kinds), FW_OK);
    CHECK_INT(kinds[0], 1);
    CHECK_INT(kinds[1], 1);
    CHECK_INT(kinds[2], 2);
    CHECK_INT(kinds[3], 2);
    CHECK_INT(ends[0], 7);
    CHECK_INT(ends[1], 7 + 8);          /* "Zürich" in quotes: 8 Latin-1 bytes */
    CHECK_INT(ends[2], 7 + 8 + 6);      /* quote, U+6771, quote: 3 UTF-16 units */
    CHECK_INT(ends[3], 7 + 8 + 6 + 8);  /* quote, a surrogate pair, quote */
    CHECK(memcmp(out + 7, "\"Z\xFCrich\"", 8) == 0);
    check_transcoded(&b, &latin1, &utf16);
    CHECK_INT(latin1, 2);
    CHECK_INT(utf16, 2);

    /* The blocks of a real stream (rows with Latin-1 letters and with CJK and emoji). */
    fw_stream *s = fwt_exec(fwt_client(), "v_filter", NULL);
    fw_status st;
    latin1 = utf16 = 0;
    REQUIRE(s != NULL);
    while ((st = fw_stream_next_block(s, &b, 16, 0, -1)) == FW_OK) check_transcoded(&b, &latin1, &utf16);
    CHECK_ST(st, FW_DONE);
    CHECK(latin1 > 0);
    CHECK(utf16 > 0);
    fw_stream_free(s);
}
