/* A tiny test framework and shared helpers for the fraiseql-wire C test suite.
 *
 * A test is a `void fn(void)` listed in main.c. CHECK* record a failure and go on; REQUIRE*
 * record a failure and return from the test. The runner prints one line per test and, as its
 * last line, "N passed, N failed"; it exits non-zero when anything failed.
 */
#ifndef FWTEST_H
#define FWTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fraiseql_wire.h"

void fwt_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void fwt_pass_check(void);
/* The message of the calling thread's last error, or "(none)". */
const char *fwt_last_msg(void);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond)                                                                      \
            fwt_pass_check();                                                          \
        else                                                                           \
            fwt_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                          \
    } while (0)

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (cond) {                                                                    \
            fwt_pass_check();                                                          \
        } else {                                                                       \
            fwt_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                        \
            return;                                                                    \
        }                                                                              \
    } while (0)

#define FWT_ST_FAIL(expr, got, want)                                                   \
    fwt_fail(__FILE__, __LINE__, "%s returned %s, expected %s (last error: %s)", #expr, \
             fw_status_str(got), fw_status_str(want), fwt_last_msg())

#define CHECK_ST(expr, want)                                                           \
    do {                                                                               \
        fw_status fwt_got_ = (expr);                                                   \
        fw_status fwt_want_ = (want);                                                  \
        if (fwt_got_ == fwt_want_)                                                     \
            fwt_pass_check();                                                          \
        else                                                                           \
            FWT_ST_FAIL(expr, fwt_got_, fwt_want_);                                    \
    } while (0)

#define REQUIRE_ST(expr, want)                                                         \
    do {                                                                               \
        fw_status fwt_got_ = (expr);                                                   \
        fw_status fwt_want_ = (want);                                                  \
        if (fwt_got_ == fwt_want_) {                                                   \
            fwt_pass_check();                                                          \
        } else {                                                                       \
            FWT_ST_FAIL(expr, fwt_got_, fwt_want_);                                    \
            return;                                                                    \
        }                                                                              \
    } while (0)

#define CHECK_INT(a, b)                                                                \
    do {                                                                               \
        long long fwt_a_ = (long long)(a), fwt_b_ = (long long)(b);                    \
        if (fwt_a_ == fwt_b_)                                                          \
            fwt_pass_check();                                                          \
        else                                                                           \
            fwt_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, fwt_a_,     \
                     fwt_b_);                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                \
    do {                                                                               \
        const char *fwt_a_ = (a), *fwt_b_ = (b);                                       \
        if (fwt_a_ && fwt_b_ && strcmp(fwt_a_, fwt_b_) == 0)                           \
            fwt_pass_check();                                                          \
        else                                                                           \
            fwt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,         \
                     fwt_a_ ? fwt_a_ : "(null)", fwt_b_ ? fwt_b_ : "(null)");          \
    } while (0)

/* The last error on this thread has this code and (when not NULL) this SQLSTATE. */
#define CHECK_LAST_ERROR(code, sqlstate) fwt_check_error(__FILE__, __LINE__, fw_last_error(), code, sqlstate)
void fwt_check_error(const char *file, int line, const fw_error *e, fw_status code,
                     const char *sqlstate);

/* ---- environment and connections ---- */

/* Trust over the Unix socket of the throwaway server (from FW_PG_* variables). */
const char *fwt_conninfo_socket(void);
/* TCP on 127.0.0.1 as `user`/`password` (sslmode=disable). */
const char *fwt_conninfo_tcp(const char *user, const char *password);
const char *fwt_env(const char *name);
/* The suite's shared client (socket trust), created on first use. */
fw_client *fwt_client(void);
void fwt_client_release(void);

/* Execute `source` with an optional WHERE predicate (NULL for none); NULL on failure (the
 * failure is recorded). */
fw_stream *fwt_exec(fw_client *c, const char *source, const char *where);
/* Whether `predicate` is true on the server (evaluated through the library itself): 1, 0,
 * or -1 on error. */
int fwt_server_true(const char *predicate);

/* ---- rows ---- */

/* data is non-NULL, NUL-terminated exactly at len, no embedded NUL. */
bool fwt_row_ok(const char *data, size_t len);
/* The integer value of top-level-looking key `"key": N` in a JSON text, or LLONG_MIN. */
long long fwt_json_int(const char *json, const char *key);
/* How long a test waits for a row before it calls the stream stalled (FW_TIMEOUT). */
#define FWT_WAIT_MS ((int64_t)(15000 * fwt_slow()))
/* Consume with fw_stream_next(timeout FWT_WAIT_MS) until a non-OK status; the rows' "id"
 * fields are added to *id_sum when not NULL. Returns the number of rows, the final status in
 * *end. */
long fwt_drain(fw_stream *s, fw_status *end, long long *id_sum);

/* ---- time ---- */
double fwt_now_ms(void);
void fwt_sleep_ms(long ms);

/* A generous multiplier for timing bounds (FW_TEST_SLOW=N, e.g. under valgrind). */
double fwt_slow(void);

#endif
