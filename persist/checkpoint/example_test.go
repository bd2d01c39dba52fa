package checkpoint_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/checkpoint"
)

// features is an expensive step: it learns how many rows it has seen and
// outputs x + rows seen so far.
type features struct{ seen, calls int64 }

func (f *features) FitTransform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	f.calls++
	f.seen += in.Rows()
	return f.Transform(ctx, in)
}

func (f *features) Transform(ctx context.Context, in flow.Batch) (flow.Batch, error) {
	b := array.NewFloat64Builder(flow.Allocator(ctx))
	defer b.Release()
	for _, v := range in.X.Column(0).(*array.Float64).Float64Values() {
		b.Append(v + float64(f.seen))
	}
	a := b.NewFloat64Array()
	defer a.Release()
	return flow.Batch{X: array.NewRecordBatch(in.X.Schema(), []arrow.Array{a}, in.X.NumRows())}, nil
}

func (f *features) MarshalState(w *persist.StateWriter) error {
	w.Int64("seen", f.seen)
	return w.Err()
}
func (f *features) UnmarshalState(r *persist.StateReader) (err error) {
	f.seen, err = r.Int64("seen")
	return err
}

// sum is a cheap model: it adds up its inputs.
type sum struct{ total float64 }

func (s *sum) Fit(_ context.Context, in flow.Batch) error {
	for _, v := range in.X.Column(0).(*array.Float64).Float64Values() {
		s.total += v
	}
	return nil
}
func (s *sum) Transform(_ context.Context, in flow.Batch) (flow.Batch, error) {
	in.Retain()
	return in, nil
}

func Example() {
	reg := persist.NewRegistry()
	if err := reg.Register(persist.Type{Name: "example.Features", Version: 1, Of: (*features)(nil),
		New: func(persist.Spec) (flow.Step, error) { return &features{}, nil }}); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "checkpoint-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cache, err := checkpoint.Open(dir, checkpoint.Registry(reg), checkpoint.Experiment("demo"), checkpoint.Budget(1<<30))
	if err != nil {
		log.Fatal(err)
	}
	data, err := minibatch.FromSlices(2, []minibatch.Column{minibatch.Float64s("x", []float64{1, 2, 3, 4, 5, 6})}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer data.Close()

	for run := range 2 {
		f := &features{}
		prefix, _ := flow.NewPipeline([]flow.Node{flow.Named("features", f)})
		model := &sum{}
		suffix, _ := flow.NewPipeline([]flow.Node{flow.Named("sum", model)})
		p, err := checkpoint.New(cache, prefix, suffix)
		if err != nil {
			log.Fatal(err)
		}
		if err := data.Rewind(); err != nil {
			log.Fatal(err)
		}
		res, err := p.Fit(context.Background(), flow.Runner{}, data)
		if err != nil {
			log.Fatal(err)
		}
		restored := p.Prefix().Step("features").(*features)
		fmt.Printf("run %d: hit=%v features calls=%d sum=%v restored seen=%d\n", run, res.Hit, f.calls, model.total, restored.seen)
	}
	// Output:
	// run 0: hit=false features calls=3 sum=45 restored seen=6
	// run 1: hit=true features calls=0 sum=45 restored seen=6
}
