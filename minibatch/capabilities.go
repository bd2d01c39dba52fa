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

// What reshuffles reports.
const (
	throughShuffler   = "a Shuffler"
	throughPermute    = "a Permute"
	throughCurriculum = "a Curriculum, whose order function gives each epoch its own order"
)

// reshuffles returns what in src returns its rows in a new order on every
// pass (a Shuffler, a Permute, a Curriculum), looking through the stages
// that keep their source's order from pass to pass, or "" when nothing
// does. Stages that re-read their source and need the same rows in the
// same order on every pass (the splits, an Ordered over a source that is
// not a *Memory) refuse such a source, which would give them rows twice
// and lose others. A Curriculum is refused whatever its order function
// (which may keep state, and is called only as passes start): one that
// gives every epoch the same order is the exception, and NewCache of it
// serves. A Cache replays its first pass, so it stops the search.
func reshuffles(src flow.Source) string {
	for {
		switch s := src.(type) {
		case *Shuffler:
			return throughShuffler
		case *Ordered:
			if s.op == "permute" {
				return throughPermute
			}
			return throughCurriculum
		case *Rebatcher:
			src = s.src
		case *Repeater:
			src = s.src
		case *EpochStream:
			if s.rep == nil {
				return ""
			}
			src = s.rep
		case *SplitSource:
			src = s.parent.src
		default:
			return ""
		}
	}
}

// splitFirst says what to do instead of splitting (or re-reading window
// by window) a source whose order changes from pass to pass through what
// (reshuffles' answer).
func splitFirst(what string) string {
	if what == throughCurriculum {
		return "split first, then order each side (a Curriculum over each side, its order for that side's rows), or cache one pass of it (NewCache)"
	}
	return "split first and shuffle each side, or cache the shuffled stream (NewCache)"
}
