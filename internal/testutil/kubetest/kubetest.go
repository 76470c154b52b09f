// Package kubetest starts a real kube-apiserver and etcd (controller-runtime envtest) for tests.
package kubetest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// ErrNoAPIServer is returned by StartAPIServer when KUBEBUILDER_ASSETS is unset outside CI: the
// caller's tests should skip with its message.
var ErrNoAPIServer = errors.New("KUBEBUILDER_ASSETS is not set: these tests need kube-apiserver and etcd " +
	"(run `make test`, or KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./...)")

// APIServer is a real kube-apiserver and etcd (controller-runtime envtest) with the project's
// CRDs installed.
type APIServer struct {
	Env    *envtest.Environment
	Config *rest.Config
}

// StartAPIServer starts kube-apiserver and etcd from $KUBEBUILDER_ASSETS with config/crd/bases
// installed. For use in TestMain: it returns ErrNoAPIServer when the assets are not set and CI
// is not (tests then skip), and an error in CI.
func StartAPIServer() (*APIServer, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			return nil, fmt.Errorf("CI: %w", ErrNoAPIServer)
		}
		return nil, ErrNoAPIServer
	}
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr,
		&slog.HandlerOptions{Level: slog.LevelWarn})))
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = 90 * time.Second // a loaded 2-core machine is slow
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("envtest start: %w", err)
	}
	return &APIServer{Env: env, Config: cfg}, nil
}

// Stop stops the API server and etcd.
func (a *APIServer) Stop() error { return a.Env.Stop() }

// Kubeconfig writes a kubeconfig for an admin user of the API server into dir and returns its
// path (for programs started by the tests).
func (a *APIServer) Kubeconfig(dir string) (string, error) {
	user, err := a.Env.AddUser(envtest.User{Name: "pisanix-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("envtest user: %w", err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	p := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// NeedAPIServer skips (or, in CI, fails) t when the package's TestMain could not start an API
// server because the assets are missing.
func NeedAPIServer(t testing.TB, err error) {
	t.Helper()
	os.Getenv("KUBEBUILDER_ASSETS") // recorded by go test's cache
	if err == nil {
		return
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" || !errors.Is(err, ErrNoAPIServer) {
		t.Fatal(err)
	}
	t.Skip(err.Error())
}
