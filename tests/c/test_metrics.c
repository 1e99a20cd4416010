/* Metrics: fw_metrics_dump (Prometheus text with real values), fw_string_free, and the
 * optional /metrics endpoint (fw_metrics_serve / fw_metrics_port / fw_metrics_stop). */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fwtest.h"
#include "tests.h"

/* The value of the sample `series` (name{labels}) in a Prometheus text, 0 when absent. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    const char *p = text;
    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
        p += n;
    }
    return 0;
}

static char *dump(void) {
    char *out = NULL;
    size_t len = 0;
    if (fw_metrics_dump(&out, &len) != FW_OK || !out) return NULL;
    if (strlen(out) != len) {
        fwt_fail(__FILE__, __LINE__, "fw_metrics_dump: len %zu but strlen %zu", len, strlen(out));
    }
    return out;
}

void test_metrics_dump(void) {
    char *before, *after, *out = (char *)&out;
    size_t len = 12345;
    fw_stream *s;
    fw_status end;
    long n;

    CHECK_ST(fw_metrics_dump(NULL, &len), FW_E_NULL);
    CHECK_INT(len, 12345);
    before = dump();
    REQUIRE(before != NULL);
    /* len may be NULL */
    REQUIRE_ST(fw_metrics_dump(&out, NULL), FW_OK);
    CHECK(out != NULL && strncmp(out, "", 1) != 0);
    fw_string_free(out);

    /* One v_user stream of 1000 rows, and a query on a missing view. */
    s = fwt_exec(fwt_client(), "v_user", NULL);
    REQUIRE(s != NULL);
    n = fwt_drain(s, &end, NULL);
    CHECK_INT(n, 1000);
    fw_stream_free(s);
    {
        fw_query *q = NULL;
        s = NULL;
        REQUIRE_ST(fw_query_new(fwt_client(), "v_no_such_view_for_metrics", &q), FW_OK);
        CHECK_ST(fw_query_execute(q, &s), FW_E_SERVER);
        fw_query_free(q);
    }

    after = dump();
    REQUIRE(after != NULL);
    CHECK(strstr(after, "# TYPE fraiseql_queries_total counter") != NULL);
    CHECK(strstr(after, "# HELP fraiseql_rows_processed_total") != NULL);
    CHECK_INT(sample(after, "fraiseql_queries_total{entity=\"v_user\"}") -
                  sample(before, "fraiseql_queries_total{entity=\"v_user\"}"),
              1);
    CHECK_INT(sample(after, "fraiseql_rows_processed_total{entity=\"v_user\"}") -
                  sample(before, "fraiseql_rows_processed_total{entity=\"v_user\"}"),
              1000);
    CHECK_INT(sample(after, "fraiseql_query_success_total{entity=\"v_user\"}") -
                  sample(before, "fraiseql_query_success_total{entity=\"v_user\"}"),
              1);
    CHECK_INT(sample(after, "fraiseql_queries_total{entity=\"v_no_such_view_for_metrics\"}"), 1);
    CHECK(strstr(after, "fraiseql_query_error_total{entity=\"v_no_such_view_for_metrics\"") != NULL);
    fw_string_free(before);
    fw_string_free(after);
}

/* GET /metrics on 127.0.0.1:port; returns the whole response (malloc'd) or NULL. */
static char *http_get(unsigned port) {
    struct sockaddr_in a;
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    char *buf;
    size_t cap = 1 << 20, len = 0;
    ssize_t r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return NULL;
    }
    buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return NULL;
    }
    while (len < cap && (r = read(fd, buf + len, cap - len)) > 0) len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    return buf;
}

void test_metrics_http(void) {
    unsigned port;
    char *resp;
    CHECK_INT(fw_metrics_port(), 0);
    CHECK_ST(fw_metrics_serve(NULL), FW_E_NULL);
    CHECK_ST(fw_metrics_serve("no-such-host.invalid:0"), FW_E_INVALID_ARGUMENT);
    CHECK_ST(fw_metrics_stop(), FW_OK); /* not running: still FW_OK */
    REQUIRE_ST(fw_metrics_serve("127.0.0.1:0"), FW_OK);
    port = fw_metrics_port();
    REQUIRE(port > 0);
    CHECK_ST(fw_metrics_serve("127.0.0.1:0"), FW_E_STATE); /* already serving */
    CHECK_INT(fw_metrics_port(), port);
    resp = http_get(port);
    REQUIRE(resp != NULL);
    CHECK(strncmp(resp, "HTTP/1.1 200", 12) == 0);
    CHECK(strstr(resp, "text/plain") != NULL);
    CHECK(strstr(resp, "fraiseql_queries_total{entity=\"v_user\"}") != NULL);
    free(resp);
    CHECK_ST(fw_metrics_stop(), FW_OK);
    CHECK_INT(fw_metrics_port(), 0);
    /* the port is closed when fw_metrics_stop returns */
    resp = http_get(port);
    CHECK(resp == NULL);
    free(resp);
    CHECK_ST(fw_metrics_stop(), FW_OK);
}
