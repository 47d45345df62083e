package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// File is one file of the image: the bytes at Source on this machine,
// at Path (absolute) in the image.
type File struct {
	Path   string
	Source string
	Mode   int64 // 0755 when zero
}

// Image says what the image holds and how it starts.
type Image struct {
	Name       string   // the reference, e.g. zflow.local/zflow:dev
	Files      []File   // at least one
	Dirs       []string // empty directories to make, e.g. /tmp (mode 1777)
	Entrypoint []string
	Env        []string
	WorkingDir string
	Arch       string // GOARCH spelling: amd64, arm64
	Labels     map[string]string
}

// The media types of the OCI image specification.
const (
	MediaIndex    = "application/vnd.oci.image.index.v1+json"
	MediaManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaConfig   = "application/vnd.oci.image.config.v1+json"
	MediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Descriptor points at a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Index is index.json.
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Manifest is an image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Config is the image configuration (the parts this package writes).
type Config struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// epoch is every entry's modification time: the same inputs, the same
// digest.
var epoch = time.Unix(0, 0).UTC()

// Write writes the image layout tar of img to out and returns the
// manifest's digest.
func Write(out io.Writer, img Image) (string, error) {
	if img.Name == "" || len(img.Files) == 0 {
		return "", errors.New("ociimage: an image needs a name and at least one file")
	}
	layer, diffID, err := buildLayer(img)
	if err != nil {
		return "", err
	}
	var cfg Config
	cfg.Architecture, cfg.OS = img.Arch, "linux"
	if cfg.Architecture == "" {
		cfg.Architecture = "amd64"
	}
	cfg.Config.Entrypoint, cfg.Config.Env, cfg.Config.WorkingDir, cfg.Config.Labels = img.Entrypoint, img.Env, img.WorkingDir, img.Labels
	cfg.RootFS.Type, cfg.RootFS.DiffIDs = "layers", []string{diffID}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	man := Manifest{SchemaVersion: 2, MediaType: MediaManifest,
		Config: describe(MediaConfig, cfgJSON), Layers: []Descriptor{describe(MediaLayer, layer)}}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	manDesc := describe(MediaManifest, manJSON)
	manDesc.Annotations = map[string]string{
		"org.opencontainers.image.ref.name": img.Name,
		"io.containerd.image.name":          img.Name,
	}
	idxJSON, err := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaIndex, Manifests: []Descriptor{manDesc}})
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(out)
	entries := []struct {
		name string
		b    []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(man.Config.Digest), cfgJSON},
		{blobPath(man.Layers[0].Digest), layer},
		{blobPath(manDesc.Digest), manJSON},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return "", fmt.Errorf("ociimage: %w", err)
		}
	}
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return "", fmt.Errorf("ociimage: %w", err)
		}
		if _, err := tw.Write(e.b); err != nil {
			return "", fmt.Errorf("ociimage: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("ociimage: %w", err)
	}
	return manDesc.Digest, nil
}

func describe(media string, b []byte) Descriptor {
	return Descriptor{MediaType: media, Digest: digest(b), Size: int64(len(b))}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func blobPath(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }

// buildLayer makes the gzip'd layer tar and the digest of its
// uncompressed bytes (the config's diff_id).
func buildLayer(img Image) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	// Every parent directory of every file, once, parents first.
	dirs := map[string]int64{}
	for _, f := range img.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return nil, "", fmt.Errorf("ociimage: %q is not a clean absolute file path", f.Path)
		}
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = 0o755
		}
	}
	for _, d := range img.Dirs {
		if !path.IsAbs(d) || path.Clean(d) != d || d == "/" {
			return nil, "", fmt.Errorf("ociimage: %q is not a clean absolute directory path", d)
		}
		dirs[d] = 0o1777
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	slices.Sort(names)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: dirs[d], ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, "", fmt.Errorf("ociimage: %w", err)
		}
	}
	for _, f := range img.Files {
		b, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, "", fmt.Errorf("ociimage: %w", err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: mode, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, "", fmt.Errorf("ociimage: %w", err)
		}
		if _, err := tw.Write(b); err != nil {
			return nil, "", fmt.Errorf("ociimage: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", fmt.Errorf("ociimage: %w", err)
	}
	diffID := digest(raw.Bytes())
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}
