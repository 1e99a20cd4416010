/* pause_resume: a consumer that applies backpressure. After 5 rows it pauses the stream (the
 * library stops reading the socket, the server blocks in send), reports its state and stats,
 * resumes, and reads the rest. The library's debug messages go to a log callback.
 *
 *   pause_resume [CONNINFO]  (default: the PG* environment variables)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include "fraiseql_wire.h"

static void on_log(void *userdata, fw_log_level level, const char *message) {
    unsigned long *n = userdata;
    (*n)++;
    printf("  [log %d] %s\n", (int)level, message);
}

static const char *state_name(fw_stream_state s) {
    switch (s) {
    case FW_STATE_RUNNING: return "running";
    case FW_STATE_PAUSED: return "paused";
    case FW_STATE_COMPLETED: return "completed";
    case FW_STATE_FAILED: return "failed";
    case FW_STATE_CANCELLED: return "cancelled";
    default: return "invalid";
    }
}

int main(int argc, char **argv) {
    fw_client *client = NULL;
    fw_query *query = NULL;
    fw_stream *stream = NULL;
    fw_row row;
    fw_stats stats;
    fw_status st = FW_OK;
    unsigned long rows = 0, logs = 0;
    struct timespec half_second = {0, 500000000L};
    int rc = 1;

    fw_set_log_callback(FW_LOG_DEBUG, on_log, &logs);
    if ((st = fw_client_new(argc > 1 ? argv[1] : "", &client)) != FW_OK ||
        (st = fw_query_new(client, "v_slow", &query)) != FW_OK ||
        (st = fw_query_execute(query, &stream)) != FW_OK) {
        fprintf(stderr, "pause_resume: %s: %s\n", fw_status_str(st),
                fw_last_error() ? fw_error_message(fw_last_error()) : "");
        goto out;
    }
    while (rows < 5 && (st = fw_stream_next(stream, &row, -1)) == FW_OK) rows++;
    printf("read %lu rows, pausing\n", rows);
    fw_stream_pause_with_reason(stream, "consumer is busy");
    printf("state: %s\n", state_name(fw_stream_state_snapshot(stream)));

    /* Rows already buffered can still be read; then FW_PAUSED. */
    while ((st = fw_stream_next(stream, &row, -1)) == FW_OK) rows++;
    printf("drained the buffer: %lu rows, then %s\n", rows, fw_status_str(st));
    nanosleep(&half_second, NULL);
    stats.struct_size = sizeof stats;
    fw_stream_stats(stream, &stats);
    printf("after 500 ms paused: received=%llu paused_ms=%llu\n",
           (unsigned long long)stats.total_rows_received, (unsigned long long)stats.paused_ms_total);

    fw_stream_resume(stream);
    printf("resumed, state: %s\n", state_name(fw_stream_state_snapshot(stream)));
    while ((st = fw_stream_next(stream, &row, -1)) == FW_OK) rows++;
    fw_stream_stats(stream, &stats);
    printf("%lu rows, end: %s, pauses: %llu, paused %llu ms, log messages: %lu\n", rows,
           fw_status_str(st), (unsigned long long)stats.pause_count,
           (unsigned long long)stats.paused_ms_total, logs);
    if (st == FW_DONE && rows == 20 && stats.pause_count == 1 && stats.paused_ms_total >= 450 &&
        logs >= 1)
        rc = 0;
    else
        fprintf(stderr, "pause_resume: unexpected result\n");

out:
    fw_stream_free(stream);
    fw_query_free(query);
    fw_client_free(client);
    fw_set_log_callback(FW_LOG_DEBUG, NULL, NULL);
    fw_shutdown(5000);
    return rc;
}
