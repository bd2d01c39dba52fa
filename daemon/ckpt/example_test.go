package ckpt_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/daemon/ckpt"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// A daemon saves a checkpoint at each cut and, at start, loads the newest
// that verifies. Here the store is on a FaultFS: a crash of the machine
// after Save returned keeps the checkpoint; a file written into the
// directory and never fsynced does not survive it.
func Example() {
	ctx := flow.WithAllocator(context.Background(), memory.DefaultAllocator)
	scale, _ := steps.NewStandardScaler()
	p, _ := flow.NewPipeline([]flow.Node{flow.Named("scale", scale)})
	m := minibatch.NewMatrix(memory.DefaultAllocator, 2, 1)
	copy(m.Data, []float32{1, 3})
	in := flow.Batch{X: m.Record("x")}
	m.Release()
	defer in.Release()
	if err := p.Fit(ctx, in); err != nil {
		fmt.Println(err)
		return
	}

	fs := ckpt.NewFaultFS()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := ckpt.Open("/var/lib/penstock/ckpt", ckpt.Options{FS: fs, Keep: 2, Log: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	info, err := store.Save(ctx, p, ckpt.Meta{
		Batches:   1,
		Positions: map[string][]byte{"http": []byte(`{"record":0,"batch":0}`)},
		Version:   1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("saved", info.Path)

	// A file that was written but never fsynced, nor its directory.
	f, _ := fs.Create("/var/lib/penstock/ckpt/ckpt-000000000002.pst")
	f.Write([]byte("half a checkpoint"))
	fs.Crash()

	store, _ = ckpt.Open("/var/lib/penstock/ckpt", ckpt.Options{FS: fs, Keep: 2, Log: quiet})
	l, err := store.Latest()
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, _ := l.Model.Pipeline()
	fmt.Println("loaded", l.Info.Seq, "batches", l.Meta.Batches, "http at", string(l.Meta.Positions["http"]))
	fmt.Printf("mean %.1f\n", loaded.Nodes()[0].Step.(*steps.StandardScaler).Mean())
	// Output:
	// saved /var/lib/penstock/ckpt/ckpt-000000000001.pst
	// loaded 1 batches 1 http at {"record":0,"batch":0}
	// mean [2.0]
}
