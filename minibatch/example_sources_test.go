package minibatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/penstock-ml/penstock/minibatch"
)

// A CSV table read as mini-batches of two rows, with the "species" column
// as the label (Y) and the other columns, their types inferred, as inputs
// (X).
func ExampleNewCSV() {
	data := `sepal_length,sepal_width,species
5.1,3.5,setosa
7.0,3.2,versicolor
6.3,NA,virginica
`
	src, err := minibatch.NewCSV(strings.NewReader(data),
		minibatch.WithLabels("species"), minibatch.WithBatchRows(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	fmt.Println(src.TableSchema())
	ctx := context.Background()
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(b.Seq, b.X.Column(0), b.X.Column(1), b.Y.Column(0))
		b.Release()
	}

	// Bad input is an error naming the input, the line and the column.
	_, err = minibatch.NewCSV(strings.NewReader("x,y\n1,2\n3\n"), minibatch.WithName("data.csv"))
	fmt.Println(err)
	// Output:
	// schema:
	//   fields: 3
	//     - sepal_length: type=float64, nullable
	//     - sepal_width: type=float64, nullable
	//     - species: type=utf8, nullable
	// 0 [5.1 7] [3.5 3.2] ["setosa" "versicolor"]
	// 1 [6.3] [(null)] ["virginica"]
	// minibatch: csv "data.csv": line 3: has 1 fields, want 2 (columns "x", "y")
}
