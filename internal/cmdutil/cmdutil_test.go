package cmdutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func envOf(m map[string]string) *Env {
	return &Env{Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

// One rule: unset and empty both leave the default; a bad value is a usage error naming the
// variable.
func TestEnv(t *testing.T) {
	e := envOf(map[string]string{"S": "x", "EMPTY": "", "B": "TRUE", "I": "42", "D": "1m", "BADB": "yes", "BADD": "5"})
	if e.String("S", "d") != "x" || e.String("EMPTY", "d") != "d" || e.String("UNSET", "d") != "d" {
		t.Fatal("String")
	}
	if !e.Bool("B", false) || e.Bool("EMPTY", false) || !e.Bool("UNSET", true) {
		t.Fatal("Bool")
	}
	if e.Int("I", 1) != 42 || e.Int("EMPTY", 1) != 1 || e.Duration("D", 0) != time.Minute || e.Duration("EMPTY", time.Second) != time.Second {
		t.Fatal("Int/Duration")
	}
	if !e.Set("S") || e.Set("EMPTY") || e.Set("UNSET") {
		t.Fatal("Set")
	}
	if err := e.Err(); err != nil {
		t.Fatalf("good values: %v", err)
	}
	if e.Bool("BADB", true) != true || e.Duration("BADD", time.Second) != time.Second {
		t.Fatal("a bad value must leave the default")
	}
	err := e.Err()
	if Code(err) != ExitUsage || !strings.Contains(err.Error(), `BADB="yes"`) || !strings.Contains(err.Error(), `BADD="5"`) {
		t.Fatalf("bad values: %v (code %d)", err, Code(err))
	}
}

// choice is a pflag.Value of one of a few words, as a flag with modes would have.
type choice string

func (c *choice) String() string { return string(*c) }
func (c *choice) Type() string   { return "mode" }
func (c *choice) Set(s string) error {
	if s != "a" && s != "b" {
		return errors.New("want a or b")
	}
	*c = choice(s)
	return nil
}

func TestEnvValue(t *testing.T) {
	e := envOf(map[string]string{"GOOD": "b", "EMPTY": "", "BAD": "c"})
	good, empty, unset, bad := choice("a"), choice("a"), choice("a"), choice("a")
	e.Value("GOOD", &good)
	e.Value("EMPTY", &empty)
	e.Value("UNSET", &unset)
	if good != "b" || empty != "a" || unset != "a" || e.Err() != nil {
		t.Fatalf("good %q empty %q unset %q err %v", good, empty, unset, e.Err())
	}
	e.Value("BAD", &bad)
	err := e.Err()
	if bad != "a" || Code(err) != ExitUsage || !strings.Contains(err.Error(), `BAD="c": want a or b`) {
		t.Fatalf("bad value: %q %v (code %d)", bad, err, Code(err))
	}
}

func TestCodeAndReport(t *testing.T) {
	if Code(nil) != 0 || Code(pflag.ErrHelp) != 0 || Code(errors.New("x")) != 1 || Code(Usagef("bad --x")) != 2 {
		t.Fatal("codes")
	}
	var w bytes.Buffer
	if Report(&w, "prog", Usagef("unknown flag: --nope")) != 2 ||
		!strings.Contains(w.String(), "prog: unknown flag: --nope") || !strings.Contains(w.String(), "prog --help") {
		t.Fatalf("report %q", w.String())
	}
	w.Reset()
	if Report(&w, "prog", nil) != 0 || w.Len() != 0 {
		t.Fatalf("report of success %q", w.String())
	}
}

func TestLog(t *testing.T) {
	for in, want := range map[string]slog.Level{"trace": slog.LevelDebug, "DEBUG": slog.LevelDebug, "Info": slog.LevelInfo,
		"warning": slog.LevelWarn, "WARN": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Error("loud accepted")
	}
	if err := (&Log{Level: "info", Format: "xml"}).Validate(); Code(err) != ExitUsage || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("xml: %v", err)
	}
	if err := (&Log{Level: "loud", Format: "json"}).Validate(); Code(err) != ExitUsage || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("loud: %v", err)
	}
	var w bytes.Buffer
	l := &Log{Level: "warn", Format: "json"}
	logger, lv, err := l.Logger(&w, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hidden")
	logger.Warn("shown", "k", 1)
	lv.Set(slog.LevelInfo)
	logger.Info("now shown")
	lines := strings.Split(strings.TrimSpace(w.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec["msg"] != "shown" || rec["level"] != "WARN" || rec["k"] != 1.0 {
		t.Fatalf("json line %q: %v", lines[0], err)
	}
}

func TestSingleDashLongAndAliases(t *testing.T) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	core := fs.Int("core-port", 80, "")
	le := fs.Bool("leader-elect", false, "")
	Aliases(fs, map[string]string{"corePort": "core-port"})
	args := SingleDashLong(fs, []string{"-corePort=81", "-leader-elect", "-help", "-x", "--", "-core-port=1"})
	want := []string{"--corePort=81", "--leader-elect", "--help", "-x", "--", "-core-port=1"}
	if strings.Join(args, " ") != strings.Join(want, " ") {
		t.Fatalf("got %q", args)
	}
	if err := fs.Parse([]string{"--corePort", "81", "--leader-elect"}); err != nil || *core != 81 || !*le {
		t.Fatalf("parse: %v %d %v", err, *core, *le)
	}
	if strings.Contains(fs.FlagUsages(), "corePort") {
		t.Fatal("help shows the alias")
	}
}

func TestSetup(t *testing.T) {
	newRoot := func() *cobra.Command {
		root := &cobra.Command{Use: "prog", RunE: func(*cobra.Command, []string) error { return nil }}
		root.Flags().Int("n", 0, "")
		root.AddCommand(&cobra.Command{Use: "sub", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }})
		Setup(root, "Prog")
		return root
	}
	for _, args := range [][]string{{"--nope"}, {"--n=x"}, {"sub", "extra"}, {"sub", "--nope"}, {"unknown"}} {
		root := newRoot()
		root.SetArgs(args)
		err := root.Execute()
		if Code(err) != ExitUsage {
			t.Errorf("%v: %v (code %d)", args, err, Code(err))
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"-V"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "Prog Release:") {
			t.Errorf("%v: %v %q", args, err, out.String())
		}
	}
}
