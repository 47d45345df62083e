// Command mkimage writes a FROM-scratch container image as an OCI image
// layout tar (internal/ociimage), for `ctr images import`: `make image`
// runs it on a static zflow, the cluster tests on the pause program too.
//
//	mkimage -o out/zflow-image.tar -name zflow.local/zflow:dev \
//	    -file /zflow=bin/zflow-static -dir /tmp -entrypoint /zflow
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/zflowdev/zflow/internal/atomicfile"
	"github.com/zflowdev/zflow/internal/ociimage"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var files, dirs, env list
	out := flag.String("o", "", "the image tar to write")
	name := flag.String("name", "", "the image reference, e.g. zflow.local/zflow:dev")
	entry := flag.String("entrypoint", "", "the program the image starts (a path in the image)")
	flag.Var(&files, "file", "IMAGEPATH=LOCALPATH, a file of the image (repeatable)")
	flag.Var(&dirs, "dir", "an empty world-writable directory of the image, e.g. /tmp (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE in the image's environment (repeatable)")
	flag.Parse()
	if err := run(*out, *name, *entry, files, dirs, env); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out, name, entry string, files, dirs, env []string) error {
	if out == "" || name == "" || len(files) == 0 {
		return fmt.Errorf("need -o, -name and at least one -file")
	}
	img := ociimage.Image{Name: name, Dirs: dirs, Env: env, Arch: runtime.GOARCH}
	if entry != "" {
		img.Entrypoint = []string{entry}
	}
	for _, f := range files {
		p, src, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-file %q: want IMAGEPATH=LOCALPATH", f)
		}
		img.Files = append(img.Files, ociimage.File{Path: p, Source: src})
	}
	f, err := atomicfile.Create(out) // never a partial image under the final name
	if err != nil {
		return err
	}
	digest, err := ociimage.Write(f, img)
	if err != nil {
		f.Abort()
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	fmt.Printf("%s %s %s\n", out, name, digest)
	return nil
}
