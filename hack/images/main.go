// Command images writes container images of the project's static binaries without a Docker
// daemon or a registry: one docker-archive tarball per image (what `docker load` and
// `ctr -n k8s.io images import` read), and optionally an OCI image layout.
//
//	go run ./hack/images -out dist/images -repo ghcr.io/database-mesh -tag v0.1.0 \
//	    -version v0.1.0-3-gabc -commit abc1234 \
//	    pisa-proxy=bin/static/pisa-proxy pisa-controller=bin/static/pisa-controller ...
//
// Each image is FROM scratch with the layout of the Dockerfile's distroless runtime that the
// program needs: the binary at /usr/local/bin/program (the entrypoint), /etc/passwd and /etc/group
// naming UID/GID 65532 (nonroot) and 0, a writable /tmp, and USER 65532:65532. The version goes
// into the org.opencontainers.image.version label. Layers and configs are reproducible (fixed
// timestamps), so the same binaries give the same image ID.
//
// Special names: "pause=<binary>" builds the cluster's pause image (USER 65535, entrypoint
// /pause), a binary of the project's own (hack/images/pause).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is every file's and the config's timestamp: images are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Spec describes one image to build.
type Spec struct {
	Name    string // program name, e.g. pisa-proxy; the image is <Repo>/<Name>:<Tag>
	Binary  string // path of the static binary on this machine
	Repo    string
	Tag     string
	Version string // the program's version: label org.opencontainers.image.version
	Commit  string // label org.opencontainers.image.revision (optional)
}

// Ref is the image's reference, e.g. ghcr.io/database-mesh/pisa-proxy:v0.1.0.
func (s Spec) Ref() string { return s.Repo + "/" + s.Name + ":" + s.Tag }

func main() {
	out := flag.String("out", "dist/images", "directory for <name>.tar (docker archive)")
	repo := flag.String("repo", "ghcr.io/database-mesh", "image repository prefix")
	tag := flag.String("tag", "", "image tag (required)")
	version := flag.String("version", "", "program version for the label (default: the tag)")
	commit := flag.String("commit", "", "git commit for the revision label")
	ociDir := flag.String("oci", "", "also write every image into this OCI image layout directory")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] name=binary...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *tag == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *version == "" {
		*version = *tag
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	var lp layout.Path
	if *ociDir != "" {
		var err error
		if lp, err = layout.FromPath(*ociDir); err != nil {
			if lp, err = layout.Write(*ociDir, empty.Index); err != nil {
				fatal(err)
			}
		}
	}
	for _, arg := range flag.Args() {
		n, bin, ok := strings.Cut(arg, "=")
		if !ok || n == "" || bin == "" {
			fatal(fmt.Errorf("argument %q: want name=binary", arg))
		}
		s := Spec{Name: n, Binary: bin, Repo: *repo, Tag: *tag, Version: *version, Commit: *commit}
		img, err := Build(s)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", n, err))
		}
		file := filepath.Join(*out, n+".tar")
		if err := WriteTarball(img, s.Ref(), file); err != nil {
			fatal(fmt.Errorf("%s: %w", n, err))
		}
		id, _ := img.ConfigName()
		fmt.Printf("%s\t%s\t%s\n", s.Ref(), file, id)
		if *ociDir != "" {
			if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
				"org.opencontainers.image.ref.name": s.Ref(),
			})); err != nil {
				fatal(fmt.Errorf("%s: oci layout: %w", n, err))
			}
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "images:", err)
	os.Exit(1)
}

// Build makes the image of one program.
func Build(s Spec) (v1.Image, error) {
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	if !isStatic(bin) {
		return nil, fmt.Errorf("%s is not a static ELF binary (build it with CGO_ENABLED=0)", s.Binary)
	}
	user, entry := "65532:65532", "/usr/local/bin/program"
	if s.Name == "pause" {
		user, entry = "65535:65535", "/pause"
	}
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: 65532},
		{name: "tmp/", mode: 0o1777, dir: true},
	}
	if s.Name == "pause" {
		files = append(files, file{name: "pause", mode: 0o755, data: bin})
	} else {
		files = append(files,
			file{name: "usr/", mode: 0o755, dir: true},
			file{name: "usr/local/", mode: 0o755, dir: true},
			file{name: "usr/local/bin/", mode: 0o755, dir: true},
			file{name: "usr/local/bin/program", mode: 0o755, data: bin})
	}
	layerTar, err := tarOf(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	if a := goarch(bin); a != "" {
		cf.Architecture = a
	}
	cf.Created = v1.Time{Time: epoch}
	labels := map[string]string{
		"org.opencontainers.image.source":  "https://github.com/database-mesh/pisanix-go",
		"org.opencontainers.image.title":   s.Name,
		"org.opencontainers.image.version": s.Version,
	}
	if s.Commit != "" {
		labels["org.opencontainers.image.revision"] = s.Commit
	}
	cf.Config = v1.Config{
		Entrypoint: []string{entry},
		User:       user,
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels:     labels,
	}
	cf.History = []v1.History{{Created: v1.Time{Time: epoch}, CreatedBy: "hack/images: " + s.Name, Comment: s.Version}}
	return mutate.ConfigFile(img, cf)
}

// WriteTarball writes img as a docker archive whose manifest.json tags it ref.
func WriteTarball(img v1.Image, ref, file string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, file)
}

type file struct {
	name string
	mode int64
	dir  bool
	uid  int
	data []byte
}

func tarOf(files []file) ([]byte, error) {
	sort.SliceStable(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Uid: f.uid, Gid: f.uid, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isStatic reports whether b is an ELF executable without a program interpreter (PT_INTERP):
// nothing in the image could load a dynamic one.
func isStatic(b []byte) bool {
	if len(b) < 64 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 { // 64-bit little-endian
		return false
	}
	le := func(o, n int) uint64 {
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[o+i])
		}
		return v
	}
	phoff, phentsize, phnum := le(32, 8), le(54, 2), le(56, 2)
	for i := uint64(0); i < phnum; i++ {
		o := phoff + i*phentsize
		if o+4 > uint64(len(b)) {
			return false
		}
		if le(int(o), 4) == 3 { // PT_INTERP
			return false
		}
	}
	return true
}

// goarch maps the ELF machine to the image architecture.
func goarch(b []byte) string {
	switch uint16(b[18]) | uint16(b[19])<<8 {
	case 62:
		return "amd64"
	case 183:
		return "arm64"
	}
	return ""
}
