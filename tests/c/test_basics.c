/* Library-wide calls that need no server: status names, version, error accessors, NULL
 * handling of every function, *_free(NULL). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

void test_status_str(void) {
    static const struct {
        int code;
        const char *name;
    } all[] = {
        {FW_OK, "FW_OK"},
        {FW_DONE, "FW_DONE"},
        {FW_WOULD_BLOCK, "FW_WOULD_BLOCK"},
        {FW_TIMEOUT, "FW_TIMEOUT"},
        {FW_PAUSED, "FW_PAUSED"},
        {FW_STOPPED, "FW_STOPPED"},
        {FW_E_INVALID_ARGUMENT, "FW_E_INVALID_ARGUMENT"},
        {FW_E_NULL, "FW_E_NULL"},
        {FW_E_CONNECT, "FW_E_CONNECT"},
        {FW_E_AUTH, "FW_E_AUTH"},
        {FW_E_TLS, "FW_E_TLS"},
        {FW_E_SERVER, "FW_E_SERVER"},
        {FW_E_PROTOCOL, "FW_E_PROTOCOL"},
        {FW_E_SCHEMA, "FW_E_SCHEMA"},
        {FW_E_MEMORY_LIMIT, "FW_E_MEMORY_LIMIT"},
        {FW_E_CANCELLED, "FW_E_CANCELLED"},
        {FW_E_IO, "FW_E_IO"},
        {FW_E_STATE, "FW_E_STATE"},
        {FW_E_PANIC, "FW_E_PANIC"},
        {FW_E_SHUTDOWN, "FW_E_SHUTDOWN"},
    };
    static const int unknown[] = {6, 7, 100, -15, -100, 2147483647, -2147483647 - 1};
    size_t i;
    /* Non-error outcomes are positive (or zero), errors negative. */
    CHECK(FW_OK == 0);
    for (i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = fw_status_str(all[i].code);
        CHECK_STR(s, all[i].name);
        /* A static string: the same pointer every time. */
        CHECK(fw_status_str(all[i].code) == s);
        if (strncmp(all[i].name, "FW_E_", 5) == 0)
            CHECK(all[i].code < 0);
        else
            CHECK(all[i].code >= 0);
    }
    for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK_STR(fw_status_str(unknown[i]), "FW_UNKNOWN");
}

void test_version(void) {
    char expect[64];
    CHECK_STR(fw_version(), FW_VERSION_STRING);
    snprintf(expect, sizeof expect, "%d.%d.%d", FW_VERSION_MAJOR, FW_VERSION_MINOR,
             FW_VERSION_PATCH);
    CHECK_STR(fw_version(), expect);
    CHECK(fw_version() == fw_version());
}

void test_error_accessors_null(void) {
    CHECK_ST(fw_error_code(NULL), FW_E_NULL);
    CHECK(fw_error_message(NULL) == NULL);
    CHECK(fw_error_sqlstate(NULL) == NULL);
    CHECK(fw_error_detail(NULL) == NULL);
    CHECK(fw_error_hint(NULL) == NULL);
    CHECK(fw_error_position(NULL) == NULL);
    CHECK(fw_stream_error(NULL) == NULL);
}

static void *first_error_in_new_thread(void *arg) {
    (void)arg;
    return (void *)fw_last_error();
}

void test_null_arguments(void) {
    fw_client *c = fwt_client();
    fw_client *sentinel_c = (fw_client *)&sentinel_c;
    fw_query *q = NULL, *sentinel_q = (fw_query *)&sentinel_q;
    fw_stream *s = NULL, *sentinel_s = (fw_stream *)&sentinel_s;
    fw_row row = {(const char *)&row, 12345};
    fw_row rows[4];
    size_t n = 777;
    fw_stats stats;
    pthread_t t;
    void *other = (void *)1;

    /* A thread that never failed has no last error. */
    REQUIRE(pthread_create(&t, NULL, first_error_in_new_thread, NULL) == 0);
    pthread_join(t, &other);
    CHECK(other == NULL);

    CHECK_ST(fw_client_new(NULL, &sentinel_c), FW_E_NULL);
    CHECK_LAST_ERROR(FW_E_NULL, NULL);
    CHECK(strstr(fw_error_message(fw_last_error()), "conninfo") != NULL);
    CHECK(sentinel_c == (fw_client *)&sentinel_c);
    CHECK_ST(fw_client_new(fwt_conninfo_socket(), NULL), FW_E_NULL);

    CHECK_ST(fw_query_new(NULL, "v_user", &sentinel_q), FW_E_NULL);
    CHECK_ST(fw_query_new(c, NULL, &sentinel_q), FW_E_NULL);
    CHECK_ST(fw_query_new(c, "v_user", NULL), FW_E_NULL);
    CHECK(sentinel_q == (fw_query *)&sentinel_q);
    CHECK_ST(fw_query_where_sql(NULL, "true"), FW_E_NULL);
    CHECK_ST(fw_query_order_by(NULL, "data", NULL, FW_ASC), FW_E_NULL);
    CHECK_ST(fw_query_limit(NULL, 1), FW_E_NULL);
    CHECK_ST(fw_query_offset(NULL, 1), FW_E_NULL);
    CHECK_ST(fw_query_chunk_size(NULL, 1), FW_E_NULL);
    CHECK_ST(fw_query_adaptive_chunking(NULL, true, 1, 2), FW_E_NULL);
    CHECK_ST(fw_query_max_memory(NULL, 1 << 20, 0.5, 1.0), FW_E_NULL);
    CHECK_ST(fw_query_read_coalesce(NULL, 1000), FW_E_NULL);
    CHECK_ST(fw_query_read_ahead(NULL, 1), FW_E_NULL);
    CHECK_ST(fw_query_describe_wait(NULL, 20), FW_E_NULL);
    CHECK_ST(fw_query_filter(NULL, NULL, NULL), FW_E_NULL);
    CHECK_ST(fw_query_execute(NULL, &sentinel_s), FW_E_NULL);
    CHECK(sentinel_s == (fw_stream *)&sentinel_s);

    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    CHECK_ST(fw_query_where_sql(q, NULL), FW_E_NULL);
    CHECK_ST(fw_query_order_by(q, NULL, NULL, FW_ASC), FW_E_NULL);
    CHECK_ST(fw_query_filter(q, NULL, NULL), FW_E_NULL);
    CHECK_ST(fw_query_execute(q, NULL), FW_E_NULL);
    REQUIRE_ST(fw_query_limit(q, 3), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);

    CHECK_ST(fw_stream_next(NULL, &row, 0), FW_E_NULL);
    CHECK_ST(fw_stream_next(s, NULL, 0), FW_E_NULL);
    CHECK_ST(fw_stream_try_next(NULL, &row), FW_E_NULL);
    CHECK_ST(fw_stream_try_next(s, NULL), FW_E_NULL);
    CHECK_ST(fw_stream_next_batch(NULL, rows, 4, &n, 0), FW_E_NULL);
    CHECK_ST(fw_stream_next_batch(s, NULL, 4, &n, 0), FW_E_NULL);
    CHECK_ST(fw_stream_next_batch(s, rows, 4, NULL, 0), FW_E_NULL);
    CHECK_INT(n, 777);
    CHECK_ST(fw_stream_for_each(NULL, NULL, NULL), FW_E_NULL);
    CHECK_ST(fw_stream_for_each(s, NULL, NULL), FW_E_NULL);
    CHECK_INT(fw_stream_fd(NULL), -1);
    CHECK_LAST_ERROR(FW_E_NULL, NULL);
    CHECK_ST(fw_stream_pause(NULL), FW_E_NULL);
    CHECK_ST(fw_stream_pause_with_reason(NULL, "x"), FW_E_NULL);
    CHECK_ST(fw_stream_resume(NULL), FW_E_NULL);
    CHECK_ST(fw_stream_set_pause_timeout(NULL, 10), FW_E_NULL);
    CHECK_INT(fw_stream_state_snapshot(NULL), FW_STATE_INVALID);
    stats.struct_size = sizeof stats;
    CHECK_ST(fw_stream_stats(NULL, &stats), FW_E_NULL);
    CHECK_ST(fw_stream_stats(s, NULL), FW_E_NULL);
    CHECK_ST(fw_stream_cancel(NULL), FW_E_NULL);
    /* The misuse did not disturb the stream: its 3 rows are all there. */
    CHECK(row.data == (const char *)&row && row.len == 12345);
    CHECK_INT(fwt_drain(s, NULL, NULL), 3);
    CHECK(fw_stream_error(s) == NULL);
    fw_stream_free(s);
    fw_query_free(q);
}

void test_invalid_utf8(void) {
    fw_client *c = fwt_client();
    fw_client *out_c = NULL;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    CHECK_ST(fw_client_new("host=\xff\xfe", &out_c), FW_E_INVALID_ARGUMENT);
    CHECK(strstr(fwt_last_msg(), "UTF-8") != NULL);
    CHECK(out_c == NULL);
    CHECK_ST(fw_query_new(c, "v_\xc3", &q), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where_sql(q, "data->>'name' = '\xe9'"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_order_by(q, "\x80", NULL, FW_ASC), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", "\xff", FW_ASC), FW_E_INVALID_ARGUMENT);
    /* None of the rejected fragments reached the query: it still runs. */
    REQUIRE_ST(fw_query_limit(q, 1), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_ST(fw_stream_pause_with_reason(s, "bad \xff reason"), FW_E_INVALID_ARGUMENT);
    {
        fw_stats st;
        st.struct_size = sizeof st;
        CHECK_ST(fw_stream_stats(s, &st), FW_OK);
        CHECK_INT(st.pause_count, 0); /* the rejected call did not pause */
        CHECK(st.state != FW_STATE_PAUSED);
    }
    CHECK_INT(fwt_drain(s, NULL, NULL), 1);
    fw_stream_free(s);
    fw_query_free(q);
}

void test_free_null(void) {
    const fw_error *before;
    /* Make sure there is a last error, then check that freeing NULL leaves it alone (no
     * failure is recorded: the calls are true no-ops). */
    CHECK_ST(fw_query_limit(NULL, 1), FW_E_NULL);
    before = fw_last_error();
    REQUIRE(before != NULL);
    fw_client_free(NULL);
    fw_query_free(NULL);
    fw_stream_free(NULL);
    fw_string_free(NULL);
    CHECK(fw_last_error() == before);
    CHECK_ST(fw_error_code(fw_last_error()), FW_E_NULL);
}

void test_last_error_lifetime(void) {
    fw_client *c = fwt_client();
    fw_query *q = NULL;
    const fw_error *e;
    char msg[512];
    CHECK_ST(fw_query_new(c, "not a view", &q), FW_E_INVALID_ARGUMENT);
    e = fw_last_error();
    REQUIRE(e != NULL);
    snprintf(msg, sizeof msg, "%s", fw_error_message(e));
    CHECK(strstr(msg, "not a view") != NULL);
    CHECK(fw_error_sqlstate(e) == NULL);
    CHECK(fw_error_detail(e) == NULL);
    CHECK(fw_error_hint(e) == NULL);
    CHECK(fw_error_position(e) == NULL);
    /* Successful calls keep the last error. */
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    CHECK_ST(fw_query_limit(q, 5), FW_OK);
    CHECK(fw_last_error() == e);
    CHECK_STR(fw_error_message(fw_last_error()), msg);
    /* A new failure replaces it. */
    CHECK_ST(fw_query_limit(q, (uint64_t)INT64_MAX + 1), FW_E_INVALID_ARGUMENT);
    CHECK(strcmp(fw_error_message(fw_last_error()), msg) != 0);
    fw_query_free(q);
}
