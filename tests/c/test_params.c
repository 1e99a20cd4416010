/* Server-side filtering with bound values: fw_query_where_params, fw_query_where (typed
 * predicates) and fw_query_order_by_path, on the fixture view v_filter (16 hand-made
 * documents, ids 1..16; see tests/fixtures/schema.sql), including every error case. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

#define MAX_IDS 32

/* Execute `q` and collect the rows' ids in order; returns the count, or -1 on failure
 * (recorded). */
static int ids_of(fw_query *q, long long *ids) {
    fw_stream *s = NULL;
    fw_row row;
    fw_status st;
    int n = 0;
    if ((st = fw_query_execute(q, &s)) != FW_OK) {
        fwt_fail(__FILE__, __LINE__, "fw_query_execute: %s: %s", fw_status_str(st), fwt_last_msg());
        return -1;
    }
    while ((st = fw_stream_next(s, &row, FWT_WAIT_MS)) == FW_OK) {
        if (n < MAX_IDS) ids[n] = fwt_json_int(row.data, "id");
        n++;
    }
    if (st != FW_DONE) {
        fwt_fail(__FILE__, __LINE__, "stream ended with %s: %s", fw_status_str(st),
                 fw_error_message(fw_stream_error(s)));
        n = -1;
    }
    fw_stream_free(s);
    return n;
}

/* The ids of v_filter rows matching one typed predicate, ascending by id. */
static int where_ids(const char *pointer, int op, const char *value, long long *ids) {
    fw_query *q = NULL;
    int n;
    if (fw_query_new(fwt_client(), "v_filter", &q) != FW_OK) return -1;
    if (fw_query_where(q, pointer, op, value) != FW_OK ||
        fw_query_order_by_path(q, "/id", FW_ORDER_NUMERIC, NULL, FW_ASC) != FW_OK) {
        fwt_fail(__FILE__, __LINE__, "fw_query_where(%s, %d, %s): %s", pointer, op,
                 value ? value : "NULL", fwt_last_msg());
        fw_query_free(q);
        return -1;
    }
    n = ids_of(q, ids);
    fw_query_free(q);
    return n;
}

/* "1,2,3" from ids, for comparisons. */
static const char *join(const long long *ids, int n) {
    static char buf[256];
    size_t at = 0;
    int i;
    buf[0] = '\0';
    for (i = 0; i < n && i < MAX_IDS && at < sizeof buf - 24; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, i ? ",%lld" : "%lld", ids[i]);
    return n < 0 ? "(failed)" : buf;
}

#define CHECK_IDS(expr, want)                                                          \
    do {                                                                               \
        long long ids_[MAX_IDS];                                                       \
        int n_ = (expr);                                                               \
        CHECK_STR(join(ids_, n_), want);                                               \
    } while (0)

static int msg_has(const char *needle) {
    const fw_error *e = fw_last_error();
    const char *m = e ? fw_error_message(e) : NULL;
    if (m && strstr(m, needle)) return 1;
    fprintf(stderr, "    last error message %s does not contain \"%s\"\n", m ? m : "(none)", needle);
    return 0;
}

void test_where_params(void) {
    fw_query *q = NULL;
    long long ids[MAX_IDS];
    const char *two[] = {"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m", "active"};
    const char *one_null[] = {NULL};
    const char *bad_utf8[] = {"ok", "\xff"};
    const char *ints[] = {"{1,2,5,9,13}"};
    const char *not_int[] = {"1 OR 1=1"};
    const char *attack[] = {"O'Brien $1 '); DROP TABLE t_guard; --"};
    fw_stream *s = NULL;

    CHECK_ST(fw_query_where_params(NULL, "x = $1", 1, two), FW_E_NULL);
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    CHECK_ST(fw_query_where_params(q, NULL, 0, NULL), FW_E_NULL);
    CHECK_ST(fw_query_where_params(q, "x = $1", 1, NULL), FW_E_NULL);
    CHECK_ST(fw_query_where_params(q, "x = $1 AND y = $2", 2, bad_utf8), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("parameter $2 is not valid UTF-8"));
    CHECK_ST(fw_query_where_params(q, "x = $2", 1, two), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("$2 at byte 4 refers to a parameter that was not given"));
    CHECK_ST(fw_query_where_params(q, "x = $1", 2, two), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("parameter $2 is not used"));
    CHECK_ST(fw_query_where_params(q, "x = $0", 1, two), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("numbered from $1"));
    CHECK_ST(fw_query_where_params(q, "x = '$1'", 1, two), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where_params(q, "x = $1) OR (true", 1, two), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("unbalanced ')'"));
    CHECK_ST(fw_query_where_params(q, "x = $1 /* open", 1, two), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where_params(q, "  ", 0, NULL), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where_sql(q, "data->>'a' = $1"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("bind values with where_params"));
    CHECK_LAST_ERROR(FW_E_INVALID_ARGUMENT, NULL);
    /* Nothing was added by the failed calls. */
    CHECK_INT(ids_of(q, ids), 16);

    /* Three fragments, each numbering from $1; $1 in literals, dollar quotes and comments
     * is text. Rows: active, not named Zoë, id in the list, with a score key. */
    REQUIRE_ST(fw_query_where_params(q,
                                     "data->>'status' = $2 AND '$1' <> $$ $1 $$ /* $1 */ "
                                     "AND data->>'name' <> $1 -- $1",
                                     2, two),
               FW_OK);
    REQUIRE_ST(fw_query_where_params(q, "(data->>'id')::int = ANY($1::int[])", 1, ints), FW_OK);
    REQUIRE_ST(fw_query_where_sql(q, "data ? 'score'"), FW_OK);
    REQUIRE_ST(fw_query_order_by_path(q, "/id", FW_ORDER_NUMERIC, NULL, FW_DESC), FW_OK);
    CHECK_IDS(ids_of(q, ids_), "9,5,1");
    fw_query_free(q);

    /* A NULL pointer is SQL NULL: rows whose email is missing or JSON null. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    REQUIRE_ST(fw_query_where_params(q, "data->>'email' IS NOT DISTINCT FROM $1", 1, one_null), FW_OK);
    REQUIRE_ST(fw_query_order_by_path(q, "/id", FW_ORDER_NUMERIC, NULL, FW_ASC), FW_OK);
    CHECK_IDS(ids_of(q, ids_), "7,8,10,11,12,14,16");
    fw_query_free(q);

    /* A value is data: the row named like an injection is found by it, nothing else. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    REQUIRE_ST(fw_query_where_params(q, "data->>'name' = $1", 1, attack), FW_OK);
    CHECK_IDS(ids_of(q, ids_), "9");
    fw_query_free(q);
    CHECK_INT(fwt_server_true("EXISTS (SELECT 1 FROM t_guard)"), 1);

    /* A value of the wrong type is the server's error, not a predicate. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    REQUIRE_ST(fw_query_where_params(q, "(data->>'id')::int = $1::int", 1, not_int), FW_OK);
    CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
    CHECK_LAST_ERROR(FW_E_SERVER, "22P02");
    CHECK(s == NULL);
    fw_query_free(q);
}

void test_where_typed(void) {
    fw_query *q = NULL;
    fw_stream *s = NULL;

    CHECK_ST(fw_query_where(NULL, "/email", FW_OP_EQ, "\"x\""), FW_E_NULL);
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    CHECK_ST(fw_query_where(q, NULL, FW_OP_EQ, "\"x\""), FW_E_NULL);
    CHECK_ST(fw_query_where(q, "/email", FW_OP_EQ, NULL), FW_E_NULL);
    CHECK_ST(fw_query_where(q, "/email", 22, "\"x\""), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("22 is not an fw_op"));
    CHECK_ST(fw_query_where(q, "/email", -1, "\"x\""), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "email", FW_OP_EQ, "\"x\""), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("must be empty or start with '/'"));
    CHECK_ST(fw_query_where(q, "/a~2", FW_OP_EQ, "\"x\""), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "/email", FW_OP_EQ, "{bad"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("not valid JSON"));
    CHECK_ST(fw_query_where(q, "/email", FW_OP_EQ, "\"\xff\""), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "/\xff", FW_OP_EQ, "1"), FW_E_INVALID_ARGUMENT);
    /* wrong JSON types name the operator and the type */
    CHECK_ST(fw_query_where(q, "/name", FW_OP_LIKE, "5"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("operator LIKE takes a string; got a number (5)"));
    CHECK_ST(fw_query_where(q, "/n", FW_OP_GT, "null"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("operator GT takes a string, number or boolean; got null"));
    CHECK_ST(fw_query_where(q, "/s", FW_OP_IN, "\"a\""), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("operator IN takes an array"));
    CHECK_ST(fw_query_where(q, "/s", FW_OP_IN, "[1, \"a\"]"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "/t", FW_OP_ARRAY_OVERLAPS, "{}"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("got an object"));
    CHECK_ST(fw_query_where(q, "/t", FW_OP_ARRAY_LENGTH_EQ, "1.5"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "/t", FW_OP_MATCHES, "[\"a\"]"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_where(q, "/t", FW_OP_EXISTS, "1"), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("operator EXISTS takes no value"));
    CHECK_LAST_ERROR(FW_E_INVALID_ARGUMENT, NULL);
    /* Nothing was added by the failed calls. */
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_INT(fwt_drain(s, NULL, NULL), 16);
    fw_stream_free(s);
    fw_query_free(q);

    /* One example per operator; the Rust suite compares each with hand-written SQL. */
    CHECK_IDS(where_ids("/email", FW_OP_EQ, "\"ada@example.com\"", ids_), "1");
    CHECK_IDS(where_ids("/status", FW_OP_NE, "\"active\"", ids_), "3,4,7,10,13");
    CHECK_IDS(where_ids("/score", FW_OP_LT, "0", ids_), "3");
    CHECK_IDS(where_ids("/score", FW_OP_LE, "0", ids_), "3,7");
    CHECK_IDS(where_ids("/score", FW_OP_GT, "123456789012345678901234567890.123456788", ids_), "4");
    CHECK_IDS(where_ids("/score", FW_OP_GE, "1000", ids_), "4,5,13");
    CHECK_IDS(where_ids("/email", FW_OP_EQ, "null", ids_), "7,8,10,11,12,14,16");
    CHECK_IDS(where_ids("/address/city", FW_OP_EQ, "\"Z\xc3\xbcrich\"", ids_), "2");
    CHECK_IDS(where_ids("/status", FW_OP_IN, "[\"pending\", \"inactive\"]", ids_), "3,4,7,10");
    CHECK_IDS(where_ids("/status", FW_OP_NOT_IN, "[\"active\", \"pending\", \"inactive\"]", ids_), "13");
    CHECK_IDS(where_ids("/status", FW_OP_IN, "[]", ids_), "");
    CHECK_IDS(where_ids("/status", FW_OP_NOT_IN, "[]", ids_), "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
    CHECK_IDS(where_ids("/email", FW_OP_LIKE, "\"%.jp\"", ids_), "3");
    CHECK_IDS(where_ids("/email", FW_OP_ILIKE, "\"upper@%\"", ids_), "13");
    CHECK_IDS(where_ids("/name", FW_OP_STARTS_WITH, "\"50%\"", ids_), "5");
    CHECK_IDS(where_ids("/name", FW_OP_ENDS_WITH, "\"_sale\"", ids_), "5");
    CHECK_IDS(where_ids("/name", FW_OP_CONTAINS_TEXT, "\"\\\\\"", ids_), "7");
    CHECK_IDS(where_ids("/name", FW_OP_ICONTAINS_TEXT, "\"ROCKET\"", ids_), "4");
    CHECK_IDS(where_ids("/address/city", FW_OP_EXISTS, NULL, ids_), "1,2,3,4,5,7");
    CHECK_IDS(where_ids("/email", FW_OP_NOT_EXISTS, NULL, ids_), "8,10,11,12,14,16");
    CHECK_IDS(where_ids("/tags", FW_OP_JSON_CONTAINS, "\"poet\"", ids_), "1,2,14");
    CHECK_IDS(where_ids("/tags", FW_OP_ARRAY_OVERLAPS, "[\"sale\", \"rocket\"]", ids_), "4,5,6");
    CHECK_IDS(where_ids("/nums", FW_OP_ARRAY_OVERLAPS, "[20, 3]", ids_), "1,4,14");
    CHECK_IDS(where_ids("/tags", FW_OP_ARRAY_LENGTH_EQ, "0", ids_), "3");
    CHECK_IDS(where_ids("/tags", FW_OP_ARRAY_LENGTH_GT, "1", ids_), "1,2,4,6,14");
    CHECK_IDS(where_ids("/nums", FW_OP_ARRAY_LENGTH_LT, "2", ids_), "2,3");
    CHECK_IDS(where_ids("/body", FW_OP_MATCHES, "\"quick -lazy\"", ids_), "13");
    /* pointers with escapes, an array index, an injection attempt as a key */
    CHECK_IDS(where_ids("/a~1b", FW_OP_EQ, "\"slash key\"", ids_), "11");
    CHECK_IDS(where_ids("/m~0n", FW_OP_EXISTS, NULL, ids_), "11");
    CHECK_IDS(where_ids("/matrix/1/0", FW_OP_EQ, "3", ids_), "12");
    CHECK_IDS(where_ids("/x'); DROP TABLE t_guard; --", FW_OP_EQ, "\"x\"", ids_), "");
    CHECK_IDS(where_ids("/name", FW_OP_EQ, "\"'); DROP TABLE t_guard; --\"", ids_), "");
    CHECK_INT(fwt_server_true("EXISTS (SELECT 1 FROM t_guard)"), 1);
}

void test_order_by_path(void) {
    fw_query *q = NULL;
    CHECK_ST(fw_query_order_by_path(NULL, "/n", FW_ORDER_TEXT, NULL, FW_ASC), FW_E_NULL);
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    CHECK_ST(fw_query_order_by_path(q, NULL, FW_ORDER_TEXT, NULL, FW_ASC), FW_E_NULL);
    CHECK_ST(fw_query_order_by_path(q, "/n", 2, NULL, FW_ASC), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("not FW_ORDER_TEXT or FW_ORDER_NUMERIC"));
    CHECK_ST(fw_query_order_by_path(q, "/n", FW_ORDER_TEXT, NULL, 2), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("not FW_ASC or FW_DESC"));
    CHECK_ST(fw_query_order_by_path(q, "/n", FW_ORDER_NUMERIC, "C", FW_ASC), FW_E_INVALID_ARGUMENT);
    CHECK(msg_has("only applies to text"));
    CHECK_ST(fw_query_order_by_path(q, "/n", FW_ORDER_TEXT, "", FW_ASC), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_query_order_by_path(q, "n", FW_ORDER_TEXT, NULL, FW_ASC), FW_E_INVALID_ARGUMENT);

    /* Numeric (not text: "-3" < "0" < "1e-30" < "10" < "10.5" < "1000" < 1.2e29), ties by
     * id; rows without a score come last. */
    REQUIRE_ST(fw_query_order_by_path(q, "/score", FW_ORDER_NUMERIC, NULL, FW_ASC), FW_OK);
    REQUIRE_ST(fw_query_order_by_path(q, "/id", FW_ORDER_NUMERIC, NULL, FW_ASC), FW_OK);
    CHECK_IDS(ids_of(q, ids_), "3,7,6,1,2,14,13,5,4,8,9,10,11,12,15,16");
    fw_query_free(q);

    /* Text in collation "C" (byte order), descending, rows with a name. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    REQUIRE_ST(fw_query_where(q, "/name", FW_OP_NE, "null"), FW_OK);
    REQUIRE_ST(fw_query_order_by_path(q, "/name", FW_ORDER_TEXT, "C", FW_DESC), FW_OK);
    CHECK_IDS(ids_of(q, ids_), "3,10,16,7,2,9,12,14,4,1,6,5,15");
    fw_query_free(q);

    /* An unknown collation is the server's error. */
    REQUIRE_ST(fw_query_new(fwt_client(), "v_filter", &q), FW_OK);
    REQUIRE_ST(fw_query_order_by_path(q, "/name", FW_ORDER_TEXT, "no_such_collation", FW_ASC), FW_OK);
    {
        fw_stream *s = NULL;
        CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
        CHECK_LAST_ERROR(FW_E_SERVER, "42704");
    }
    fw_query_free(q);
}
