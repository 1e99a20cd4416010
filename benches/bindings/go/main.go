// Go contenders of benches/bindings/run: stream SOURCE once, touch every row (its length),
// print one RESULT line. Wall and CPU (getrusage: every thread) from just before the query
// is sent (after connecting) to the last row.
//
//	gobench MODE CONNINFO SOURCE
//
//	fw      fraiseqlwire: RawRow (no copy, valid until Next)
//	fw-row  fraiseqlwire: Row (a copy per row)
//	pgx     pgx v4: conn.Query + rows.RawValues (no copy, valid until Next)
package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	fraiseqlwire "github.com/fraiseql/fraiseql-wire/bindings/go"
	"github.com/jackc/pgx/v4"
)

func cpuUs() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Sec*1e6 + ru.Utime.Usec + ru.Stime.Sec*1e6 + ru.Stime.Usec
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gobench MODE CONNINFO SOURCE")
		os.Exit(2)
	}
	mode, conninfo, source := os.Args[1], os.Args[2], os.Args[3]
	ctx := context.Background()
	var rows, chars int
	var t0 time.Time
	var c0 int64
	start := func() { t0, c0 = time.Now(), cpuUs() }
	switch mode {
	case "fw", "fw-row":
		client, err := fraiseqlwire.NewClient(conninfo)
		check(err)
		start()
		s, err := client.Query(source).Stream(ctx)
		check(err)
		if mode == "fw" {
			for s.Next() {
				rows++
				chars += len(s.RawRow())
			}
		} else {
			for s.Next() {
				rows++
				chars += len(s.Row())
			}
		}
		check(s.Err())
		s.Close()
		client.Close()
	case "pgx":
		conn, err := pgx.Connect(ctx, conninfo)
		check(err)
		start()
		r, err := conn.Query(ctx, "SELECT data FROM "+source)
		check(err)
		for r.Next() {
			rows++
			chars += len(r.RawValues()[0])
		}
		check(r.Err())
		check(conn.Close(ctx))
	default:
		check(fmt.Errorf("unknown mode %s", mode))
	}
	wall := time.Since(t0)
	fmt.Printf("RESULT rows=%d chars=%d wall_us=%d cpu_us=%d\n", rows, chars, wall.Microseconds(), cpuUs()-c0)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}
