package wal

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// errNoBatches is a body that holds a schema but no record batch.
var errNoBatches = errors.New("the stream holds no record batch")

// decoder reads posts' bodies. It holds the schemas of X and Y, made once
// from Options.Schema, so that splitting a batch makes no schema.
type decoder struct {
	o    *Options
	x, y *arrow.Schema // y nil when the schema has no labels
	fast fastSchemas   // schema messages that the full reader accepted (fast.go)
}

func newDecoder(o *Options) *decoder {
	d := &decoder{o: o, x: subSchema(o.Schema.Fields, o.Schema.Inputs)}
	if len(o.Schema.Labels) > 0 {
		d.y = subSchema(o.Schema.Fields, o.Schema.Labels)
	}
	return d
}

func subSchema(sc *arrow.Schema, cols []string) *arrow.Schema {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = sc.Field(sc.FieldIndices(c)[0])
	}
	return arrow.NewSchema(fields, nil)
}

// decode reads the Arrow IPC stream body with minibatch's bounded,
// validating reader (buffers from Options.Alloc, a batch at most
// 8×MaxBody bytes), checks its schema with Options.Schema.Check and,
// when each is not nil, calls it for every record batch, in order, split
// into X (the Inputs, in order) and Y (the Labels) with Seq its index;
// each owns the batch. A schema mismatch is a *source.SchemaError, any
// other error a decode error naming the batch; each's error stops the
// read and is returned as is. A body without a record batch is an error.
//
// A body whose schema message was accepted before, and which holds only
// plain record batches of fixed-width columns, is read by the fast path
// (fast.go), else by the full reader: the fast path refuses nothing.
func (d *decoder) decode(ctx context.Context, body []byte, each func(i int, b flow.Batch) error) error {
	if ok, err := d.decodeFast(ctx, body, each); ok {
		return err
	}
	return d.decodeFull(ctx, body, each)
}

// decodeFull is decode by minibatch's IPC reader, the reference; a body
// that it reads whole has its schema message remembered for the fast
// path.
func (d *decoder) decodeFull(ctx context.Context, body []byte, each func(i int, b flow.Batch) error) error {
	src, err := minibatch.NewIPCStream(bytes.NewReader(body),
		minibatch.WithAllocator(d.o.Alloc), minibatch.WithMaxBatchBytes(8*d.o.MaxBody), minibatch.WithName("body"))
	if err != nil {
		return err
	}
	defer src.Close()
	sc := src.TableSchema()
	if err := d.o.Schema.Check(sc); err != nil {
		return err
	}
	ix, iy := indices(sc, d.o.Schema.Inputs), indices(sc, d.o.Schema.Labels)
	for i := 0; ; i++ {
		b, err := src.Next(ctx) // X is the whole record: no roles were given
		if err == io.EOF {
			if i == 0 {
				return errNoBatches
			}
			d.rememberSchema(body, sc, ix, iy)
			return nil
		}
		if err != nil {
			return err
		}
		if each == nil {
			b.Release()
			continue
		}
		split := flow.Batch{Seq: int64(i), X: project(d.x, b.X, ix)}
		if d.y != nil {
			split.Y = project(d.y, b.X, iy)
		}
		b.Release()
		if err := each(i, split); err != nil {
			return err
		}
	}
}

// indices are the positions in sc of cols (Check made sure that each is
// there once).
func indices(sc *arrow.Schema, cols []string) []int {
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = sc.FieldIndices(c)[0]
	}
	return idx
}

// project makes a record of schema sc from rec's columns idx (retained).
func project(sc *arrow.Schema, rec arrow.RecordBatch, idx []int) arrow.RecordBatch {
	cols := make([]arrow.Array, len(idx))
	for i, j := range idx {
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(sc, cols, rec.NumRows())
}
