package source_test

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/penstock-ml/penstock/daemon/source"
)

// A Schema names the column that an input gets wrong.
func ExampleSchema_Check() {
	s := source.Schema{
		Fields: arrow.NewSchema([]arrow.Field{
			{Name: "x", Type: arrow.PrimitiveTypes.Float32},
			{Name: "label", Type: arrow.PrimitiveTypes.Int64},
		}, nil),
		Inputs: []string{"x"}, Labels: []string{"label"},
	}
	posted := arrow.NewSchema([]arrow.Field{
		{Name: "x", Type: arrow.PrimitiveTypes.Float64},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	fmt.Println(s.Check(posted))
	// Output:
	// schema mismatch: column "x": want float32, got float64
}
