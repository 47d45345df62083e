package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zflowdev/zflow/io/storage"

	_ "github.com/zflowdev/zflow/io/posix" // registers the posix backend
)

// Select turns a file operator's io: parameter into a backend that says
// what it is and why; its files take batches of positional reads.
func ExampleSelect() {
	dir, _ := os.MkdirTemp("", "storage-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data.bin")
	os.WriteFile(path, []byte("hello, batched world"), 0o644)

	b, err := storage.Select("posix", path, storage.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Name(), "-", b.Reason())
	f, err := b.Open(path, os.O_RDONLY, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	reqs := []storage.Request{
		{Buf: make([]byte, 5), Off: 0},
		{Buf: make([]byte, 5), Off: 7},
		{Buf: make([]byte, 10), Off: 15}, // the file ends inside it
	}
	if err := f.ReadBatch(context.Background(), reqs); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range reqs {
		fmt.Printf("%q %v\n", r.Buf[:r.N], r.Err)
	}
	// Output:
	// posix - asked for io: posix
	// "hello" <nil>
	// "batch" <nil>
	// "world" EOF
}
