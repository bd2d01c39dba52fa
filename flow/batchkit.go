package flow

import "github.com/apache/arrow-go/v18/arrow"

// WithX returns the batch that a step returns when it replaces the inputs
// and keeps the rest: X is x, and Seq, Epoch and Y are b's, Y retained.
//
// WithX takes ownership of x: the caller's reference to x moves into the
// returned batch, which the caller owns (a step returns it to the runner).
// b is left as it was, still to be released by whoever owns it (a step
// borrows its input, so it does nothing more). x may be nil. x must have
// b's number of rows where b has a Y; the runners report a step whose
// output does not. Cost: O(1).
//
//	x := … // a record the step built, e.g. minibatch.Matrix.Record
//	return in.WithX(x), nil
func (b Batch) WithX(x arrow.RecordBatch) Batch {
	if b.Y != nil {
		b.Y.Retain()
	}
	return Batch{Seq: b.Seq, Epoch: b.Epoch, X: x, Y: b.Y}
}
