// Package configsource delivers configurations to pisa-proxy and pisa-daemon: File, a file
// reloaded on SIGHUP or when it changes, and HTTP, a long poll of pisa-controller's config API.
// Both hand each new configuration to an apply function and never replace a running
// configuration because of an error: a file that does not load, a fetch that fails or a
// configuration that apply refuses is logged (and counted through OnError) and the running one
// keeps serving.
package configsource

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/database-mesh/pisanix-go/internal/backoff"
)

// File is a configuration file. Load reads it at start; Run then reloads it when Reload fires
// (SIGHUP) or when its size or modification time changes (checked every Interval). A changed
// file is read only once it has stayed the same for Settle, and is read again if it changed
// while being read, so that a file still being written is not taken half-way. An empty file
// (only white space) is refused: it is almost always a write caught half-way (`: > file`, an
// editor truncating before writing), and applying it would lift every setting.
type File[T any] struct {
	Path string
	// Parse decodes the file's contents; its errors name the path.
	Parse func(path string, data []byte) (T, error)
	// Reload forces a reload (SIGHUP); nil: only changes are watched.
	Reload <-chan os.Signal
	// Interval between modification checks; default 1 s.
	Interval time.Duration
	// Settle is how long a changed file must stay unchanged before it is read; default 200 ms.
	Settle time.Duration
	Logger *slog.Logger
	// OnError is called for each reload whose file does not load (metrics); apply counts its
	// own refusals.
	OnError func(error)

	stamp string // of the version last loaded
}

func (f *File[T]) fileStamp() string {
	st, err := os.Stat(f.Path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", st.ModTime().UnixNano(), st.Size())
}

// Load reads and parses the file now.
func (f *File[T]) Load() (T, error) {
	f.stamp = f.fileStamp()
	return f.read()
}

func (f *File[T]) read() (T, error) {
	var zero T
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return zero, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return zero, fmt.Errorf("%s: the file is empty (a write caught half-way?); not applied", f.Path)
	}
	return f.Parse(f.Path, data)
}

// Run watches the file until ctx ends and returns ctx's error. apply gets each configuration
// read after Load; its error is logged with the trigger ("SIGHUP" or "file changed").
func (f *File[T]) Run(ctx context.Context, apply func(T) error) error {
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	settle := f.Settle
	if settle <= 0 {
		settle = 200 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		trigger := "file changed"
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-f.Reload:
			trigger = "SIGHUP"
		}
		cur := f.fileStamp()
		if trigger != "SIGHUP" && cur == f.stamp {
			continue
		}
		if trigger != "SIGHUP" && cur == "" {
			// Removed (or being replaced): said once; read again when it is back.
			f.stamp = ""
			log.Warn("config file is missing; the running config keeps serving", "config", f.Path)
			continue
		}
		if !backoff.Sleep(ctx, settle) {
			return ctx.Err()
		}
		if f.fileStamp() != cur {
			continue // still being written: the next tick looks again
		}
		v, err := f.read()
		if err == nil && f.fileStamp() != cur {
			continue // changed while read
		}
		f.stamp = cur
		if err != nil {
			if f.OnError != nil {
				f.OnError(err)
			}
		} else {
			err = apply(v)
		}
		if err != nil {
			log.Error("config reload rejected; the running config keeps serving", "config", f.Path,
				"trigger", trigger, "error", err)
			continue
		}
		log.Info("config reloaded", "config", f.Path, "trigger", trigger)
	}
}
