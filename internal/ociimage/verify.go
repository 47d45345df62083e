package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Contents is what Verify found in an image layout tar.
type Contents struct {
	Name     string // the index's ref.name annotation
	Manifest Manifest
	Config   Config
	Files    map[string]int64 // layer entries (regular files) and their sizes, by absolute path
}

// maxBlob bounds one blob read from an archive (an image of zflow is tens
// of MiB).
const maxBlob = 1 << 30

// Verify reads an image layout tar and checks it the way a runtime does
// before it unpacks it: every blob's bytes match its digest and size, the
// index names one manifest, the manifest's config and layer are there, and
// the layer's uncompressed digest is the config's diff_id.
func Verify(r io.Reader) (*Contents, error) {
	blobs := map[string][]byte{}
	var index []byte
	layout := false
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("ociimage: reading the archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxBlob {
			return nil, fmt.Errorf("ociimage: %s: %d bytes, over %d", h.Name, h.Size, maxBlob)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("ociimage: reading %s: %w", h.Name, err)
		}
		switch {
		case h.Name == "oci-layout":
			layout = true
		case h.Name == "index.json":
			index = b
		case strings.HasPrefix(h.Name, "blobs/sha256/"):
			d := "sha256:" + strings.TrimPrefix(h.Name, "blobs/sha256/")
			if got := digest(b); got != d {
				return nil, fmt.Errorf("ociimage: blob %s has digest %s", h.Name, got)
			}
			blobs[d] = b
		}
	}
	if !layout || index == nil {
		return nil, errors.New("ociimage: not an OCI image layout (no oci-layout or index.json)")
	}
	var idx Index
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, fmt.Errorf("ociimage: index.json: %w", err)
	}
	if len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("ociimage: index.json names %d manifests, want 1", len(idx.Manifests))
	}
	c := &Contents{Name: idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"], Files: map[string]int64{}}
	manJSON, err := blob(blobs, idx.Manifests[0])
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(manJSON, &c.Manifest); err != nil {
		return nil, fmt.Errorf("ociimage: manifest: %w", err)
	}
	cfgJSON, err := blob(blobs, c.Manifest.Config)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cfgJSON, &c.Config); err != nil {
		return nil, fmt.Errorf("ociimage: config: %w", err)
	}
	if len(c.Manifest.Layers) != len(c.Config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("ociimage: %d layers, %d diff_ids", len(c.Manifest.Layers), len(c.Config.RootFS.DiffIDs))
	}
	for i, l := range c.Manifest.Layers {
		gz, err := blob(blobs, l)
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("ociimage: layer %d: %w", i, err)
		}
		raw, err := io.ReadAll(io.LimitReader(zr, maxBlob+1))
		if err != nil {
			return nil, fmt.Errorf("ociimage: layer %d: %w", i, err)
		}
		if got := digest(raw); got != c.Config.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("ociimage: layer %d uncompressed is %s, the config says %s", i, got, c.Config.RootFS.DiffIDs[i])
		}
		lr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("ociimage: layer %d: %w", i, err)
			}
			if h.Typeflag == tar.TypeReg {
				c.Files["/"+h.Name] = h.Size
			}
		}
	}
	return c, nil
}

func blob(blobs map[string][]byte, d Descriptor) ([]byte, error) {
	b, ok := blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("ociimage: blob %s (%s) missing", d.Digest, d.MediaType)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("ociimage: blob %s is %d bytes, its descriptor says %d", d.Digest, len(b), d.Size)
	}
	return b, nil
}
