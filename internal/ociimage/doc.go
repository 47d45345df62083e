// Package ociimage writes a container image as an OCI image layout in one
// tar file, the form `ctr images import` and `skopeo copy oci-archive:`
// read, without a container daemon or a registry.
//
// The image is one layer: the files given (a static binary, usually) and
// the directories they need, owned by root, with a fixed modification
// time, so the same inputs make the same bytes and the same digest. It
// follows the OCI image specification v1.1 (image-layout.md, manifest.md,
// config.md): an oci-layout file, an index.json naming the manifest with
// the org.opencontainers.image.ref.name annotation (and containerd's
// io.containerd.image.name, which `ctr images import` names the image by),
// and content-addressed blobs under blobs/sha256/.
package ociimage
