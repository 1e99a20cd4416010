/* fw_client_new / fw_client_free: socket trust, TCP with SCRAM, md5 and cleartext passwords,
 * URI and key=value forms, PG* defaults, authentication and connection failures. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwtest.h"
#include "tests.h"

/* Connect with `conninfo` and stream 5 rows of v_user through the new client. */
static void connect_and_stream(const char *conninfo) {
    fw_client *c = NULL;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_status end;
    long long ids = 0;
    REQUIRE_ST(fw_client_new(conninfo, &c), FW_OK);
    REQUIRE(c != NULL);
    REQUIRE_ST(fw_query_new(c, "v_user", &q), FW_OK);
    CHECK_ST(fw_query_order_by(q, "(data->>'id')::int", NULL, FW_ASC), FW_OK);
    CHECK_ST(fw_query_limit(q, 5), FW_OK);
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    CHECK_INT(fwt_drain(s, &end, &ids), 5);
    CHECK_ST(end, FW_DONE);
    CHECK_INT(ids, 1 + 2 + 3 + 4 + 5);
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(c);
}

void test_client_socket_trust(void) { connect_and_stream(fwt_conninfo_socket()); }

void test_client_env_defaults(void) {
    /* scripts/with-pg exports PGHOST (socket dir), PGPORT, PGDATABASE, PGUSER=fw_trust:
     * an empty conninfo takes everything from them. */
    CHECK(getenv("PGHOST") != NULL && getenv("PGUSER") != NULL);
    connect_and_stream("");
    /* A partial string: the rest comes from PG* variables. */
    connect_and_stream("application_name=fwtest connect_timeout=10");
}

void test_client_scram(void) { connect_and_stream(fwt_conninfo_tcp("fw_scram", "scram-secret")); }
void test_client_md5(void) { connect_and_stream(fwt_conninfo_tcp("fw_md5", "md5-secret")); }
void test_client_cleartext(void) { connect_and_stream(fwt_conninfo_tcp("fw_plain", "plain-secret")); }

void test_client_uri(void) {
    char uri[1024];
    /* Percent-encoded user name and password in the URI form. */
    snprintf(uri, sizeof uri, "postgresql://fw%%5Fscram:scram%%2Dsecret@127.0.0.1:%s/%s?sslmode=disable",
             fwt_env("FW_PG_PORT"), fwt_env("FW_PG_DB"));
    connect_and_stream(uri);
    snprintf(uri, sizeof uri, "postgres://fw_md5:md5-secret@127.0.0.1:%s/%s?sslmode=prefer",
             fwt_env("FW_PG_PORT"), fwt_env("FW_PG_DB"));
    connect_and_stream(uri);
}

static void check_wrong_password(const char *user) {
    fw_client *c = (fw_client *)&c;
    const fw_error *e;
    const char *msg;
    CHECK_ST(fw_client_new(fwt_conninfo_tcp(user, "not-the-password"), &c), FW_E_AUTH);
    CHECK(c == (fw_client *)&c);
    e = fw_last_error();
    CHECK_LAST_ERROR(FW_E_AUTH, "28P01");
    msg = fw_error_message(e);
    REQUIRE(msg != NULL);
    CHECK(strstr(msg, "not-the-password") == NULL);
    CHECK(strstr(msg, user) != NULL);
}

void test_client_wrong_password(void) {
    check_wrong_password("fw_scram");
    check_wrong_password("fw_md5");
    check_wrong_password("fw_plain");
}

void test_client_bad_conninfo(void) {
    static const char *bad[] = {
        "this is not a conninfo",
        "port=notaport",
        "no_such_keyword=1",
        "host='unterminated",
        "postgresql://[::1:5432/db",
        "sslmode=sometimes",
        "connect_timeout=abc",
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fw_client *c = (fw_client *)&c;
        fw_status st = fw_client_new(bad[i], &c);
        if (st != FW_E_INVALID_ARGUMENT)
            fwt_fail(__FILE__, __LINE__, "fw_client_new(\"%s\") = %s, expected FW_E_INVALID_ARGUMENT",
                     bad[i], fw_status_str(st));
        else
            fwt_pass_check();
        CHECK(c == (fw_client *)&c);
        CHECK_LAST_ERROR(FW_E_INVALID_ARGUMENT, NULL);
    }
    /* The password never appears in a message, even when the string is bad. */
    {
        fw_client *c = NULL;
        CHECK_ST(fw_client_new("password=hunter2-secret port=nope", &c), FW_E_INVALID_ARGUMENT);
        CHECK(strstr(fwt_last_msg(), "hunter2") == NULL);
        CHECK(c == NULL);
    }
}

void test_client_connect_refused(void) {
    fw_client *c = NULL;
    double t0 = fwt_now_ms();
    /* Port 1 on loopback: nothing listens there. */
    CHECK_ST(fw_client_new("host=127.0.0.1 port=1 dbname=x user=x sslmode=disable connect_timeout=5", &c),
             FW_E_CONNECT);
    CHECK(c == NULL);
    CHECK_LAST_ERROR(FW_E_CONNECT, NULL);
    CHECK(fwt_now_ms() - t0 < 6000 * fwt_slow());
    /* A socket directory without a server. */
    CHECK_ST(fw_client_new("host=/nonexistent-fw-dir port=5432 dbname=x user=x", &c), FW_E_CONNECT);
    CHECK(strstr(fwt_last_msg(), "/nonexistent-fw-dir") != NULL);
    /* A database that does not exist is a server refusal at startup, not an auth error. */
    {
        char ci[1024];
        snprintf(ci, sizeof ci, "host=%s port=%s dbname=fw_no_such_db user=fw_trust",
                 fwt_env("FW_PG_SOCKET_DIR"), fwt_env("FW_PG_PORT"));
        CHECK_ST(fw_client_new(ci, &c), FW_E_CONNECT);
        CHECK_LAST_ERROR(FW_E_CONNECT, "3D000");
    }
    CHECK(c == NULL);
}

void test_client_free_keeps_query_alive(void) {
    fw_client *c = NULL;
    fw_query *q = NULL;
    fw_stream *s = NULL;
    fw_status end;
    REQUIRE_ST(fw_client_new(fwt_conninfo_socket(), &c), FW_OK);
    REQUIRE_ST(fw_query_new(c, "app.tv_order", &q), FW_OK);
    fw_client_free(c); /* the query keeps the client's settings and pool alive */
    REQUIRE_ST(fw_query_execute(q, &s), FW_OK);
    fw_query_free(q); /* and the stream does not need the query */
    CHECK_INT(fwt_drain(s, &end, NULL), 500);
    CHECK_ST(end, FW_DONE);
    fw_stream_free(s);
}
