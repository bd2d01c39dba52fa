package persist

import (
	"encoding"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// Stater is a step that declares its learned state: what it has learned
// (weights, statistics, the position of its random generator) and the
// configuration that its Params do not hold (column names, a number of
// classes), written as named tensors and scalars. There is no reflection
// over a step's fields: what MarshalState does not write is not saved.
//
// MarshalState writes the state to w; it is called on a step that is not
// running (as Copy is) and must not change it. UnmarshalState reads it
// back into a step that Type.New built and whose Params Load has set,
// and checks it (a tensor of the wrong length, a scalar out of range) so
// that a loaded step is as valid as a fitted one; it is called before the
// step is used, never concurrently with another method.
//
// A step whose state cannot be written as it is (a device context, a C
// handle) writes what rebuilds it (the weights, on the host) and
// re-acquires the rest in Setup (flow.Setupper): a loaded step is not set
// up, and the runners set every step up before its first batch.
type Stater interface {
	MarshalState(w *StateWriter) error
	UnmarshalState(r *StateReader) error
}

// MaxNameBytes bounds the name of a tensor, a scalar or an extra blob.
const MaxNameBytes = 256

func checkName(what, name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) {
		return fmt.Errorf("%s name %q: want 1 to %d bytes of UTF-8", what, name, MaxNameBytes)
	}
	return nil
}

// dtype is the element type of a tensor.
type dtype string

const (
	dtFloat32 dtype = "float32"
	dtFloat64 dtype = "float64"
	dtInt64   dtype = "int64"
	dtString  dtype = "utf8"
)

// width returns the bytes of one element; 0 for strings.
func (d dtype) width() int64 {
	switch d {
	case dtFloat32:
		return 4
	case dtFloat64, dtInt64:
		return 8
	}
	return 0
}

func (d dtype) valid() bool {
	switch d {
	case dtFloat32, dtFloat64, dtInt64, dtString:
		return true
	}
	return false
}

// tensor is a named tensor of a step's state: a flat slice ([]float32,
// []float64, []int64 or []string) and its shape.
type tensor struct {
	dtype dtype
	shape []int64
	data  any
}

func (t tensor) len() int64 {
	switch d := t.data.(type) {
	case []float32:
		return int64(len(d))
	case []float64:
		return int64(len(d))
	case []int64:
		return int64(len(d))
	case []string:
		return int64(len(d))
	}
	return 0
}

// elements returns the number of elements of shape, or -1 where it
// overflows.
func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return -1
		}
		n *= d
	}
	return n
}

// StateWriter collects a step's state for MarshalState: named scalars,
// kept in the manifest, and named tensors, each stored as an Arrow IPC
// stream compressed with zstd. A name is used once per step (scalars and
// tensors share the names). The methods keep the first mistake (an
// invalid or repeated name, a shape that does not match the data), which
// Save reports; they never fail otherwise. Tensors are not copied: the
// slices must not change until Save returns.
type StateWriter struct {
	scalars map[string]scalar
	tensors map[string]tensor
	err     error
}

func newStateWriter() *StateWriter {
	return &StateWriter{scalars: map[string]scalar{}, tensors: map[string]tensor{}}
}

// Err returns the first mistake made with w, or nil.
func (w *StateWriter) Err() error { return w.err }

func (w *StateWriter) claim(name string) bool {
	if w.err != nil {
		return false
	}
	if err := checkName("state", name); err != nil {
		w.err = err
		return false
	}
	_, s := w.scalars[name]
	_, t := w.tensors[name]
	if s || t {
		w.err = fmt.Errorf("state %q is written twice", name)
		return false
	}
	return true
}

func (w *StateWriter) scalar(name string, s scalar) {
	if w.claim(name) {
		w.scalars[name] = s
	}
}

// Int64 writes the scalar name.
func (w *StateWriter) Int64(name string, v int64) { w.scalar(name, scalar{Int: &v}) }

// Uint64 writes the scalar name.
func (w *StateWriter) Uint64(name string, v uint64) { w.scalar(name, scalar{Uint: &v}) }

// Float64 writes the scalar name, exactly (NaN and infinities included).
func (w *StateWriter) Float64(name string, v float64) {
	f := jsonFloat(v)
	w.scalar(name, scalar{Float: &f})
}

// Bool writes the scalar name.
func (w *StateWriter) Bool(name string, v bool) { w.scalar(name, scalar{Bool: &v}) }

// String writes the scalar name.
func (w *StateWriter) String(name string, v string) {
	if !utf8.ValidString(v) && w.err == nil {
		w.err = fmt.Errorf("state %q: the string is not UTF-8; write it with Bytes", name)
		return
	}
	w.scalar(name, scalar{String: &v})
}

// Bytes writes a small binary scalar (it is kept in the manifest, base64
// encoded; write large data as a tensor). It copies v.
func (w *StateWriter) Bytes(name string, v []byte) {
	b := slices.Clone(v)
	if b == nil {
		b = []byte{}
	}
	w.scalar(name, scalar{Bytes: &b})
}

// Binary writes what m.MarshalBinary returns as the scalar name: the
// state of a math/rand/v2 generator (*rand.PCG, *rand.ChaCha8).
func (w *StateWriter) Binary(name string, m encoding.BinaryMarshaler) {
	if w.err != nil {
		return
	}
	b, err := m.MarshalBinary()
	if err != nil {
		w.err = fmt.Errorf("state %q: %T.MarshalBinary: %w", name, m, err)
		return
	}
	w.Bytes(name, b)
}

func (w *StateWriter) tensor(name string, d dtype, data any, n int, shape []int) {
	if !w.claim(name) {
		return
	}
	s := make([]int64, len(shape))
	for i, v := range shape {
		s[i] = int64(v)
	}
	if len(shape) == 0 {
		s = []int64{int64(n)}
	}
	if elements(s) != int64(n) {
		w.err = fmt.Errorf("state %q: shape %v holds %d elements, the data %d", name, shape, elements(s), n)
		return
	}
	w.tensors[name] = tensor{dtype: d, shape: s, data: data}
}

// Float32s writes the tensor name, of the given shape (row-major; default:
// one dimension of len(v)).
func (w *StateWriter) Float32s(name string, v []float32, shape ...int) {
	w.tensor(name, dtFloat32, v, len(v), shape)
}

// Float64s writes the tensor name (see Float32s).
func (w *StateWriter) Float64s(name string, v []float64, shape ...int) {
	w.tensor(name, dtFloat64, v, len(v), shape)
}

// Int64s writes the tensor name (see Float32s).
func (w *StateWriter) Int64s(name string, v []int64, shape ...int) {
	w.tensor(name, dtInt64, v, len(v), shape)
}

// Strings writes the tensor name, a list of UTF-8 strings (an Arrow utf8
// column).
func (w *StateWriter) Strings(name string, v []string) {
	for i, s := range v {
		if !utf8.ValidString(s) {
			if w.err == nil {
				w.err = fmt.Errorf("state %q: string %d is not UTF-8", name, i)
			}
			return
		}
	}
	w.tensor(name, dtString, v, len(v), nil)
}

// StateReader gives UnmarshalState (and Type.New) the state that was
// saved, already checked against its checksums and the load's limits. A
// missing name, or one of another type, is an error that names it and
// what it holds. Each tensor is decoded once, into a slice that is the
// step's to keep (a second read returns the same slice). A StateReader is
// used by one goroutine.
type StateReader struct {
	version int
	scalars map[string]scalar
	tensors map[string]tensor
}

// Version returns the version of the step type that saved the state.
func (r *StateReader) Version() int { return r.version }

// Has reports whether the state has a scalar or tensor called name.
func (r *StateReader) Has(name string) bool {
	_, s := r.scalars[name]
	_, t := r.tensors[name]
	return s || t
}

// Names returns the names of the state's scalars and tensors, sorted.
func (r *StateReader) Names() []string {
	var out []string
	for n := range r.scalars {
		out = append(out, n)
	}
	for n := range r.tensors {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (r *StateReader) get(name, want string) (scalar, error) {
	s, ok := r.scalars[name]
	if !ok {
		if t, ok := r.tensors[name]; ok {
			return s, fmt.Errorf("state %q is a %s tensor, want a %s scalar", name, t.dtype, want)
		}
		return s, fmt.Errorf("state %q is missing (the state has %v)", name, r.Names())
	}
	if s.kind() != want {
		return s, fmt.Errorf("state %q is a %s scalar, want a %s", name, s.kind(), want)
	}
	return s, nil
}

// Int64 reads the scalar name.
func (r *StateReader) Int64(name string) (int64, error) {
	s, err := r.get(name, "int")
	if err != nil {
		return 0, err
	}
	return *s.Int, nil
}

// Int reads the scalar name, written with Int64, as an int.
func (r *StateReader) Int(name string) (int, error) {
	v, err := r.Int64(name)
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt || v < math.MinInt {
		return 0, fmt.Errorf("state %q is %d, which does not fit an int", name, v)
	}
	return int(v), nil
}

// Uint64 reads the scalar name.
func (r *StateReader) Uint64(name string) (uint64, error) {
	s, err := r.get(name, "uint")
	if err != nil {
		return 0, err
	}
	return *s.Uint, nil
}

// Float64 reads the scalar name.
func (r *StateReader) Float64(name string) (float64, error) {
	s, err := r.get(name, "float")
	if err != nil {
		return 0, err
	}
	return float64(*s.Float), nil
}

// Bool reads the scalar name.
func (r *StateReader) Bool(name string) (bool, error) {
	s, err := r.get(name, "bool")
	if err != nil {
		return false, err
	}
	return *s.Bool, nil
}

// String reads the scalar name.
func (r *StateReader) String(name string) (string, error) {
	s, err := r.get(name, "string")
	if err != nil {
		return "", err
	}
	return *s.String, nil
}

// Bytes reads the scalar name (a copy).
func (r *StateReader) Bytes(name string) ([]byte, error) {
	s, err := r.get(name, "bytes")
	if err != nil {
		return nil, err
	}
	return slices.Clone(*s.Bytes), nil
}

// Binary reads the scalar name into u with UnmarshalBinary: a
// math/rand/v2 generator written with StateWriter.Binary.
func (r *StateReader) Binary(name string, u encoding.BinaryUnmarshaler) error {
	b, err := r.Bytes(name)
	if err != nil {
		return err
	}
	if err := u.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("state %q: %T.UnmarshalBinary: %w", name, u, err)
	}
	return nil
}

func (r *StateReader) tensor(name string, want dtype) (tensor, error) {
	t, ok := r.tensors[name]
	if !ok {
		if s, ok := r.scalars[name]; ok {
			return t, fmt.Errorf("state %q is a %s scalar, want a %s tensor", name, s.kind(), want)
		}
		return t, fmt.Errorf("state %q is missing (the state has %v)", name, r.Names())
	}
	if t.dtype != want {
		return t, fmt.Errorf("state %q is a %s tensor, want %s", name, t.dtype, want)
	}
	return t, nil
}

// Shape returns the shape of the tensor name; nil where there is none.
func (r *StateReader) Shape(name string) []int {
	t, ok := r.tensors[name]
	if !ok {
		return nil
	}
	out := make([]int, len(t.shape))
	for i, d := range t.shape {
		out[i] = int(d)
	}
	return out
}

// Float32s reads the tensor name, flat (row-major; see Shape).
func (r *StateReader) Float32s(name string) ([]float32, error) {
	t, err := r.tensor(name, dtFloat32)
	if err != nil {
		return nil, err
	}
	return t.data.([]float32), nil
}

// Float64s reads the tensor name (see Float32s).
func (r *StateReader) Float64s(name string) ([]float64, error) {
	t, err := r.tensor(name, dtFloat64)
	if err != nil {
		return nil, err
	}
	return t.data.([]float64), nil
}

// Int64s reads the tensor name (see Float32s).
func (r *StateReader) Int64s(name string) ([]int64, error) {
	t, err := r.tensor(name, dtInt64)
	if err != nil {
		return nil, err
	}
	return t.data.([]int64), nil
}

// Strings reads the tensor name.
func (r *StateReader) Strings(name string) ([]string, error) {
	t, err := r.tensor(name, dtString)
	if err != nil {
		return nil, err
	}
	return t.data.([]string), nil
}
