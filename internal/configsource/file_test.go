package configsource

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func parseUpper(path string, data []byte) (string, error) {
	s := strings.TrimSpace(string(data))
	if strings.HasPrefix(s, "bad") {
		return "", errors.New(path + ": bad content")
	}
	return strings.ToUpper(s), nil
}

type recorder[T any] struct {
	mu  sync.Mutex
	got []T
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.got...)
}

func waitLen[T any](t *testing.T, r *recorder[T], n int, what string) []T {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := r.all(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after 5s, want %d (%v)", what, len(r.all()), n, r.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// write replaces the file's contents and moves its modification time forward, so that a change
// within the file system's timestamp resolution is still seen.
func write(t *testing.T, path, content string) {
	t.Helper()
	st, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if st != nil {
		mt := st.ModTime().Add(time.Second)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileLoadRefusesEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	write(t, path, " \n\t\n")
	f := &File[string]{Path: path, Parse: parseUpper}
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "the file is empty") || !strings.Contains(err.Error(), path) {
		t.Fatalf("empty file: %v", err)
	}
	write(t, path, "one")
	if v, err := f.Load(); err != nil || v != "ONE" {
		t.Fatalf("Load = %q, %v", v, err)
	}
	if _, err := (&File[string]{Path: path + ".missing", Parse: parseUpper}).Load(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// A changed file is applied once; an empty or bad one is refused (OnError) and nothing is
// applied; SIGHUP reloads an unchanged file; an apply error is not retried until the file changes.
func TestFileRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	write(t, path, "one")
	hup := make(chan os.Signal, 1)
	var loadErrs recorder[error]
	f := &File[string]{Path: path, Parse: parseUpper, Reload: hup, Interval: 20 * time.Millisecond,
		Settle: 10 * time.Millisecond, Logger: quiet, OnError: loadErrs.add}
	if v, err := f.Load(); err != nil || v != "ONE" {
		t.Fatal(v, err)
	}
	var applied recorder[string]
	var refuse sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- f.Run(ctx, func(v string) error {
			if _, ok := refuse.Load(v); ok {
				return errors.New("refused by apply")
			}
			applied.add(v)
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	if got := applied.all(); len(got) != 0 {
		t.Fatalf("unchanged file applied: %v", got)
	}
	write(t, path, "two")
	if got := waitLen(t, &applied, 1, "changed file"); got[0] != "TWO" {
		t.Fatalf("applied %v", got)
	}
	// Truncated (a write caught half-way): refused, counted, nothing applied.
	write(t, path, "")
	errs := waitLen(t, &loadErrs, 1, "empty file refused")
	if !strings.Contains(errs[0].Error(), "the file is empty") {
		t.Fatalf("error %v", errs[0])
	}
	write(t, path, "bad stuff")
	waitLen(t, &loadErrs, 2, "bad file refused")
	if got := applied.all(); len(got) != 1 {
		t.Fatalf("refused files applied: %v", got)
	}
	write(t, path, "three")
	waitLen(t, &applied, 2, "good file after refusals")
	// Removed, then back with the same content: nothing applied while it is gone, and the file
	// that comes back is read again.
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := os.Rename(path+".moved", path); err != nil {
		t.Fatal(err)
	}
	if got := waitLen(t, &applied, 3, "file back"); got[2] != "THREE" {
		t.Fatalf("applied %v", got)
	}
	// SIGHUP reloads the same file.
	hup <- syscall.SIGHUP
	if got := waitLen(t, &applied, 4, "SIGHUP"); got[3] != "THREE" {
		t.Fatalf("applied %v", got)
	}
	// apply refuses: not retried while the file stays the same.
	refuse.Store("FOUR", true)
	write(t, path, "four")
	time.Sleep(200 * time.Millisecond)
	if got := applied.all(); len(got) != 4 {
		t.Fatalf("refused config applied: %v", got)
	}
	if n := len(loadErrs.all()); n != 2 {
		t.Fatalf("apply refusal counted as a load error (%d)", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

// A file that keeps changing is not read until it has stayed the same for Settle.
func TestFileWaitsForAWriteToSettle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.conf")
	write(t, path, "one")
	f := &File[string]{Path: path, Parse: parseUpper, Interval: 10 * time.Millisecond,
		Settle: 150 * time.Millisecond, Logger: quiet}
	if _, err := f.Load(); err != nil {
		t.Fatal(err)
	}
	var applied recorder[string]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx, func(v string) error { applied.add(v); return nil })
	// A slow writer appends every 40 ms: the file never stays the same for 150 ms.
	for i := range 10 {
		write(t, path, "part"+strings.Repeat("x", i))
		time.Sleep(40 * time.Millisecond)
	}
	if got := applied.all(); len(got) != 0 {
		t.Fatalf("a file still being written was applied: %v", got)
	}
	if got := waitLen(t, &applied, 1, "settled file"); got[0] != "PARTXXXXXXXXX" {
		t.Fatalf("applied %v", got)
	}
}
