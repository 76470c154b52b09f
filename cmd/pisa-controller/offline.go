package main

// Offline commands: what the mesh will do, without a cluster.
//
//	pisa-controller inject -f pod.yaml            the pod as the webhook would admit it
//	pisa-controller build-config -f crds.yaml     the proxy configuration of a VirtualDatabase

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/database-mesh/pisanix-go/internal/cmdutil"
	"github.com/database-mesh/pisanix-go/internal/controller/builder"
	"github.com/database-mesh/pisanix-go/internal/inject"
)

// offlineCommands are the subcommands; anything else runs the controller.
var offlineCommands = map[string]func(args []string, stdin io.Reader, stdout, stderr io.Writer) error{
	"inject":       runInject,
	"build-config": runBuildConfig,
}

// fileList is a repeatable -f flag.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

// readInputs returns the contents of files ("-" is stdin), in order.
func readInputs(files []string, stdin io.Reader) ([][]byte, error) {
	if len(files) == 0 {
		return nil, errors.New("-f: no input (a file, or - for stdin)")
	}
	var out [][]byte
	for _, f := range files {
		var (
			b   []byte
			err error
		)
		if f == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// usageError makes a flag parsing error a usage error (exit 2); a help request stays one.
func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &cmdutil.UsageError{Err: err}
}

func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pisa-controller "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: pisa-controller %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func writeOutput(stdout io.Writer, v any, format string) error {
	var (
		b   []byte
		err error
	)
	if format == "json" {
		if b, err = json.MarshalIndent(v, "", "  "); err == nil {
			b = append(b, '\n')
		}
	} else {
		b, err = yaml.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// runInject prints the pod of -f as the webhook would admit it: with the pisa-proxy sidecar,
// configured from the same environment variables as the controller (PISA_PROXY_IMAGE,
// PISA_CONTROLLER_SERVICE, ...). An already injected pod is printed unchanged (a note on
// stderr); a pod the webhook would refuse is an error.
func runInject(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("inject", "inject -f pod.yaml [-native-sidecar] [-o yaml|json]", stderr)
	var files fileList
	fs.Var(&files, "f", "the Pod (YAML or JSON); - reads stdin")
	native := fs.Bool("native-sidecar", false, "inject a native sidecar (init container with restartPolicy Always), as -native-sidecar does for the webhook")
	format := fs.String("o", "yaml", "output format: yaml or json")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return cmdutil.Usagef("inject: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *format != "yaml" && *format != "json" {
		return cmdutil.Usagef("inject: -o: want yaml or json, got %q", *format)
	}
	if len(files) != 1 {
		return cmdutil.Usagef("inject: -f: one Pod file (or - for stdin)")
	}
	inputs, err := readInputs(files, stdin)
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	var pods [][]byte
	err = builder.YAMLDocs(inputs[0], func(doc []byte, kind, name, _ string) error {
		if kind != "Pod" {
			return fmt.Errorf("%s %s: want a Pod", kind, name)
		}
		pods = append(pods, doc)
		return nil
	})
	if err != nil {
		return fmt.Errorf("inject: %s: %w", files[0], err)
	}
	if len(pods) != 1 {
		return fmt.Errorf("inject: %s: want one Pod, found %d", files[0], len(pods))
	}
	raw, err := yaml.YAMLToJSON(pods[0])
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(pods[0], &pod); err != nil {
		return fmt.Errorf("inject: %s: %w", files[0], err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := injectOptions(&options{nativeSidecar: *native}, log, nil)
	patch, changed, err := inject.Inject(&pod, opts)
	if err != nil {
		return fmt.Errorf("inject: the webhook would refuse this pod: %w", err)
	}
	out := raw
	if changed {
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return fmt.Errorf("inject: %w", err)
		}
		if out, err = p.Apply(raw); err != nil {
			return fmt.Errorf("inject: apply the patch: %w", err)
		}
	} else {
		fmt.Fprintln(stderr, "pisa-controller inject: the pod already has the pisa-proxy sidecar; unchanged")
	}
	var obj map[string]any
	if err := json.Unmarshal(out, &obj); err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	return writeOutput(stdout, obj, *format)
}

// loadObjects decodes the custom resources (and Secrets) of the input files,
// grouped by namespace (default: defaultNS).
func loadObjects(inputs [][]byte, names []string, defaultNS string) (builder.AllNamespaces, error) {
	all := builder.AllNamespaces{}
	for i, data := range inputs {
		if err := builder.DecodeObjects(all, data, defaultNS); err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
	}
	return all, nil
}

// runBuildConfig prints the proxy configuration (JSON, as the config server serves it to the
// sidecars) that the controller builds for a VirtualDatabase from the custom resources in the
// -f files. Problems (what the controller would report in the objects' status) go to stderr
// and make the exit status 1; the configuration is printed all the same.
func runBuildConfig(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("build-config",
		"build-config -f objects.yaml [-f more.yaml] [-n namespace] [-name virtualdatabase] [-daemon]", stderr)
	var files fileList
	fs.Var(&files, "f", "custom resources (and Secrets) as YAML or JSON, several documents per file; repeatable; - reads stdin")
	ns := fs.String("n", "", "namespace of the VirtualDatabase (objects without one are in \"default\"); default: the only namespace with a VirtualDatabase")
	name := fs.String("name", "", "the VirtualDatabase (the application's name); default: the only one of the namespace")
	daemonCfg := fs.Bool("daemon", false, "print pisa-daemon's configuration (QoS) for every namespace instead")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return cmdutil.Usagef("build-config: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	inputs, err := readInputs(files, stdin)
	if err != nil {
		return fmt.Errorf("build-config: %w", err)
	}
	all, err := loadObjects(inputs, files, "default")
	if err != nil {
		return fmt.Errorf("build-config: %w", err)
	}
	var (
		cfg      any
		problems []builder.Problem
	)
	if *daemonCfg {
		cfg, problems = builder.BuildDaemonConfig(all)
	} else {
		vns, vname, err := pickVirtualDatabase(all, *ns, *name)
		if err != nil {
			return fmt.Errorf("build-config: %w", err)
		}
		pc, ps, err := builder.BuildProxyConfig(vns, vname, all[vns])
		if err != nil {
			return fmt.Errorf("build-config: %w", err)
		}
		cfg, problems = pc, ps
	}
	if err := writeOutput(stdout, cfg, "json"); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, "problem:", p.String())
	}
	if len(problems) > 0 {
		return fmt.Errorf("build-config: %d problem(s): the objects concerned would get a failing status condition", len(problems))
	}
	return nil
}

// pickVirtualDatabase resolves the namespace and name to build, defaulting to the only choice.
func pickVirtualDatabase(all builder.AllNamespaces, ns, name string) (string, string, error) {
	var candidates []string // namespace/name
	for n, o := range all {
		if ns != "" && n != ns {
			continue
		}
		for _, v := range o.VirtualDatabases {
			if name == "" || v.Name == name {
				candidates = append(candidates, n+"/"+v.Name)
			}
		}
	}
	slices.Sort(candidates)
	switch len(candidates) {
	case 0:
		return "", "", fmt.Errorf("no VirtualDatabase%s%s in the input", cond(name != "", " "+name), cond(ns != "", " in namespace "+ns))
	case 1:
		n, v, _ := strings.Cut(candidates[0], "/")
		return n, v, nil
	default:
		return "", "", fmt.Errorf("several VirtualDatabases (%s): choose one with -n and -name", strings.Join(candidates, ", "))
	}
}

func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}
