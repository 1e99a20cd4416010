/* for_each: deliver rows to a callback on this thread with fw_stream_for_each, filter on the
 * server (where_sql) and on the client (a C predicate), and stop early from the callback.
 *
 *   for_each [CONNINFO]      (default: the PG* environment variables)
 */
#include <stdio.h>
#include <string.h>

#include "fraiseql_wire.h"

struct totals {
    unsigned long orders;
    unsigned long with_sushi;
    unsigned long stop_after; /* 0 = never */
};

/* Keep orders that carry a note: a client-side predicate, run on this thread. The rows of
 * app.tv_order are json (not jsonb), so the text is the server's own: `"note" : null`. */
static bool has_note(void *userdata, const char *json, size_t len) {
    (void)userdata;
    (void)len;
    return strstr(json, "\"note\" : null") == NULL;
}

static int on_row(void *userdata, const char *json, size_t len) {
    struct totals *t = userdata;
    (void)len;
    t->orders++;
    if (strstr(json, "\xe5\xaf\xbf\xe5\x8f\xb8")) t->with_sushi++; /* "寿司" */
    return t->stop_after && t->orders >= t->stop_after; /* non-zero stops */
}

static int fail(const char *what, fw_status st) {
    fprintf(stderr, "for_each: %s: %s: %s\n", what, fw_status_str(st),
            fw_last_error() ? fw_error_message(fw_last_error()) : "");
    return 1;
}

int main(int argc, char **argv) {
    fw_client *client = NULL;
    fw_query *query = NULL;
    fw_stream *stream = NULL;
    struct totals t = {0, 0, 0};
    fw_stats stats;
    fw_status st;
    int rc = 1;

    if ((st = fw_client_new(argc > 1 ? argv[1] : "", &client)) != FW_OK)
        return fail("fw_client_new", st);
    if ((st = fw_query_new(client, "app.tv_order", &query)) != FW_OK ||
        (st = fw_query_where_sql(query, "data->>'status' = 'shipped'")) != FW_OK ||
        (st = fw_query_filter(query, has_note, NULL)) != FW_OK) {
        rc = fail("building the query", st);
        goto out;
    }

    /* 1: shipped orders (125) with a note (every 10th order): 25 rows, 100 filtered. */
    if ((st = fw_query_execute(query, &stream)) != FW_OK) {
        rc = fail("fw_query_execute", st);
        goto out;
    }
    st = fw_stream_for_each(stream, on_row, &t);
    stats.struct_size = sizeof stats;
    fw_stream_stats(stream, &stats);
    printf("shipped orders with a note: %lu (with sushi: %lu, filtered out: %llu), %s\n",
           t.orders, t.with_sushi, (unsigned long long)stats.total_rows_filtered,
           fw_status_str(st));
    if (st != FW_DONE || t.orders != 25 || t.with_sushi != 25 || stats.total_rows_yielded != 25 ||
        stats.total_rows_filtered != 100) {
        fprintf(stderr, "for_each: expected 25 orders, 100 filtered and FW_DONE\n");
        goto out;
    }
    fw_stream_free(stream);
    stream = NULL;

    /* 2: the same query again, stopping after 10 rows. */
    t.orders = t.with_sushi = 0;
    t.stop_after = 10;
    if ((st = fw_query_execute(query, &stream)) != FW_OK) {
        rc = fail("fw_query_execute", st);
        goto out;
    }
    st = fw_stream_for_each(stream, on_row, &t);
    printf("stopped after %lu rows: %s\n", t.orders, fw_status_str(st));
    if (st != FW_STOPPED || t.orders != 10) {
        fprintf(stderr, "for_each: expected FW_STOPPED after 10 rows\n");
        goto out;
    }
    rc = 0;

out:
    fw_stream_free(stream); /* a stream that still runs is cancelled */
    fw_query_free(query);
    fw_client_free(client);
    fw_shutdown(5000);
    return rc;
}
