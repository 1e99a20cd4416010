/* The C test suite's runner: runs every test (or those whose name contains one of the
 * arguments), then always test_shutdown last, and prints "N passed, N failed". */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fwtest.h"
#include "tests.h"

extern int fwt_failures_in_test;
extern long fwt_checks;

#define T(name) {#name, name}
static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    T(test_status_str),
    T(test_version),
    T(test_error_accessors_null),
    T(test_null_arguments),
    T(test_invalid_utf8),
    T(test_free_null),
    T(test_last_error_lifetime),
    T(test_client_socket_trust),
    T(test_client_env_defaults),
    T(test_client_scram),
    T(test_client_md5),
    T(test_client_cleartext),
    T(test_client_uri),
    T(test_client_wrong_password),
    T(test_client_bad_conninfo),
    T(test_client_connect_refused),
    T(test_client_free_keeps_query_alive),
    T(test_query_sources),
    T(test_query_setters_validation),
    T(test_query_shape),
    T(test_query_injection),
    T(test_query_missing_view),
    T(test_query_schema_errors),
    T(test_query_server_error_fields),
    T(test_where_params),
    T(test_where_typed),
    T(test_order_by_path),
    T(test_stream_next_content),
    T(test_stream_json_verbatim),
    T(test_stream_empty_and_null),
    T(test_stream_big_rows),
    T(test_stream_memory_limit),
    T(test_stream_chunking),
    T(test_stream_try_next),
    T(test_stream_next_batch),
    T(test_stream_next_block),
    T(test_block_transcode),
    T(test_stream_for_each),
    T(test_stream_timeouts),
    T(test_stream_fd_poll),
    T(test_parallel_arguments),
    T(test_parallel_table_and_view),
    T(test_parallel_ordered_merge),
    T(test_parallel_consuming_calls),
    T(test_parallel_cancel_and_error),
    T(test_pause_resume),
    T(test_pause_in_for_each),
    T(test_pause_timeout),
    T(test_stats_struct_size),
    T(test_filter),
    T(test_filter_json),
    T(test_cancel_from_thread),
    T(test_free_running_stream),
    T(test_cancel_buffered),
    T(test_error_after_rows),
    T(test_log_callback),
    T(test_metrics_dump),
    T(test_metrics_http),
    T(test_threads_share_client),
    T(test_filter_shared_by_threads),
    T(test_fork_without_hooks),
    T(test_fork_with_hooks),
    /* last: after it every call that needs the runtime returns FW_E_SHUTDOWN */
    T(test_shutdown),
};

/* A watchdog: a test that hangs (a library call that never returns) fails the whole run
 * with its name instead of blocking CI. */
static const char *current_test = "";

static void on_alarm(int sig) {
    static const char msg[] = "\nFAIL: test timed out (watchdog): ";
    ssize_t w;
    (void)sig;
    w = write(1, msg, sizeof msg - 1);
    w = write(1, current_test, strlen(current_test));
    w = write(1, "\n", 1);
    (void)w;
    _exit(3);
}

static int selected(const char *name, int argc, char **argv) {
    int i;
    if (argc <= 1 || strcmp(name, "test_shutdown") == 0) return 1;
    for (i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    size_t i;
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        double t0;
        if (!selected(tests[i].name, argc, argv)) continue;
        fwt_failures_in_test = 0;
        t0 = fwt_now_ms();
        current_test = tests[i].name;
        alarm((unsigned)(120 * fwt_slow()));
        tests[i].fn();
        alarm(0);
        if (fwt_failures_in_test == 0) {
            passed++;
            printf("ok   %-40s %6.0f ms\n", tests[i].name, fwt_now_ms() - t0);
        } else {
            failed++;
            printf("FAIL %-40s %6.0f ms (%d failed checks)\n", tests[i].name, fwt_now_ms() - t0,
                   fwt_failures_in_test);
        }
    }
    printf("%ld checks\n", fwt_checks);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
