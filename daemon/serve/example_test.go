package serve_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon/serve"
	"github.com/penstock-ml/penstock/daemon/source"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// A fitted pipeline is published as version 1 and answers JSON rows; the
// readiness probe follows the "model" check.
func Example() {
	ctx := context.Background()
	in := source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x0", Type: arrow.PrimitiveTypes.Float32},
			{Name: "x1", Type: arrow.PrimitiveTypes.Float32},
		}, nil),
		Inputs: []string{"x0", "x1"},
	}

	// The pipeline in training: pack the inputs into "x", standardize.
	scaler, _ := steps.NewStandardScaler()
	fit, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: in.Inputs}),
		flow.Named("scale", scaler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, in.Fields)
	b.Field(0).(*array.Float32Builder).AppendValues([]float32{0, 2}, nil) // mean 1, std 1
	b.Field(1).(*array.Float32Builder).AppendValues([]float32{1, 3}, nil) // mean 2, std 1
	batch := flow.Batch{X: b.NewRecordBatch()}
	b.Release()
	if err := fit.Fit(ctx, batch); err != nil {
		fmt.Println(err)
		return
	}
	batch.Release()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	models := serve.NewModels(serve.ModelOptions{Pool: 2, Log: quiet})
	defer models.Close()
	health := serve.NewHealth()
	health.Set(serve.CheckModel, errors.New("no model yet"))
	predict := serve.NewPredictor(models, in, serve.PredictOptions{Log: quiet})

	probe := func() {
		w := httptest.NewRecorder()
		health.Readyz().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz?verbose", nil))
		fmt.Print(w.Code, " ", w.Body.String())
	}
	probe()

	// At a cut, the daemon publishes a copy.
	c, err := flow.Copy(fit)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := models.Publish(c.(*flow.Pipeline), 1); err != nil {
		fmt.Println(err)
		return
	}
	health.Set(serve.CheckModel, nil)
	probe()

	req := httptest.NewRequest(http.MethodPost, "/v1/predict", strings.NewReader(`[{"x0": 1, "x1": 2}, {"x0": 2, "x1": 4}]`))
	req.Header.Set("Content-Type", serve.ContentTypeJSON)
	w := httptest.NewRecorder()
	predict.ServeHTTP(w, req)
	fmt.Print(w.Code, " version ", w.Header().Get(serve.VersionHeader), " ", w.Body.String())

	// Output:
	// 503 [-]model failed: no model yet
	// readyz check failed
	// 200 [+]model ok
	// readyz check passed
	// 200 version 1 [{"x":[0,0]},{"x":[1,2]}]
}
