package persist_test

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

// A fitted scaler, saved to bytes and loaded back, standardizes as the
// original does.
func Example() {
	ctx := flow.WithAllocator(context.Background(), memory.DefaultAllocator)
	scale, _ := steps.NewStandardScaler()
	p, _ := flow.NewPipeline([]flow.Node{flow.Named("scale", scale, flow.FitEpochs(1))})

	m := minibatch.NewMatrix(memory.DefaultAllocator, 4, 1)
	copy(m.Data, []float32{1, 2, 3, 4})
	in := flow.Batch{X: m.Record("x")}
	m.Release()
	defer in.Release()
	if err := p.Fit(ctx, in); err != nil {
		fmt.Println(err)
		return
	}

	saved, err := persist.Marshal(p, persist.WithExtra("note", []byte("fitted on 4 rows")))
	if err != nil {
		fmt.Println(err)
		return
	}
	model, err := persist.Unmarshal(saved)
	if err != nil {
		fmt.Println(err)
		return
	}
	loaded, _ := model.Pipeline()
	out, err := loaded.Transform(ctx, in)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer out.Release()
	x, _ := minibatch.Features(out, "x")
	settings, _ := loaded.Nodes()[0].Settings()
	fmt.Printf("%.4f\n", x.Data)
	fmt.Println(settings.HasFitEpochs, settings.FitEpochs, string(model.Extra["note"]))
	// Output:
	// [-1.3416 -0.4472 0.4472 1.3416]
	// true 1 fitted on 4 rows
}
