/* Shared helpers of the benchmark contenders: timing, the row sink, options, the result line.
 *
 * Every contender reads the same rows and feeds each one to sink_row(), which touches the row
 * cheaply but for real (length, first and last byte; with --touch all, every byte), so that no
 * contender can skip the memory a real consumer would read. The sums are printed so that
 * benches/run can check that all contenders saw the same data.
 *
 * Result line (one, on stdout):
 *   RESULT rows=N bytes=N check=N wall_us=N ttfr_us=N connect_us=N queries=N lat_p50_us=N
 *          lat_p99_us=N hwm_kib=N
 * wall_us: from just before the query is sent (after connecting) to the end of the result;
 * ttfr_us: from the same point to the first row in the consumer's hands. For --repeat runs
 * (latency) wall_us covers all the queries and lat_* are per query.
 */
#ifndef FW_BENCH_COMMON_H
#define FW_BENCH_COMMON_H

#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct sink {
    uint64_t rows;
    uint64_t bytes;
    uint64_t check;
    uint64_t first_row_ns; /* 0 until the first row */
} sink;

static int g_touch_all = 0;

__attribute__((noinline)) static uint64_t sum_bytes(const unsigned char *p, size_t n) {
    uint64_t s = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        s += (w & 0x00ff00ff00ff00ffull) + ((w >> 8) & 0x00ff00ff00ff00ffull);
    }
    for (; i < n; i++) s += p[i];
    return s;
}

static inline void sink_row(sink *s, const char *p, size_t len) {
    if (__builtin_expect(s->rows == 0, 0)) s->first_row_ns = now_ns();
    s->rows++;
    s->bytes += len;
    if (len) {
        const unsigned char *u = (const unsigned char *)p;
        s->check += (uint64_t)u[0] * 31u + u[len - 1];
        if (g_touch_all) s->check += sum_bytes(u, len);
    }
}

/* ---- options ------------------------------------------------------------------------- */

typedef struct opts {
    const char *mode;
    const char *conninfo; /* libpq / fraiseql-wire connection string */
    const char *host;     /* raw reader: TCP host, or a directory for a Unix socket */
    int port;
    const char *user;
    const char *db;
    const char *source;  /* relation name */
    const char *warm_source; /* fw_bench --threads K: relation read to open the K connections */
    long long limit;     /* -1 = none */
    int threads;
    int repeat;          /* latency / connect modes: queries to run */
    size_t batch;        /* next_batch capacity */
    size_t chunk_rows;   /* 0 = library default */
    size_t max_memory;   /* 0 = library default */
    size_t read_ahead;   /* 0 = library default */
    long coalesce_us;    /* -1 = library default */
    const char *where;        /* fw_bench: a trusted WHERE predicate (fw_query_where_sql) */
    const char *where_params; /* fw_bench: a WHERE predicate with $1 (fw_query_where_params) */
    const char *param;        /* fw_bench: the value bound to $1 of --where-params */
    unsigned parallel;        /* fw_bench: parts of a parallel stream (0 = not set) */
    const char *partition_by; /* fw_bench: the parallel stream's partition expression */
} opts;

static void usage_exit(const char *prog) {
    fprintf(stderr,
            "usage: %s --mode M [--conninfo S | --host H --port P --user U --db D] --source REL\n"
            "          [--limit N] [--threads K] [--repeat N] [--batch N] [--touch all]\n"
            "          [--chunk-rows N] [--max-memory BYTES] [--read-ahead BYTES]\n"
            "          [--coalesce-us US] [--warm-source REL]\n"
            "          [--where SQL | --where-params SQL --param VALUE]   (fw_bench only)\n"
            "          [--parallel K [--partition-by SQL]]                 (fw_bench only)\n",
            prog);
    exit(2);
}

static opts parse_opts(int argc, char **argv) {
    opts o;
    memset(&o, 0, sizeof o);
    o.mode = "";
    o.limit = -1;
    o.coalesce_us = -1;
    o.threads = 1;
    o.repeat = 1;
    o.batch = 1024;
    o.user = "postgres";
    o.db = "postgres";
    o.port = 5432;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG(name) (strcmp(a, name) == 0 && i + 1 < argc)
        if (ARG("--mode")) o.mode = argv[++i];
        else if (ARG("--conninfo")) o.conninfo = argv[++i];
        else if (ARG("--host")) o.host = argv[++i];
        else if (ARG("--port")) o.port = atoi(argv[++i]);
        else if (ARG("--user")) o.user = argv[++i];
        else if (ARG("--db")) o.db = argv[++i];
        else if (ARG("--source")) o.source = argv[++i];
        else if (ARG("--warm-source")) o.warm_source = argv[++i];
        else if (ARG("--limit")) o.limit = atoll(argv[++i]);
        else if (ARG("--threads")) o.threads = atoi(argv[++i]);
        else if (ARG("--repeat")) o.repeat = atoi(argv[++i]);
        else if (ARG("--batch")) o.batch = (size_t)atoll(argv[++i]);
        else if (ARG("--chunk-rows")) o.chunk_rows = (size_t)atoll(argv[++i]);
        else if (ARG("--max-memory")) o.max_memory = (size_t)atoll(argv[++i]);
        else if (ARG("--read-ahead")) o.read_ahead = (size_t)atoll(argv[++i]);
        else if (ARG("--coalesce-us")) o.coalesce_us = atol(argv[++i]);
        else if (ARG("--touch")) g_touch_all = strcmp(argv[++i], "all") == 0;
        else if (ARG("--where")) o.where = argv[++i];
        else if (ARG("--where-params")) o.where_params = argv[++i];
        else if (ARG("--param")) o.param = argv[++i];
        else if (ARG("--parallel")) o.parallel = (unsigned)atoi(argv[++i]);
        else if (ARG("--partition-by")) o.partition_by = argv[++i];
        else usage_exit(argv[0]);
#undef ARG
    }
    if (!o.source || o.threads < 1 || o.repeat < 1 || o.batch < 1) usage_exit(argv[0]);
    if (!o.where_params != !o.param) usage_exit(argv[0]);
    return o;
}

/* The SQL text of the query for libpq and the raw reader (fraiseql-wire builds its own). */
__attribute__((unused)) static void build_sql(const opts *o, char *buf, size_t cap) {
    if (o->limit >= 0)
        snprintf(buf, cap, "SELECT data FROM %s LIMIT %lld", o->source, o->limit);
    else
        snprintf(buf, cap, "SELECT data FROM %s", o->source);
}

/* ---- latency samples ------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t percentile(uint64_t *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return v[k];
}

/* ---- result -------------------------------------------------------------------------- */

typedef struct result {
    sink s;
    uint64_t t0_ns, t_end_ns, connect_ns;
    uint64_t queries;
    uint64_t lat_p50_ns, lat_p99_ns;
} result;

/* Peak resident set of this process (VmHWM). Not getrusage's ru_maxrss: across fork+exec that
 * keeps the high-water mark of the process that forked (the benchmark driver). */
static uint64_t peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t v = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) v = strtoull(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static void print_result(const result *r) {
    uint64_t ttfr = r->s.first_row_ns ? (r->s.first_row_ns - r->t0_ns) / 1000 : 0;
    printf("RESULT rows=%" PRIu64 " bytes=%" PRIu64 " check=%" PRIu64 " wall_us=%" PRIu64
           " ttfr_us=%" PRIu64 " connect_us=%" PRIu64 " queries=%" PRIu64 " lat_p50_us=%.1f"
           " lat_p99_us=%.1f hwm_kib=%" PRIu64 "\n",
           r->s.rows, r->s.bytes, r->s.check, (r->t_end_ns - r->t0_ns) / 1000, ttfr,
           r->connect_ns / 1000, r->queries, r->lat_p50_ns / 1000.0, r->lat_p99_ns / 1000.0,
           peak_rss_kib());
    fflush(stdout);
}

/* ---- threads ------------------------------------------------------------------------- */

/* Run `fn(arg_i)` on `k` threads started together; returns after all have finished. */
typedef struct barrier_start {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, total, go;
} barrier_start;

static void bs_init(barrier_start *b, int total) {
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->ready = 0;
    b->total = total;
    b->go = 0;
}

/* Worker side: announce readiness and wait for the start signal. */
static void bs_wait(barrier_start *b) {
    pthread_mutex_lock(&b->mu);
    b->ready++;
    pthread_cond_broadcast(&b->cv);
    while (!b->go) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

/* Main side: wait until every worker is ready, then release them all. */
static void bs_release(barrier_start *b) {
    pthread_mutex_lock(&b->mu);
    while (b->ready < b->total) pthread_cond_wait(&b->cv, &b->mu);
    b->go = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

#endif
