// Command daemon runs Penstock's ingest-and-train daemon (package daemon,
// what cmd/penstockd runs) in this process on the UCI digits: it saves an
// unfitted pipeline (pack → standard scaler → logistic regression), starts
// the daemon on an inbox directory, drops the training rows into it as
// Arrow IPC files (one per epoch, reshuffled), waits until a checkpoint
// covers them all, asks POST /v1/predict for the test rows and prints the
// accuracy, then drains the daemon as SIGTERM would. Run it from the root:
// go run ./examples/daemon
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/steps"
)

func main() {
	dir, err := os.MkdirTemp("", "penstock-daemon-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	acc, err := run(context.Background(), "examples/data/digits.csv.gz", dir, 20)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
	fmt.Printf("test accuracy from the served model: %.3f\n", acc)
}

var pixels = func() []string {
	p := make([]string, 64)
	for i := range p {
		p[i] = fmt.Sprint("px", i)
	}
	return p
}()

// run does it all in dir and returns the served model's test accuracy.
func run(ctx context.Context, data, dir string, epochs int) (acc float64, err error) {
	fields := make([]arrow.Field, 0, 65)
	for _, p := range pixels {
		fields = append(fields, arrow.Field{Name: p, Type: arrow.PrimitiveTypes.Float32})
	}
	schema := arrow.NewSchema(append(fields, arrow.Field{Name: "digit", Type: arrow.PrimitiveTypes.Int64}), nil)
	src, err := minibatch.OpenCSV(data, minibatch.WithHeader(false), minibatch.WithSchema(schema), minibatch.WithLabels("digit"))
	if err != nil {
		return 0, err
	}
	defer src.Close()
	train, test, err := minibatch.Holdout(ctx, src, 0.2, minibatch.WithSeed(1))
	if err != nil {
		return 0, err
	}
	inbox, model := filepath.Join(dir, "inbox"), filepath.Join(dir, "model.pnst")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		return 0, err
	}
	if err := savePipeline(model); err != nil {
		return 0, err
	}
	cfg, err := daemon.ParseConfig(fmt.Appendf(nil, `{
	  "pipeline": %q,
	  "schema": {"fields": [%s], "inputs": %s, "labels": ["digit"]},
	  "sources": [{"name": "files", "type": "dir", "dir": %q, "glob": "*.arrow"}],
	  "checkpoint": {"dir": %q, "every": "200ms"},
	  "address": "127.0.0.1:0", "drain_timeout": "10s"
	}`, model, fieldsJSON(schema), jsonList(pixels), inbox, filepath.Join(dir, "ckpt")))
	if err != nil {
		return 0, err
	}
	addr := make(chan net.Addr, 1)
	dctx, drain := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(dctx, cfg, persist.Default, daemon.WithListening(func(a net.Addr) { addr <- a }),
			daemon.WithLogger(slog.New(slog.DiscardHandler)))
	}()
	defer func() { // drain the daemon, as SIGTERM does, and wait for it
		drain(errors.New("example done"))
		if derr := <-done; err == nil {
			err = derr
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case err := <-done:
		done <- err
		return 0, err
	}
	// The producer: one IPC file per epoch, written aside, renamed in.
	stream, err := minibatch.Epochs(train, epochs, minibatch.WithBatchRows(32), minibatch.WithShuffleRows(2048), minibatch.WithSeed(1))
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	if err := produce(ctx, stream, schema, inbox, epochs); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		left, _ := filepath.Glob(filepath.Join(inbox, "*.arrow"))
		if len(left) == 0 { // every file fitted and covered by a checkpoint (moved to done/)
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d files never fitted", len(left))
		}
	}
	return score(ctx, url, test)
}

func savePipeline(path string) error {
	scale, err := steps.NewStandardScaler()
	if err != nil {
		return err
	}
	lr, err := steps.NewLogisticRegression("digit", 10, steps.LearningRate(0.05), steps.Momentum(0.9), steps.Seed(1))
	if err != nil {
		return err
	}
	p, err := flow.NewPipeline([]flow.Node{
		flow.Named("pack", &minibatch.PackStep{Out: "x", Cols: pixels}),
		flow.Named("scale", scale, flow.FitEpochs(1)), // the first epoch's statistics only
		flow.Named("model", lr),
	})
	if err != nil {
		return err
	}
	return persist.SaveFile(path, p)
}

// produce writes each epoch of stream as one IPC file in inbox.
func produce(ctx context.Context, stream flow.Source, schema *arrow.Schema, inbox string, epochs int) error {
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
	if err != nil {
		return err
	}
	epoch := 0
	flush := func() error {
		if err := w.Close(); err != nil {
			return err
		}
		tmp := filepath.Join(inbox, fmt.Sprintf(".epoch-%03d.tmp", epoch)) // hidden: not taken yet
		if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
			return err
		}
		buf.Reset()
		w, err = ipc.NewFileWriter(&buf, ipc.WithSchema(schema))
		if err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(inbox, fmt.Sprintf("epoch-%03d.arrow", epoch)))
	}
	for {
		b, err := stream.Next(ctx)
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return err
		}
		if b.Epoch != epoch {
			if err := flush(); err != nil {
				b.Release()
				return err
			}
			epoch = b.Epoch
		}
		rec := array.NewRecordBatch(schema, append(b.X.Columns(), b.Y.Columns()...), b.Rows())
		err = w.Write(rec)
		rec.Release()
		b.Release()
		if err != nil {
			return err
		}
	}
}

// score posts the test rows to /v1/predict and compares the classes it
// answers with the digits.
func score(ctx context.Context, url string, test flow.Source) (float64, error) {
	var right, all int
	for {
		b, err := test.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		var body bytes.Buffer
		w := ipc.NewWriter(&body, ipc.WithSchema(b.X.Schema()))
		err = w.Write(b.X)
		w.Close()
		digits := b.Y.Column(0).(*array.Int64).Int64Values()
		classes, perr := predict(ctx, url, body.Bytes())
		if err == nil {
			err = perr
		}
		for i, c := range classes {
			all++
			if c == digits[i] {
				right++
			}
		}
		b.Release()
		if err != nil {
			return 0, err
		}
	}
	return float64(right) / float64(all), nil
}

func predict(ctx context.Context, url string, body []byte) ([]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/predict", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/vnd.apache.arrow.stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("predict: %s: %s", resp.Status, msg)
	}
	r, err := ipc.NewReader(resp.Body, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var classes []int64
	for r.Next() {
		classes = append(classes, r.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	return classes, r.Err()
}

func fieldsJSON(s *arrow.Schema) string {
	var b bytes.Buffer
	for i, f := range s.Fields() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `{"name": %q, "type": %q}`, f.Name, f.Type.String())
	}
	return b.String()
}

func jsonList(names []string) string {
	var b bytes.Buffer
	b.WriteString("[")
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	return b.String() + "]"
}
