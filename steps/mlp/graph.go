package mlp

import (
	"errors"
	"fmt"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/penstock-ml/penstock/steps/nn"
)

// buildMu serializes building gorgonia graphs: gorgonia v0.9.18 counts
// hash collisions in unsynchronized package variables and shares constant
// nodes (the zero of Rectify) between graphs while it builds them, so two
// models that build at once race. Running built programs needs no lock.
var buildMu sync.Mutex

// program is one compiled network for batches of a fixed number of rows:
// gorgonia's graphs have static shapes. Its weights are the model's host
// slices (nn.Model.Layers), wrapped without copying, so an update of the
// model is seen by every program; its inputs are tensors that it owns and
// that each run fills.
//
// A fit program computes the loss, the outputs and the gradients of the
// loss in every weight (dropout masks included); a predict program
// computes the outputs only. A program is used by one goroutine at a time.
type program struct {
	rows int
	vm   G.VM

	x     []float32   // the input tensor's values, rows × inputs
	y     []float32   // fit: the one-hot labels or the targets, rows × outputs
	masks [][]float32 // fit with dropout: one mask per hidden layer, rows × units

	out   *G.Node   // the logits or predictions, rows × outputs
	cost  *G.Node   // fit: the batch's mean loss
	grads []*G.Node // fit: per layer, the gradients of W then B
}

// newTensor returns a rows × cols float32 tensor over data (allocated when
// nil) and its values.
func newTensor(data []float32, rows, cols int) (*tensor.Dense, []float32) {
	if data == nil {
		data = make([]float32, rows*cols)
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data)), data
}

// build compiles the network of spec over layers for batches of rows
// rows: a fit program where fit, else a predict program.
func build(spec nn.Spec, layers []nn.Layer, rows int, fit bool) (p *program, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	defer func() { // gorgonia reports some misuse by panicking
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("gorgonia: %v", r)
		}
	}()
	g := G.NewGraph()
	p = &program{rows: rows}
	inputs := layers[0].In
	outputs := layers[len(layers)-1].Out

	xt, xs := newTensor(nil, rows, inputs)
	p.x = xs
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(rows, inputs), G.WithName("x"), G.WithValue(xt))
	args := G.Nodes{x}
	var params G.Nodes
	h := x
	for i, l := range layers {
		wt, _ := newTensor(l.W, l.In, l.Out)
		w := G.NewMatrix(g, tensor.Float32, G.WithShape(l.In, l.Out), G.WithName(fmt.Sprint("w", i)), G.WithValue(wt))
		bt := tensor.New(tensor.WithShape(l.Out), tensor.WithBacking(l.B))
		b := G.NewVector(g, tensor.Float32, G.WithShape(l.Out), G.WithName(fmt.Sprint("b", i)), G.WithValue(bt))
		params = append(params, w, b)
		z, err := G.Mul(h, w)
		if err != nil {
			return nil, err
		}
		if z, err = G.ApplyOp(biasOp{base{"+bias"}}, z, b); err != nil {
			return nil, err
		}
		if i < len(layers)-1 {
			if z, err = activate(spec.Activation, z); err != nil {
				return nil, err
			}
			if fit && spec.Dropout > 0 {
				mt, ms := newTensor(nil, rows, l.Out)
				mask := G.NewMatrix(g, tensor.Float32, G.WithShape(rows, l.Out), G.WithName(fmt.Sprint("mask", i)), G.WithValue(mt))
				p.masks = append(p.masks, ms)
				args = append(args, mask)
				if z, err = G.HadamardProd(z, mask); err != nil {
					return nil, err
				}
			}
		}
		h = z
	}
	p.out = h
	outs := G.Nodes{h}
	if fit {
		yt, ys := newTensor(nil, rows, outputs)
		p.y = ys
		y := G.NewMatrix(g, tensor.Float32, G.WithShape(rows, outputs), G.WithName("y"), G.WithValue(yt))
		args = append(args, y)
		if p.cost, err = loss(spec.Loss, h, y); err != nil {
			return nil, err
		}
		if p.grads, err = G.Grad(p.cost, params...); err != nil {
			return nil, err
		}
		outs = append(G.Nodes{p.cost, h}, p.grads...)
	}
	prog, locs, err := G.CompileFunction(g, append(args, params...), outs)
	if err != nil {
		return nil, err
	}
	p.vm = G.NewTapeMachine(g, G.WithPrecompiled(prog, locs))
	return p, nil
}

func activate(a nn.Activation, z *G.Node) (*G.Node, error) {
	switch a {
	case nn.Tanh:
		return G.Tanh(z)
	case nn.Sigmoid:
		return G.Sigmoid(z)
	default:
		return G.ApplyOp(reluOp{base{"relu"}}, z)
	}
}

// loss returns the batch's mean loss of the outputs z against y.
func loss(l nn.Loss, z, y *G.Node) (*G.Node, error) {
	if l == nn.MSE { // ½ mean((z − y)²), as scikit-learn's squared loss
		d, err := G.Sub(z, y)
		if err != nil {
			return nil, err
		}
		sq, err := G.Square(d)
		if err != nil {
			return nil, err
		}
		mean, err := G.Mean(sq)
		if err != nil {
			return nil, err
		}
		return G.Mul(mean, G.NewConstant(float32(0.5)))
	}
	// Cross-entropy through log-sum-exp, one fused op (the library's
	// softmax starts a goroutine per row, and composing it from gorgonia's
	// elementwise ops takes some fifty instructions).
	return G.ApplyOp(xentOp{base{"xent"}}, z, y)
}

// run runs the program once; its outputs are then in the nodes' values
// until the next run.
func (p *program) run() error {
	defer p.vm.Reset()
	return p.vm.RunAll()
}

// values returns the float32 values of a node after a run.
func values(n *G.Node) ([]float32, error) {
	v := n.Value()
	if v == nil {
		return nil, errors.New("gorgonia: no value after the run")
	}
	d, ok := v.Data().([]float32)
	if !ok {
		if f, ok := v.Data().(float32); ok {
			return []float32{f}, nil
		}
		return nil, fmt.Errorf("gorgonia: value of type %T, want float32", v.Data())
	}
	return d, nil
}

// close releases the machine.
func (p *program) close() error { return p.vm.Close() }
