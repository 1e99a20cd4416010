/* The test framework's implementation and the helpers shared by the test files. */
#define _POSIX_C_SOURCE 200809L
#include "fwtest.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int fwt_failures_in_test;
long fwt_checks;

void fwt_pass_check(void) { fwt_checks++; }

void fwt_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fwt_checks++;
    fwt_failures_in_test++;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

const char *fwt_last_msg(void) {
    const fw_error *e = fw_last_error();
    const char *m = e ? fw_error_message(e) : NULL;
    return m ? m : "(none)";
}

void fwt_check_error(const char *file, int line, const fw_error *e, fw_status code,
                     const char *sqlstate) {
    if (!e) {
        fwt_fail(file, line, "expected an error %s, got none", fw_status_str(code));
        return;
    }
    if (fw_error_code(e) != code) {
        fwt_fail(file, line, "error code %s, expected %s (%s)", fw_status_str(fw_error_code(e)),
                 fw_status_str(code), fw_error_message(e) ? fw_error_message(e) : "(null)");
        return;
    }
    if (!fw_error_message(e) || !fw_error_message(e)[0]) {
        fwt_fail(file, line, "error %s has no message", fw_status_str(code));
        return;
    }
    if (sqlstate) {
        const char *got = fw_error_sqlstate(e);
        if (!got || strcmp(got, sqlstate) != 0) {
            fwt_fail(file, line, "SQLSTATE %s, expected %s (%s)", got ? got : "(null)", sqlstate,
                     fw_error_message(e));
            return;
        }
    }
    fwt_pass_check();
}

const char *fwt_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr,
                "fwtest: %s is not set: run the suite through scripts/with-pg "
                "(e.g. `make test-c`)\n",
                name);
        exit(2);
    }
    return v;
}

const char *fwt_conninfo_socket(void) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "host=%s port=%s dbname=%s user=fw_trust",
             fwt_env("FW_PG_SOCKET_DIR"), fwt_env("FW_PG_PORT"), fwt_env("FW_PG_DB"));
    return buf;
}

const char *fwt_conninfo_tcp(const char *user, const char *password) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "host=127.0.0.1 port=%s dbname=%s user=%s password=%s sslmode=disable",
             fwt_env("FW_PG_PORT"), fwt_env("FW_PG_DB"), user, password);
    return buf;
}

static fw_client *shared_client;

fw_client *fwt_client(void) {
    if (!shared_client) {
        fw_status st = fw_client_new(fwt_conninfo_socket(), &shared_client);
        if (st != FW_OK) {
            fprintf(stdout, "fwtest: cannot connect (%s): %s\n", fw_status_str(st),
                    fwt_last_msg());
            exit(2);
        }
    }
    return shared_client;
}

void fwt_client_release(void) {
    fw_client_free(shared_client);
    shared_client = NULL;
}

fw_stream *fwt_exec(fw_client *c, const char *source, const char *where) {
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_status st = fw_query_new(c, source, &q);
    if (st != FW_OK) {
        fwt_fail(__FILE__, __LINE__, "fw_query_new(%s): %s: %s", source, fw_status_str(st),
                 fwt_last_msg());
        return NULL;
    }
    if (where && (st = fw_query_where_sql(q, where)) != FW_OK) {
        fwt_fail(__FILE__, __LINE__, "fw_query_where_sql(%s): %s: %s", where, fw_status_str(st),
                 fwt_last_msg());
        fw_query_free(q);
        return NULL;
    }
    st = fw_query_execute(q, &s);
    fw_query_free(q);
    if (st != FW_OK) {
        fwt_fail(__FILE__, __LINE__, "fw_query_execute(%s): %s: %s", source, fw_status_str(st),
                 fwt_last_msg());
        return NULL;
    }
    return s;
}

int fwt_server_true(const char *predicate) {
    char where[2048];
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_status st;
    long rows;
    snprintf(where, sizeof where, "(data->>'id')::int = 1 AND (%s)", predicate);
    if (fw_query_new(fwt_client(), "v_user", &q) != FW_OK) return -1;
    if (fw_query_where_sql(q, where) != FW_OK || fw_query_execute(q, &s) != FW_OK) {
        fw_query_free(q);
        return -1;
    }
    fw_query_free(q);
    rows = fwt_drain(s, &st, NULL);
    fw_stream_free(s);
    if (st != FW_DONE) return -1;
    return rows > 0 ? 1 : 0;
}

bool fwt_row_ok(const char *data, size_t len) {
    return data != NULL && data[len] == '\0' && strlen(data) == len && len > 0;
}

long long fwt_json_int(const char *json, const char *key) {
    char pat[128];
    const char *p;
    char *end;
    long long v;
    snprintf(pat, sizeof pat, "\"%s\"", key);
    for (p = strstr(json, pat); p; p = strstr(p + 1, pat)) {
        const char *q = p + strlen(pat);
        while (*q == ' ') q++;
        if (*q != ':') continue; /* a string value equal to the key, not the key */
        q++;
        while (*q == ' ') q++;
        v = strtoll(q, &end, 10);
        if (end == q) return LLONG_MIN;
        return v;
    }
    return LLONG_MIN;
}

long fwt_drain(fw_stream *s, fw_status *end, long long *id_sum) {
    long n = 0;
    fw_row row;
    fw_status st;
    /* a bounded wait: a stream that stalls fails the test instead of hanging the suite */
    while ((st = fw_stream_next(s, &row, FWT_WAIT_MS)) == FW_OK) {
        n++;
        if (id_sum) *id_sum += fwt_json_int(row.data, "id");
    }
    if (end) *end = st;
    return n;
}

double fwt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void fwt_sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

double fwt_slow(void) {
    const char *v = getenv("FW_TEST_SLOW");
    double f = v ? atof(v) : 1.0;
    return f >= 1.0 ? f : 1.0;
}
