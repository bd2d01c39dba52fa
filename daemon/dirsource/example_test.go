package dirsource_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/daemon/dirsource"
	"github.com/penstock-ml/penstock/daemon/source"
)

// A directory with a CSV file: its batches come with their positions, the
// file moves to done/ once a durable checkpoint covers its last batch.
func Example() {
	dir, _ := os.MkdirTemp("", "inbox")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "0001.csv"), []byte("x,y\n1.5,1\n2.5,0\n3.5,1\n"), 0o644)

	d, err := dirsource.New(dirsource.Options{
		Dir: dir,
		Schema: source.Schema{
			Fields: arrow.NewSchema([]arrow.Field{
				{Name: "x", Type: arrow.PrimitiveTypes.Float32},
				{Name: "y", Type: arrow.PrimitiveTypes.Int64},
			}, nil),
			Inputs: []string{"x"},
			Labels: []string{"y"},
		},
		BatchRows: 2,
		Settle:    -1, // producers rename complete files in
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan source.Input)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil, nil, out) }()
	var last []byte
	for range 2 {
		in := <-out
		fmt.Printf("%d rows, x %v, y %v, pos %s\n", in.Batch.Rows(), in.Batch.X.Column(0), in.Batch.Y.Column(0), in.Pos)
		in.Batch.Release()
		last = in.Pos
	}
	cancel()
	<-done
	d.Durable(last) // the daemon calls it once a checkpoint covers last
	moved, _ := os.ReadDir(filepath.Join(dir, "done"))
	fmt.Println("done:", moved[0].Name())
	// Output:
	// 2 rows, x [1.5 2.5], y [1 0], pos {"file":"0001.csv","batch":0}
	// 1 rows, x [3.5], y [1], pos {"file":"0001.csv","batch":1,"last":true}
	// done: 0001.csv
}
