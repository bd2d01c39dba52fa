package minibatch

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// infer chooses each column's type from the rows held for inference: the
// narrowest of int64, float64, bool and string that every non-null value
// parses as; string when the column has no non-null value there. The
// columns are nullable.
func (s *CSVSource) infer(names []string) []arrow.Field {
	isNull := s.nullChecker()
	fields := make([]arrow.Field, len(names))
	for c, name := range names {
		isInt, isFloat, isBool, seen := true, true, true, false
		for _, row := range s.pending {
			v := row.fields[c]
			if isNull(v) {
				continue
			}
			seen = true
			if isInt {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					isInt = false
				}
			}
			if isFloat && !isInt {
				if _, err := strconv.ParseFloat(v, 64); err != nil {
					isFloat = false
				}
			}
			if isBool {
				if _, ok := parseBool(v); !ok {
					isBool = false
				}
			}
			if !isInt && !isFloat && !isBool {
				break // string
			}
		}
		var dt arrow.DataType
		switch {
		case !seen:
			dt = arrow.BinaryTypes.String
		case isInt:
			dt = arrow.PrimitiveTypes.Int64
		case isFloat:
			dt = arrow.PrimitiveTypes.Float64
		case isBool:
			dt = arrow.FixedWidthTypes.Boolean
		default:
			dt = arrow.BinaryTypes.String
		}
		fields[c] = arrow.Field{Name: name, Type: dt, Nullable: true}
	}
	return fields
}
