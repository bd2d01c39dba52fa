package mlp

import (
	"fmt"
	"hash"
	"math"
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds fused gorgonia ops for the hot spots of a small MLP,
// where gorgonia's own compose of many instructions (each with its
// allocation): the softmax cross-entropy and its gradient, the bias
// added to every row, and ReLU. Each is one tight loop over float32.

// matrixOf returns the float32 values and shape of a matrix value.
func matrixOf(v G.Value) ([]float32, int, int, error) {
	t, ok := v.(tensor.Tensor)
	if !ok || t.Dtype() != tensor.Float32 {
		return nil, 0, 0, fmt.Errorf("want a float32 tensor, got %T", v)
	}
	data := t.Data().([]float32)
	s := t.Shape()
	switch len(s) {
	case 2:
		return data, s[0], s[1], nil
	case 1:
		return data, 1, s[0], nil
	}
	return nil, 0, 0, fmt.Errorf("want a matrix or vector, got shape %v", s)
}

func scalarOf(v G.Value) (float32, error) {
	switch x := v.(type) {
	case *G.F32:
		return float32(*x), nil
	case tensor.Tensor:
		if d, ok := x.Data().([]float32); ok && len(d) == 1 {
			return d[0], nil
		}
		if f, ok := x.Data().(float32); ok {
			return f, nil
		}
	}
	return 0, fmt.Errorf("want a float32 scalar, got %T", v)
}

func newMatrix(rows, cols int) (*tensor.Dense, []float32) {
	d := make([]float32, rows*cols)
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(d)), d
}

var (
	matrixType = G.TensorType{Dims: 2, Of: tensor.Float32}
	vectorType = G.TensorType{Dims: 1, Of: tensor.Float32}
)

// base holds the methods that the ops share.
type base struct{ name string }

func (o base) ReturnsPtr() bool      { return false }
func (o base) CallsExtern() bool     { return false }
func (o base) OverwritesInput() int  { return -1 }
func (o base) WriteHash(h hash.Hash) { fmt.Fprint(h, o.name) }
func (o base) Hashcode() uint32 {
	var h uint32 = 2166136261
	for i := range len(o.name) {
		h = (h ^ uint32(o.name[i])) * 16777619
	}
	return h
}
func (o base) String() string { return o.name }

// xentOp is the mean softmax cross-entropy of logits z (rows × k)
// against one-hot y: mean over rows of log Σ exp z − z·y.
type xentOp struct{ base }

func (xentOp) Arity() int { return 2 }
func (xentOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, tensor.Float32)
}
func (xentOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (xentOp) DiffWRT(int) []bool                             { return []bool{true, false} }

func (xentOp) Do(in ...G.Value) (G.Value, error) {
	z, rows, k, err := matrixOf(in[0])
	if err != nil {
		return nil, err
	}
	y, _, _, err := matrixOf(in[1])
	if err != nil {
		return nil, err
	}
	var total float64
	for r := range rows {
		zr, yr := z[r*k:(r+1)*k], y[r*k:(r+1)*k]
		top := slices.Max(zr)
		var sum, picked float64
		for j, v := range zr {
			sum += math.Exp(float64(v - top))
			picked += float64(yr[j]) * float64(v-top)
		}
		total += math.Log(sum) - picked
	}
	return G.NewF32(float32(total / float64(rows))), nil
}

func (o xentOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dz, err := G.ApplyOp(xentGradOp{base{"∂xent"}}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dz, nil}, nil
}

// xentGradOp is the gradient of xentOp in z: (softmax(z) − y)·g/rows.
type xentGradOp struct{ base }

func (xentGradOp) Arity() int { return 3 }
func (xentGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, tensor.Float32, a)
}
func (xentGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}

func (xentGradOp) Do(in ...G.Value) (G.Value, error) {
	z, rows, k, err := matrixOf(in[0])
	if err != nil {
		return nil, err
	}
	y, _, _, err := matrixOf(in[1])
	if err != nil {
		return nil, err
	}
	g, err := scalarOf(in[2])
	if err != nil {
		return nil, err
	}
	out, d := newMatrix(rows, k)
	scale := float64(g) / float64(rows)
	for r := range rows {
		zr, yr, dr := z[r*k:(r+1)*k], y[r*k:(r+1)*k], d[r*k:(r+1)*k]
		top := slices.Max(zr)
		var sum float64
		for j, v := range zr {
			e := math.Exp(float64(v - top))
			dr[j] = float32(e)
			sum += e
		}
		for j := range dr {
			dr[j] = float32((float64(dr[j])/sum - float64(yr[j])) * scale)
		}
	}
	return out, nil
}

// biasOp adds the vector b (k) to every row of z (rows × k).
type biasOp struct{ base }

func (biasOp) Arity() int    { return 2 }
func (biasOp) Type() hm.Type { return hm.NewFnType(matrixType, vectorType, matrixType) }
func (biasOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}
func (biasOp) DiffWRT(int) []bool { return []bool{true, true} }

func (biasOp) Do(in ...G.Value) (G.Value, error) {
	z, rows, k, err := matrixOf(in[0])
	if err != nil {
		return nil, err
	}
	b, _, _, err := matrixOf(in[1])
	if err != nil {
		return nil, err
	}
	out, d := newMatrix(rows, k)
	for r := range rows {
		zr, dr := z[r*k:(r+1)*k], d[r*k:(r+1)*k]
		for j, v := range zr {
			dr[j] = v + b[j]
		}
	}
	return out, nil
}

func (biasOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	db, err := G.Sum(grad, 0)
	if err != nil {
		return nil, err
	}
	return G.Nodes{grad, db}, nil
}

// reluOp is max(0, z).
type reluOp struct{ base }

func (reluOp) Arity() int { return 1 }
func (reluOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (reluOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}
func (reluOp) DiffWRT(int) []bool { return []bool{true} }

func (reluOp) Do(in ...G.Value) (G.Value, error) {
	z, rows, k, err := matrixOf(in[0])
	if err != nil {
		return nil, err
	}
	out, d := newMatrix(rows, k)
	for i, v := range z {
		d[i] = max(v, 0)
	}
	return out, nil
}

func (reluOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dz, err := G.ApplyOp(reluGradOp{base{"∂relu"}}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dz}, nil
}

// reluGradOp passes the gradient g where z > 0.
type reluGradOp struct{ base }

func (reluGradOp) Arity() int { return 2 }
func (reluGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}
func (reluGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return ds[0].(tensor.Shape).Clone(), nil
}

func (reluGradOp) Do(in ...G.Value) (G.Value, error) {
	z, rows, k, err := matrixOf(in[0])
	if err != nil {
		return nil, err
	}
	g, _, _, err := matrixOf(in[1])
	if err != nil {
		return nil, err
	}
	out, d := newMatrix(rows, k)
	g = g[:len(z)]
	for i, v := range z {
		if v > 0 {
			d[i] = g[i]
		}
	}
	return out, nil
}
