package minibatch

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/penstock-ml/penstock/flow"
)

// This file holds what the wrappers ask of the sources they wrap: whether
// a source can be read again, and its schema.

// replayable reports whether src can be read again: it implements
// flow.Rewinder and, where it has a Replayable method (sources whose
// replayability depends on their input, such as a CSV stream), that method
// says so.
func replayable(src flow.Source) bool {
	if _, ok := src.(flow.Rewinder); !ok {
		return false
	}
	if r, ok := src.(interface{ Replayable() bool }); ok {
		return r.Replayable()
	}
	return true
}

// sourceSchema returns src's Schema() where it has that method, else nil.
func sourceSchema(src flow.Source) *arrow.Schema {
	if s, ok := src.(interface{ Schema() *arrow.Schema }); ok {
		return s.Schema()
	}
	return nil
}
