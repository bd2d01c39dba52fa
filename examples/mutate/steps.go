package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
	"github.com/penstock-ml/penstock/steps"
)

// linear is a dense layer: out = W·in + b, W a row per output.
type linear struct {
	w [][]float32
	b []float32
}

func newLinear(rng *rand.Rand, in, out int) linear {
	l := linear{w: make([][]float32, out), b: make([]float32, out)}
	scale := 1 / math.Sqrt(float64(in))
	for k := range l.w {
		l.w[k] = make([]float32, in)
		for j := range l.w[k] {
			l.w[k][j] = float32(rng.NormFloat64() * scale)
		}
	}
	return l
}

func (l linear) forward(in, out []float32) {
	for k, w := range l.w {
		s := l.b[k]
		for j, v := range in {
			s += w[j] * v
		}
		out[k] = s
	}
}

// backward adds the gradient of the loss in l's parameters to g, for the
// input in and the gradient gout of the loss in the output, and writes the
// gradient in the input to gin (when not nil).
func (l linear) backward(in, gout, gin []float32, g linear) {
	for i := range gin {
		gin[i] = 0
	}
	for k, gk := range gout {
		for j, v := range in {
			g.w[k][j] += gk * v
			if gin != nil {
				gin[j] += gk * l.w[k][j]
			}
		}
		g.b[k] += gk
	}
}

// step takes a gradient step of size rate on l with g (summed over rows
// rows), and zeroes g.
func (l linear) step(g linear, rate float32, rows int) {
	for k := range l.w {
		for j := range l.w[k] {
			l.w[k][j] -= rate * g.w[k][j] / float32(rows)
			g.w[k][j] = 0
		}
		l.b[k] -= rate * g.b[k] / float32(rows)
		g.b[k] = 0
	}
}

func (l linear) zero() linear {
	z := linear{w: make([][]float32, len(l.w)), b: make([]float32, len(l.b))}
	for k := range z.w {
		z.w[k] = make([]float32, len(l.w[k]))
	}
	return z
}

func (l linear) clone() linear {
	c := linear{w: make([][]float32, len(l.w)), b: slices.Clone(l.b)}
	for k := range c.w {
		c.w[k] = slices.Clone(l.w[k])
	}
	return c
}

// autoencoder learns a code of the pixels without labels: a linear
// encoder to code values and a linear decoder back, fitted by mini-batch
// SGD on the squared reconstruction error. Transform returns the code.
// After pre-training it becomes a classifier (Mutate) that keeps the
// encoder.
type autoencoder struct {
	code int
	rate float32
	seed uint64
	enc  linear // code × 64
	dec  linear // 64 × code
}

var _ flow.Mutator = (*autoencoder)(nil)

func (a *autoencoder) init(cols int) {
	if a.enc.w == nil {
		rng := rand.New(rand.NewPCG(a.seed, 1))
		a.enc, a.dec = newLinear(rng, cols, a.code), newLinear(rng, a.code, cols)
	}
}

func (a *autoencoder) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "pixels")
	if err != nil {
		return err
	}
	a.init(x.Cols)
	ge, gd := a.enc.zero(), a.dec.zero()
	z, r := make([]float32, a.code), make([]float32, x.Cols)
	gz := make([]float32, a.code)
	for i := range x.Rows {
		in := x.Row(i)
		a.enc.forward(in, z)
		a.dec.forward(z, r)
		for j := range r {
			r[j] -= in[j] // the gradient of ½‖r − x‖² in r
		}
		a.dec.backward(z, r, gz, gd)
		a.enc.backward(in, gz, nil, ge)
	}
	a.dec.step(gd, a.rate, x.Rows)
	a.enc.step(ge, a.rate, x.Rows)
	return nil
}

// loss returns the mean squared reconstruction error per pixel of b.
func (a *autoencoder) loss(b flow.Batch) (float64, error) {
	x, err := minibatch.Features(b, "pixels")
	if err != nil {
		return 0, err
	}
	z, r := make([]float32, a.code), make([]float32, x.Cols)
	var sum float64
	for i := range x.Rows {
		a.enc.forward(x.Row(i), z)
		a.dec.forward(z, r)
		for j, v := range x.Row(i) {
			d := float64(r[j] - v)
			sum += d * d
		}
	}
	return sum / float64(x.Rows*x.Cols), nil
}

func (a *autoencoder) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	if a.enc.w == nil {
		return flow.Batch{}, fmt.Errorf("autoencoder: transform before fit")
	}
	return minibatch.MapRows(ctx, b, "pixels", "code", a.code, a.enc.forward)
}

// Mutate returns the classifier that the autoencoder becomes: a copy of
// its encoder, to fine-tune, under a softmax head of 10 classes.
func (a *autoencoder) Mutate() (flow.Step, error) {
	if a.enc.w == nil {
		return nil, fmt.Errorf("autoencoder: mutate before pre-training")
	}
	rng := rand.New(rand.NewPCG(a.seed, 2))
	return &classifier{enc: a.enc.clone(), head: newLinear(rng, a.code, 10), rate: 0.05}, nil
}

// classifier is an encoder under a softmax head, both fitted by
// mini-batch SGD on the cross-entropy of the labels "digit". Transform
// returns the class probabilities "proba".
type classifier struct {
	enc, head linear
	rate      float32
}

func (c *classifier) Fit(_ context.Context, b flow.Batch) error {
	x, err := minibatch.Features(b, "pixels")
	if err != nil {
		return err
	}
	y, err := minibatch.LabelsInt64(b, "digit")
	if err != nil {
		return err
	}
	ge, gh := c.enc.zero(), c.head.zero()
	code := len(c.enc.w)
	z, p, gz := make([]float32, code), make([]float32, len(c.head.w)), make([]float32, code)
	for i, label := range y {
		if label < 0 || label >= int64(len(p)) {
			return fmt.Errorf("classifier: row %d has label %d, want 0 to %d", i, label, len(p)-1)
		}
		c.enc.forward(x.Row(i), z)
		c.probs(z, p)
		p[label]-- // p − onehot(label): the gradient in the logits
		c.head.backward(z, p, gz, gh)
		c.enc.backward(x.Row(i), gz, nil, ge)
	}
	c.head.step(gh, c.rate, x.Rows)
	c.enc.step(ge, c.rate, x.Rows)
	return nil
}

func (c *classifier) probs(z, p []float32) {
	c.head.forward(z, p)
	steps.Softmax(p)
}

func (c *classifier) Transform(ctx context.Context, b flow.Batch) (flow.Batch, error) {
	code := len(c.enc.w)
	return minibatch.MapRows(ctx, b, "pixels", "proba", len(c.head.w), func(x, p []float32) {
		z := make([]float32, code)
		c.enc.forward(x, z)
		c.probs(z, p)
	})
}
