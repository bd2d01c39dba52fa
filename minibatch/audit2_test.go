package minibatch_test

// The second pass of the audit of minibatch's documented promises (see
// audit_test.go for the first): what that pass did not cover.

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/penstock-ml/penstock/minibatch"
)

// TestAuditCSVNullInNonNullable: WithSchema says a field that is not
// nullable rejects null values, and CSVSource that a null in a
// non-nullable column is an error naming the line and the column. Every
// type, strings included: a string column took "" and "NA" as text.
func TestAuditCSVNullInNonNullable(t *testing.T) {
	types := []arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.FixedWidthTypes.Boolean}
	good := map[arrow.Type]string{arrow.STRING: "x", arrow.INT64: "1", arrow.FLOAT64: "1.5", arrow.BOOL: "true"}
	for _, dt := range types {
		for _, null := range []string{"", "NA", "NaN"} {
			t.Run(dt.String()+"/"+null, func(t *testing.T) {
				mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
				defer mem.AssertSize(t, 0)
				schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "v", Type: dt}}, nil)
				in := "id,v\n1," + good[dt.ID()] + "\n2," + null + "\n"
				_, err := readCSVErr(t, mem, []byte(in), minibatch.WithSchema(schema), minibatch.WithNullValues("", "NA", "NaN"))
				if err == nil {
					t.Fatalf("%q in a non-nullable %s column: no error; want one", null, dt)
				}
				for _, want := range []string{"line 3", `column "v"`, "not nullable"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q; want it to contain %q", err, want)
					}
				}
			})
		}
	}
}
