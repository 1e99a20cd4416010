/* Threads, fork() and shutdown: several threads streaming on one client, per-thread last
 * errors, a forked child creating clients and streaming (with and without the fork hooks),
 * and fw_shutdown (which must be the last test). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
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

/* A predicate shared by the streams of one query (fw_query_filter): the calls of each
 * thread, and a rendezvous at each thread's first call that only completes when both
 * threads are inside the predicate at the same time. */
struct shared_pred {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    int met;
    int nthreads;
    int extra_threads;
    pthread_t who[2];
    long calls[2];
};

static bool keep_odd_id_shared(void *ud, const char *json, size_t len) {
    struct shared_pred *p = ud;
    int slot = -1, i;
    (void)len;
    pthread_mutex_lock(&p->mu);
    for (i = 0; i < p->nthreads; i++)
        if (pthread_equal(p->who[i], pthread_self())) slot = i;
    if (slot < 0) {
        if (p->nthreads < 2) {
            slot = p->nthreads++;
            p->who[slot] = pthread_self();
        } else {
            p->extra_threads++;
        }
    }
    if (slot >= 0 && ++p->calls[slot] == 1) {
        /* Wait inside the predicate (at most 10 s) for the other thread to be inside too. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(10 * fwt_slow());
        p->arrived++;
        pthread_cond_broadcast(&p->cv);
        while (p->arrived < 2 && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0) {
        }
        if (p->arrived >= 2) p->met = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return fwt_json_int(json, "id") % 2 == 1;
}

struct pred_worker {
    const fw_query *q;
    pthread_t self;
    long rows;
    long long ids;
    uint64_t received;
    fw_status end;
    fw_status exec;
};

static void *pred_worker_run(void *arg) {
    struct pred_worker *w = arg;
    fw_stream *s = NULL;
    fw_row row;
    fw_stats st;
    w->self = pthread_self();
    w->exec = fw_query_execute(w->q, &s);
    if (w->exec != FW_OK) return NULL;
    while ((w->end = fw_stream_next(s, &row, FWT_WAIT_MS)) == FW_OK) {
        w->rows++;
        w->ids += fwt_json_int(row.data, "id");
    }
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (fw_stream_stats(s, &st) == FW_OK) w->received = st.total_rows_received;
    fw_stream_free(s);
    return NULL;
}

void test_filter_shared_by_threads(void) {
    /* One query executed and consumed on two threads at once: its predicate is called from
     * both threads concurrently (the header says it must then be thread-safe), and each stream
     * gets exactly its own rows filtered. */
    struct shared_pred p;
    struct pred_worker w[2];
    pthread_t t[2];
    fw_query *q = NULL;
    int i, j;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    REQUIRE_ST(fw_query_new(fwt_client(), "v_user", &q), FW_OK);
    CHECK_ST(fw_query_filter(q, keep_odd_id_shared, &p), FW_OK);
    for (i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].q = q;
        CHECK(pthread_create(&t[i], NULL, pred_worker_run, &w[i]) == 0);
    }
    for (i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK_INT(p.met, 1);
    CHECK_INT(p.nthreads, 2);
    CHECK_INT(p.extra_threads, 0);
    for (i = 0; i < 2; i++) {
        CHECK_ST(w[i].exec, FW_OK);
        CHECK_ST(w[i].end, FW_DONE);
        CHECK_INT(w[i].rows, 500);
        CHECK_INT(w[i].ids, 250000);
        CHECK_INT(w[i].received, 1000);
        /* Each consumer thread called the predicate once per row of its own stream. */
        for (j = 0; j < p.nthreads; j++)
            if (pthread_equal(p.who[j], w[i].self)) CHECK_INT(p.calls[j], 1000);
    }
    fw_query_free(q);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
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
