package fraiseqlwire

// Tests against the throwaway PostgreSQL of scripts/with-pg (PGHOST, PGPORT, PGDATABASE,
// PGUSER and FW_PG_* in the environment). Run them with bindings/go/test.sh.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient("")
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustStream(t *testing.T, q *Query) *Stream {
	t.Helper()
	s, err := q.Stream(context.Background())
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type doc struct {
	N       int    `json:"n"`
	ID      int    `json:"id"`
	I       int    `json:"i"`
	Email   string `json:"email"`
	Neg     int    `json:"neg"`
	Unicode string `json:"unicode"`
}

func readAll(t *testing.T, s *Stream) ([]doc, error) {
	t.Helper()
	var out []doc
	for s.Next() {
		var d doc
		if err := json.Unmarshal(s.Row(), &d); err != nil {
			t.Fatalf("bad JSON %q: %v", s.Row(), err)
		}
		out = append(out, d)
	}
	return out, s.Err()
}

// backends counts the client backends connected to the test database through the library
// itself: v_user has n = 1..1000, so the rows with n <= count(*) are that many.
func backends(t *testing.T, c *Client) int {
	t.Helper()
	s := mustStream(t, c.Query("v_user").Where("(data->>'n')::int <= (SELECT count(*) FROM pg_stat_activity "+
		"WHERE backend_type = 'client backend' AND datname = current_database())"))
	defer s.Close()
	n := 0
	for s.Next() {
		n++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVersion(t *testing.T) {
	if v := Version(); !strings.Contains(v, ".") {
		t.Fatalf("Version() = %q", v)
	}
	if StatusServer.String() != "FW_E_SERVER" || StatusDone.String() != "FW_DONE" {
		t.Fatalf("status names: %s %s", StatusServer, StatusDone)
	}
}

func TestLargeViewCountAndContent(t *testing.T) {
	c := newClient(t)
	rows, err := readAll(t, mustStream(t, c.Query("v_user")))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1000 {
		t.Fatalf("v_user: %d rows, want 1000", len(rows))
	}
	byN := map[int]doc{}
	for _, d := range rows {
		byN[d.N] = d
	}
	for n := 1; n <= 1000; n++ {
		if _, ok := byN[n]; !ok {
			t.Fatalf("row n=%d missing", n)
		}
	}
	for _, n := range []int{1, 500, 1000} {
		d := byN[n]
		if d.Email != fmt.Sprintf("user%d@example.com", n) || d.Neg != -n || d.Unicode != "Zoë 東京 🎉 ñ € 𝄞" {
			t.Fatalf("row n=%d: %+v", n, d)
		}
	}

	rows, err = readAll(t, mustStream(t, c.Query("v_bench_10k")))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(rows))
	for i, d := range rows {
		ids[i] = d.ID
	}
	sort.Ints(ids)
	if len(ids) != 10000 || ids[0] != 1 || ids[9999] != 10000 {
		t.Fatalf("v_bench_10k: %d rows", len(ids))
	}
	for i, id := range ids {
		if id != i+1 {
			t.Fatalf("v_bench_10k: id %d at %d", id, i)
		}
	}
}

// Rows are copies: they stay intact after later Next calls and after Close.
func TestRowsAreCopies(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_user").OrderBy("(data->>'n')::int", Asc).BatchRows(7))
	var kept [][]byte
	for s.Next() {
		kept = append(kept, s.Row())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	runtime.GC()
	for i, r := range kept {
		var d doc
		if err := json.Unmarshal(r, &d); err != nil || d.N != i+1 {
			t.Fatalf("kept row %d: %v %q", i, err, r)
		}
	}
}

func TestQueryBuilder(t *testing.T) {
	c := newClient(t)
	q := c.Query("v_user").Where("(data->>'n')::int > 10").OrderBy("(data->>'n')::int", Desc).Limit(3).Offset(1)
	for round := 0; round < 2; round++ { // a query runs any number of times
		rows, err := readAll(t, mustStream(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0].N != 999 || rows[1].N != 998 || rows[2].N != 997 {
			t.Fatalf("rows: %+v", rows)
		}
	}
	_, err := c.Query("v_user; drop table t_guard").Stream(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusInvalidArgument {
		t.Fatalf("bad source: %v", err)
	}
}

func TestParallel(t *testing.T) {
	c := newClient(t)
	// A table split by block ranges: every row once.
	got := ids(t, c.Query("users").Parallel(3, ""))
	seen := map[int]bool{}
	for _, id := range got {
		seen[id] = true
	}
	if len(got) != 1000 || len(seen) != 1000 {
		t.Fatalf("parallel table: %d rows, %d distinct, want 1000", len(got), len(seen))
	}
	// A view with a partition expression, merged in order with LIMIT/OFFSET.
	s := mustStream(t, c.Query("v_user").Parallel(2, "(data->>'id')::int").
		OrderBy("(data->>'n')::int", Desc).Limit(3).Offset(1))
	rows, err := readAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].N != 999 || rows[1].N != 998 || rows[2].N != 997 {
		t.Fatalf("ordered parallel rows: %+v", rows)
	}
	// A view without one: refused.
	_, err = c.Query("v_user").Parallel(2, "").Stream(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusInvalidArgument || !strings.Contains(fe.Message, "fw_query_partition_by") {
		t.Fatalf("view without a partition expression: %v", err)
	}
}

func TestMissingViewSQLState(t *testing.T) {
	c := newClient(t)
	_, err := c.Query("v_does_not_exist").Stream(context.Background())
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T)", err, err)
	}
	if fe.Code != StatusServer || fe.SQLState != "42P01" || !strings.Contains(fe.Message, "v_does_not_exist") {
		t.Fatalf("err = %#v", fe)
	}
	if !errors.Is(err, ErrServer) || errors.Is(err, ErrCancelled) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
}

func TestErrorAfterRows(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_div_zero_after"))
	rows, err := readAll(t, s)
	if len(rows) != 50 || rows[0].I != 1 || rows[49].I != 50 {
		t.Fatalf("%d rows before the error, want 50", len(rows))
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.SQLState != "22012" || fe.Code != StatusServer {
		t.Fatalf("err = %v", err)
	}
	if s.State() != StateFailed {
		t.Fatalf("state %s", s.State())
	}
	if s.Next() {
		t.Fatal("Next after the error")
	}
}

func TestSchemaError(t *testing.T) {
	c := newClient(t)
	_, err := c.Query("v_not_json").Stream(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusSchema {
		t.Fatalf("err = %v", err)
	}
}

func statusOf(err error) Status {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return StatusOK
}

func TestDescribeWait(t *testing.T) {
	c := newClient(t)
	// v_slow_not_json describes itself after 0.5 s: past the default 20ms wait, the wrong
	// shape comes from the stream; waiting longer (2s, or without limit), from Stream itself.
	s := mustStream(t, c.Query("v_slow_not_json"))
	if _, err := readAll(t, s); statusOf(err) != StatusSchema {
		t.Fatalf("default wait: err %v", err)
	}
	for name, q := range map[string]*Query{
		"2s":       c.Query("v_slow_not_json").DescribeWait(2 * time.Second),
		"no limit": c.Query("v_slow_not_json").DescribeWaitForever(),
	} {
		s, err := q.Stream(context.Background())
		if err == nil {
			s.Close()
		}
		if statusOf(err) != StatusSchema {
			t.Fatalf("wait %s: err %v", name, err)
		}
	}
	// Wait 0: Stream does not wait, so the missing relation is reported by the stream,
	// unless the answer was already there when Stream looked once.
	s, err := c.Query("v_does_not_exist").DescribeWait(0).Stream(context.Background())
	if err == nil {
		defer s.Close()
		var rows []doc
		rows, err = readAll(t, s)
		if len(rows) != 0 {
			t.Fatalf("wait 0: %d rows", len(rows))
		}
	}
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusServer || fe.SQLState != "42P01" {
		t.Fatalf("wait 0: err %v", err)
	}
	// the client goes on
	if rows, err := readAll(t, mustStream(t, c.Query("v_user").Limit(5).DescribeWait(time.Hour))); err != nil || len(rows) != 5 {
		t.Fatalf("after: %d rows, %v", len(rows), err)
	}
	for _, wait := range []time.Duration{time.Hour + time.Millisecond, -time.Nanosecond} {
		s, err := c.Query("v_user").DescribeWait(wait).Stream(context.Background())
		if err == nil {
			s.Close()
		}
		if statusOf(err) != StatusInvalidArgument {
			t.Fatalf("wait %v: err %v", wait, err)
		}
	}
}

func TestReadAheadAndCoalesce(t *testing.T) {
	c := newClient(t)
	for _, coalesce := range []time.Duration{0, 100 * time.Millisecond} {
		q := c.Query("v_user").OrderBy("(data->>'n')::int", Asc).ReadAhead(1).ReadCoalesce(coalesce).ChunkSize(1)
		rows, err := readAll(t, mustStream(t, q))
		if err != nil || len(rows) != 1000 {
			t.Fatalf("coalesce %v: %d rows, %v", coalesce, len(rows), err)
		}
		for i, r := range rows {
			if r.N != i+1 {
				t.Fatalf("coalesce %v: row %d has n %d", coalesce, i, r.N)
			}
		}
	}
	for name, q := range map[string]*Query{
		"read-ahead 0":        c.Query("v_user").ReadAhead(0),
		"read-ahead negative": c.Query("v_user").ReadAhead(-1),
		"coalesce over 100ms": c.Query("v_user").ReadCoalesce(100*time.Millisecond + time.Microsecond),
		"coalesce negative":   c.Query("v_user").ReadCoalesce(-time.Nanosecond),
	} {
		s, err := q.Stream(context.Background())
		if err == nil {
			s.Close()
		}
		if statusOf(err) != StatusInvalidArgument {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestAuth(t *testing.T) {
	base := "host=127.0.0.1 port=" + os.Getenv("FW_PG_PORT") + " dbname=fraiseql_test user=fw_scram"
	_, err := NewClient(base + " password=wrong")
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusAuth || fe.SQLState != "28P01" {
		t.Fatalf("err = %v", err)
	}
	c, err := NewClient(base + " password=scram-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rows, err := readAll(t, mustStream(t, c.Query("v_user").Limit(5)))
	if err != nil || len(rows) != 5 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
}

func TestContextCancel(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Query("v_sleep30").Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.AfterFunc(300*time.Millisecond, cancel)
	t0 := time.Now()
	if s.Next() {
		t.Fatal("got a row from v_sleep30")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	err = s.Err()
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != StatusCancelled || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Fatalf("err = %v", err)
	}
	if s.State() != StateCancelled {
		t.Fatalf("state %s", s.State())
	}

	// a deadline
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	s2, err := c.Query("v_slow").Stream(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	n := 0
	for s2.Next() {
		n++
	}
	if n >= 20 || !errors.Is(s2.Err(), context.DeadlineExceeded) {
		t.Fatalf("%d rows, err %v", n, s2.Err())
	}

	// an already-cancelled context
	if _, err := c.Query("v_user").Stream(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelMidStream(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_slow"))
	if !s.Next() {
		t.Fatal(s.Err())
	}
	if err := s.Cancel(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if s.Next() {
		t.Fatal("row after cancel")
	}
	if time.Since(t0) > time.Second || !errors.Is(s.Err(), ErrCancelled) || errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("err = %v after %v", s.Err(), time.Since(t0))
	}
	// the client is still usable
	rows, err := readAll(t, mustStream(t, c.Query("v_user").Limit(2)))
	if err != nil || len(rows) != 2 {
		t.Fatal(len(rows), err)
	}
}

// Close from another goroutine while Next is blocked in the library.
func TestCloseWhileBlocked(t *testing.T) {
	c := newClient(t)
	s, err := c.Query("v_sleep30").Stream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() { done <- s.Next() }()
	time.Sleep(200 * time.Millisecond)
	s.Close()
	select {
	case got := <-done:
		if got {
			t.Fatal("Next returned a row")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
	s.Close()
	if s.Next() || s.Err() == nil {
		t.Fatal("Next on a closed stream")
	}
	if err := s.Pause(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pause on a closed stream: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_user").ChunkSize(16).BatchRows(8))
	if !s.Next() {
		t.Fatal(s.Err())
	}
	if err := s.PauseWithReason("test"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil { // idempotent
		t.Fatal(err)
	}
	if s.State() != StatePaused {
		t.Fatalf("state %s", s.State())
	}
	time.AfterFunc(300*time.Millisecond, func() { _ = s.Resume() })
	t0 := time.Now()
	n := 1
	for s.Next() { // buffered rows, then waits for the resume
		n++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if time.Since(t0) < 200*time.Millisecond {
		t.Fatalf("did not wait for the resume (%v)", time.Since(t0))
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1000 || st.PauseCount != 1 || st.PausedTotal < 100*time.Millisecond || st.State != StateCompleted {
		t.Fatalf("n=%d stats=%+v", n, st)
	}
	var fe *Error
	if err := s.Pause(); !errors.As(err, &fe) || fe.Code != StatusState {
		t.Fatalf("pause after the end: %v", err)
	}
}

func TestStats(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_user"))
	st, err := s.Stats()
	if err != nil || st.TotalRowsYielded != 0 {
		t.Fatal(st, err)
	}
	rows, err := readAll(t, s)
	if err != nil {
		t.Fatal(err)
	}
	st, err = s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateCompleted || st.TotalRowsReceived != 1000 || st.TotalRowsYielded != uint64(len(rows)) ||
		st.TotalRowsFiltered != 0 || st.TotalBytesReceived < 100000 || st.Elapsed <= 0 || st.ItemsBuffered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMetricsDump(t *testing.T) {
	c := newClient(t)
	if _, err := readAll(t, mustStream(t, c.Query("v_user").Limit(1))); err != nil {
		t.Fatal(err)
	}
	text, err := MetricsDump()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "fraiseql_queries_total") || !strings.Contains(text, `entity="v_user"`) {
		t.Fatalf("metrics:\n%s", text)
	}
}

// Streams and clients the program drops are freed by finalizers; their watcher
// goroutines end; the server's connections stay bounded.
func TestFinalizersFreeEverything(t *testing.T) {
	c := newClient(t)
	before := backends(t, c)
	runtime.GC()
	baseClients, baseStreams := atomic.LoadInt64(&liveClients), atomic.LoadInt64(&liveStreams)
	baseGoroutines := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	func() {
		for i := 0; i < 60; i++ {
			cl, err := NewClient("")
			if err != nil {
				t.Fatal(err)
			}
			s, err := cl.Query("v_bench_10k").Stream(ctx) // a context that is never done
			if err != nil {
				t.Fatal(err)
			}
			if !s.Next() {
				t.Fatal(s.Err())
			}
			// never closed
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	var now int
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // finalizers run on their own goroutine
		now = backends(t, c)
		if (atomic.LoadInt64(&liveClients) == baseClients && atomic.LoadInt64(&liveStreams) == baseStreams &&
			now <= before+2 && runtime.NumGoroutine() <= baseGoroutines+1) || time.Now().After(deadline) {
			break
		}
	}
	if lc, ls := atomic.LoadInt64(&liveClients), atomic.LoadInt64(&liveStreams); lc != baseClients || ls != baseStreams {
		t.Fatalf("live handles: %d clients, %d streams; want %d, %d", lc, ls, baseClients, baseStreams)
	}
	if now > before+2 {
		t.Fatalf("%d backends, %d before", now, before)
	}
	if g := runtime.NumGoroutine(); g > baseGoroutines+1 {
		t.Fatalf("%d goroutines, %d before", g, baseGoroutines)
	}
}

// RawRow (library memory, no copy), Row (a copy), Text and Scan (json.Unmarshal) give the
// same row; RawRow of SQL NULL is the JSON null; after Close there is no current row.
func TestRawRowRowTextScan(t *testing.T) {
	c := newClient(t)
	s := mustStream(t, c.Query("v_user").OrderBy("(data->>'n')::int", Asc).BatchRows(64))
	n := 0
	for s.Next() {
		n++
		raw := s.RawRow()
		row := s.Row()
		if string(raw) != string(row) || s.Text() != string(row) {
			t.Fatalf("row %d: RawRow %q, Row %q, Text %q", n, raw, row, s.Text())
		}
		if cap(raw) != len(raw) {
			t.Fatalf("RawRow's capacity %d exceeds its length %d (append would write into the block)", cap(raw), len(raw))
		}
		var d doc
		if err := s.Scan(&d); err != nil || d.N != n {
			t.Fatalf("Scan row %d: %v, n = %d", n, err, d.N)
		}
	}
	if err := s.Err(); err != nil || n != 1000 {
		t.Fatalf("%d rows, %v", n, err)
	}
	s.Close()
	if s.RawRow() != nil || s.Row() != nil || s.Scan(&struct{}{}) == nil {
		t.Fatal("a closed stream still has a current row")
	}

	s = mustStream(t, c.Query("v_null"))
	var got []string
	for s.Next() {
		var v any
		if err := s.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%v", s.RawRow(), v))
	}
	if want := `{"i": 1}=map[i:1],null=<nil>,{"i": 3}=map[i:3]`; strings.Join(got, ",") != want {
		t.Fatalf("v_null: %s", strings.Join(got, ","))
	}
}

// Errors carry the status (Code and its name), Message, SQLState, Detail, Hint, Position.
func TestErrorFields(t *testing.T) {
	c := newClient(t)
	_, err := c.Query("v_user").Where("(data->>'n')::int = 'x'").Stream(context.Background())
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("not an *Error: %v", err)
	}
	if fe.Code != StatusServer || fe.Code.String() != "FW_E_SERVER" || int(fe.Code) != -6 || fe.SQLState != "22P02" {
		t.Fatalf("fields: %+v", fe)
	}
	if !strings.Contains(fe.Message, "invalid input syntax") || fe.Position == "" {
		t.Fatalf("message/position: %+v", fe)
	}
	if !strings.HasPrefix(fe.Error(), "FW_E_SERVER: ") {
		t.Fatalf("Error(): %s", fe.Error())
	}
}

// ids streams the query and returns the "id" of each row, in the order streamed.
func ids(t *testing.T, q *Query) []int {
	t.Helper()
	s := mustStream(t, q)
	rows, err := readAll(t, s)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	out := make([]int, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

func sortedIDs(t *testing.T, q *Query) []int {
	t.Helper()
	v := ids(t, q)
	sort.Ints(v)
	return v
}

// hand returns the ids of the rows matching a hand-written SQL condition (the expected set).
func hand(t *testing.T, c *Client, source, cond string) []int {
	t.Helper()
	return sortedIDs(t, c.Query(source).Where(cond))
}

func TestWherePathMatchesHandWrittenSQL(t *testing.T) {
	c := newClient(t)
	n39, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	cases := []struct {
		path  string
		op    Op
		value []any
		cond  string
	}{
		{"/status", OpEq, []any{"active"}, "data->>'status' = 'active'"},
		{"/address/city", OpEq, []any{"Zürich"}, "data->'address'->>'city' = 'Zürich'"},
		{"/score", OpGt, []any{10}, "(data->>'score')::numeric > 10"},
		{"/score", OpLe, []any{0.5}, "(data->>'score')::numeric <= 0.5"},
		{"/score", OpGe, []any{json.Number("123456789012345678901234567890.123456789")},
			"(data->>'score')::numeric >= 123456789012345678901234567890.123456789"},
		{"/score", OpLt, []any{n39}, "(data->>'score')::numeric < 123456789012345678901234567890"},
		{"/status", OpIn, []any{[]string{"pending", "inactive"}}, "data->>'status' IN ('pending', 'inactive')"},
		{"/id", OpNotIn, []any{[]int{1, 2, 3}}, "(data->>'id')::int NOT IN (1, 2, 3)"},
		{"/active", OpEq, []any{true}, "(data->>'active')::boolean"},
		{"/email", OpEq, []any{nil}, "data->>'email' IS NULL"},
		{"/email", OpExists, nil, "data::jsonb ? 'email'"},
		{"/email", OpNotExists, nil, "NOT data::jsonb ? 'email'"},
		{"/tags", OpJSONContains, []any{[]string{"poet"}}, `data::jsonb @> '{"tags": ["poet"]}'`},
		{"/name", OpStartsWith, []any{"50%"}, `data->>'name' LIKE '50\%%'`},
	}
	for _, src := range []string{"v_filter", "v_filter_json"} {
		for _, tc := range cases {
			want := hand(t, c, src, tc.cond)
			if len(want) == 0 {
				t.Fatalf("%s: no rows", tc.cond)
			}
			got := sortedIDs(t, c.Query(src).WherePath(tc.path, tc.op, tc.value...))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s %v %v: got %v, want %v (%s)", src, tc.path, tc.op, tc.value, got, want, tc.cond)
			}
		}
	}
}

func TestOrderByPath(t *testing.T) {
	c := newClient(t)
	got := ids(t, c.Query("v_filter").OrderByPath("/name", OrderText, "C", Desc).OrderBy("(data->>'id')::int", Asc))
	want := ids(t, c.Query("v_filter").OrderByCollate("data->>'name'", "C", Desc).OrderBy("(data->>'id')::int", Asc))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("text: got %v, want %v", got, want)
	}
	got = ids(t, c.Query("v_filter_json").OrderByPath("/score", OrderNumeric, "", Asc).OrderBy("(data->>'id')::int", Asc))
	want = ids(t, c.Query("v_filter_json").OrderBy("(data->>'score')::numeric", Asc).OrderBy("(data->>'id')::int", Asc))
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) < 2 || got[0] != 3 || got[1] != 7 {
		t.Errorf("numeric: got %v, want %v starting 3, 7 (-3, then 0)", got, want)
	}
	_, err := c.Query("v_filter").OrderByPath("/score", OrderNumeric, "C", Asc).Stream(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != StatusInvalidArgument {
		t.Errorf("numeric with a collation: got %v, want StatusInvalidArgument", err)
	}
}

func TestWhereParams(t *testing.T) {
	c := newClient(t)
	q := c.Query("v_filter").WhereParams("data->>'status' = $1", "inactive").
		WhereParams("data->>'email' IS NOT DISTINCT FROM $1 AND (data->>'score')::numeric <= $2", nil, 0)
	want := hand(t, c, "v_filter", "data->>'status' = 'inactive' AND data->>'email' IS NULL AND (data->>'score')::numeric <= 0")
	if fmt.Sprint(want) != "[7]" {
		t.Fatalf("hand-written: %v, want [7]", want)
	}
	if got := sortedIDs(t, q); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	q = c.Query("v_filter").WhereParams("(data->>'score')::numeric > $1", 10).
		WhereParams("data->>'active' = $1 OR $2::text IS NULL", false, "x")
	want = hand(t, c, "v_filter", "(data->>'score')::numeric > 10 AND data->>'active' = 'false'")
	if got := sortedIDs(t, q); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestWhereInjectionStaysData(t *testing.T) {
	c := newClient(t)
	evil := "O'Brien $1 '); DROP TABLE t_guard; --"
	for _, tc := range []struct {
		q    *Query
		want string
	}{
		{c.Query("v_filter").WherePath("/name", OpEq, evil), "[9]"},
		{c.Query("v_filter").WhereParams("data->>'name' = $1", evil), "[9]"},
		{c.Query("v_filter").WherePath("/status", OpEq, "x' OR '1'='1"), "[]"},
		{c.Query("v_filter").WhereParams("data->>'status' = $1", "x' OR '1'='1"), "[]"},
	} {
		if got := fmt.Sprint(ids(t, tc.q)); got != tc.want {
			t.Errorf("got %v, want %v", got, tc.want)
		}
	}
	// t_guard still exists
	if got, all := len(ids(t, c.Query("v_filter").Where("EXISTS (SELECT 1 FROM t_guard)"))), len(hand(t, c, "v_filter", "true")); got != all {
		t.Errorf("t_guard: %d rows, want %d", got, all)
	}
}

func TestWhereErrors(t *testing.T) {
	c := newClient(t)
	invalid := func(q *Query, contains ...string) {
		t.Helper()
		_, err := q.Stream(context.Background())
		var e *Error
		if !errors.As(err, &e) || e.Code != StatusInvalidArgument {
			t.Fatalf("got %v, want StatusInvalidArgument", err)
		}
		for _, s := range contains {
			if !strings.Contains(e.Message, s) {
				t.Errorf("message %q lacks %q", e.Message, s)
			}
		}
	}
	invalid(c.Query("v_filter").WherePath("/name", OpLike, 5), "LIKE", "number")
	invalid(c.Query("v_filter").WherePath("/name", Op(99), "x"), "Op(99) is not an operator")
	invalid(c.Query("v_filter").WherePath("/name", OpEq), "OpEq needs a value")
	invalid(c.Query("v_filter").WherePath("/score", OpGt, math.NaN()), "cannot be sent as JSON")
	invalid(c.Query("v_filter").WhereParams("data->>'a' = $2", "x"))
}
