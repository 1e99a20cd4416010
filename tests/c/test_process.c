/* Threads, fork() and shutdown: several threads streaming on one client, per-thread last
 * errors, a forked child creating clients and streaming (with and without the fork hooks),
 * and fw_shutdown (which must be the last test). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fwtest.h"
#include "tests.h"

/* The valgrind build (make test-valgrind) defines FWT_VALGRIND: the forked child then checks
 * valgrind's error count itself (see fork_case). valgrind.h is header-only and ships with the
 * valgrind package; its requests do nothing outside valgrind. */
#ifdef FWT_VALGRIND
#include <valgrind/valgrind.h>
#define FWT_VG_ERRORS() ((unsigned)VALGRIND_COUNT_ERRORS)
#else
#define FWT_VG_ERRORS() 0u
#endif

struct worker {
    fw_client *client;
    long rows;
    long long ids;
    fw_status end;
    int failed_call;
    fw_status own_error;
    const fw_error *first_error;
};

static void *stream_worker(void *arg) {
    struct worker *w = arg;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_row row;
    w->first_error = fw_last_error();
    /* a failure on this thread is this thread's last error only */
    w->own_error = fw_query_new(w->client, "bad source!", &q);
    if (fw_query_new(w->client, "v_user", &q) != FW_OK) {
        w->failed_call = 1;
        return NULL;
    }
    if (fw_query_execute(q, &s) != FW_OK) {
        w->failed_call = 2;
        fw_query_free(q);
        return NULL;
    }
    while ((w->end = fw_stream_next(s, &row, -1)) == FW_OK) {
        w->rows++;
        w->ids += fwt_json_int(row.data, "id");
    }
    fw_stream_free(s);
    fw_query_free(q);
    return NULL;
}

void test_threads_share_client(void) {
    enum { N = 4 };
    struct worker w[N];
    pthread_t t[N];
    const fw_error *mine;
    char mine_msg[256];
    int i;
    /* A known last error on this thread, which the workers must not change. */
    CHECK_ST(fw_query_new(fwt_client(), "main thread error", NULL), FW_E_NULL);
    mine = fw_last_error();
    REQUIRE(mine != NULL);
    snprintf(mine_msg, sizeof mine_msg, "%s", fw_error_message(mine));
    for (i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].client = fwt_client();
        REQUIRE(pthread_create(&t[i], NULL, stream_worker, &w[i]) == 0);
    }
    for (i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (i = 0; i < N; i++) {
        CHECK_INT(w[i].failed_call, 0);
        CHECK(w[i].first_error == NULL);
        CHECK_ST(w[i].own_error, FW_E_INVALID_ARGUMENT);
        CHECK_INT(w[i].rows, 1000);
        CHECK_INT(w[i].ids, 500500);
        CHECK_ST(w[i].end, FW_DONE);
    }
    CHECK(fw_last_error() == mine);
    CHECK_STR(fw_error_message(fw_last_error()), mine_msg);
}

/* Run in a forked child: returns the number of failed checks there. */
static int child_work(fw_client *parent_client, fw_stream *parent_stream) {
    int failures = 0;
    fw_client *c = NULL;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_row row;
    fw_status st;
    long n = 0;
    /* A new client in the child. */
    if (fw_client_new(fwt_conninfo_socket(), &c) != FW_OK) return 100;
    if (fw_query_new(c, "v_user", &q) != FW_OK) failures++;
    if (q && fw_query_limit(q, 10) != FW_OK) failures++;
    if (q && fw_query_execute(q, &s) == FW_OK) {
        while (fw_stream_next(s, &row, -1) == FW_OK) n++;
        if (n != 10) failures++;
        fw_stream_free(s);
        s = NULL;
    } else {
        failures++;
    }
    fw_query_free(q);
    q = NULL;
    fw_client_free(c);
    /* The parent's client works too: it opens a connection of its own (the inherited ones
     * are abandoned, never used). */
    if (fw_query_new(parent_client, "app.tv_order", &q) == FW_OK &&
        fw_query_execute(q, &s) == FW_OK) {
        n = 0;
        while ((st = fw_stream_next(s, &row, -1)) == FW_OK) n++;
        if (n != 500 || st != FW_DONE) failures++;
        fw_stream_free(s);
    } else {
        failures++;
    }
    fw_query_free(q);
    /* A stream of the parent cannot be consumed in the child. */
    if (parent_stream) {
        while ((st = fw_stream_next(parent_stream, &row, -1)) == FW_OK) {
        }
        if (st != FW_E_STATE) failures++;
    }
    if (fw_shutdown(5000) != FW_OK) failures++;
    return failures;
}

static void fork_case(bool hooks) {
    fw_stream *running = fwt_exec(fwt_client(), "v_slow", NULL);
    fw_row row;
    fw_status st;
    long rows = 0;
    int status = 0;
    pid_t pid;
    REQUIRE(running != NULL);
    REQUIRE_ST(fw_stream_next(running, &row, -1), FW_OK);
    rows++;
    fflush(stdout);
    if (hooks) fw_fork_prepare();
    pid = fork();
    if (pid == 0) {
        int failures;
        unsigned vg_errors = FWT_VG_ERRORS();
        if (hooks) fw_fork_child();
        failures = child_work(fwt_client(), running);
        /* Memory errors in the child (reported by valgrind as they happen) fail the test. */
        if (FWT_VG_ERRORS() != vg_errors) failures++;
        if (failures) _exit(failures > 100 ? 100 : failures);
        /* Success leaves through exec rather than exit: the parent's runtime, connections and
         * buffers that the child inherited are abandoned by design (they share the parent's
         * epoll instance and sockets, so they are never used or freed here), and a leak check
         * at the child's exit would list them. The child's own client, streams and runtime
         * were freed above (fw_shutdown). */
        execl("/bin/true", "true", (char *)NULL);
        _exit(99);
    }
    if (hooks) fw_fork_parent();
    REQUIRE(pid > 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fwt_fail(__FILE__, __LINE__, "forked child failed: %s %d",
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    else
        fwt_pass_check();
    /* The parent is unaffected: its running stream completes, and it can stream anew. */
    while ((st = fw_stream_next(running, &row, -1)) == FW_OK) rows++;
    CHECK_ST(st, FW_DONE);
    CHECK_INT(rows, 20);
    fw_stream_free(running);
    CHECK_INT(fwt_server_true("true"), 1);
}

void test_fork_without_hooks(void) { fork_case(false); }
void test_fork_with_hooks(void) { fork_case(true); }

void test_shutdown(void) {
    fw_client *c = fwt_client();
    fw_query *q = NULL;
    fw_stream *live = NULL, *s2 = NULL;
    fw_client *c2 = (fw_client *)&c2;
    fw_row row;
    fw_status st;
    double t0;
    REQUIRE_ST(fw_query_new(c, "v_slow", &q), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &live), FW_OK);
    REQUIRE_ST(fw_stream_next(live, &row, -1), FW_OK);

    t0 = fwt_now_ms();
    CHECK_ST(fw_shutdown(5000), FW_OK);
    CHECK(fwt_now_ms() - t0 < 6000 * fwt_slow());

    /* The live stream ends (its query was cancelled); it does not hang. */
    while ((st = fw_stream_next(live, &row, -1)) == FW_OK) {
    }
    CHECK(st == FW_E_SHUTDOWN || st == FW_E_CANCELLED);
    CHECK(fw_stream_state_snapshot(live) == FW_STATE_FAILED ||
          fw_stream_state_snapshot(live) == FW_STATE_CANCELLED);

    /* Everything that needs the runtime now says so. */
    CHECK_ST(fw_client_new(fwt_conninfo_socket(), &c2), FW_E_SHUTDOWN);
    CHECK_LAST_ERROR(FW_E_SHUTDOWN, NULL);
    CHECK(c2 == (fw_client *)&c2);
    CHECK_ST(fw_query_execute(q, &s2), FW_E_SHUTDOWN);
    CHECK(s2 == NULL);
    CHECK_ST(fw_shutdown(1000), FW_E_SHUTDOWN);
    /* Static information still works, and freeing handles is allowed. */
    CHECK_STR(fw_status_str(FW_E_SHUTDOWN), "FW_E_SHUTDOWN");
    CHECK_STR(fw_version(), FW_VERSION_STRING);
    fw_stream_free(live);
    fw_query_free(q);
    fwt_client_release();
}
