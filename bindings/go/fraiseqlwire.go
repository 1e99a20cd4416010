// Package fraiseqlwire streams JSON rows from PostgreSQL through libfraiseql_wire (cgo).
//
//	client, err := fraiseqlwire.NewClient("") // libpq conninfo; PG* environment as defaults
//	if err != nil { ... }
//	defer client.Close()
//	rows, err := client.Query("v_user").Where("(data->>'active')::boolean").Limit(10).Stream(ctx)
//	if err != nil { ... }
//	defer rows.Close()
//	for rows.Next() {
//		var doc map[string]any
//		if err := rows.Scan(&doc); err != nil { ... } // json.Unmarshal
//	}
//	if err := rows.Err(); err != nil { ... }
//
// Each call into the library (fw_stream_next_block) returns a block of rows; Next then
// walks it without calling into C. RawRow is the row in the library's memory (valid until
// the next Next, like pgx's RawValues); Row copies it, Text makes a string, Scan parses it
// with encoding/json. The library never keeps a Go pointer. Cancelling the context passed to Stream cancels the query (fw_stream_cancel).
// Errors are *Error values carrying the status and, for server errors, the SQLSTATE.
package fraiseqlwire

/*
#include <stdlib.h>
#include <fraiseql_wire.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Status is a library status code (fw_status).
type Status int

// Status codes from fraiseql_wire.h.
const (
	StatusOK              Status = C.FW_OK
	StatusDone            Status = C.FW_DONE
	StatusWouldBlock      Status = C.FW_WOULD_BLOCK
	StatusTimeout         Status = C.FW_TIMEOUT
	StatusPaused          Status = C.FW_PAUSED
	StatusStopped         Status = C.FW_STOPPED
	StatusInvalidArgument Status = C.FW_E_INVALID_ARGUMENT
	StatusNull            Status = C.FW_E_NULL
	StatusConnect         Status = C.FW_E_CONNECT
	StatusAuth            Status = C.FW_E_AUTH
	StatusTLS             Status = C.FW_E_TLS
	StatusServer          Status = C.FW_E_SERVER
	StatusProtocol        Status = C.FW_E_PROTOCOL
	StatusSchema          Status = C.FW_E_SCHEMA
	StatusMemoryLimit     Status = C.FW_E_MEMORY_LIMIT
	StatusCancelled       Status = C.FW_E_CANCELLED
	StatusIO              Status = C.FW_E_IO
	StatusState           Status = C.FW_E_STATE
	StatusPanic           Status = C.FW_E_PANIC
	StatusShutdown        Status = C.FW_E_SHUTDOWN
)

// String is the constant's name in the C header ("FW_E_SERVER").
func (s Status) String() string {
	return C.GoString(C.fw_status_str(C.int(s)))
}

// State is a stream's life-cycle state.
type State int

// Stream states.
const (
	StateInvalid   State = C.FW_STATE_INVALID
	StateRunning   State = C.FW_STATE_RUNNING
	StatePaused    State = C.FW_STATE_PAUSED
	StateCompleted State = C.FW_STATE_COMPLETED
	StateFailed    State = C.FW_STATE_FAILED
	StateCancelled State = C.FW_STATE_CANCELLED
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateCompleted:
		return "completed"
	case StateFailed:
		return "failed"
	case StateCancelled:
		return "cancelled"
	}
	return "invalid"
}

// Error is a failed library call. Use errors.As to get at it:
//
//	var fe *fraiseqlwire.Error
//	if errors.As(err, &fe) && fe.SQLState == "42P01" { ... }
type Error struct {
	Code     Status // the status, e.g. StatusServer
	SQLState string // the server's SQLSTATE ("" when not a server error)
	Message  string
	Detail   string
	Hint     string
	Position string
	cause    error // the context's error when the cancel came from a context
}

func (e *Error) Error() string {
	msg := e.Code.String()
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.SQLState != "" && !containsString(e.Message, e.SQLState) {
		msg += " (SQLSTATE " + e.SQLState + ")"
	}
	return msg
}

// Unwrap gives the context error (context.Canceled, context.DeadlineExceeded) when the
// stream was cancelled through its context.
func (e *Error) Unwrap() error { return e.cause }

// Is matches sentinel errors by code: errors.Is(err, fraiseqlwire.ErrCancelled).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.SQLState == "" && t.Code == e.Code
}

// Sentinels for errors.Is, matching any error with that code.
var (
	ErrCancelled = &Error{Code: StatusCancelled}
	ErrServer    = &Error{Code: StatusServer}
	ErrState     = &Error{Code: StatusState}
	ErrClosed    = errors.New("fraiseqlwire: use of a closed handle")
)

func containsString(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func goString(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// errorFrom builds an Error for a failed call from e (a stream's error) or, when e does not
// match, from the calling thread's last error. The caller must hold its OS thread
// (runtime.LockOSThread) from the failed call to here: the last error is thread-local.
func errorFrom(code int32, e *C.fw_error) *Error {
	if e == nil || int32(C.fw_error_code(e)) != code {
		e = C.fw_last_error()
	}
	out := &Error{Code: Status(code)}
	if e != nil && int32(C.fw_error_code(e)) == code {
		out.Message = goString(C.fw_error_message(e))
		out.SQLState = goString(C.fw_error_sqlstate(e))
		out.Detail = goString(C.fw_error_detail(e))
		out.Hint = goString(C.fw_error_hint(e))
		out.Position = goString(C.fw_error_position(e))
	}
	return out
}

// Handles alive, for the tests.
var liveClients, liveStreams int64

// Version is the library's version ("0.1.0").
func Version() string { return C.GoString(C.fw_version()) }

// Shutdown cancels every live stream and stops the library's runtime (irreversible).
func Shutdown(timeout time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.fw_shutdown(C.uint64_t(timeout / time.Millisecond)); st < 0 {
		return errorFrom(st, nil)
	}
	return nil
}

// MetricsDump returns the library's metrics in the Prometheus text format.
func MetricsDump() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var out *C.char
	var n C.size_t
	if st := int32(C.fw_metrics_dump(&out, &n)); st < 0 {
		return "", errorFrom(st, nil)
	}
	defer C.fw_string_free(out)
	if out == nil {
		return "", nil
	}
	return C.GoStringN(out, C.int(n)), nil
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

// Client is a thread-safe client: connection settings plus a connection pool. Safe for
// concurrent use; each stream runs on a connection of its own.
type Client struct{ *client }

type client struct {
	mu sync.RWMutex // write-locked to free c
	c  *C.fw_client
}

// NewClient connects once with conninfo (a libpq URI or key=value string; the PG*
// environment variables fill in the rest) to check the settings.
func NewClient(conninfo string) (*Client, error) {
	cs := C.CString(conninfo)
	defer C.free(unsafe.Pointer(cs))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c *C.fw_client
	if st := C.fw_client_new(cs, &c); st < 0 {
		return nil, errorFrom(st, nil)
	}
	atomic.AddInt64(&liveClients, 1)
	out := &Client{&client{c: c}}
	runtime.SetFinalizer(out, func(c *Client) { c.client.close() })
	return out, nil
}

// Close frees the client and closes its idle connections; open streams keep working.
func (c *Client) Close() error {
	c.client.close()
	runtime.SetFinalizer(c, nil)
	return nil
}

func (c *client) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		C.fw_client_free(c.c)
		c.c = nil
		atomic.AddInt64(&liveClients, -1)
	}
}

// Query starts building a query over a view or table ("v_user", "app.tv_order").
func (c *Client) Query(source string) *Query {
	return &Query{client: c, source: source}
}

// ---------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------

// Direction is a sort direction for OrderBy.
type Direction int

// addWhere applies one predicate to the C query (on the calling, locked OS thread: the
// library's last error is thread-local).
func addWhere(cq *C.fw_query, w whereTerm) error {
	ct := C.CString(w.text)
	defer C.free(unsafe.Pointer(ct))
	var st int32
	switch w.kind {
	case whereSQL:
		st = int32(C.fw_query_where_sql(cq, ct))
	case wherePath:
		var cv *C.char
		if w.value != nil {
			cv = C.CString(*w.value)
			defer C.free(unsafe.Pointer(cv))
		}
		st = int32(C.fw_query_where(cq, ct, C.int(w.op), cv))
	case whereParams:
		n := len(w.params)
		var arr **C.char
		if n > 0 {
			// C memory: the array holds C pointers, never Go pointers.
			arr = (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(uintptr(0)))))
			defer C.free(unsafe.Pointer(arr))
			elems := unsafe.Slice(arr, n)
			for i, p := range w.params {
				if p != nil {
					elems[i] = C.CString(*p)
					defer C.free(unsafe.Pointer(elems[i]))
				}
			}
		}
		st = int32(C.fw_query_where_params(cq, ct, C.size_t(n), arr))
	}
	if st < 0 {
		return errorFrom(st, nil)
	}
	return nil
}

// Sort directions.
const (
	Asc  Direction = C.FW_ASC
	Desc Direction = C.FW_DESC
)

type orderTerm struct {
	expr, collation string
	hasCollation    bool
	dir             Direction
	// OrderByPath: expr is the JSON pointer
	byPath bool
	kind   OrderKind
}

// Op is an operator of WherePath (the fw_op values of the C header).
type Op int

// Operators of WherePath; see docs/filtering.md for the SQL of each.
const (
	OpEq            Op = C.FW_OP_EQ
	OpNe            Op = C.FW_OP_NE
	OpLt            Op = C.FW_OP_LT
	OpLe            Op = C.FW_OP_LE
	OpGt            Op = C.FW_OP_GT
	OpGe            Op = C.FW_OP_GE
	OpIn            Op = C.FW_OP_IN
	OpNotIn         Op = C.FW_OP_NOT_IN
	OpLike          Op = C.FW_OP_LIKE
	OpILike         Op = C.FW_OP_ILIKE
	OpStartsWith    Op = C.FW_OP_STARTS_WITH
	OpEndsWith      Op = C.FW_OP_ENDS_WITH
	OpContainsText  Op = C.FW_OP_CONTAINS_TEXT
	OpIContainsText Op = C.FW_OP_ICONTAINS_TEXT
	OpExists        Op = C.FW_OP_EXISTS
	OpNotExists     Op = C.FW_OP_NOT_EXISTS
	OpJSONContains  Op = C.FW_OP_JSON_CONTAINS
	OpArrayOverlaps Op = C.FW_OP_ARRAY_OVERLAPS
	OpArrayLengthEq Op = C.FW_OP_ARRAY_LENGTH_EQ
	OpArrayLengthGt Op = C.FW_OP_ARRAY_LENGTH_GT
	OpArrayLengthLt Op = C.FW_OP_ARRAY_LENGTH_LT
	OpMatches       Op = C.FW_OP_MATCHES
)

var opNames = [...]string{"OpEq", "OpNe", "OpLt", "OpLe", "OpGt", "OpGe", "OpIn", "OpNotIn",
	"OpLike", "OpILike", "OpStartsWith", "OpEndsWith", "OpContainsText", "OpIContainsText",
	"OpExists", "OpNotExists", "OpJSONContains", "OpArrayOverlaps", "OpArrayLengthEq",
	"OpArrayLengthGt", "OpArrayLengthLt", "OpMatches"}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// OrderKind is how OrderByPath compares the values at a path.
type OrderKind int

// Order kinds of OrderByPath.
const (
	OrderText    OrderKind = C.FW_ORDER_TEXT    // as text, in the given collation or the column's
	OrderNumeric OrderKind = C.FW_ORDER_NUMERIC // as numbers ((data->>'k')::numeric)
)

type whereKind int

const (
	whereSQL whereKind = iota
	whereParams
	wherePath
)

type whereTerm struct {
	kind   whereKind
	text   string    // the SQL, or the JSON pointer
	params []*string // whereParams; nil = SQL NULL
	op     Op
	value  *string // wherePath: the JSON text, nil for no value
}

// Query builds one query; the setters return the query so calls chain. Nothing is sent
// before Stream, which can be called any number of times.
type Query struct {
	client     *Client
	source     string
	wheres     []whereTerm
	err        error // the first error of a setter, returned by Stream
	orders     []orderTerm
	limit      *uint64
	offset     *uint64
	chunkRows  int
	adaptive   *[2]int
	maxMemory  int
	warn, fail float64
	batchRows  int
	// nil = the library's default
	readAhead       *int
	readCoalesce    *time.Duration
	describeWait    *time.Duration
	describeForever bool
	parallel        int
	partitionBy     string
}

// Where adds a trusted SQL predicate (parenthesised, ANDed with the others).
func (q *Query) Where(sqlPredicate string) *Query {
	q.wheres = append(q.wheres, whereTerm{kind: whereSQL, text: sqlPredicate})
	return q
}

func (q *Query) setErr(format string, args ...any) *Query {
	if q.err == nil {
		q.err = &Error{Code: StatusInvalidArgument, Message: fmt.Sprintf(format, args...)}
	}
	return q
}

// WherePath adds a typed predicate evaluated by the server (fw_query_where): the value at
// the RFC 6901 JSON pointer compared by op with value, a Go value encoded with encoding/json
// (string, bool, integers, floats, json.Number or *big.Int for exact numbers, nil, slices,
// maps, structs) and sent as a bound parameter. OpExists and OpNotExists take no value;
// the others exactly one (nil is JSON null: OpEq nil is IS NULL). A value that cannot be
// encoded, an unknown op and the library's errors (a value of the wrong JSON type for the
// operator: StatusInvalidArgument) are returned by Stream.
func (q *Query) WherePath(jsonPointer string, op Op, value ...any) *Query {
	if op < OpEq || op > OpMatches {
		return q.setErr("WherePath: %v is not an operator", op)
	}
	t := whereTerm{kind: wherePath, text: jsonPointer, op: op}
	switch {
	case len(value) > 1:
		return q.setErr("WherePath: %v takes one value, got %d", op, len(value))
	case len(value) == 0 && op != OpExists && op != OpNotExists:
		return q.setErr("WherePath: %v needs a value", op)
	case len(value) == 1:
		js, err := toJSON(value[0])
		if err != nil {
			return q.setErr("WherePath: %v: %v cannot be sent as JSON: %v", op, value[0], err)
		}
		t.value = &js
	}
	q.wheres = append(q.wheres, t)
	return q
}

// WhereParams adds a SQL predicate whose $1..$n are bound to args (fw_query_where_params):
// each fragment numbers its own parameters. Args are sent as text: strings and []byte as
// they are, bool as true/false, numbers (also *big.Int, json.Number) in decimal,
// time.Time in RFC 3339, fmt.Stringer by String, slices and maps as JSON, nil as SQL NULL;
// the server infers each parameter's type from the SQL around it.
func (q *Query) WhereParams(sqlPredicate string, args ...any) *Query {
	t := whereTerm{kind: whereParams, text: sqlPredicate, params: make([]*string, len(args))}
	for i, a := range args {
		if a == nil {
			continue
		}
		s, err := paramText(a)
		if err != nil {
			return q.setErr("WhereParams: $%d: %v", i+1, err)
		}
		t.params[i] = &s
	}
	q.wheres = append(q.wheres, t)
	return q
}

func toJSON(v any) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func paramText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case json.Number:
		return x.String(), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	return toJSON(v)
}

// OrderBy adds an ORDER BY term (a trusted SQL expression).
func (q *Query) OrderBy(sqlExpr string, dir Direction) *Query {
	q.orders = append(q.orders, orderTerm{expr: sqlExpr, dir: dir})
	return q
}

// OrderByCollate adds an ORDER BY term with a collation.
func (q *Query) OrderByCollate(sqlExpr, collation string, dir Direction) *Query {
	q.orders = append(q.orders, orderTerm{expr: sqlExpr, collation: collation, hasCollation: true, dir: dir})
	return q
}

// OrderByPath adds an ORDER BY term on the value at a JSON pointer
// (fw_query_order_by_path): OrderText in collation ("" for the column's) or OrderNumeric
// (collation must be ""). Rows without a value there sort as NULL (last ascending).
func (q *Query) OrderByPath(jsonPointer string, kind OrderKind, collation string, dir Direction) *Query {
	q.orders = append(q.orders, orderTerm{expr: jsonPointer, collation: collation,
		hasCollation: collation != "", dir: dir, byPath: true, kind: kind})
	return q
}

// Limit sets LIMIT n.
func (q *Query) Limit(n uint64) *Query { q.limit = &n; return q }

// Offset sets OFFSET n.
func (q *Query) Offset(n uint64) *Query { q.offset = &n; return q }

// Parallel reads the result as `partitions` disjoint parts over as many connections at once,
// merged into one stream (fw_query_parallel; 1 is serial). A plain table is split by block
// ranges; any other source (a view) needs partitionBy, an integer SQL expression over its
// columns such as its key ("" for none). With OrderBy the parts are merged in order (text
// keys need the "C" collation). See the library's docs/parallel.md.
func (q *Query) Parallel(partitions int, partitionBy string) *Query {
	q.parallel, q.partitionBy = partitions, partitionBy
	return q
}

// ChunkSize sets the rows per chunk handed from the reader to the consumer.
func (q *Query) ChunkSize(rows int) *Query { q.chunkRows = rows; return q }

// AdaptiveChunking turns adaptive chunk sizing on with these bounds.
func (q *Query) AdaptiveChunking(minRows, maxRows int) *Query {
	q.adaptive = &[2]int{minRows, maxRows}
	return q
}

// MaxMemory bounds the stream's memory (see the library's README for the ratios).
func (q *Query) MaxMemory(bytes int, warnRatio, failRatio float64) *Query {
	q.maxMemory, q.warn, q.fail = bytes, warnRatio, failRatio
	return q
}

// ReadAhead sets how many bytes of chunks the reader queues ahead of a slower consumer
// before it stops reading the socket (fw_query_read_ahead; default 512 KiB, at least 1).
func (q *Query) ReadAhead(bytes int) *Query { q.readAhead = &bytes; return q }

// ReadCoalesce sets the longest wait before a socket read on a steady server-bound stream,
// so that one read takes several packets (fw_query_read_coalesce; default 1ms, 0 reads
// every packet at once, at most 100ms; precision 1µs).
func (q *Query) ReadCoalesce(d time.Duration) *Query { q.readCoalesce = &d; return q }

// DescribeWait sets how long Stream waits for the server's first answer before it returns
// the stream anyway (fw_query_describe_wait; default 20ms, at most one hour, rounded up to
// whole milliseconds; a negative duration makes Stream fail with StatusInvalidArgument). 0
// does not wait (what has already arrived is looked at once). A query slower than the wait
// is returned undescribed: its errors (a missing relation, a wrong result shape) then come
// from the stream's Err instead of from Stream.
func (q *Query) DescribeWait(d time.Duration) *Query {
	q.describeWait = &d
	q.describeForever = false
	return q
}

// DescribeWaitForever makes Stream wait for the server's first answer however long it takes
// (fw_query_describe_wait -1).
func (q *Query) DescribeWaitForever() *Query {
	q.describeWait = nil
	q.describeForever = true
	return q
}

// BatchRows sets how many rows the binding fetches per call into the library (default 256;
// fewer when the chunk being read has fewer).
func (q *Query) BatchRows(n int) *Query { q.batchRows = n; return q }

// Stream executes the query. Cancelling ctx cancels the running query; the stream's Err
// then wraps ctx.Err(). Connecting and the wait for the result's description are not
// interrupted by ctx.
func (q *Query) Stream(ctx context.Context) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.err != nil {
		return nil, q.err
	}
	c := q.client.client
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.c == nil {
		return nil, ErrClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	check := func(st int32) error {
		if st < 0 {
			return errorFrom(st, nil)
		}
		return nil
	}
	src := C.CString(q.source)
	defer C.free(unsafe.Pointer(src))
	var cq *C.fw_query
	if err := check(C.fw_query_new(c.c, src, &cq)); err != nil {
		return nil, err
	}
	defer C.fw_query_free(cq)
	for _, w := range q.wheres {
		if err := addWhere(cq, w); err != nil {
			return nil, err
		}
	}
	for _, o := range q.orders {
		ce := C.CString(o.expr)
		var cc *C.char
		if o.hasCollation {
			cc = C.CString(o.collation)
		}
		var st int32
		if o.byPath {
			st = int32(C.fw_query_order_by_path(cq, ce, C.int(o.kind), cc, C.int(o.dir)))
		} else {
			st = int32(C.fw_query_order_by(cq, ce, cc, C.int(o.dir)))
		}
		err := check(st)
		C.free(unsafe.Pointer(ce))
		C.free(unsafe.Pointer(cc))
		if err != nil {
			return nil, err
		}
	}
	if q.limit != nil {
		if err := check(C.fw_query_limit(cq, C.uint64_t(*q.limit))); err != nil {
			return nil, err
		}
	}
	if q.offset != nil {
		if err := check(C.fw_query_offset(cq, C.uint64_t(*q.offset))); err != nil {
			return nil, err
		}
	}
	if q.parallel != 0 {
		if q.parallel < 0 || q.parallel > math.MaxUint32 {
			return nil, &Error{Code: StatusInvalidArgument, Message: "Parallel: partitions out of range"}
		}
		if err := check(C.fw_query_parallel(cq, C.uint(q.parallel))); err != nil {
			return nil, err
		}
	}
	if q.partitionBy != "" {
		ce := C.CString(q.partitionBy)
		err := check(C.fw_query_partition_by(cq, ce))
		C.free(unsafe.Pointer(ce))
		if err != nil {
			return nil, err
		}
	}
	if q.chunkRows != 0 {
		if err := check(C.fw_query_chunk_size(cq, C.size_t(q.chunkRows))); err != nil {
			return nil, err
		}
	}
	if q.adaptive != nil {
		if err := check(C.fw_query_adaptive_chunking(cq, true, C.size_t(q.adaptive[0]), C.size_t(q.adaptive[1]))); err != nil {
			return nil, err
		}
	}
	if q.maxMemory != 0 {
		if err := check(C.fw_query_max_memory(cq, C.size_t(q.maxMemory), C.double(q.warn), C.double(q.fail))); err != nil {
			return nil, err
		}
	}
	if q.readAhead != nil {
		if *q.readAhead < 0 {
			return nil, &Error{Code: StatusInvalidArgument, Message: "ReadAhead: negative byte count"}
		}
		if err := check(C.fw_query_read_ahead(cq, C.size_t(*q.readAhead))); err != nil {
			return nil, err
		}
	}
	if q.readCoalesce != nil {
		us := int64((*q.readCoalesce + time.Microsecond/2) / time.Microsecond) // rounded
		if *q.readCoalesce < 0 || us > math.MaxUint32 {
			return nil, &Error{Code: StatusInvalidArgument, Message: "ReadCoalesce: out of range"}
		}
		if err := check(C.fw_query_read_coalesce(cq, C.uint32_t(us))); err != nil {
			return nil, err
		}
	}
	if q.describeWait != nil || q.describeForever {
		ms := int64(-1)
		if q.describeWait != nil {
			d := *q.describeWait
			if d < 0 || d > 2*time.Hour { // over the library's limit either way; no overflow
				return nil, &Error{Code: StatusInvalidArgument, Message: "DescribeWait: out of range"}
			}
			ms = int64((d + time.Millisecond - 1) / time.Millisecond) // rounded up
		}
		if err := check(C.fw_query_describe_wait(cq, C.int64_t(ms))); err != nil {
			return nil, err
		}
	}
	var cs *C.fw_stream
	if err := check(C.fw_query_execute(cq, &cs)); err != nil {
		return nil, err
	}
	runtime.KeepAlive(q.client)
	return newStream(ctx, cs, q.batchRows), nil
}

// ---------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------

// Stream is a running query's rows, read like database/sql's Rows:
//
//	for s.Next() { use(s.RawRow()) }
//	err := s.Err()
//
// Next, RawRow, Row, Text and Scan belong to one goroutine at a time; Pause, Resume, Cancel, State, Stats
// and Close may be called from any goroutine.
type Stream struct{ *stream }

type stream struct {
	mu  sync.RWMutex // read-locked around every C call on s; write-locked to free it
	s   *C.fw_stream
	cap int

	// The current block (library memory, valid until the next fetch): data and the n + 1
	// offsets of its rows; i is the index of the current row (set by Next).
	data []byte
	offs []C.size_t
	n, i int

	err    error
	done   bool
	closed int32 // set (atomically) by close before the stream is freed

	ctx       context.Context
	stop      chan struct{}
	closeOnce sync.Once
}

const pausePoll = 5 * time.Millisecond

// maxBlockBytes bounds one block (fw_stream_next_block's max_bytes).
const maxBlockBytes = 1 << 20

func newStream(ctx context.Context, cs *C.fw_stream, batch int) *Stream {
	if batch <= 0 {
		batch = 256
	}
	st := &stream{
		s:    cs,
		cap:  batch,
		ctx:  ctx,
		stop: make(chan struct{}),
	}
	atomic.AddInt64(&liveStreams, 1)
	if done := ctx.Done(); done != nil {
		// The watcher refers to the inner stream only, so that a Stream the program drops
		// can still be finalized (which stops the watcher).
		go func() {
			select {
			case <-done:
				st.mu.RLock()
				if st.s != nil {
					C.fw_stream_cancel(st.s) // FW_E_STATE on a finished stream: nothing to do
				}
				st.mu.RUnlock()
			case <-st.stop:
			}
		}()
	}
	out := &Stream{st}
	runtime.SetFinalizer(out, func(s *Stream) { s.stream.close() })
	return out
}

// Next advances to the next row, waiting for it; false at the end of the stream or on an
// error (see Err). While the stream is paused and its buffer drained, Next waits until it
// is resumed (by another goroutine, or by the pause timeout) or the context is done.
func (s *Stream) Next() bool {
	st := s.stream
	if st.i+1 < st.n && atomic.LoadInt32(&st.closed) == 0 {
		st.i++
		return true
	}
	st.data, st.offs, st.n, st.i = nil, nil, 0, 0
	for {
		if st.done || st.err != nil {
			return false
		}
		status := st.fetch()
		switch {
		case status == C.FW_OK:
			return true
		case status == C.FW_PAUSED:
			if st.ctx.Err() != nil {
				_ = s.Cancel() // the context's watcher may not have run yet
				continue
			}
			t := time.NewTimer(pausePoll)
			select {
			case <-t.C:
			case <-st.ctx.Done():
				t.Stop()
			}
		case status == C.FW_DONE:
			st.done = true
		}
	}
}

// fetch calls fw_stream_next_block; the block stays in library memory until the next fetch.
func (st *stream) fetch() int32 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.s == nil {
		st.err = ErrClosed
		return C.FW_E_STATE
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var b C.fw_block
	status := C.fw_stream_next_block(st.s, &b, C.size_t(st.cap), maxBlockBytes, -1)
	if status < 0 {
		e := errorFrom(status, C.fw_stream_error(st.s))
		if status == C.FW_E_CANCELLED && st.ctx.Err() != nil {
			e.cause = st.ctx.Err()
		}
		st.err = e
		return status
	}
	if status == C.FW_OK {
		st.n = int(b.n)
		st.data = unsafe.Slice((*byte)(unsafe.Pointer(b.data)), int(b.len))
		st.offs = unsafe.Slice((*C.size_t)(unsafe.Pointer(b.offsets)), st.n+1)
		st.i = 0
	}
	return status
}

// RawRow is the current row's JSON text in the library's memory, without a copy: valid
// until the next call to Next (or Close), like pgx's RawValues. Copy it (or use Row) to
// keep it. nil without a current row or once the stream is closed.
func (s *Stream) RawRow() []byte {
	st := s.stream
	if st.n == 0 || atomic.LoadInt32(&st.closed) != 0 {
		return nil
	}
	start, end := int(st.offs[st.i]), int(st.offs[st.i+1])-1
	return st.data[start:end:end]
}

// withRow runs f on the current row while the stream cannot be freed (Close may come from
// another goroutine); false without a current row or once closed.
func (st *stream) withRow(f func(raw []byte)) bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.s == nil || st.n == 0 {
		return false
	}
	start, end := int(st.offs[st.i]), int(st.offs[st.i+1])-1
	f(st.data[start:end:end])
	return true
}

// Row is a copy of the current row's JSON text in Go memory: the caller may keep it.
func (s *Stream) Row() []byte {
	var out []byte
	s.stream.withRow(func(raw []byte) {
		out = make([]byte, len(raw))
		copy(out, raw)
	})
	return out
}

// Text is the current row's JSON text as a string (a copy).
func (s *Stream) Text() string {
	var out string
	s.stream.withRow(func(raw []byte) { out = string(raw) })
	return out
}

// Scan parses the current row into dest with encoding/json (json.Unmarshal), straight from
// the library's memory.
func (s *Stream) Scan(dest any) error {
	var err error
	if !s.stream.withRow(func(raw []byte) { err = json.Unmarshal(raw, dest) }) {
		return errors.New("fraiseqlwire: Scan without a current row (call Next first; the stream may be closed)")
	}
	return err
}

// Err is the error that ended the stream (nil at a normal end). A stream cancelled
// through its context gives an *Error with Code StatusCancelled wrapping ctx.Err().
func (s *Stream) Err() error { return s.stream.err }

func (st *stream) control(f func(*C.fw_stream) int32) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.s == nil {
		return ErrClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if status := f(st.s); status < 0 {
		return errorFrom(status, nil)
	}
	return nil
}

// Pause stops reading the socket (the server blocks); buffered rows can still be read.
// Idempotent; an *Error with StatusState on a finished stream.
func (s *Stream) Pause() error {
	return s.control(func(p *C.fw_stream) int32 { return C.fw_stream_pause(p) })
}

// PauseWithReason is Pause with a reason for the library's debug log.
func (s *Stream) PauseWithReason(reason string) error {
	cr := C.CString(reason)
	defer C.free(unsafe.Pointer(cr))
	return s.control(func(p *C.fw_stream) int32 { return C.fw_stream_pause_with_reason(p, cr) })
}

// Resume resumes reading. Idempotent.
func (s *Stream) Resume() error {
	return s.control(func(p *C.fw_stream) int32 { return C.fw_stream_resume(p) })
}

// SetPauseTimeout makes a longer pause resume by itself (0: no limit).
func (s *Stream) SetPauseTimeout(d time.Duration) error {
	ms := uint64(d / time.Millisecond)
	if d > 0 && ms == 0 {
		ms = 1
	}
	return s.control(func(p *C.fw_stream) int32 { return C.fw_stream_set_pause_timeout(p, C.uint64_t(ms)) })
}

// Cancel cancels the query without blocking; Next then returns false and Err gives an
// *Error with StatusCancelled. An *Error with StatusState when the stream already ended.
func (s *Stream) Cancel() error {
	return s.control(func(p *C.fw_stream) int32 { return C.fw_stream_cancel(p) })
}

// State is the stream's state now (StateInvalid once closed).
func (s *Stream) State() State {
	st := s.stream
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.s == nil {
		return StateInvalid
	}
	return State(C.fw_stream_state_snapshot(st.s))
}

// Stats is a snapshot of a stream (fw_stats).
type Stats struct {
	State              State
	ItemsBuffered      uint64
	BytesBuffered      uint64
	EstimatedMemory    uint64
	TotalRowsReceived  uint64
	TotalRowsYielded   uint64
	TotalRowsFiltered  uint64
	TotalBytesReceived uint64
	CurrentChunkSize   uint64
	PauseCount         uint64
	PausedTotal        time.Duration
	TimeToFirstRow     time.Duration
	Elapsed            time.Duration
	MemoryLimit        uint64
	PeakMemory         uint64
	MemoryWarnings     uint64
	ChunksReceived     uint64
	PauseTimeouts      uint64
}

// Stats takes a snapshot; callable from any goroutine.
func (s *Stream) Stats() (Stats, error) {
	var cs C.fw_stats
	cs.struct_size = C.size_t(unsafe.Sizeof(cs))
	if err := s.control(func(p *C.fw_stream) int32 { return C.fw_stream_stats(p, &cs) }); err != nil {
		return Stats{}, err
	}
	return Stats{
		State:              State(cs.state),
		ItemsBuffered:      uint64(cs.items_buffered),
		BytesBuffered:      uint64(cs.bytes_buffered),
		EstimatedMemory:    uint64(cs.estimated_memory),
		TotalRowsReceived:  uint64(cs.total_rows_received),
		TotalRowsYielded:   uint64(cs.total_rows_yielded),
		TotalRowsFiltered:  uint64(cs.total_rows_filtered),
		TotalBytesReceived: uint64(cs.total_bytes_received),
		CurrentChunkSize:   uint64(cs.current_chunk_size),
		PauseCount:         uint64(cs.pause_count),
		PausedTotal:        time.Duration(cs.paused_ms_total) * time.Millisecond,
		TimeToFirstRow:     time.Duration(cs.time_to_first_row_us) * time.Microsecond,
		Elapsed:            time.Duration(cs.elapsed_us) * time.Microsecond,
		MemoryLimit:        uint64(cs.memory_limit),
		PeakMemory:         uint64(cs.peak_memory),
		MemoryWarnings:     uint64(cs.memory_warnings),
		ChunksReceived:     uint64(cs.chunks_received),
		PauseTimeouts:      uint64(cs.pause_timeouts),
	}, nil
}

// Close frees the stream (cancelling the query if it still runs). Safe to call from any
// goroutine, also while another one is blocked in Next (which then returns false), and
// more than once.
func (s *Stream) Close() error {
	s.stream.close()
	runtime.SetFinalizer(s, nil)
	return nil
}

func (st *stream) close() {
	st.closeOnce.Do(func() {
		close(st.stop)
		// Wake a consumer blocked in fw_stream_next_batch, then wait for it to leave.
		st.mu.RLock()
		if st.s != nil {
			C.fw_stream_cancel(st.s)
		}
		st.mu.RUnlock()
		st.mu.Lock()
		atomic.StoreInt32(&st.closed, 1)
		C.fw_stream_free(st.s)
		st.s = nil
		st.mu.Unlock()
		atomic.AddInt64(&liveStreams, -1)
	})
}

// String describes the stream for debugging.
func (s *Stream) String() string {
	return fmt.Sprintf("fraiseqlwire.Stream(%s)", s.State())
}
