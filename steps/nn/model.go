package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Layer is one dense layer, y = x·W + B for a row x of In values: W is
// In × Out, row-major (W[i*Out+j] joins input i to output j), and B has
// Out values.
type Layer struct {
	In, Out int
	W, B    []float32
}

// clone returns l with its own slices.
func (l Layer) clone() Layer {
	l.W, l.B = slices.Clone(l.W), slices.Clone(l.B)
	return l
}

// zeroLike returns a layer of l's shape, all zeros.
func zeroLike(l Layer) Layer {
	return Layer{In: l.In, Out: l.Out, W: make([]float32, len(l.W)), B: make([]float32, len(l.B))}
}

// Model is the learned state of a network built from a Spec: its layers,
// the optimizer's state (Adam's moments or SGD's velocity, and the count
// of steps) and the random generator of its dropout masks (a PCG, seeded
// with Spec.Seed). It is all Go memory on the host: an implementation
// runs the network wherever it likes (gorgonia on the CPU, a device) and
// keeps the weights in, or copies them back to, Layers.
//
// A Model is not safe for concurrent use, except that Layers may be read
// by many goroutines while nothing calls Init, Update, Mask, SetSpec or
// Reset.
type Model struct {
	spec   Spec
	layers []Layer // nil until Init
	m, v   []Layer // Adam's first and second moments; SGD's velocity in m
	steps  int64
	pcg    rand.PCG
	rng    *rand.Rand // over pcg
}

// NewModel returns a model of spec, not yet initialised (see Init), or
// spec's Validate error.
func NewModel(spec Spec) (*Model, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	m := &Model{spec: spec.Clone()}
	m.reseed()
	return m, nil
}

// pcgStream is the PCG stream of a model's generator: Seed picks the
// sequence, this constant the stream.
const pcgStream = 0x6e6e_6d6c_70 // "nnmlp"

func (m *Model) reseed() {
	m.pcg = *rand.NewPCG(m.spec.Seed, pcgStream)
	m.rng = rand.New(&m.pcg)
}

// Spec returns the model's spec (a copy).
func (m *Model) Spec() Spec { return m.spec.Clone() }

// SetSpec changes the spec. Where the network or its initial weights
// change (Hidden, Activation, Loss, Init or Seed), the learned state is
// dropped and the next fit starts from Init; where the optimizer changes,
// its state is dropped and the weights kept; other changes (the learning
// rate, L2, dropout, …) apply from the next Update, so a fitted model can
// be fine-tuned with another learning rate. It returns spec's Validate
// error and changes nothing then.
func (m *Model) SetSpec(spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	old := m.spec
	m.spec = spec.Clone()
	switch {
	case !old.architecture(spec):
		m.Reset()
	case old.Optimizer != spec.Optimizer:
		m.m, m.v, m.steps = nil, nil, 0
	}
	return nil
}

// Initialized reports whether Init has drawn the weights.
func (m *Model) Initialized() bool { return m.layers != nil }

// Inputs returns the width of the input, 0 before Init.
func (m *Model) Inputs() int {
	if m.layers == nil {
		return 0
	}
	return m.layers[0].In
}

// Outputs returns the width of the output, 0 before Init.
func (m *Model) Outputs() int {
	if m.layers == nil {
		return 0
	}
	return m.layers[len(m.layers)-1].Out
}

// Steps returns the number of Updates since Init.
func (m *Model) Steps() int64 { return m.steps }

// Layers returns the model's layers, Spec().Sizes(Inputs(), Outputs())
// apart, nil before Init. They are the model's own: an implementation
// reads them (or wraps them, without copying, as the weights of its
// network) and Update writes them in place; do not resize them.
func (m *Model) Layers() []Layer { return m.layers }

// Weights returns a deep copy of the layers, nil before Init.
func (m *Model) Weights() []Layer {
	if m.layers == nil {
		return nil
	}
	out := make([]Layer, len(m.layers))
	for i, l := range m.layers {
		out[i] = l.clone()
	}
	return out
}

// Init draws the initial weights of a network of inputs features and
// outputs outputs from the spec's Init and Seed (biases are zero), and
// resets the optimizer and the dropout generator: equal specs and sizes
// give equal weights and, fitted alike, equal models. It returns an error
// where a size is not 1 to MaxUnits.
func (m *Model) Init(inputs, outputs int) error {
	if inputs < 1 || inputs > MaxUnits || outputs < 1 || outputs > MaxUnits {
		return fmt.Errorf("nn: init: %d inputs and %d outputs, want 1 to %d each", inputs, outputs, MaxUnits)
	}
	m.reseed()
	sizes := m.spec.Sizes(inputs, outputs)
	m.layers = make([]Layer, len(sizes)-1)
	for i := range m.layers {
		in, out := sizes[i], sizes[i+1]
		l := Layer{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		switch m.spec.Init {
		case GlorotNormal:
			sd := math.Sqrt(2 / float64(in+out))
			for j := range l.W {
				l.W[j] = float32(sd * m.rng.NormFloat64())
			}
		default:
			limit := math.Sqrt(6 / float64(in+out))
			if m.spec.Init == HeUniform {
				limit = math.Sqrt(6 / float64(in))
			}
			for j := range l.W {
				l.W[j] = float32(limit * (2*m.rng.Float64() - 1))
			}
		}
		m.layers[i] = l
	}
	m.m, m.v, m.steps = nil, nil, 0
	return nil
}

// Reset forgets the learned state: the layers, the optimizer's state and
// the generator's position. The spec stays; the next fit starts from Init.
func (m *Model) Reset() {
	m.layers, m.m, m.v, m.steps = nil, nil, nil, 0
	m.reseed()
}

// Clone returns an independent model in m's state: spec, layers,
// optimizer state and generator state copied, so the two go on alike and
// apart.
func (m *Model) Clone() *Model {
	c := &Model{spec: m.spec.Clone(), steps: m.steps, pcg: m.pcg}
	c.rng = rand.New(&c.pcg)
	cloneAll := func(ls []Layer) []Layer {
		if ls == nil {
			return nil
		}
		out := make([]Layer, len(ls))
		for i, l := range ls {
			out[i] = l.clone()
		}
		return out
	}
	c.layers, c.m, c.v = cloneAll(m.layers), cloneAll(m.m), cloneAll(m.v)
	return c
}

// Mask fills dst with an inverted-dropout mask from the model's
// generator: each value is 0 with probability Spec().Dropout and
// 1/(1−Dropout) otherwise. With Dropout 0 it fills 1s and draws nothing.
// An implementation calls it once per hidden layer and fitted batch, in
// layer order, rows × units values each, so that equal models draw equal
// masks.
func (m *Model) Mask(dst []float32) {
	p := m.spec.Dropout
	if p == 0 {
		for i := range dst {
			dst[i] = 1
		}
		return
	}
	keep := float32(1 / (1 - p))
	for i := range dst {
		if m.rng.Float64() < p {
			dst[i] = 0
		} else {
			dst[i] = keep
		}
	}
}

// Update applies one optimizer step to the layers, in place, for the
// gradients grads of the batch's mean loss (one Layer of gradients per
// layer, of the same shapes; they are read, and the weights' gradients
// gain the L2 term L2·W/rows) over a batch of rows rows. The error names
// a layer whose gradients have the wrong shape; nothing changes then.
func (m *Model) Update(grads []Layer, rows int) error {
	if m.layers == nil {
		return fmt.Errorf("nn: update: the model has no weights yet; call Init first")
	}
	if len(grads) != len(m.layers) {
		return fmt.Errorf("nn: update: %d layers of gradients for %d layers", len(grads), len(m.layers))
	}
	for i, g := range grads {
		l := m.layers[i]
		if len(g.W) != len(l.W) || len(g.B) != len(l.B) {
			return fmt.Errorf("nn: update: layer %d: gradients of %d weights and %d biases, want %d and %d", i, len(g.W), len(g.B), len(l.W), len(l.B))
		}
	}
	if rows < 1 {
		return fmt.Errorf("nn: update: %d rows, want 1 or more", rows)
	}
	if m.m == nil {
		m.m = make([]Layer, len(m.layers))
		for i, l := range m.layers {
			m.m[i] = zeroLike(l)
		}
		if m.spec.Optimizer == Adam {
			m.v = make([]Layer, len(m.layers))
			for i, l := range m.layers {
				m.v[i] = zeroLike(l)
			}
		}
	}
	m.steps++
	s := m.spec
	decay := float32(s.L2 / float64(rows))
	switch s.Optimizer {
	case Adam:
		t := float64(m.steps)
		rate := float32(s.LearningRate * math.Sqrt(1-math.Pow(s.Beta2, t)) / (1 - math.Pow(s.Beta1, t)))
		b1, b2, eps := float32(s.Beta1), float32(s.Beta2), float32(s.Epsilon)
		for i, g := range grads {
			l, mi, vi := m.layers[i], m.m[i], m.v[i]
			adam(l.W, g.W, mi.W, vi.W, decay, rate, b1, b2, eps)
			adam(l.B, g.B, mi.B, vi.B, 0, rate, b1, b2, eps)
		}
	default:
		rate, mu := float32(s.LearningRate), float32(s.Momentum)
		for i, g := range grads {
			l, vi := m.layers[i], m.m[i]
			sgd(l.W, g.W, vi.W, decay, rate, mu)
			sgd(l.B, g.B, vi.B, 0, rate, mu)
		}
	}
	return nil
}

// adam updates w in place: g is w's gradient, m and v the moments, decay
// the L2 factor added to the gradient as decay·w.
func adam(w, g, m, v []float32, decay, rate, b1, b2, eps float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)] // one bounds check
	for j, wj := range w {
		gj := g[j] + decay*wj
		mj := b1*m[j] + (1-b1)*gj
		vj := b2*v[j] + (1-b2)*gj*gj
		m[j], v[j] = mj, vj
		w[j] = wj - rate*mj/(float32(math.Sqrt(float64(vj)))+eps)
	}
}

// sgd updates w in place with momentum mu: v is the velocity.
func sgd(w, g, v []float32, decay, rate, mu float32) {
	g, v = g[:len(w)], v[:len(w)]
	for j, wj := range w {
		vj := mu*v[j] - rate*(g[j]+decay*wj)
		v[j] = vj
		w[j] = wj + vj
	}
}
