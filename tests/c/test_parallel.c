/* Parallel partitioned streams (fw_query_parallel, fw_query_partition_by) through the C API:
 * every row once on a table and on a view, the ordered merge with OFFSET/LIMIT, every
 * consuming call (next, try_next with the fd, next_batch, next_block, for_each), stats,
 * cancel, an error in the parts, and the argument checks. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

/* A parallel query over `source` (the users table or a view over it). */
static fw_query *par_query(const char *source, unsigned k, const char *partition_by) {
    fw_query *q = NULL;
    if (fw_query_new(fwt_client(), source, &q) != FW_OK) return NULL;
    if (fw_query_parallel(q, k) != FW_OK ||
        (partition_by && fw_query_partition_by(q, partition_by) != FW_OK)) {
        fw_query_free(q);
        return NULL;
    }
    return q;
}

void test_parallel_arguments(void) {
    fw_query *q = NULL;
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    CHECK_ST(fw_query_parallel(NULL, 2), FW_E_NULL);
    CHECK_ST(fw_query_parallel(q, 0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_parallel(q, 65), FW_E_INVALID_ARGUMENT);
    CHECK(strstr(fwt_last_msg(), "65") != NULL);
    CHECK_ST(fw_query_partition_by(q, NULL), FW_E_NULL);
    CHECK_ST(fw_query_partition_by(q, " "), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_partition_by(NULL, "id"), FW_E_NULL);
    /* A view without a partition expression: refused, saying what to add. */
    CHECK_ST(fw_query_parallel(q, 2), FW_OK);
    {
        fw_stream *s = (fw_stream *)&q;
        CHECK_ST(fw_query_execute(q, &s), FW_E_INVALID_ARGUMENT);
        CHECK(strstr(fwt_last_msg(), "fw_query_partition_by") != NULL);
        CHECK(s == (fw_stream *)&q); /* out-param untouched on failure */
    }
    /* Text ordered in the database's collation cannot be merged exactly. */
    CHECK_ST(fw_query_partition_by(q, "(data->>'id')::int"), FW_OK);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", NULL, FW_ASC), FW_OK);
    {
        fw_stream *s = NULL;
        CHECK_ST(fw_query_execute(q, &s), FW_E_INVALID_ARGUMENT);
        CHECK(strstr(fwt_last_msg(), "COLLATE \"C\"") != NULL);
    }
    /* parallel 1 is a serial stream again. */
    CHECK_ST(fw_query_parallel(q, 1), FW_OK);
    {
        fw_stream *s = NULL;
        fw_status end;
        REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
        CHECK_INT(fwt_drain(s, &end, NULL), 1000);
        CHECK_ST(end, FW_DONE);
        fw_stream_free(s);
    }
    fw_query_free(q);
}

void test_parallel_table_and_view(void) {
    static const struct {
        const char *source, *expr;
    } cases[] = {{"users", NULL}, {"v_user", "(data->>'id')::int"}};
    size_t c;
    unsigned k;
    for (c = 0; c < 2; c++)
        for (k = 2; k <= 4; k++) {
            fw_query *q = par_query(cases[c].source, k, cases[c].expr);
            fw_stream *s = NULL;
            fw_status end;
            long long ids = 0;
            fw_stats st;
            REQUIRE(q != NULL);
            REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
            CHECK_INT(fwt_drain(s, &end, &ids), 1000);
            CHECK_ST(end, FW_DONE);
            CHECK(ids == 500500LL); /* every id 1..1000 once */
            memset(&st, 0, sizeof st);
            st.struct_size = sizeof st;
            CHECK_ST(fw_stream_stats(s, &st), FW_OK);
            CHECK(st.state == FW_STATE_COMPLETED);
            CHECK(st.total_rows_received == 1000);
            CHECK(st.total_rows_yielded == 1000);
            CHECK(fw_stream_state_snapshot(s) == FW_STATE_COMPLETED);
            CHECK(fw_stream_error(s) == NULL);
            fw_stream_free(s);
            fw_query_free(q);
        }
}

void test_parallel_ordered_merge(void) {
    fw_query *q = par_query("v_user", 3, "(data->>'id')::int");
    fw_stream *s = NULL;
    fw_row row;
    long long want = 995, n = 0;
    fw_status st;
    REQUIRE(q != NULL);
    CHECK_ST(fw_query_order_by(q, "(data->>'n')::int", NULL, FW_DESC), FW_OK);
    CHECK_ST(fw_query_limit(q, 10), FW_OK);
    CHECK_ST(fw_query_offset(q, 5), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    while ((st = fw_stream_next(s, &row, FWT_WAIT_MS)) == FW_OK) {
        CHECK(fwt_row_ok(row.data, row.len));
        CHECK(fwt_json_int(row.data, "id") == want);
        want--;
        n++;
    }
    CHECK_ST(st, FW_DONE);
    CHECK(n == 10);
    fw_stream_free(s);
    fw_query_free(q);
}

static int sum_cb(void *userdata, const char *json, size_t len) {
    long long *sum = userdata;
    if (!fwt_row_ok(json, len)) return 1;
    *sum += fwt_json_int(json, "id");
    return 0;
}

void test_parallel_consuming_calls(void) {
    int mode;
    for (mode = 0; mode < 4; mode++) {
        fw_query *q = par_query("users", 2, NULL);
        fw_stream *s = NULL;
        long long ids = 0;
        long rows = 0;
        fw_status st = FW_OK;
        REQUIRE(q != NULL);
        REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
        if (mode == 0) { /* try_next, waiting on the stream's fd */
            struct pollfd pfd;
            fw_row row;
            pfd.fd = fw_stream_fd(s);
            pfd.events = POLLIN;
            CHECK(pfd.fd >= 0);
            for (;;) {
                st = fw_stream_try_next(s, &row);
                if (st == FW_OK) {
                    rows++;
                    ids += fwt_json_int(row.data, "id");
                } else if (st == FW_WOULD_BLOCK) {
                    if (poll(&pfd, 1, (int)FWT_WAIT_MS) != 1) break;
                } else {
                    break;
                }
            }
        } else if (mode == 1) { /* next_batch */
            fw_row batch[64];
            size_t n = 0, i;
            while ((st = fw_stream_next_batch(s, batch, 64, &n, FWT_WAIT_MS)) == FW_OK) {
                CHECK(n >= 1 && n <= 64);
                for (i = 0; i < n; i++) {
                    CHECK(fwt_row_ok(batch[i].data, batch[i].len));
                    ids += fwt_json_int(batch[i].data, "id");
                }
                rows += (long)n;
            }
        } else if (mode == 2) { /* next_block */
            fw_block b;
            size_t i;
            while ((st = fw_stream_next_block(s, &b, 100, 0, FWT_WAIT_MS)) == FW_OK) {
                CHECK(b.n >= 1 && b.n <= 100);
                CHECK(b.offsets[b.n] == b.len);
                for (i = 0; i < b.n; i++) {
                    const char *r = b.data + b.offsets[i];
                    size_t len = b.offsets[i + 1] - b.offsets[i] - 1;
                    CHECK(fwt_row_ok(r, len));
                    ids += fwt_json_int(r, "id");
                }
                rows += (long)b.n;
            }
        } else { /* for_each */
            st = fw_stream_for_each(s, sum_cb, &ids);
            rows = 1000;
        }
        CHECK_ST(st, FW_DONE);
        CHECK_INT(rows, 1000);
        CHECK(ids == 500500LL);
        fw_stream_free(s);
        fw_query_free(q);
    }
}

void test_parallel_cancel_and_error(void) {
    fw_query *q = par_query("users", 3, NULL);
    fw_stream *s = NULL;
    fw_row row;
    fw_status end;
    REQUIRE(q != NULL);
    CHECK_ST(fw_query_max_memory(q, 48 * 1024, 0.8, 1.0), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_ST(fw_stream_next(s, &row, FWT_WAIT_MS), FW_OK);
    CHECK_ST(fw_stream_pause(s), FW_OK);
    CHECK_ST(fw_stream_resume(s), FW_OK);
    CHECK_ST(fw_stream_cancel(s), FW_OK);
    CHECK_ST(fw_stream_next(s, &row, FWT_WAIT_MS), FW_E_CANCELLED);
    CHECK(fw_stream_state_snapshot(s) == FW_STATE_CANCELLED);
    CHECK_ST(fw_stream_cancel(s), FW_OK);
    CHECK_ST(fw_stream_pause(s), FW_E_STATE);
    fw_stream_free(s);
    fw_query_free(q);

    /* A division by zero in the parts: the stream fails with the server's error. */
    q = par_query("v_div_zero_after", 2, "(data->>'i')::int");
    REQUIRE(q != NULL);
    if (fw_query_execute(q, &s) == FW_OK) {
        const fw_error *e;
        fwt_drain(s, &end, NULL);
        CHECK_ST(end, FW_E_SERVER);
        e = fw_stream_error(s);
        CHECK(e != NULL && strcmp(fw_error_sqlstate(e), "22012") == 0);
        CHECK(fw_stream_state_snapshot(s) == FW_STATE_FAILED);
        fw_stream_free(s);
    } else {
        /* Reported by execute when the server answered within the describe wait. */
        CHECK(fw_last_error() != NULL && strcmp(fw_error_sqlstate(fw_last_error()), "22012") == 0);
    }
    fw_query_free(q);
    /* The client's connections are usable afterwards. */
    s = fwt_exec(fwt_client(), "users", NULL);
    REQUIRE(s != NULL);
    CHECK_INT(fwt_drain(s, &end, NULL), 1000);
    fw_stream_free(s);
}
