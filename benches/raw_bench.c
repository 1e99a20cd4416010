/* The physical limit of a client: a minimal reader that speaks just enough of the protocol to
 * start a session (trust authentication only), send the same extended-protocol query that
 * fraiseql-wire sends (Parse/Bind/Describe/Execute/Sync), and frame DataRows out of 256 KiB
 * socket reads, handing each row to the sink in place. No library, no threads, no copies
 * (except moving a partial message to the front of the buffer).
 *
 *   --mode stream    one query (--threads K: K connections at once)
 *   --mode latency   --repeat sequential queries (use --limit 10) on one connection
 *
 * --host is a TCP address (127.0.0.1) or a directory holding the Unix socket .s.PGSQL.<port>.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"

#define READ_SIZE (256 * 1024)

static opts O;
static char SQL[1024];

static void die(const char *msg) {
    fprintf(stderr, "raw_bench: %s\n", msg);
    exit(1);
}

typedef struct conn {
    int fd;
    unsigned char *buf;
    size_t cap, start, end; /* unparsed bytes are buf[start..end) */
} conn;

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void send_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write failed");
        }
        p += w;
        n -= (size_t)w;
    }
}

static int open_socket(void) {
    int fd;
    if (O.host[0] == '/') {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s/.s.PGSQL.%d", O.host, O.port);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("unix connect failed");
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)O.port);
        const char *h = strcmp(O.host, "localhost") == 0 ? "127.0.0.1" : O.host;
        if (inet_pton(AF_INET, h, &a.sin_addr) != 1) die("--host must be an IPv4 address or a directory");
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("tcp connect failed");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Make sure `need` bytes are buffered from `start`; reads from the socket as needed. */
static void fill(conn *c, size_t need) {
    while (c->end - c->start < need) {
        if (c->start + need > c->cap) {
            /* Move the partial message to the front; grow for messages larger than the buffer. */
            size_t have = c->end - c->start;
            memmove(c->buf, c->buf + c->start, have);
            c->start = 0;
            c->end = have;
            if (need > c->cap) {
                c->cap = need + READ_SIZE;
                c->buf = realloc(c->buf, c->cap);
                if (!c->buf) die("out of memory");
            }
        }
        size_t room = c->cap - c->end;
        if (room > READ_SIZE) room = READ_SIZE;
        ssize_t n = read(c->fd, c->buf + c->end, room);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("read failed");
        }
        if (n == 0) die("server closed the connection");
        c->end += (size_t)n;
    }
}

/* The next message: its tag, body and body length; the bytes stay valid until the next call. */
static unsigned char next_msg(conn *c, const unsigned char **body, size_t *len) {
    fill(c, 5);
    unsigned char tag = c->buf[c->start];
    uint32_t l = get32(c->buf + c->start + 1);
    if (l < 4) die("bad message length");
    fill(c, 1 + (size_t)l);
    *body = c->buf + c->start + 5;
    *len = l - 4;
    c->start += 1 + (size_t)l;
    return tag;
}

static void server_error(const unsigned char *b, size_t n) {
    /* Print the M field. */
    size_t i = 0;
    while (i < n && b[i]) {
        unsigned char f = b[i++];
        const char *v = (const char *)b + i;
        size_t l = strnlen(v, n - i);
        if (f == 'M') fprintf(stderr, "raw_bench: server error: %.*s\n", (int)l, v);
        i += l + 1;
    }
    exit(1);
}

static conn *open_conn(void) {
    conn *c = calloc(1, sizeof *c);
    c->cap = READ_SIZE;
    c->buf = malloc(c->cap);
    c->fd = open_socket();
    unsigned char m[512];
    size_t n = 8;
    n += (size_t)snprintf((char *)m + n, sizeof m - n, "user%c%s%cdatabase%c%s%c", 0, O.user, 0, 0, O.db, 0);
    m[n++] = 0;
    put32(m, (uint32_t)n);
    put32(m + 4, 196608);
    send_all(c->fd, m, n);
    for (;;) {
        const unsigned char *b;
        size_t l;
        unsigned char t = next_msg(c, &b, &l);
        if (t == 'R' && (l < 4 || get32(b) != 0)) die("the raw reader supports trust authentication only");
        if (t == 'E') server_error(b, l);
        if (t == 'Z') break;
    }
    return c;
}

static size_t put_msg(unsigned char *out, unsigned char tag, const unsigned char *body, size_t n) {
    out[0] = tag;
    put32(out + 1, (uint32_t)(n + 4));
    if (n) memcpy(out + 5, body, n);
    return 5 + n;
}

/* Parse/Bind/Describe/Execute/Sync for SQL, as fraiseql-wire sends it. */
static size_t encode_query(unsigned char *out) {
    unsigned char b[1200];
    size_t o = 0, n;
    /* Parse: "" stmt, sql, 0 param types */
    n = 0;
    b[n++] = 0;
    size_t sl = strlen(SQL);
    memcpy(b + n, SQL, sl + 1);
    n += sl + 1;
    b[n++] = 0;
    b[n++] = 0;
    o += put_msg(out + o, 'P', b, n);
    /* Bind: "" portal, "" stmt, 0 param formats, 0 params, 1 result format = text */
    unsigned char bind[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    o += put_msg(out + o, 'B', bind, sizeof bind);
    unsigned char desc[] = {'P', 0};
    o += put_msg(out + o, 'D', desc, sizeof desc);
    unsigned char exec[] = {0, 0, 0, 0, 0};
    o += put_msg(out + o, 'E', exec, sizeof exec);
    o += put_msg(out + o, 'S', NULL, 0);
    return o;
}

static void run_query(conn *c, sink *s) {
    unsigned char q[1400];
    size_t n = encode_query(q);
    send_all(c->fd, q, n);
    for (;;) {
        /* Hot loop: frame messages straight out of the buffer. */
        const unsigned char *b;
        size_t l;
        unsigned char t = next_msg(c, &b, &l);
        if (t == 'D') {
            if (l < 6 || b[0] != 0 || b[1] != 1) die("unexpected DataRow shape");
            int32_t cl = (int32_t)get32(b + 2);
            if (cl < 0) sink_row(s, "null", 4);
            else sink_row(s, (const char *)b + 6, (size_t)cl);
        } else if (t == 'E') {
            server_error(b, l);
        } else if (t == 'Z') {
            return;
        }
    }
}

static void close_conn(conn *c) {
    unsigned char x[5];
    put_msg(x, 'X', NULL, 0);
    send_all(c->fd, x, 5);
    close(c->fd);
    free(c->buf);
    free(c);
}

typedef struct worker {
    pthread_t th;
    barrier_start *bs;
    conn *c;
    sink s;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    bs_wait(w->bs);
    run_query(w->c, &w->s);
    return NULL;
}

int main(int argc, char **argv) {
    O = parse_opts(argc, argv);
    if (O.where || O.where_params) usage_exit(argv[0]); /* fw_bench only */
    if (!O.host) usage_exit(argv[0]);
    build_sql(&O, SQL, sizeof SQL);
    result r;
    memset(&r, 0, sizeof r);
    if (!strcmp(O.mode, "latency")) {
        uint64_t t = now_ns();
        conn *c = open_conn();
        r.connect_ns = now_ns() - t;
        uint64_t *lat = malloc((size_t)O.repeat * sizeof *lat);
        r.t0_ns = now_ns();
        for (int i = 0; i < O.repeat; i++) {
            uint64_t t1 = now_ns();
            run_query(c, &r.s);
            lat[i] = now_ns() - t1;
        }
        r.t_end_ns = now_ns();
        r.queries = (uint64_t)O.repeat;
        r.lat_p50_ns = percentile(lat, (size_t)O.repeat, 0.50);
        r.lat_p99_ns = percentile(lat, (size_t)O.repeat, 0.99);
        close_conn(c);
    } else if (!strcmp(O.mode, "stream")) {
        int k = O.threads;
        worker *ws = calloc((size_t)k, sizeof *ws);
        uint64_t t = now_ns();
        for (int i = 0; i < k; i++) ws[i].c = open_conn();
        r.connect_ns = now_ns() - t;
        if (k == 1) {
            r.t0_ns = now_ns();
            run_query(ws[0].c, &ws[0].s);
            r.t_end_ns = now_ns();
        } else {
            barrier_start bs;
            bs_init(&bs, k);
            for (int i = 0; i < k; i++) {
                ws[i].bs = &bs;
                pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
            }
            r.t0_ns = now_ns(); /* before the release: see fw_bench.c */
            bs_release(&bs);
            for (int i = 0; i < k; i++) pthread_join(ws[i].th, NULL);
            r.t_end_ns = now_ns();
        }
        for (int i = 0; i < k; i++) {
            r.s.rows += ws[i].s.rows;
            r.s.bytes += ws[i].s.bytes;
            r.s.check += ws[i].s.check;
            if (ws[i].s.first_row_ns && (!r.s.first_row_ns || ws[i].s.first_row_ns < r.s.first_row_ns))
                r.s.first_row_ns = ws[i].s.first_row_ns;
            close_conn(ws[i].c);
        }
        r.queries = (uint64_t)k;
        free(ws);
    } else {
        fprintf(stderr, "raw_bench: unknown mode %s\n", O.mode);
        return 2;
    }
    print_result(&r);
    return 0;
}
