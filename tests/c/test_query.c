/* The query builder: every setter with valid and invalid values, the generated statement's
 * shape (checked through the rows it returns), and the errors reported by fw_query_execute. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

void test_query_sources(void) {
    static const char *good[] = {"v_user", "app.tv_order", "_x", "V$1", "public.v_user"};
    static const char *bad[] = {"",          "v_user;",     "a.b.c",    "1abc",     "v user",
                                "\"v_user\"", "app.",        ".v_user",  "v-user",   "v_user--",
                                "app.tv_order; DROP TABLE t_guard"};
    fw_client *c = fwt_client();
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++) {
        fw_query *q = NULL;
        CHECK_ST(fw_query_new(c, good[i], &q), FW_OK);
        CHECK(q != NULL);
        fw_query_free(q);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fw_query *q = (fw_query *)&q;
        fw_status st = fw_query_new(c, bad[i], &q);
        if (st != FW_E_INVALID_ARGUMENT)
            fwt_fail(__FILE__, __LINE__, "fw_query_new(\"%s\") = %s", bad[i], fw_status_str(st));
        else
            fwt_pass_check();
        CHECK(q == (fw_query *)&q);
    }
    /* 64 bytes is over PostgreSQL's identifier limit. */
    {
        char longname[80];
        fw_query *q = NULL;
        memset(longname, 'a', 64);
        longname[64] = '\0';
        CHECK_ST(fw_query_new(c, longname, &q), FW_E_INVALID_ARGUMENT);
        longname[63] = '\0';
        CHECK_ST(fw_query_new(c, longname, &q), FW_OK);
        fw_query_free(q);
    }
}

void test_query_setters_validation(void) {
    fw_query *q = NULL;
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);

    CHECK_ST(fw_query_where_sql(q, "true"), FW_OK);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", NULL, FW_ASC), FW_OK);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", "C", FW_DESC), FW_OK);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", NULL, 2), FW_E_INVALID_ARGUMENT);
    CHECK(strstr(fwt_last_msg(), "2") != NULL);
    CHECK_ST(fw_query_order_by(q, "data->>'name'", NULL, -1), FW_E_INVALID_ARGUMENT);

    CHECK_ST(fw_query_limit(q, 0), FW_OK);
    CHECK_ST(fw_query_limit(q, (uint64_t)INT64_MAX), FW_OK);
    CHECK_ST(fw_query_limit(q, (uint64_t)INT64_MAX + 1), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_limit(q, UINT64_MAX), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_offset(q, 0), FW_OK);
    CHECK_ST(fw_query_offset(q, (uint64_t)INT64_MAX + 1), FW_E_INVALID_ARGUMENT);

    CHECK_ST(fw_query_chunk_size(q, 1), FW_OK);
    CHECK_ST(fw_query_chunk_size(q, 0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_chunk_size(q, 100000), FW_OK);

    CHECK_ST(fw_query_adaptive_chunking(q, true, 1, 1), FW_OK);
    CHECK_ST(fw_query_adaptive_chunking(q, true, 16, 1024), FW_OK);
    CHECK_ST(fw_query_adaptive_chunking(q, true, 0, 10), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_adaptive_chunking(q, true, 10, 9), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_adaptive_chunking(q, false, 0, 0), FW_OK);

    CHECK_ST(fw_query_read_coalesce(q, 0), FW_OK);
    CHECK_ST(fw_query_read_coalesce(q, 100000), FW_OK);
    CHECK_ST(fw_query_read_coalesce(q, 100001), FW_E_INVALID_ARGUMENT);
    CHECK(fw_last_error() && strstr(fw_error_message(fw_last_error()), "100 ms") != NULL);
    CHECK_ST(fw_query_read_coalesce(q, 1000), FW_OK);

    CHECK_ST(fw_query_read_ahead(q, 1), FW_OK);
    CHECK_ST(fw_query_read_ahead(q, 0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_read_ahead(q, SIZE_MAX), FW_OK);
    CHECK_ST(fw_query_read_ahead(q, 512 * 1024), FW_OK);

    CHECK_ST(fw_query_describe_wait(q, -1), FW_OK);
    CHECK_ST(fw_query_describe_wait(q, 0), FW_OK);
    CHECK_ST(fw_query_describe_wait(q, 3600000), FW_OK);
    CHECK_ST(fw_query_describe_wait(q, 3600001), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_describe_wait(q, -2), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_describe_wait(q, INT64_MIN), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_describe_wait(q, 20), FW_OK);

    CHECK_ST(fw_query_max_memory(q, 1 << 20, 0.8, 1.0), FW_OK);
    CHECK_ST(fw_query_max_memory(q, 16 * 1024, 1.0, 1.0), FW_OK);
    CHECK_ST(fw_query_max_memory(q, 16 * 1024 - 1, 0.8, 1.0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 0, 0.8, 1.0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, 0.0, 1.0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, -0.5, 1.0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, 0.9, 0.5), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, 0.5, 1.5), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, NAN, 1.0), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_max_memory(q, 1 << 20, 0.5, INFINITY), FW_E_INVALID_ARGUMENT);
    CHECK_LAST_ERROR(FW_E_INVALID_ARGUMENT, NULL);

    /* After all the rejected values the query still has its last valid settings and runs:
     * WHERE true, ORDER BY name ASC, name DESC, LIMIT INT64_MAX, OFFSET 0. */
    {
        fw_stream *s = NULL;
        fw_status end;
        REQUIRE_ST(fw_query_limit(q, 7), FW_OK);
        REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
        CHECK_INT(fwt_drain(s, &end, NULL), 7);
        CHECK_ST(end, FW_DONE);
        fw_stream_free(s);
    }
    fw_query_free(q);
}

/* Rows of `q` as their "id" values, up to `cap`; returns the count (-1 on error). */
static long ids_of(fw_query *q, long long *ids, long cap) {
    fw_stream *s = NULL;
    fw_row row;
    fw_status st;
    long n = 0;
    if (fw_query_execute(q, &s) != FW_OK) return -1;
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) {
        if (n < cap) ids[n] = fwt_json_int(row.data, "id");
        n++;
    }
    fw_stream_free(s);
    return st == FW_DONE ? n : -1;
}

void test_query_shape(void) {
    fw_client *c = fwt_client();
    fw_query *q = NULL;
    long long ids[32];
    long n;
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    /* Two predicates, each parenthesised: "a OR b" AND "c" must not become a OR (b AND c). */
    REQUIRE_ST(fw_query_where_sql(q, "(data->>'id')::int <= 10 OR (data->>'id')::int = 500"), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "(data->>'id')::int >= 3"), FW_OK);
    REQUIRE_ST(fw_query_order_by(q, "(data->>'id')::int", NULL, FW_ASC), FW_OK);
    REQUIRE_ST(fw_query_limit(q, 4), FW_OK);
    REQUIRE_ST(fw_query_offset(q, 1), FW_OK);
    n = ids_of(q, ids, 32);
    REQUIRE(n == 4);
    /* ids 3..10 and 500 (without the parentheses it would be 1..10 and 500), ascending,
     * offset 1, limit 4 -> 4 5 6 7 */
    CHECK_INT(ids[0], 4);
    CHECK_INT(ids[1], 5);
    CHECK_INT(ids[2], 6);
    CHECK_INT(ids[3], 7);
    /* A query runs again (execute does not consume it), with the same result. */
    n = ids_of(q, ids, 32);
    CHECK_INT(n, 4);
    CHECK_INT(ids[0], 4);
    /* Setters after an execute apply to the next one. */
    REQUIRE_ST(fw_query_limit(q, 20), FW_OK);
    REQUIRE_ST(fw_query_offset(q, 0), FW_OK);
    n = ids_of(q, ids, 32);
    CHECK_INT(n, 9);
    CHECK_INT(ids[0], 3);
    CHECK_INT(ids[8], 500);
    fw_query_free(q);

    /* Two ORDER BY terms, in order, and a collation. */
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "(data->>'id')::int <= 20"), FW_OK);
    REQUIRE_ST(fw_query_order_by(q, "(data->>'id')::int % 2", NULL, FW_ASC), FW_OK);
    REQUIRE_ST(fw_query_order_by(q, "data->>'email'", "C", FW_DESC), FW_OK);
    n = ids_of(q, ids, 32);
    REQUIRE(n == 20);
    /* even ids first; by email (text, "C" collation) descending: user8 > user6 > ... > user10 */
    CHECK_INT(ids[0], 8);
    CHECK_INT(ids[1], 6);
    CHECK_INT(ids[2], 4);
    CHECK_INT(ids[3], 2);
    CHECK_INT(ids[4], 20);
    CHECK_INT(ids[5], 18);
    CHECK_INT(ids[9], 10);
    CHECK_INT(ids[10], 9);
    fw_query_free(q);

    /* A schema-qualified json (not jsonb) source. */
    REQUIRE_ST(fw_query_new(c, "app.tv_order", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "data->>'status' = 'paid'"), FW_OK);
    n = ids_of(q, ids, 32);
    CHECK_INT(n, 125);
    fw_query_free(q);

    /* An unknown collation is the server's error (quoted identifier, so no injection). */
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_order_by(q, "data->>'name'", "no such \" collation", FW_ASC), FW_OK);
    {
        fw_stream *s = (fw_stream *)&s;
        CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
        CHECK_LAST_ERROR(FW_E_SERVER, "42704");
        CHECK(s == (fw_stream *)&s);
    }
    fw_query_free(q);
}

void test_query_injection(void) {
    fw_client *c = fwt_client();
    fw_query *q = NULL;
    fw_stream *s = NULL;
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "true); DROP TABLE t_guard; --"), FW_OK);
    CHECK(fw_query_execute(q, &s) < 0);
    CHECK(s == NULL);
    fw_query_free(q);
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "true; DROP TABLE t_guard"), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    CHECK(s == NULL);
    fw_query_free(q);
    /* t_guard still exists: reading it fails with "column data does not exist" (42703; it
     * has only an int column "id"), not "relation does not exist" (42P01). */
    REQUIRE_ST(fw_query_new(c, "t_guard", &q), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    CHECK_LAST_ERROR(FW_E_SERVER, "42703");
    CHECK(s == NULL);
    fw_query_free(q);
    CHECK_INT(fwt_server_true("EXISTS (SELECT 1 FROM t_guard)"), 1);
}

void test_query_missing_view(void) {
    fw_query *q = NULL;
    fw_stream *s = (fw_stream *)&s;
    const fw_error *e;
    REQUIRE_ST(fw_query_new(fwt_client(), "v_no_such_view", &q), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    CHECK(s == (fw_stream *)&s);
    e = fw_last_error();
    CHECK_LAST_ERROR(FW_E_SERVER, "42P01");
    CHECK(e && strstr(fw_error_message(e), "v_no_such_view") != NULL);
    CHECK(e && fw_error_position(e) != NULL);
    fw_query_free(q);
    /* The client is still usable after a server error. */
    CHECK_INT(fwt_server_true("true"), 1);
}

static void check_schema_error(const char *source, const char *mention) {
    fw_query *q = NULL;
    fw_stream *s = (fw_stream *)&s;
    REQUIRE_ST(fw_query_new(fwt_client(), source, &q), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SCHEMA);
    CHECK(s == (fw_stream *)&s);
    CHECK_LAST_ERROR(FW_E_SCHEMA, NULL);
    CHECK(fw_error_sqlstate(fw_last_error()) == NULL);
    if (strstr(fwt_last_msg(), mention) == NULL)
        fwt_fail(__FILE__, __LINE__, "schema error for %s does not mention %s: %s", source,
                 mention, fwt_last_msg());
    fw_query_free(q);
}

void test_query_schema_errors(void) {
    fw_query *q = NULL;
    fw_stream *s = (fw_stream *)&s;
    fw_row row;
    /* `data` of type text: the shape error names what came. */
    check_schema_error("v_not_json", "text");
    /* No `data` column at all: the generated SELECT data fails on the server. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_wrong_name", &q), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    CHECK_LAST_ERROR(FW_E_SERVER, "42703");
    CHECK(s == (fw_stream *)&s);
    fw_query_free(q);
    /* A view with more columns than `data`: the statement selects `data` only, so the result
     * has the right shape and streams. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_two_cols", &q), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_ST(fw_stream_next(s, &row, -1), FW_OK);
    CHECK_STR(row.data, "{\"i\": 1}");
    CHECK_ST(fw_stream_next(s, &row, -1), FW_DONE);
    fw_stream_free(s);
    fw_query_free(q);
    /* A wrong shape the server describes only with its first row, 0.5 s after the query
     * started: fw_query_execute returns after its describe wait (20 ms by default), and the
     * stream reports the shape; with a wait of -1 fw_query_execute does. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_slow_not_json", &q), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_ST(fw_stream_next(s, &row, -1), FW_E_SCHEMA);
    CHECK(fw_stream_error(s) && fw_error_code(fw_stream_error(s)) == FW_E_SCHEMA);
    CHECK(strstr(fw_error_message(fw_stream_error(s)), "data (text)") != NULL);
    CHECK_INT(fw_stream_state_snapshot(s), FW_STATE_FAILED);
    fw_stream_free(s);
    CHECK_ST(fw_query_describe_wait(q, -1), FW_OK);
    s = (fw_stream *)&s;
    CHECK_ST(fw_query_execute(q, &s), FW_E_SCHEMA);
    CHECK(s == (fw_stream *)&s);
    fw_query_free(q);
    /* and the pooled connection is still good afterwards */
    CHECK_INT(fwt_server_true("true"), 1);
}

/* Server errors carry SQLSTATE, detail, hint and position when the server sends them. */
void test_query_server_error_fields(void) {
    fw_client *c = fwt_client();
    fw_query *q = NULL;
    fw_stream *s = NULL;
    const fw_error *e;

    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "data->>'id' = = '1'"), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    e = fw_last_error();
    CHECK_LAST_ERROR(FW_E_SERVER, "42601");
    CHECK(e && fw_error_position(e) != NULL && atoi(fw_error_position(e)) > 0);
    fw_query_free(q);

    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "fw_no_such_function(1) = 1"), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    e = fw_last_error();
    CHECK_LAST_ERROR(FW_E_SERVER, "42883");
    CHECK(e && fw_error_hint(e) != NULL && strlen(fw_error_hint(e)) > 0);
    fw_query_free(q);

    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "'{bad'::jsonb IS NOT NULL"), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    e = fw_last_error();
    CHECK_LAST_ERROR(FW_E_SERVER, "22P02");
    CHECK(e && fw_error_detail(e) != NULL && strstr(fw_error_detail(e), "bad") != NULL);
    fw_query_free(q);
    CHECK(s == NULL);
}
