/* fraiseql-wire contender: streams a relation through the C API.
 *
 *   --mode next      fw_stream_next, one row per call
 *   --mode batch     fw_stream_next_batch (--batch rows per call, default 1024)
 *   --mode foreach   fw_stream_for_each with a callback
 *   --mode block     fw_stream_next_block (--batch rows per call, default 1024): the rows
 *                    packed into one block, as the bindings read them
 *   --mode latency   --repeat sequential streams (use --limit 10) on one client, fw_stream_next
 *   --mode connect   --repeat times: fw_client_new + query + stream + free everything
 * FW_BENCH_LOG=1 in the environment installs a (counting) log callback at debug level.
 *
 * --threads K runs K streams at once on one client (each on its own connection, opened before
 * the clock starts: see --warm-source in throughput()).
 *
 * --parallel K reads K parts at once (fw_query_parallel), split by --partition-by SQL for a view.
 *
 * --where SQL adds a trusted predicate (fw_query_where_sql); --where-params SQL --param V the
 * same with V bound to its $1 (fw_query_where_params): the two compare a literal with a bound
 * parameter in the same predicate.
 */
#include "common.h"
#include "fraiseql_wire.h"

static opts O;
static fw_client *g_client;

static void die_fw(const char *what, int st) {
    const fw_error *e = fw_last_error();
    fprintf(stderr, "fw_bench: %s failed: %s: %s\n", what, fw_status_str(st),
            e ? fw_error_message(e) : "(no detail)");
    exit(1);
}

#define CHECK(what, call)                       \
    do {                                        \
        int st_ = (call);                       \
        if (st_ != FW_OK) die_fw(what, st_);    \
    } while (0)

static fw_query *make_query(fw_client *c) {
    fw_query *q;
    CHECK("fw_query_new", fw_query_new(c, O.source, &q));
    if (O.where) CHECK("fw_query_where_sql", fw_query_where_sql(q, O.where));
    if (O.where_params) CHECK("fw_query_where_params", fw_query_where_params(q, O.where_params, 1, &O.param));
    if (O.limit >= 0) CHECK("fw_query_limit", fw_query_limit(q, (uint64_t)O.limit));
    if (O.chunk_rows) CHECK("fw_query_chunk_size", fw_query_chunk_size(q, O.chunk_rows));
    if (O.max_memory) CHECK("fw_query_max_memory", fw_query_max_memory(q, O.max_memory, 0.8, 1.0));
    if (O.read_ahead) CHECK("fw_query_read_ahead", fw_query_read_ahead(q, O.read_ahead));
    if (O.coalesce_us >= 0)
        CHECK("fw_query_read_coalesce", fw_query_read_coalesce(q, (uint32_t)O.coalesce_us));
    if (O.parallel) CHECK("fw_query_parallel", fw_query_parallel(q, O.parallel));
    if (O.partition_by) CHECK("fw_query_partition_by", fw_query_partition_by(q, O.partition_by));
    return q;
}

static int foreach_cb(void *ud, const char *json, size_t len) {
    sink_row((sink *)ud, json, len);
    return 0;
}

/* Stream one query to the end into `s`. */
static void run_stream(fw_query *q, sink *s, const char *mode, fw_stats *stats_out) {
    fw_stream *st;
    CHECK("fw_query_execute", fw_query_execute(q, &st));
    int rc;
    if (strcmp(mode, "batch") == 0) {
        fw_row *rows = malloc(O.batch * sizeof *rows);
        size_t n;
        while ((rc = fw_stream_next_batch(st, rows, O.batch, &n, -1)) == FW_OK)
            for (size_t i = 0; i < n; i++) sink_row(s, rows[i].data, rows[i].len);
        free(rows);
    } else if (strcmp(mode, "block") == 0) {
        fw_block b;
        while ((rc = fw_stream_next_block(st, &b, O.batch, 0, -1)) == FW_OK)
            for (size_t i = 0; i < b.n; i++)
                sink_row(s, b.data + b.offsets[i], b.offsets[i + 1] - b.offsets[i] - 1);
    } else if (strcmp(mode, "foreach") == 0) {
        rc = fw_stream_for_each(st, foreach_cb, s);
    } else {
        fw_row row;
        while ((rc = fw_stream_next(st, &row, -1)) == FW_OK) sink_row(s, row.data, row.len);
    }
    if (rc != FW_DONE) die_fw("streaming", rc);
    if (stats_out) {
        memset(stats_out, 0, sizeof *stats_out);
        stats_out->struct_size = sizeof *stats_out;
        fw_stream_stats(st, stats_out);
    }
    fw_stream_free(st);
}

typedef struct worker {
    pthread_t th;
    barrier_start *bs;
    sink s;
    fw_stats stats;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    fw_query *q = make_query(g_client);
    bs_wait(w->bs);
    run_stream(q, &w->s, O.mode, &w->stats);
    fw_query_free(q);
    return NULL;
}

static void throughput(result *r) {
    int k = O.threads;
    if (k > 1) {
        /* Open k connections now (they go back to the client's pool), not on the clock. A
         * stream's connection returns to the pool as soon as its result has ended, so k
         * connections are opened only if none of the k streams has ended before the last is
         * started: --warm-source names a relation whose rows come late (the fake server's
         * w_small__stall20); without it, --source LIMIT 1, which may reuse a connection. */
        fw_query *q;
        if (O.warm_source) {
            CHECK("fw_query_new", fw_query_new(g_client, O.warm_source, &q));
        } else {
            q = make_query(g_client);
            CHECK("fw_query_limit", fw_query_limit(q, 1));
        }
        fw_stream **sts = calloc((size_t)k, sizeof *sts);
        for (int i = 0; i < k; i++) CHECK("fw_query_execute", fw_query_execute(q, &sts[i]));
        /* Every warm-up stream still running once all are started: none gave its connection
         * to a later one, so k connections are open. */
        for (int i = 0; i < k; i++) {
            if (fw_stream_state_snapshot(sts[i]) != FW_STATE_RUNNING) {
                fprintf(stderr, "fw_bench: warm-up stream %d ended before all %d were started: %s\n", i, k,
                        O.warm_source ? "its rows came too soon" : "pass --warm-source (rows that come late)");
                if (O.warm_source) exit(1);
                break;
            }
        }
        for (int i = 0; i < k; i++) {
            fw_row row;
            int rc;
            while ((rc = fw_stream_next(sts[i], &row, -1)) == FW_OK) {}
            if (rc != FW_DONE) die_fw("warm-up stream", rc);
            fw_stream_free(sts[i]);
        }
        free(sts);
        fw_query_free(q);
    }
    worker *ws = calloc((size_t)k, sizeof *ws);
    barrier_start bs;
    bs_init(&bs, k);
    for (int i = 0; i < k; i++) {
        ws[i].bs = &bs;
        pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
    }
    /* The clock starts before the workers are released (one may reach its first row before
     * this thread runs again). */
    r->t0_ns = now_ns();
    bs_release(&bs);
    uint64_t peak = 0, chunks = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(ws[i].th, NULL);
    }
    r->t_end_ns = now_ns();
    for (int i = 0; i < k; i++) {
        r->s.rows += ws[i].s.rows;
        r->s.bytes += ws[i].s.bytes;
        r->s.check += ws[i].s.check;
        if (ws[i].s.first_row_ns && (!r->s.first_row_ns || ws[i].s.first_row_ns < r->s.first_row_ns))
            r->s.first_row_ns = ws[i].s.first_row_ns;
        if (ws[i].stats.peak_memory > peak) peak = ws[i].stats.peak_memory;
        chunks += ws[i].stats.chunks_received;
    }
    r->queries = (uint64_t)k;
    printf("STATS lib_peak_memory=%" PRIu64 " chunks=%" PRIu64 "\n", peak, chunks);
    free(ws);
}

static void latency(result *r, int reconnect) {
    uint64_t *lat = malloc((size_t)O.repeat * sizeof *lat);
    fw_query *q = reconnect ? NULL : make_query(g_client);
    r->t0_ns = now_ns();
    for (int i = 0; i < O.repeat; i++) {
        uint64_t t = now_ns();
        if (reconnect) {
            fw_client *c;
            CHECK("fw_client_new", fw_client_new(O.conninfo, &c));
            fw_query *q2 = make_query(c);
            run_stream(q2, &r->s, "next", NULL);
            fw_query_free(q2);
            fw_client_free(c);
        } else {
            run_stream(q, &r->s, "next", NULL);
        }
        lat[i] = now_ns() - t;
    }
    r->t_end_ns = now_ns();
    r->queries = (uint64_t)O.repeat;
    r->lat_p50_ns = percentile(lat, (size_t)O.repeat, 0.50);
    r->lat_p99_ns = percentile(lat, (size_t)O.repeat, 0.99);
    if (q) fw_query_free(q);
    free(lat);
}

static unsigned long g_log_messages;
static void count_log(void *userdata, enum fw_log_level level, const char *message) {
    (void)userdata; (void)level; (void)message;
    g_log_messages++;
}

int main(int argc, char **argv) {
    O = parse_opts(argc, argv);
    if (!O.conninfo) usage_exit(argv[0]);
    /* FW_BENCH_LOG=1: run with a log callback installed (debug level), as a host that logs. */
    const char *log = getenv("FW_BENCH_LOG");
    if (log && *log && strcmp(log, "0") != 0)
        CHECK("fw_set_log_callback", fw_set_log_callback(FW_LOG_DEBUG, count_log, NULL));
    result r;
    memset(&r, 0, sizeof r);
    int reconnect = strcmp(O.mode, "connect") == 0;
    if (!reconnect) {
        uint64_t t = now_ns();
        CHECK("fw_client_new", fw_client_new(O.conninfo, &g_client));
        r.connect_ns = now_ns() - t;
    }
    if (strcmp(O.mode, "latency") == 0 || reconnect) {
        latency(&r, reconnect);
    } else if (!strcmp(O.mode, "next") || !strcmp(O.mode, "batch") || !strcmp(O.mode, "foreach") ||
               !strcmp(O.mode, "block")) {
        throughput(&r);
    } else {
        fprintf(stderr, "fw_bench: unknown mode %s\n", O.mode);
        return 2;
    }
    print_result(&r);
    fw_client_free(g_client);
    return 0;
}
