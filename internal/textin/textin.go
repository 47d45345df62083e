// Package textin opens the input of a text source (csv, ndjson): it
// decompresses what is compressed and refuses what is not text, so that a
// source never parses gzip bytes as a header or a Parquet file as rows.
//
// Compression is found by the magic bytes at the start of the file, never
// by its extension: gzip (1f 8b), zstd (28 b5 2f fd), bzip2 ("BZh1".."BZh9"
// followed by the block magic) and xz (fd "7zXZ" 00). What comes out (or
// the file itself) must then look like text: a file that starts like a
// Parquet, Arrow or Avro file, an archive, an image, a PDF, a SQLite
// database or an executable, or that holds a NUL byte in its first 64 KiB,
// is refused with what it looks like and, for formats zflow reads, the
// source type to use. A UTF-8 byte order mark is skipped; UTF-16 is
// refused with the fix.
package textin

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// sample is how much of the text is looked at for NUL bytes and formats.
const sample = 64 << 10

// Reader is an opened text input. Read from it; Close closes everything
// under it.
type Reader struct {
	*bufio.Reader
	// Compression names the codec found ("" when the file is plain):
	// gzip, zstd, bzip2 or xz.
	Compression string

	file    *os.File
	size    int64 // the file's size, when sized (OpenFile)
	sized   bool
	closers []func() error
}

// Close closes the decompressor and the file.
func (r *Reader) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Regular tells whether the input is a plain, uncompressed regular file,
// and its size.
func (r *Reader) Regular() (int64, bool) {
	if r.Compression != "" {
		return 0, false
	}
	if r.sized {
		return r.size, true
	}
	if r.file == nil {
		return 0, false
	}
	st, err := r.file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Size(), true
}

// NotTextError says an input is not text, and what it looks like.
type NotTextError struct {
	Path  string
	Looks string // "a Parquet file", "binary data (a NUL byte at offset 12)"
	Use   string // the source type that reads it, "" if none does
}

func (e *NotTextError) Error() string {
	msg := fmt.Sprintf("%s looks like %s", e.Path, e.Looks)
	if e.Use != "" {
		msg += "; use type: " + e.Use
	} else {
		msg += ", not text"
	}
	return msg
}

// Open opens path as text, decompressing it if it is compressed. kind is
// the source's type ("csv", "ndjson"), so that an error does not suggest it.
func Open(path, kind string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := &Reader{file: f, closers: []func() error{f.Close}}
	if err := r.open(path, kind); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// OpenFile is Open for a file another layer opened (a storage backend):
// src reads it from its start, size is its size (for Regular), and Close
// calls closeFile, also when OpenFile fails. name is used in errors.
func OpenFile(src io.Reader, size int64, name, kind string, closeFile func() error) (*Reader, error) {
	r := &Reader{size: size, sized: true, closers: []func() error{closeFile}}
	if err := r.openFrom(src, name, kind); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// OpenReader is Open for a stream that is already open, such as standard
// input, which need not be seekable: the magic bytes are peeked at through
// a buffer, never read twice. name is used in errors. Close closes the
// decompressor but not src.
func OpenReader(src io.Reader, name, kind string) (*Reader, error) {
	r := &Reader{}
	if err := r.openFrom(src, name, kind); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) open(path, kind string) error { return r.openFrom(r.file, path, kind) }

func (r *Reader) openFrom(in io.Reader, path, kind string) error {
	raw := bufio.NewReaderSize(in, 1<<16)
	head, err := raw.Peek(8)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	var src io.Reader = raw
	switch c := compression(head); c {
	case "gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return fmt.Errorf("%s: gzip: %w", path, err)
		}
		src, r.Compression = zr, c
		r.closers = append(r.closers, zr.Close)
	case "zstd":
		// A frame may declare any window; bound what it can make us
		// allocate (zstd --long=27 is the most common tools write).
		zr, err := zstd.NewReader(raw, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27), zstd.WithDecoderLowmem(true))
		if err != nil {
			return fmt.Errorf("%s: zstd: %w", path, err)
		}
		src, r.Compression = zr, c
		r.closers = append(r.closers, func() error { zr.Close(); return nil })
	case "bzip2":
		src, r.Compression = bzip2.NewReader(raw), c
	case "xz":
		xr, err := xz.NewReader(raw)
		if err != nil {
			return fmt.Errorf("%s: xz: %w", path, err)
		}
		src, r.Compression = xr, c
	}
	r.Reader = bufio.NewReaderSize(src, 1<<20)
	text, err := r.Peek(sample)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		what := path
		if r.Compression != "" {
			what += " (" + r.Compression + ")"
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if e := notText(path, kind, text); e != nil {
		if r.Compression != "" {
			e.Looks += ", " + r.Compression + "-compressed"
		}
		return e
	}
	if bytes.HasPrefix(text, []byte{0xEF, 0xBB, 0xBF}) {
		r.Discard(3)
	}
	return nil
}

// compression names the codec whose magic bytes start head, or "".
func compression(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case len(head) >= 4 && bytes.HasPrefix(head, []byte("BZh")) && head[3] >= '1' && head[3] <= '9':
		return "bzip2"
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	}
	return ""
}

// signatures are the formats a text source is refused, by their magic.
// A magic made of printable characters (PAR1, ARROW1, %PDF-) could start a
// text file too: it counts only when the sample also holds a NUL byte.
var signatures = []struct {
	magic     []byte
	looks     string
	use       string
	printable bool
}{
	{[]byte("PAR1"), "a Parquet file", "parquet", true},
	{[]byte("ARROW1"), "an Arrow IPC file", "arrow", true},
	{[]byte{0xff, 0xff, 0xff, 0xff}, "an Arrow IPC stream", "arrow", false},
	{[]byte("Obj\x01"), "an Avro file", "", false},
	{[]byte("PK\x03\x04"), "a ZIP archive (unzip it first)", "", false},
	{[]byte("SQLite format 3\x00"), "a SQLite database", "", false},
	{[]byte("\x89PNG\r\n\x1a\n"), "a PNG image", "", false},
	{[]byte("%PDF-"), "a PDF document", "", true},
	{[]byte("\x7fELF"), "an executable", "", false},
	{[]byte("7z\xbc\xaf\x27\x1c"), "a 7-Zip archive (unpack it first)", "", false},
}

// notText says what text looks like if it is not text, or nil.
func notText(path, kind string, text []byte) *NotTextError {
	nul := bytes.IndexByte(text, 0)
	for _, s := range signatures {
		if bytes.HasPrefix(text, s.magic) && (!s.printable || nul >= 0) {
			e := &NotTextError{Path: path, Looks: s.looks, Use: s.use}
			if e.Use == kind {
				e.Use = ""
			}
			return e
		}
	}
	if bytes.HasPrefix(text, []byte{0xff, 0xfe}) || bytes.HasPrefix(text, []byte{0xfe, 0xff}) {
		return &NotTextError{Path: path, Looks: "UTF-16 text (convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8)"}
	}
	if nul >= 0 {
		return &NotTextError{Path: path, Looks: fmt.Sprintf("binary data (a NUL byte at offset %d)", nul)}
	}
	return nil
}

// Describe says in a few words what the file at path looks like — "a
// Parquet file", "gzip-compressed data", "text", "binary data (a NUL byte
// at offset 9)", "an empty file" — and the source type that reads it, if
// one does, for the errors of sources that expect another format. ok is
// false when the file cannot be read.
func Describe(path string) (looks, use string, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	head := make([]byte, sample)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if n == 0 {
		return "an empty file", "", true
	}
	if c := compression(head); c != "" {
		return c + "-compressed data (csv and ndjson read it compressed)", "", true
	}
	if e := notText(path, "", head); e != nil {
		return e.Looks, e.Use, true
	}
	if t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF}), " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return "JSON text", "ndjson", true
	}
	return "text", "csv", true
}
