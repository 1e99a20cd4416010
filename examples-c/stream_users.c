/* stream_users: stream the v_user view and print the first rows and the stream's stats.
 *
 *   stream_users [CONNINFO]
 *
 * CONNINFO is a libpq connection string; without it the PG* environment variables are used
 * (`make demo` runs this against a throwaway server). Exits non-zero on any failure.
 */
#include <stdio.h>

#include "fraiseql_wire.h"

#define SHOW_ROWS 5
#define SHOW_CHARS 100

static int fail(const char *what, fw_status st) {
    const fw_error *e = fw_last_error();
    fprintf(stderr, "stream_users: %s failed: %s: %s\n", what, fw_status_str(st),
            e && fw_error_message(e) ? fw_error_message(e) : "(no detail)");
    if (e && fw_error_sqlstate(e)) fprintf(stderr, "  SQLSTATE %s\n", fw_error_sqlstate(e));
    return 1;
}

int main(int argc, char **argv) {
    const char *conninfo = argc > 1 ? argv[1] : "";
    fw_client *client = NULL;
    fw_query *query = NULL;
    fw_stream *stream = NULL;
    fw_row row;
    fw_stats stats;
    fw_status st;
    unsigned long count = 0;
    int rc = 0;

    printf("fraiseql-wire %s\n", fw_version());
    if ((st = fw_client_new(conninfo, &client)) != FW_OK) return fail("fw_client_new", st);
    if ((st = fw_query_new(client, "v_user", &query)) != FW_OK) {
        rc = fail("fw_query_new", st);
        goto out;
    }
    fw_query_order_by(query, "(data->>'id')::int", NULL, FW_ASC);
    if ((st = fw_query_execute(query, &stream)) != FW_OK) {
        rc = fail("fw_query_execute", st);
        goto out;
    }

    /* Each row is JSON text owned by the stream, valid until the next call on it. */
    while ((st = fw_stream_next(stream, &row, -1)) == FW_OK) {
        if (count < SHOW_ROWS) {
            size_t n = row.len;
            if (n > SHOW_CHARS) {
                n = SHOW_CHARS;
                while (n > 0 && ((unsigned char)row.data[n] & 0xC0) == 0x80) n--; /* UTF-8 */
            }
            printf("row %lu (%zu bytes): %.*s%s\n", count + 1, row.len, (int)n, row.data,
                   n < row.len ? "..." : "");
        }
        count++;
    }
    if (st != FW_DONE) {
        rc = fail("fw_stream_next", st);
        goto out;
    }
    if (count > SHOW_ROWS) printf("... %lu more rows\n", count - SHOW_ROWS);

    stats.struct_size = sizeof stats;
    if ((st = fw_stream_stats(stream, &stats)) != FW_OK) {
        rc = fail("fw_stream_stats", st);
        goto out;
    }
    printf("rows: %lu\n", count);
    printf("stats: received=%llu yielded=%llu filtered=%llu bytes=%llu chunks=%llu\n",
           (unsigned long long)stats.total_rows_received,
           (unsigned long long)stats.total_rows_yielded,
           (unsigned long long)stats.total_rows_filtered,
           (unsigned long long)stats.total_bytes_received,
           (unsigned long long)stats.chunks_received);
    printf("       first row after %.3f ms, total %.3f ms, peak memory %llu of %llu bytes\n",
           stats.time_to_first_row_us / 1000.0, stats.elapsed_us / 1000.0,
           (unsigned long long)stats.peak_memory, (unsigned long long)stats.memory_limit);
    if (count == 0 || stats.total_rows_yielded != count ||
        stats.total_rows_received != stats.total_rows_yielded + stats.total_rows_filtered) {
        fprintf(stderr, "stream_users: the counts do not add up\n");
        rc = 1;
    }

out:
    fw_stream_free(stream);
    fw_query_free(query);
    fw_client_free(client);
    fw_shutdown(5000);
    return rc;
}
