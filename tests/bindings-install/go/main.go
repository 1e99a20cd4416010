// Stream v_user through the Go module (built from outside the repository with a replace).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	fraiseqlwire "github.com/fraiseql/fraiseql-wire/bindings/go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go:", err)
		os.Exit(1)
	}
}

func run() error {
	client, err := fraiseqlwire.NewClient("")
	if err != nil {
		return err
	}
	defer client.Close()
	s, err := client.Query("v_user").Stream(context.Background())
	if err != nil {
		return err
	}
	defer s.Close()
	var ns []int
	for s.Next() {
		var d struct {
			N int `json:"n"`
		}
		if err := s.Scan(&d); err != nil {
			return err
		}
		ns = append(ns, d.N)
	}
	if err := s.Err(); err != nil {
		return err
	}
	sort.Ints(ns)
	if len(ns) != 1000 || ns[0] != 1 || ns[999] != 1000 {
		return fmt.Errorf("rows: %d", len(ns))
	}
	_, err = client.Query("v_missing").Stream(context.Background())
	var fe *fraiseqlwire.Error
	if !errors.As(err, &fe) || fe.Code != fraiseqlwire.StatusServer || fe.SQLState != "42P01" {
		return fmt.Errorf("missing view: %v", err)
	}
	lib, err := mappedLibrary()
	if err != nil {
		return err
	}
	if want := os.Args[1]; !strings.HasPrefix(lib, want) {
		return fmt.Errorf("library from %s, expected under %s", lib, want)
	}
	fmt.Printf("go: %d rows, library %s (%s)\n", len(ns), lib, fraiseqlwire.Version())
	return nil
}

// mappedLibrary is the file the loader mapped for libfraiseql_wire (from /proc/self/maps).
func mappedLibrary() (string, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if i := strings.Index(line, "/"); i >= 0 && strings.Contains(line[i:], "libfraiseql_wire") {
			return filepath.EvalSymlinks(line[i:])
		}
	}
	return "", errors.New("libfraiseql_wire is not mapped")
}
