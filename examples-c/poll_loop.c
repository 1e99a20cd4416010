/* poll_loop: an event loop that waits on the stream's file descriptor with poll() and reads
 * rows with fw_stream_try_next (never blocking), while doing other work on a timer.
 *
 *   poll_loop [CONNINFO]     (default: the PG* environment variables)
 *
 * It reads v_slow, whose 20 rows are produced about 100 ms apart.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>

#include "fraiseql_wire.h"

int main(int argc, char **argv) {
    fw_client *client = NULL;
    fw_query *query = NULL;
    fw_stream *stream = NULL;
    fw_row row;
    fw_status st = FW_OK;
    struct pollfd pfd;
    unsigned long rows = 0, ticks = 0, wakeups = 0;
    int rc = 1;

    if ((st = fw_client_new(argc > 1 ? argv[1] : "", &client)) != FW_OK ||
        (st = fw_query_new(client, "v_slow", &query)) != FW_OK ||
        (st = fw_query_execute(query, &stream)) != FW_OK) {
        fprintf(stderr, "poll_loop: %s: %s\n", fw_status_str(st),
                fw_last_error() ? fw_error_message(fw_last_error()) : "");
        goto out;
    }
    pfd.fd = fw_stream_fd(stream);
    pfd.events = POLLIN;
    if (pfd.fd < 0) goto out;

    for (;;) {
        /* Take everything that is ready without blocking. */
        while ((st = fw_stream_try_next(stream, &row)) == FW_OK) {
            rows++;
            if (rows <= 3 || rows == 20)
                printf("row %2lu: %.24s... (%zu bytes)\n", rows, row.data, row.len);
            else if (rows == 4)
                printf("...\n");
        }
        if (st != FW_WOULD_BLOCK) break; /* FW_DONE or an error */
        /* Nothing ready: wait for the fd, or do other work every 50 ms. */
        switch (poll(&pfd, 1, 50)) {
        case 0:
            ticks++;
            break;
        case 1:
            wakeups++;
            break;
        default:
            perror("poll");
            goto out;
        }
    }
    printf("%lu rows, %lu fd wakeups, %lu timer ticks of other work, end: %s\n", rows, wakeups,
           ticks, fw_status_str(st));
    if (st == FW_DONE && rows == 20 && wakeups > 0 && ticks > 0) rc = 0;
    else fprintf(stderr, "poll_loop: expected 20 rows, FW_DONE, wakeups and ticks\n");

out:
    fw_stream_free(stream);
    fw_query_free(query);
    fw_client_free(client);
    fw_shutdown(5000);
    return rc;
}
