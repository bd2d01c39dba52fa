package gpu

import (
	"fmt"
	"math"
	"slices"
)

// kernelSpec is a kernel's arity and the buffers it writes.
type kernelSpec struct {
	bufs, ints, floats int
	writes             []int // indices into Bufs
	check              func(a Args) error
	run                func(v [][]float32, a Args)
}

func need(name string, b Buffer, n int) error {
	if b.len < n {
		return fmt.Errorf("buffer %s has %d values, want %d or more", name, b.len, n)
	}
	return nil
}

// needAll checks that no integer is negative and that each buffer holds
// its size (a size of −1: the product of the integers overflows).
func needAll(a Args, names []string, sizes ...int) error {
	for i, n := range a.Ints {
		if n < 0 {
			return fmt.Errorf("integer argument %d is %d, want 0 or more", i, n)
		}
	}
	for i, n := range sizes {
		if n < 0 {
			return fmt.Errorf("buffer %s: the integer arguments %v overflow its size (more than %d values)", names[i], a.Ints, math.MaxInt)
		}
		if err := need(names[i], a.Bufs[i], n); err != nil {
			return err
		}
	}
	return nil
}

// mul returns x·y of x, y ≥ 0, or −1 where either is negative or the
// product overflows int.
func mul(x, y int) int {
	if x < 0 || y < 0 || (x != 0 && y > math.MaxInt/x) {
		return -1
	}
	return x * y
}

var kernels = map[Kernel]kernelSpec{
	Gemm: {bufs: 3, ints: 5, floats: 2, writes: []int{2},
		check: func(a Args) error {
			m, n, k := a.Ints[0], a.Ints[1], a.Ints[2]
			for i, name := range []string{"transA", "transB"} {
				if f := a.Ints[3+i]; f != 0 && f != 1 {
					return fmt.Errorf("integer argument %d (%s) is %d, want 0 or 1", 3+i, name, f)
				}
			}
			return needAll(a, []string{"A", "B", "C"}, mul(m, k), mul(k, n), mul(m, n))
		},
		run: func(v [][]float32, a Args) {
			gemm(v[0], v[1], v[2], a.Ints[0], a.Ints[1], a.Ints[2], a.Ints[3] != 0, a.Ints[4] != 0, float32(a.Floats[0]), float32(a.Floats[1]))
		}},
	BiasAdd: {bufs: 2, ints: 2, writes: []int{0},
		check: func(a Args) error { return needAll(a, []string{"Y", "b"}, mul(a.Ints[0], a.Ints[1]), a.Ints[1]) },
		run: func(v [][]float32, a Args) {
			rows, cols := a.Ints[0], a.Ints[1]
			y, b := v[0], v[1][:cols]
			for r := range rows {
				row := y[r*cols : (r+1)*cols]
				for j, bj := range b {
					row[j] += bj
				}
			}
		}},
	ColSum: {bufs: 2, ints: 2, writes: []int{1},
		check: func(a Args) error { return needAll(a, []string{"X", "s"}, mul(a.Ints[0], a.Ints[1]), a.Ints[1]) },
		run: func(v [][]float32, a Args) {
			rows, cols := a.Ints[0], a.Ints[1]
			x, s := v[0], v[1][:cols]
			clear(s)
			for r := range rows {
				for j, xj := range x[r*cols : (r+1)*cols] {
					s[j] += xj
				}
			}
		}},
	ReLU: {bufs: 1, ints: 1, writes: []int{0},
		check: func(a Args) error { return needAll(a, []string{"X"}, a.Ints[0]) },
		run: func(v [][]float32, a Args) {
			x := v[0][:a.Ints[0]]
			for i, xi := range x {
				if !(xi > 0) {
					x[i] = 0
				}
			}
		}},
	ReLUGrad: {bufs: 2, ints: 1, writes: []int{0},
		check: func(a Args) error { return needAll(a, []string{"dY", "Y"}, a.Ints[0], a.Ints[0]) },
		run: func(v [][]float32, a Args) {
			n := a.Ints[0]
			d, y := v[0][:n], v[1][:n]
			for i, yi := range y {
				if !(yi > 0) {
					d[i] = 0
				}
			}
		}},
	SoftmaxXent: {bufs: 4, ints: 2, writes: []int{2, 3},
		check: func(a Args) error {
			rows, cols := a.Ints[0], a.Ints[1]
			return needAll(a, []string{"Z", "labels", "dZ", "loss"}, mul(rows, cols), rows, mul(rows, cols), 1)
		},
		run: func(v [][]float32, a Args) { softmaxXent(v[0], v[1], v[2], v[3], a.Ints[0], a.Ints[1]) }},
	Adam: {bufs: 4, ints: 1, floats: 4, writes: []int{0, 2, 3},
		check: func(a Args) error {
			n := a.Ints[0]
			return needAll(a, []string{"W", "G", "M", "V"}, n, n, n, n)
		},
		run: func(v [][]float32, a Args) {
			n := a.Ints[0]
			w, g, m, vv := v[0][:n], v[1][:n], v[2][:n], v[3][:n]
			rate, b1, b2, eps := float32(a.Floats[0]), float32(a.Floats[1]), float32(a.Floats[2]), float32(a.Floats[3])
			for j, wj := range w {
				gj := g[j]
				mj := b1*m[j] + (1-b1)*gj
				vj := b2*vv[j] + (1-b2)*gj*gj
				m[j], vv[j] = mj, vj
				w[j] = wj - rate*mj/(float32(math.Sqrt(float64(vj)))+eps)
			}
		}},
	SumSquares: {bufs: 2, ints: 1, writes: []int{1},
		check: func(a Args) error { return needAll(a, []string{"X", "out"}, a.Ints[0], 1) },
		run: func(v [][]float32, a Args) {
			var s float64
			for _, x := range v[0][:a.Ints[0]] {
				s += float64(x) * float64(x)
			}
			v[1][0] = float32(s)
		}},
	Axpy: {bufs: 2, ints: 1, floats: 1, writes: []int{1},
		check: func(a Args) error { return needAll(a, []string{"X", "Y"}, a.Ints[0], a.Ints[0]) },
		run: func(v [][]float32, a Args) {
			n := a.Ints[0]
			x, y, s := v[0][:n], v[1][:n], float32(a.Floats[0])
			for i, xi := range x {
				y[i] += s * xi
			}
		}},
	Scale: {bufs: 1, ints: 1, floats: 1, writes: []int{0},
		check: func(a Args) error { return needAll(a, []string{"X"}, a.Ints[0]) },
		run: func(v [][]float32, a Args) {
			s := float32(a.Floats[0])
			x := v[0][:a.Ints[0]]
			for i := range x {
				x[i] *= s
			}
		}},
}

// gemm computes C = alpha·op(A)·op(B) + beta·C (see Kernel).
func gemm(a, b, c []float32, m, n, k int, ta, tb bool, alpha, beta float32) {
	for i := range m {
		row := c[i*n : (i+1)*n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
		for p := range k {
			var aip float32
			if ta {
				aip = a[p*m+i]
			} else {
				aip = a[i*k+p]
			}
			if aip == 0 {
				continue
			}
			aip *= alpha
			if tb {
				for j := range row {
					row[j] += aip * b[j*k+p]
				}
			} else {
				bp := b[p*n : (p+1)*n]
				for j, bpj := range bp {
					row[j] += aip * bpj
				}
			}
		}
	}
}

// softmaxXent is the SoftmaxXent kernel, in the arithmetic of steps/mlp.
func softmaxXent(z, labels, dz, loss []float32, rows, cols int) {
	var total float64
	scale := 1 / float64(rows)
	for r := range rows {
		zr, dr := z[r*cols:(r+1)*cols], dz[r*cols:(r+1)*cols]
		top := slices.Max(zr)
		var sum float64
		for j, v := range zr {
			e := math.Exp(float64(v - top))
			dr[j] = float32(e)
			sum += e
		}
		label := int(labels[r])
		if label >= 0 && label < cols {
			total += float64(top) + math.Log(sum) - float64(zr[label])
		}
		for j := range dr {
			y := 0.0
			if j == label {
				y = 1
			}
			dr[j] = float32((float64(dr[j])/sum - y) * scale)
		}
	}
	loss[0] = float32(total / float64(rows))
}
