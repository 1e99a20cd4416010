/* The README's example (make test-examples checks that the two are identical, then runs it).
 * Streams the active users of the view v_user, ordered by name; every status is checked. */
#include <fraiseql_wire.h>
#include <stdio.h>

/* What failed, and the details of the last failure on this thread. */
static int fail(const char *what, fw_status st) {
    const fw_error *e = fw_last_error();
    const char *sqlstate = e ? fw_error_sqlstate(e) : NULL;
    fprintf(stderr, "%s: %s: %s%s%s\n", what, fw_status_str(st), e ? fw_error_message(e) : "",
            sqlstate ? ", SQLSTATE " : "", sqlstate ? sqlstate : "");
    return 1;
}

int main(void) {
    fw_client *client = NULL;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_row row;
    unsigned long n = 0;
    fw_status st;
    int rc = 1;

    /* "" takes everything from the PG* variables; or "postgresql://app@db.example/appdb" */
    if ((st = fw_client_new("", &client)) != FW_OK) return fail("fw_client_new", st);
    if ((st = fw_query_new(client, "v_user", &q)) != FW_OK ||
        (st = fw_query_where_sql(q, "(data->>'active')::boolean")) != FW_OK ||
        (st = fw_query_order_by(q, "data->>'name'", "C", FW_ASC)) != FW_OK ||
        (st = fw_query_execute(q, &s)) != FW_OK) { /* SELECT data FROM "v_user" WHERE ... */
        fail("query", st);
        goto out;
    }
    while ((st = fw_stream_next(s, &row, -1)) == FW_OK) /* -1: wait as long as it takes */
        if (n++ < 3) printf("%.*s\n", (int)row.len, row.data); /* valid until the next call */
    if (st == FW_DONE) { /* the end; after an error, the rows received before it came first */
        printf("%lu rows\n", n);
        rc = 0;
    } else {
        fail("fw_stream_next", st);
    }
out:
    fw_stream_free(s); /* NULL is a no-op; a running query is cancelled */
    fw_query_free(q);
    fw_client_free(client);
    if ((st = fw_shutdown(1000)) != FW_OK) rc = fail("fw_shutdown", st);
    return rc;
}
