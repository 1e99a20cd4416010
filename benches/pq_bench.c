/* libpq contender.
 *
 *   --mode single          PQsendQuery + PQsetSingleRowMode, one PGresult per row
 *   --mode cursor          BEGIN; DECLARE CURSOR; FETCH 1000 until empty; CLOSE; COMMIT
 *   --mode all             PQexec: the whole result in memory (memory contrast)
 *   --mode latency         --repeat sequential PQexec (use --limit 10) on one connection
 *   --mode latency-params  the same with PQexecParams (extended protocol, as fraiseql-wire)
 *   --mode connect         --repeat times: PQconnectdb + PQexec + PQfinish
 *   --mode connect-params  the same with PQexecParams (extended protocol, as fraiseql-wire)
 *
 * --threads K: K connections (opened before the clock starts), one query each, at once.
 */
#include <libpq-fe.h>

#include "common.h"

static opts O;
static char SQL[1024];

static void die_pq(PGconn *c, const char *what) {
    fprintf(stderr, "pq_bench: %s failed: %s\n", what, c ? PQerrorMessage(c) : "?");
    exit(1);
}

static PGconn *connect_db(void) {
    PGconn *c = PQconnectdb(O.conninfo);
    if (PQstatus(c) != CONNECTION_OK) die_pq(c, "PQconnectdb");
    return c;
}

static void exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) die_pq(c, sql);
    PQclear(r);
}

static void sink_result(sink *s, const PGresult *r) {
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) sink_row(s, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
}

static void run_single(PGconn *c, sink *s) {
    if (!PQsendQuery(c, SQL)) die_pq(c, "PQsendQuery");
    if (!PQsetSingleRowMode(c)) die_pq(c, "PQsetSingleRowMode");
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE) {
            sink_row(s, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
        } else if (st != PGRES_TUPLES_OK) {
            die_pq(c, "single-row query");
        }
        PQclear(r);
    }
}

static void run_cursor(PGconn *c, sink *s) {
    char decl[1200];
    snprintf(decl, sizeof decl, "DECLARE fw_bench_cur NO SCROLL CURSOR FOR %s", SQL);
    exec_ok(c, "BEGIN");
    exec_ok(c, decl);
    for (;;) {
        PGresult *r = PQexec(c, "FETCH 1000 FROM fw_bench_cur");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) die_pq(c, "FETCH");
        int n = PQntuples(r);
        sink_result(s, r);
        PQclear(r);
        if (n == 0) break;
    }
    exec_ok(c, "CLOSE fw_bench_cur");
    exec_ok(c, "COMMIT");
}

static void run_all(PGconn *c, sink *s) {
    PGresult *r = PQexec(c, SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die_pq(c, "PQexec");
    sink_result(s, r);
    PQclear(r);
}

static void run_mode(PGconn *c, sink *s) {
    if (!strcmp(O.mode, "single")) run_single(c, s);
    else if (!strcmp(O.mode, "cursor")) run_cursor(c, s);
    else if (!strcmp(O.mode, "all")) run_all(c, s);
    else {
        fprintf(stderr, "pq_bench: unknown mode %s\n", O.mode);
        exit(2);
    }
}

typedef struct worker {
    pthread_t th;
    barrier_start *bs;
    PGconn *conn;
    sink s;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    bs_wait(w->bs);
    run_mode(w->conn, &w->s);
    return NULL;
}

static void throughput(result *r) {
    int k = O.threads;
    worker *ws = calloc((size_t)k, sizeof *ws);
    uint64_t t = now_ns();
    for (int i = 0; i < k; i++) ws[i].conn = connect_db();
    r->connect_ns = now_ns() - t;
    if (k == 1) {
        r->t0_ns = now_ns();
        run_mode(ws[0].conn, &ws[0].s);
        r->t_end_ns = now_ns();
    } else {
        barrier_start bs;
        bs_init(&bs, k);
        for (int i = 0; i < k; i++) {
            ws[i].bs = &bs;
            pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
        }
        r->t0_ns = now_ns(); /* before the release: see fw_bench.c */
        bs_release(&bs);
        for (int i = 0; i < k; i++) pthread_join(ws[i].th, NULL);
        r->t_end_ns = now_ns();
    }
    for (int i = 0; i < k; i++) {
        r->s.rows += ws[i].s.rows;
        r->s.bytes += ws[i].s.bytes;
        r->s.check += ws[i].s.check;
        if (ws[i].s.first_row_ns && (!r->s.first_row_ns || ws[i].s.first_row_ns < r->s.first_row_ns))
            r->s.first_row_ns = ws[i].s.first_row_ns;
        PQfinish(ws[i].conn);
    }
    r->queries = (uint64_t)k;
    free(ws);
}

static void latency(result *r) {
    int reconnect = !strcmp(O.mode, "connect") || !strcmp(O.mode, "connect-params");
    int params = !strcmp(O.mode, "latency-params") || !strcmp(O.mode, "connect-params");
    uint64_t *lat = malloc((size_t)O.repeat * sizeof *lat);
    PGconn *c = NULL;
    if (!reconnect) {
        uint64_t t = now_ns();
        c = connect_db();
        r->connect_ns = now_ns() - t;
    }
    r->t0_ns = now_ns();
    for (int i = 0; i < O.repeat; i++) {
        uint64_t t = now_ns();
        if (reconnect) c = connect_db();
        PGresult *res = params ? PQexecParams(c, SQL, 0, NULL, NULL, NULL, NULL, 0) : PQexec(c, SQL);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) die_pq(c, "query");
        sink_result(&r->s, res);
        PQclear(res);
        if (reconnect) {
            PQfinish(c);
            c = NULL;
        }
        lat[i] = now_ns() - t;
    }
    r->t_end_ns = now_ns();
    r->queries = (uint64_t)O.repeat;
    r->lat_p50_ns = percentile(lat, (size_t)O.repeat, 0.50);
    r->lat_p99_ns = percentile(lat, (size_t)O.repeat, 0.99);
    if (c) PQfinish(c);
    free(lat);
}

int main(int argc, char **argv) {
    O = parse_opts(argc, argv);
    if (O.where || O.where_params) usage_exit(argv[0]); /* fw_bench only */
    if (!O.conninfo) usage_exit(argv[0]);
    build_sql(&O, SQL, sizeof SQL);
    result r;
    memset(&r, 0, sizeof r);
    if (!strcmp(O.mode, "latency") || !strcmp(O.mode, "latency-params") || !strcmp(O.mode, "connect") ||
        !strcmp(O.mode, "connect-params"))
        latency(&r);
    else
        throughput(&r);
    print_result(&r);
    return 0;
}
