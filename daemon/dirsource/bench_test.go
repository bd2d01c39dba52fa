package dirsource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/minibatch"
)

// BenchmarkRead reads 200 IPC files of 500 rows (5 batches each) through
// the source, and the same files with minibatch alone (OpenIPCFile, Next,
// Schema.Split): rows/s and x-vs-library, the ratio of the two.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	const files, batches, rows = 200, 5, 100
	for f := range files {
		writeIPCFile(b, filepath.Join(dir, fmt.Sprintf("%04d.arrow", f)), f*batches*rows, batches, rows)
	}
	schema := testSchema()
	library := func() time.Duration {
		began := time.Now()
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			src, err := minibatch.OpenIPCFile(filepath.Join(dir, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			for {
				bt, err := src.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				split, err := schema.Split(bt.X)
				if err != nil {
					b.Fatal(err)
				}
				bt.Release()
				split.Release()
			}
			src.Close()
		}
		return time.Since(began)
	}
	viaSource := func() time.Duration {
		began := time.Now()
		d, err := dirsource.New(dirsource.Options{Dir: dir, Schema: schema, Alloc: memory.DefaultAllocator, Settle: -1, Poll: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan source.Input)
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx, nil, nil, out) }()
		for range files * batches {
			in := <-out
			in.Batch.Release()
		}
		took := time.Since(began)
		cancel()
		<-done
		return took
	}
	var lib, src time.Duration
	b.ReportAllocs()
	for b.Loop() {
		lib += library()
		src += viaSource()
	}
	total := float64(b.N * files * batches * rows)
	b.ReportMetric(total/src.Seconds(), "rows/s")
	b.ReportMetric(lib.Seconds()/src.Seconds(), "x-vs-library")
}
