#!/usr/bin/env bash
# Self-test of the throwaway PostgreSQL harness (scripts/pg-throwaway,
# scripts/with-pg, tests/fixtures/schema.sql).
#
#   scripts/test-harness.sh [--bench]
#
# --bench additionally runs `with-pg --bench` and checks the benchmark tables
# (adds about half a minute). The last line is "N passed, N failed"; the exit
# status is non-zero when anything failed.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PGT="$SCRIPT_DIR/pg-throwaway"
WITH_PG="$SCRIPT_DIR/with-pg"

with_bench=0
if [[ ${1:-} == --bench ]]; then
    with_bench=1
fi

"$SCRIPT_DIR/install-deps"

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok   - %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL - %s\n' "$1"; if [[ -n ${2:-} ]]; then printf '       %s\n' "$2"; fi; }
# check NAME CMD...: passes when CMD succeeds
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(tail -n 3 <<< "$out" | tr '\n' ' ')"; fi
}
# check_fails NAME CMD...: passes when CMD fails
check_fails() {
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then fail "$name" "command unexpectedly succeeded"; else pass "$name"; fi
}
# check_eq NAME EXPECTED ACTUAL
check_eq() {
    if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# alive and not a zombie (an orphaned postmaster may linger as a zombie until
# pid 1 reaps it)
proc_alive() {
    local st
    st=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

TO_STOP=()
BG_PIDS=()
cleanup() {
    local d p
    for p in "${BG_PIDS[@]-}"; do
        if [[ -n $p ]]; then kill "$p" 2>/dev/null || true; fi
    done
    for d in "${TO_STOP[@]-}"; do
        if [[ -n $d ]]; then "$PGT" stop "$d" >/dev/null 2>&1 || true; fi
    done
}
trap cleanup EXIT

# start_cluster PREFIX [ARGS...]: runs `pg-throwaway start ARGS`, stores each
# KEY=VALUE as PREFIX_KEY (not exported). Returns non-zero on failure.
start_cluster() {
    local prefix=$1; shift
    local out line
    out=$("$PGT" start "$@" 2> "$TMP/start-$prefix.err") || { cat "$TMP/start-$prefix.err" >&2; return 1; }
    printf '%s\n' "$out" > "$TMP/start-$prefix.out"
    while IFS= read -r line; do
        [[ $line =~ ^[A-Z_][A-Z0-9_]*=[^[:space:]\'\"\$\`]+$ ]] || { echo "bad output line: $line" >&2; return 1; }
        printf -v "${prefix}_${line%%=*}" '%s' "${line#*=}"
    done <<< "$out"
    local dir_var="${prefix}_FW_PG_DIR"
    TO_STOP+=("${!dir_var}")
}

TMP=$(mktemp -d)
trap 'cleanup; rm -rf "$TMP"' EXIT

# ---------------------------------------------------------------------------
echo "# cluster A"
t0=$(date +%s.%N)
if ! start_cluster A --watch-pid $$; then
    fail "pg-throwaway start"
    echo "$passed passed, $failed failed"
    exit 1
fi
pass "pg-throwaway start ($(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")s)"

keys=$(cut -d= -f1 "$TMP/start-A.out" | sort | tr '\n' ' ')
check_eq "start prints exactly the expected keys" \
    "FW_PG_DB FW_PG_DIR FW_PG_HOST FW_PG_PORT FW_PG_SOCKET_DIR FW_PG_SSLROOTCERT PGDATABASE PGHOST PGPORT PGUSER " "$keys"
check_eq "FW_PG_HOST" 127.0.0.1 "$A_FW_PG_HOST"
check_eq "FW_PG_DB" fraiseql_test "$A_FW_PG_DB"
check_eq "PGDATABASE" fraiseql_test "$A_PGDATABASE"
check_eq "PGUSER" fw_trust "$A_PGUSER"
check_eq "PGHOST is the socket dir" "$A_FW_PG_SOCKET_DIR" "$A_PGHOST"
check_eq "PGPORT is FW_PG_PORT" "$A_FW_PG_PORT" "$A_PGPORT"
check "FW_PG_DIR exists" test -d "$A_FW_PG_DIR"
check "socket exists" test -S "$A_FW_PG_SOCKET_DIR/.s.PGSQL.$A_FW_PG_PORT"
check "CA cert readable" test -r "$A_FW_PG_SSLROOTCERT"
check "server cert verifies against the CA" \
    openssl verify -CAfile "$A_FW_PG_SSLROOTCERT" "$A_FW_PG_DIR/tls/server.crt"
check "server cert has SAN localhost and 127.0.0.1" bash -c \
    "openssl x509 -in '$A_FW_PG_DIR/tls/server.crt' -noout -ext subjectAltName | grep -q 'DNS:localhost, IP Address:127.0.0.1'"
check "server key is mode 600" bash -c "[[ \$(stat -c %a '$A_FW_PG_DIR/tls/server.key') == 600 ]]"
check "selfsigned.crt is CA:TRUE (PostgreSQL's documented recipe)" bash -c \
    "openssl x509 -in '$A_FW_PG_DIR/tls/selfsigned.crt' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
check "selfsigned.crt has no subjectAltName" bash -c \
    "! openssl x509 -in '$A_FW_PG_DIR/tls/selfsigned.crt' -noout -ext subjectAltName | grep -q DNS"
check "expired.crt is signed by the CA" openssl verify -no_check_time -CAfile "$A_FW_PG_SSLROOTCERT" "$A_FW_PG_DIR/tls/expired.crt"
check_fails "expired.crt has expired" openssl x509 -in "$A_FW_PG_DIR/tls/expired.crt" -noout -checkend 0

# listening sockets for our port: only 127.0.0.1 (0100007F), nothing on v6
port_hex=$(printf '%04X' "$A_FW_PG_PORT")
listen4=$(awk -v p=":$port_hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' /proc/net/tcp | sort -u | tr '\n' ' ')
listen6=$(awk -v p=":$port_hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { print $2 }' /proc/net/tcp6 2>/dev/null | sort -u | tr '\n' ' ')
check_eq "listens on 127.0.0.1 only (v4)" "0100007F:$port_hex " "$listen4"
check_eq "does not listen on v6" "" "$listen6"

PGA_SOCK=(psql -X -At -v ON_ERROR_STOP=1 -h "$A_FW_PG_SOCKET_DIR" -p "$A_FW_PG_PORT" -d fraiseql_test)
q() { "${PGA_SOCK[@]}" -U fw_trust -c "$1" 2>&1; }
tcp() { # tcp USER PASSWORD [extra conninfo]
    PGPASSWORD=$2 PGCONNECT_TIMEOUT=10 psql -X -At -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$A_FW_PG_PORT dbname=fraiseql_test user=$1 ${3:-}" -c "select current_user"
}
tls() { # tls USER PASSWORD SSLMODE [extra]
    PGPASSWORD=$2 PGCONNECT_TIMEOUT=10 psql -X -At -v ON_ERROR_STOP=1 \
        "hostaddr=127.0.0.1 host=localhost port=$A_FW_PG_PORT dbname=fraiseql_test user=$1 sslmode=$3 sslrootcert=$A_FW_PG_SSLROOTCERT ${4:-}" \
        -c "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
}

echo "# authentication"
check_eq "trust via unix socket" fw_trust "$(q 'select current_user')"
check_eq "fw_trust is superuser" on "$(q 'show is_superuser')"
check_eq "fw_trust owns fraiseql_test" fw_trust \
    "$(q "select pg_get_userbyid(datdba) from pg_database where datname = 'fraiseql_test'")"
check_eq "fw_trust over TCP without password" fw_trust "$(tcp fw_trust '' 'sslmode=disable' 2>&1)"
for pair in fw_scram:scram-secret fw_md5:md5-secret fw_plain:plain-secret; do
    user=${pair%%:*}; pw=${pair#*:}
    check_eq "$user logs in over TCP with its password" "$user" "$(tcp "$user" "$pw" 'sslmode=disable' 2>&1)"
    check_eq "$user logs in over TCP+TLS with its password" "$user" "$(tcp "$user" "$pw" 'sslmode=require' 2>&1)"
    check_fails "$user rejected with a wrong password" tcp "$user" wrong-password 'sslmode=disable'
done
check_eq "fw_md5's stored password is md5" md5 "$(q "select left(rolpassword, 3) from pg_authid where rolname = 'fw_md5'")"
check_eq "fw_scram/fw_plain/fw_tls_only stored as SCRAM" 3 \
    "$(q "select count(*) from pg_authid where rolname in ('fw_scram','fw_plain','fw_tls_only') and rolpassword like 'SCRAM-SHA-256\$%'")"
check_eq "fw_tls_only over TLS verify-full (host=localhost)" t "$(tls fw_tls_only tls-secret verify-full 2>&1)"
check_eq "fw_tls_only over TLS verify-full (host=127.0.0.1, IP SAN)" t \
    "$(PGPASSWORD=tls-secret psql -X -At "host=127.0.0.1 port=$A_FW_PG_PORT dbname=fraiseql_test user=fw_tls_only sslmode=verify-full sslrootcert=$A_FW_PG_SSLROOTCERT" -c 'select 1 = 1' 2>&1)"
check_fails "fw_tls_only rejected with sslmode=disable" tls fw_tls_only tls-secret disable
check_fails "fw_tls_only rejected with a wrong password" tls fw_tls_only wrong verify-full
sys_ca=/etc/ssl/certs/ca-certificates.crt
if [[ -f $sys_ca ]]; then
    check_fails "verify-full fails against an unrelated CA bundle" \
        env PGPASSWORD=tls-secret psql -X -At "hostaddr=127.0.0.1 host=localhost port=$A_FW_PG_PORT dbname=fraiseql_test user=fw_tls_only sslmode=verify-full sslrootcert=$sys_ca" -c 'select 1'
fi
check_fails "unknown role over TCP is rejected" tcp nobody_here whatever 'sslmode=disable'
check "fw_scram can read v_user, app.tv_order, t_guard" env PGPASSWORD=scram-secret psql -X -At -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$A_FW_PG_PORT dbname=fraiseql_test user=fw_scram" \
    -c "select count(*) from v_user" -c "select count(*) from app.tv_order" -c "select count(*) from t_guard"
check_eq "fw_md5 sees other sessions' queries in pg_stat_activity" t \
    "$(PGPASSWORD=md5-secret psql -X -At "host=127.0.0.1 port=$A_FW_PG_PORT dbname=fraiseql_test user=fw_md5" \
        -c "select pg_has_role('fw_md5', 'pg_read_all_stats', 'member')" 2>&1)"

echo "# fixtures"
expect_count() { check_eq "count($1) = $2" "$2" "$(q "select count(*) from $1")"; }
expect_count v_user 1000
expect_count users 1000
expect_count app.tv_order 500
expect_count v_empty 0
expect_count v_big 5
expect_count v_null 3
expect_count v_two_cols 1
expect_count v_not_json 1
expect_count v_wrong_name 1
expect_count v_bench_10k 10000
expect_count v_bench_1m 1000000
expect_count t_guard 1
check_eq "v_null: middle row is NULL" '1,,3' "$(q "select string_agg(coalesce(data->>'i', ''), ',') from v_null")"
check_eq "v_big: every row > 1 MB" 5 "$(q "select count(*) from v_big where length(data::text) > 1048576 and data ? 'i'")"
check_eq "v_user data has id/n/active/score/big" 1000 \
    "$(q "select count(*) from v_user where (data->>'id')::int = (data->>'n')::int and jsonb_typeof(data->'active') = 'boolean' and jsonb_typeof(data->'score') = 'number' and data->>'big' = '123456789012345678901234567890.123456789'")"
check_eq "app.orders.data is json (not jsonb)" json \
    "$(q "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = 'app.orders'::regclass and attname = 'data'")"
check_eq "view column types" \
    "app.tv_order:data:json public.v_bench_10k:data:jsonb public.v_bench_1m:data:jsonb public.v_big:data:jsonb public.v_div_zero_after:data:jsonb public.v_empty:data:jsonb public.v_not_json:data:text public.v_null:data:jsonb public.v_sleep30:data:jsonb public.v_slow:data:jsonb public.v_slow_not_json:data:text public.v_two_cols:data:jsonb public.v_two_cols:other:integer public.v_user:data:jsonb public.v_wrong_name:payload:jsonb" \
    "$(q "select string_agg(table_schema || '.' || table_name || ':' || column_name || ':' || data_type, ' ' order by table_schema, table_name, column_name) from information_schema.columns where (table_schema, table_name) in (select table_schema, table_name from information_schema.views where table_schema in ('public', 'app'))")"
avg=$(q "select avg(length(data::text))::int from v_bench_10k")
check "v_bench_10k documents are ~430 bytes (avg $avg)" test "$avg" -ge 380 -a "$avg" -le 480

copy_out() { "${PGA_SOCK[@]}" -U fw_trust -c "COPY (SELECT data FROM $1) TO STDOUT"; }
copy_out v_div_zero_after > "$TMP/div.out" 2> "$TMP/div.err" || true
check_eq "v_div_zero_after: 50 rows before the error" 50 "$(wc -l < "$TMP/div.out")"
check_eq "v_div_zero_after: last good row is i=50" 50 "$(tail -n 1 "$TMP/div.out" | sed -E 's/.*"i": ([0-9]+).*/\1/')"
check "v_div_zero_after: fails with division by zero" grep -q 'division by zero' "$TMP/div.err"
check_eq "v_div_zero_after: SQLSTATE 22012" 22012 \
    "$("${PGA_SOCK[@]}" -U fw_trust -v VERBOSITY=verbose -c 'select count(data) from v_div_zero_after' 2>&1 | sed -nE 's/^ERROR: +([0-9A-Z]{5}):.*/\1/p')"
check_eq "v_sleep30 really sleeps (statement_timeout 1s -> 57014)" 57014 \
    "$(PGOPTIONS='-c statement_timeout=1000' "${PGA_SOCK[@]}" -U fw_trust -v VERBOSITY=verbose -c 'select data from v_sleep30' 2>&1 | sed -nE 's/^ERROR: +([0-9A-Z]{5}):.*/\1/p')"

# v_slow: rows are streamed one by one as they are produced
start_ns=$(date +%s%N)
copy_out v_slow | while IFS= read -r line; do
    echo "$(( ($(date +%s%N) - start_ns) / 1000000 )) ${#line} $(sed -E 's/^\{"i": ([0-9]+),.*/\1/' <<< "${line:0:20}")"
done > "$TMP/slow.out" || true
first_ms=$(head -n 1 "$TMP/slow.out" | cut -d' ' -f1)
last_ms=$(tail -n 1 "$TMP/slow.out" | cut -d' ' -f1)
check_eq "v_slow: 20 rows" 20 "$(wc -l < "$TMP/slow.out")"
check_eq "v_slow: i = 1..20 in order" "$(seq 1 20 | tr '\n' ' ')" "$(cut -d' ' -f3 "$TMP/slow.out" | tr '\n' ' ')"
# shellcheck disable=SC2016
check "v_slow: every row > 8 KB" awk '$2 <= 8192 { exit 1 }' "$TMP/slow.out"
check "v_slow: first row after ${first_ms}ms (< 1000ms), last after ${last_ms}ms (>= 1900ms)" \
    test "${first_ms:-99999}" -lt 1000 -a "${last_ms:-0}" -ge 1900

echo "# more clusters"
if start_cluster B; then
    pass "second cluster starts while the first runs"
    check "ports differ ($A_FW_PG_PORT vs $B_FW_PG_PORT)" test "$A_FW_PG_PORT" != "$B_FW_PG_PORT"
    check "dirs differ" test "$A_FW_PG_DIR" != "$B_FW_PG_DIR"
    check_eq "cluster B answers over TCP" fw_scram \
        "$(PGPASSWORD=scram-secret psql -X -At "host=127.0.0.1 port=$B_FW_PG_PORT dbname=fraiseql_test user=fw_scram" -c 'select current_user' 2>&1)"
    check_eq "cluster A still answers" 1000 "$(q 'select count(*) from v_user')"
    B_PID=$(head -n 1 "$B_FW_PG_DIR/data/postmaster.pid")
    check "stop B" "$PGT" stop "$B_FW_PG_DIR"
    check_fails "B's dir is gone" test -e "$B_FW_PG_DIR"
    check_fails "B's postmaster is gone" proc_alive "$B_PID"
    check "stop B again is a no-op" "$PGT" stop "$B_FW_PG_DIR"
    check_eq "cluster A survives B's stop" 1000 "$(q 'select count(*) from v_user')"
else
    fail "second cluster starts while the first runs"
fi

not_ours=$(mktemp -d)
echo keep > "$not_ours/file"
check_fails "stop refuses a dir that is not a throwaway cluster" "$PGT" stop "$not_ours"
check "... and leaves it alone" test -f "$not_ours/file"
rm -rf "$not_ours"

echo "# replication and pgbouncer"
if start_cluster R --watch-pid $$ --replication; then
    pass "a cluster with --replication starts"
    S_OUT=$("$PGT" start-standby "$R_FW_PG_DIR" --watch-pid $$ 2>/dev/null) && pass "start-standby" || fail "start-standby"
    S_DIR=$(sed -n 's/^FW_PG_DIR=//p' <<< "$S_OUT"); S_SOCK=$(sed -n 's/^FW_PG_SOCKET_DIR=//p' <<< "$S_OUT")
    S_PORT=$(sed -n 's/^FW_PG_PORT=//p' <<< "$S_OUT")
    TO_STOP+=("$S_DIR")
    check_eq "the standby is in recovery" t \
        "$(psql -X -At -h "$S_SOCK" -p "$S_PORT" -U fw_trust -d fraiseql_test -c 'select pg_is_in_recovery()' 2>&1)"
    check_eq "the standby has the fixtures" 1000 \
        "$(psql -X -At -h "$S_SOCK" -p "$S_PORT" -U fw_trust -d fraiseql_test -c 'select count(*) from v_user' 2>&1)"
    B_OUT=$("$PGT" start-pgbouncer "$R_FW_PG_DIR" --mode transaction --watch-pid $$ 2>/dev/null) &&
        pass "start-pgbouncer" || fail "start-pgbouncer"
    B_DIR=$(sed -n 's/^FW_PGB_DIR=//p' <<< "$B_OUT"); B_PORT=$(sed -n 's/^FW_PGB_PORT=//p' <<< "$B_OUT")
    TO_STOP+=("$B_DIR")
    check_eq "pgbouncer reaches the cluster" 1000 \
        "$(psql -X -At "host=127.0.0.1 port=$B_PORT user=fw_trust dbname=fraiseql_test" -c 'select count(*) from v_user' 2>&1)"
    B_PID=$(cat "$B_DIR/pgbouncer.pid")
    check "stop pgbouncer" "$PGT" stop "$B_DIR"
    check_fails "pgbouncer is gone" proc_alive "$B_PID"
    check "stop the standby" "$PGT" stop "$S_DIR"
else
    fail "a cluster with --replication starts"
fi

echo "# watchdog"
sleep 300 &
victim=$!
BG_PIDS+=("$victim")
if start_cluster C --watch-pid "$victim"; then
    pass "cluster C starts with --watch-pid"
    C_PID=$(head -n 1 "$C_FW_PG_DIR/data/postmaster.pid")
    check_eq "cluster C answers" 1 "$(psql -X -At -h "$C_FW_PG_SOCKET_DIR" -p "$C_FW_PG_PORT" -U fw_trust -d fraiseql_test -c 'select 1' 2>&1)"
    sleep 1
    check "cluster C still up while the watched pid lives" test -d "$C_FW_PG_DIR"
    kill "$victim"; wait "$victim" 2>/dev/null || true
    for _ in $(seq 1 100); do
        [[ -e $C_FW_PG_DIR ]] || break
        sleep 0.1
    done
    check_fails "watchdog removed C's dir after the watched pid died" test -e "$C_FW_PG_DIR"
    check_fails "watchdog stopped C's postmaster" proc_alive "$C_PID"
else
    fail "cluster C starts with --watch-pid"
fi

echo "# with-pg"
set +e
# shellcheck disable=SC2016
"$WITH_PG" bash -c 'psql -X -At -c "select count(*) from v_user" > "$1/wp.count"; echo "$FW_PG_DIR" > "$1/wp.dir"; exit 7' _ "$TMP" 2>/dev/null
wp_rc=$?
set -e
check_eq "with-pg exits with the command's status" 7 "$wp_rc"
check_eq "with-pg exports PG* for the command" 1000 "$(cat "$TMP/wp.count" 2>/dev/null)"
check_fails "with-pg removed its cluster" test -e "$(cat "$TMP/wp.dir" 2>/dev/null || echo /nonexistent-fw)"
check_eq "with-pg status 0" 0 "$("$WITH_PG" true 2>/dev/null; echo $?)"

if [[ $with_bench -eq 1 ]]; then
    echo "# with-pg --bench"
    t0=$(date +%s)
    out=$("$WITH_PG" --bench psql -X -At \
        -c "select count(*) from v_bench_docs_1m" \
        -c "select count(*) from v_bench_docs_4k" \
        -c "select count(*) from v_bench_docs_1mb" \
        -c "select avg(length(data::text))::int / 100 from v_bench_docs_4k" \
        -c "select min(length(data::text)) > 1000000 from v_bench_docs_1mb" 2>/dev/null | tr '\n' ' ')
    check_eq "bench tables (with-pg --bench took $(( $(date +%s) - t0 ))s)" "1000000 100000 1000 41 t " "$out"
fi

echo "# stop A"
A_PID=$(head -n 1 "$A_FW_PG_DIR/data/postmaster.pid")
check "stop A" "$PGT" stop "$A_FW_PG_DIR"
check_fails "A's dir is gone" test -e "$A_FW_PG_DIR"
check_fails "A's postmaster is gone" proc_alive "$A_PID"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
