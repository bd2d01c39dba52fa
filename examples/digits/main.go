// Command digits prepares the UCI handwritten-digits table for training
// with Penstock's mini-batch sources and prints what comes out.
//
// The data (examples/data/digits.csv.gz): 1797 rows of 64 pixel columns
// (an 8×8 image, each pixel 0–16) and the digit shown (0–9). The steps:
//
//	read      the gzip CSV through minibatch.OpenCSV, the digit as Y
//	split     a stratified holdout: 80% train, 20% validation, by seed;
//	          each side re-reads the file and keeps its rows
//	shuffle   the train side, through a 512-row shuffle buffer
//	re-batch  both sides to batches of 64 rows (the last one shorter)
//	pack      the 64 pixel columns into one float32 tensor column, in a
//	          flow.Runner whose allocator the step packs with
//
// and it prints, for each side, the batch shapes and the rows per class.
//
// Usage, from the repository root or from this directory:
//
//	go run ./examples/digits [-data path/to/digits.csv.gz] [-seed 1]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

const (
	batchRows  = 64
	bufferRows = 512
	validation = 0.2
)

// dataCandidates are where the data file is looked for when -data is not
// given: relative to the repository root, then to this directory.
var dataCandidates = []string{
	filepath.Join("examples", "data", "digits.csv.gz"),
	filepath.Join("..", "data", "digits.csv.gz"),
}

func main() {
	data := flag.String("data", "", "path of digits.csv.gz (default: examples/data/digits.csv.gz from the repository root, or ../data/digits.csv.gz from this directory)")
	seed := flag.Uint64("seed", 1, "seed of the split and of the shuffle")
	flag.Parse()
	path := *data
	if path == "" {
		var err error
		if path, err = findData(); err != nil {
			fmt.Fprintln(os.Stderr, "digits:", err)
			os.Exit(1)
		}
	}
	if err := runWith(context.Background(), os.Stdout, path, *seed, memory.DefaultAllocator); err != nil {
		fmt.Fprintln(os.Stderr, "digits:", err)
		os.Exit(1)
	}
}

// findData returns the first of dataCandidates that exists.
func findData() (string, error) {
	for _, p := range dataCandidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("digits.csv.gz not found at %s; run from the repository root or pass -data", strings.Join(dataCandidates, " or "))
}

// run prepares the table at path with seed 1 and writes the report to w.
func run(ctx context.Context, w io.Writer, path string) error {
	return runWith(ctx, w, path, 1, memory.DefaultAllocator)
}

// runWith is run with a chosen seed and allocator (tests pass a checked
// one).
func runWith(ctx context.Context, w io.Writer, path string, seed uint64, mem memory.Allocator) error {
	names := make([]string, 65)
	for i := range 64 {
		names[i] = fmt.Sprintf("px%d_%d", i/8, i%8)
	}
	names[64] = "digit"
	pixels := names[:64]

	src, err := minibatch.OpenCSV(path,
		minibatch.WithAllocator(mem), minibatch.WithHeader(false), minibatch.WithColumnNames(names...),
		minibatch.WithLabels("digit"), minibatch.WithBatchRows(256))
	if err != nil {
		return err
	}
	defer src.Close()

	train, val, err := minibatch.Holdout(ctx, src, validation, minibatch.WithSeed(seed), minibatch.WithAllocator(mem))
	if err != nil {
		return err
	}
	shuffled, err := minibatch.Shuffle(train, bufferRows, minibatch.WithSeed(seed), minibatch.WithAllocator(mem))
	if err != nil {
		return err
	}
	defer shuffled.Close()

	// The packing step runs in a flow.Runner, whose allocator it packs
	// with (flow.Allocator(ctx)): a PackStep without Mem takes the run's.
	p, err := flow.NewPipeline([]flow.Node{flow.Named("pack", &minibatch.PackStep{Out: "pixels", Cols: pixels})})
	if err != nil {
		return err
	}
	runner := flow.Runner{Allocator: mem}
	total := map[string]int{}
	var rows int64
	// The sides are read one after the other: they share the CSV source.
	for _, side := range []struct {
		name string
		src  flow.Source
	}{{"train", shuffled}, {"validation", val}} {
		batches, err := minibatch.NewRebatcher(side.src, batchRows, minibatch.Keep, minibatch.WithAllocator(mem))
		if err != nil {
			return err
		}
		r, err := report(ctx, runner, p, batches)
		batches.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		fmt.Fprintf(w, "%s: %d rows in %d batches: %s\n", side.name, r.rows, r.batches, r.sizes())
		fmt.Fprintf(w, "%s: X %s, Y %s\n", side.name, r.x, r.y)
		fmt.Fprintf(w, "%s classes: %s\n", side.name, classLine(r.classes))
		for k, n := range r.classes {
			total[k] += n
		}
		rows += r.rows
	}
	fmt.Fprintf(w, "total: %d rows, %d classes\n", rows, len(total))
	return nil
}

// sideReport is what one side of the split produced.
type sideReport struct {
	rows, batches int64
	sizeCount     map[int64]int64 // batches per row count
	x, y          string          // shape of the first batch
	classes       map[string]int
}

// report runs src through the pipeline p (the packing step) to its end and
// tallies the shapes and classes of what comes out.
func report(ctx context.Context, runner flow.Runner, p *flow.Pipeline, src flow.Source) (sideReport, error) {
	r := sideReport{sizeCount: map[int64]int64{}, classes: map[string]int{}}
	out, err := runner.Transform(ctx, p, src)
	if err != nil {
		return r, err
	}
	err = out.Each(ctx, func(b flow.Batch) error {
		if r.batches == 0 {
			r.x, r.y = shape(b.X), shape(b.Y)
		}
		r.batches++
		r.rows += b.Rows()
		r.sizeCount[b.Rows()]++
		digits, err := minibatch.LabelsInt64(b, "digit")
		if err != nil {
			return err
		}
		for _, d := range digits {
			r.classes[strconv.FormatInt(d, 10)]++
		}
		return nil
	})
	return r, err
}

// sizes describes the batch sizes, largest first: "22 × 64 rows, 1 × 30 rows".
func (r sideReport) sizes() string {
	var sizes []int64
	for n := range r.sizeCount {
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)
	parts := make([]string, len(sizes))
	for i, n := range sizes {
		parts[i] = fmt.Sprintf("%d × %d rows", r.sizeCount[n], n)
	}
	return strings.Join(parts, ", ")
}

// shape describes a record as rows × columns with their names and types.
func shape(rec arrow.RecordBatch) string {
	if rec == nil {
		return "none"
	}
	cols := make([]string, rec.NumCols())
	for i, f := range rec.Schema().Fields() {
		cols[i] = fmt.Sprintf("%s %s", f.Name, f.Type)
	}
	return fmt.Sprintf("%d rows × [%s]", rec.NumRows(), strings.Join(cols, ", "))
}

// classLine lists class counts in class order: "0=142 1=146 …".
func classLine(classes map[string]int) string {
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, classes[k])
	}
	return strings.Join(parts, " ")
}
