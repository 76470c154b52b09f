package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImageTarball builds the pause program statically, makes its image tarball the way
// `make images` does, and reads the archive back as `ctr images import` would: manifest.json
// names the tag, the config's rootfs.diff_ids are the sha256 of the layer tars, the config has
// the entrypoint, user and version label, and the layer holds the binary byte for byte.
func TestImageTarball(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("images are linux/amd64")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "program")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}

	s := Spec{Name: "pisa-proxy", Binary: bin, Repo: "ghcr.io/database-mesh", Tag: "v0.1.0", Version: "v0.1.0-7-gabcdef0", Commit: "abcdef0"}
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "pisa-proxy.tar")
	if err := WriteTarball(img, s.Ref(), file); err != nil {
		t.Fatal(err)
	}
	// Reproducible: the same binary gives the same image ID.
	img2, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := img.ConfigName()
	id2, _ := img2.ConfigName()
	if id1 != id2 {
		t.Errorf("image ID differs between two builds: %s vs %s", id1, id2)
	}

	entries := readTar(t, file)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].RepoTags) != 1 || manifest[0].RepoTags[0] != "ghcr.io/database-mesh/pisa-proxy:v0.1.0" {
		t.Fatalf("manifest.json: %+v", manifest)
	}
	if len(manifest[0].Layers) != 1 {
		t.Fatalf("want 1 layer, got %v", manifest[0].Layers)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct {
			Entrypoint []string
			User       string
			Labels     map[string]string
		}
		RootFS struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	rawCfg := entries[manifest[0].Config]
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	if sum := sha256.Sum256(rawCfg); "sha256:"+hex.EncodeToString(sum[:]) != id1.String() {
		t.Errorf("config digest %x is not the image ID %s", sum, id1)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/usr/local/bin/program" || cfg.Config.User != "65532:65532" {
		t.Errorf("entrypoint %v user %q", cfg.Config.Entrypoint, cfg.Config.User)
	}
	if l := cfg.Config.Labels; l["org.opencontainers.image.version"] != "v0.1.0-7-gabcdef0" ||
		l["org.opencontainers.image.title"] != "pisa-proxy" || l["org.opencontainers.image.revision"] != "abcdef0" {
		t.Errorf("labels %v", l)
	}
	layer := entries[manifest[0].Layers[0]]
	if layer == nil {
		t.Fatalf("layer %s missing from the archive", manifest[0].Layers[0])
	}
	// Docker archives hold layers compressed or not; diff_ids are over the uncompressed tar.
	ul, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer)), nil })
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ul.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("rootfs %+v, layer tar sha256:%x", cfg.RootFS, sum)
	}
	files := readTarBytes(t, raw)
	if !bytes.Equal(files["usr/local/bin/program"], want) {
		t.Errorf("usr/local/bin/program in the layer is not the binary (%d vs %d bytes)", len(files["usr/local/bin/program"]), len(want))
	}
	if !bytes.Contains(files["etc/passwd"], []byte(":65532:65532:")) {
		t.Errorf("etc/passwd: %q", files["etc/passwd"])
	}

	// go-containerregistry reads it back by tag.
	tag, _ := name.NewTag(s.Ref())
	back, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := back.ConfigName(); id != id1 {
		t.Errorf("read back %s, wrote %s", id, id1)
	}

	// A dynamic binary is refused: nothing in the image could load it.
	if sh, err := exec.LookPath("sh"); err == nil {
		if real, err := filepath.EvalSymlinks(sh); err == nil {
			if _, err := Build(Spec{Name: "x", Binary: real, Repo: "r", Tag: "t"}); err == nil {
				t.Errorf("Build accepted the dynamic binary %s", real)
			}
		}
	}
}

func readTar(t *testing.T, file string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return readTarBytes(t, b)
}

func readTarBytes(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = data
	}
}
