package minibatch_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/minibatch"
)

// A file without a header: read with the default header, its first row
// would become the column names and be lost as a row, so a first line of
// numbers is an error that says what to do. WithHeader(false) reads every
// row.
func ExampleWithHeader() {
	data := "5.1,3.5,0\n7.0,3.2,1\n6.3,2.9,2\n"
	_, err := minibatch.NewCSV(strings.NewReader(data), minibatch.WithName("iris.csv"))
	fmt.Println(err)

	src, err := minibatch.NewCSV(strings.NewReader(data), minibatch.WithName("iris.csv"),
		minibatch.WithHeader(false), minibatch.WithColumnNames("length", "width", "species"),
		minibatch.WithLabels("species"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	b, err := src.Next(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Release()
	fmt.Println(b.Rows(), "rows:", b.X.Column(0), b.Y.Column(0))
	// Output:
	// minibatch: csv "iris.csv": line 1: the header "5.1,3.5,0" is all numbers: a file without a header? Give WithHeader(false) (and WithColumnNames or WithSchema to name the columns), or WithHeader(true) to use these names
	// 3 rows: [5.1 7 6.3] [0 1 2]
}
