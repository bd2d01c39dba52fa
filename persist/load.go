package persist

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// Model is a loaded model: its step tree, rebuilt, and the extra blobs
// saved with it (WithExtra). The step is not set up: a Runner sets it up
// before its first batch (see flow.Setupper).
type Model struct {
	Step  flow.Step
	Extra map[string][]byte
}

// Pipeline returns the model's step as a *flow.Pipeline, what a Runner
// runs, or an error naming the step's type where it is not one.
func (m *Model) Pipeline() (*flow.Pipeline, error) {
	p, ok := m.Step.(*flow.Pipeline)
	if !ok {
		return nil, fmt.Errorf("persist: the saved step is a %T, not a *flow.Pipeline; use Model.Step", m.Step)
	}
	return p, nil
}

// decodeManifest refuses a manifest over the limits of size and nesting
// (a scan of its bytes), verifies its checksum (verifyManifest), and only
// then parses and checks it.
func decodeManifest(b []byte, lim Limits) (*manifest, error) {
	if int64(len(b)) > lim.MaxManifestBytes {
		return nil, fmt.Errorf("%w: the manifest has %d bytes, over the limit of %d (Limits.MaxManifestBytes)", ErrLimit, len(b), lim.MaxManifestBytes)
	}
	if err := jsonDepth(b, 2*lim.MaxDepth+8); err != nil {
		return nil, err
	}
	if err := verifyManifest(b); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, ManifestName, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s: data after the JSON document", ErrFormat, ManifestName)
	}
	if err := checkManifest(&m, lim); err != nil {
		return nil, err
	}
	return &m, nil
}

// jsonDepth refuses a JSON document nested deeper than max (arrays and
// objects), before it is decoded: the manifest's tree is nested in it, two
// levels per step.
func jsonDepth(b []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: %s is nested deeper than %d levels (the step tree passes Limits.MaxDepth)", ErrLimit, ManifestName, max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// fetchFunc returns the bytes of the blob sum, declared as ref; it
// checks that it has ref.Size bytes (fewer: truncated).
type fetchFunc func(sum string, ref blobRef) ([]byte, error)

// load checks the types of m against the registry, fetches and verifies
// every blob, decodes every tensor, and only then builds the tree, so that
// nothing is built from a file that fails a check.
func load(m *manifest, fetch fetchFunc, c config) (*Model, error) {
	if err := checkTypes(m.Root, c.reg); err != nil {
		return nil, err
	}
	blobs := make(map[string][]byte, len(m.Blobs))
	for _, sum := range slices.Sorted(maps.Keys(m.Blobs)) {
		ref := m.Blobs[sum]
		b, err := fetch(sum, ref)
		if err != nil {
			return nil, fmt.Errorf("%w: blob %s%s: %w", ErrFormat, ref.Path, blobUsers(m, sum), err)
		}
		if int64(len(b)) != ref.Size {
			return nil, fmt.Errorf("%w: blob %s%s has %d bytes, the manifest says %d", ErrFormat, ref.Path, blobUsers(m, sum), len(b), ref.Size)
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); got != sum {
			return nil, fmt.Errorf("%w: blob %s%s: checksum mismatch: its SHA-256 is %s (corrupt)", ErrFormat, ref.Path, blobUsers(m, sum), got)
		}
		blobs[sum] = b
	}
	l := loader{c: c, blobs: blobs}
	if err := l.decodeStates(m.Root, nil); err != nil {
		return nil, err
	}
	root, err := l.build(m.Root, nil)
	if err != nil {
		return nil, err
	}
	if _, err := hparams.Get(root); err != nil {
		return nil, fmt.Errorf("%w: the loaded tree's hyperparameters: %w", ErrFormat, err)
	}
	out := &Model{Step: root}
	for name, sum := range m.Extra {
		if out.Extra == nil {
			out.Extra = map[string][]byte{}
		}
		out.Extra[name] = bytes.Clone(blobs[sum]) // not the caller's bytes
		if out.Extra[name] == nil {
			out.Extra[name] = []byte{}
		}
	}
	return out, nil
}

// checkTypes checks that every type of the tree is registered, in a
// version that is not older than the saved one; the error lists every
// unknown type at once, and the registered ones.
func checkTypes(root *nodeJSON, reg *Registry) error {
	var unknown []string
	var newer error
	var visit func(n *nodeJSON, path flow.Path)
	visit = func(n *nodeJSON, path flow.Path) {
		t, ok := reg.Lookup(n.Type)
		switch {
		case !ok:
			if !slices.Contains(unknown, n.Type) {
				unknown = append(unknown, n.Type)
			}
		case n.Version > t.Version && newer == nil:
			newer = fmt.Errorf("%w: %s was saved by version %d of %s; this program registers version %d: update it",
				ErrNewerFormat, stepName(path), n.Version, n.Type, t.Version)
		}
		for _, ch := range n.Children {
			visit(ch, path.Child(ch.Name))
		}
	}
	visit(root, nil)
	if len(unknown) > 0 {
		quoted := make([]string, len(unknown))
		for i, u := range unknown {
			quoted[i] = fmt.Sprintf("%q", u)
		}
		return fmt.Errorf("%w %s (registered: %s); register the types (persist.Registry.Register, or the package's Register function) before loading",
			ErrUnknownType, strings.Join(quoted, ", "), strings.Join(reg.Names(), ", "))
	}
	return newer
}

type loader struct {
	c      config
	blobs  map[string][]byte
	states map[*nodeJSON]*StateReader
}

// decodeStates decodes the state of every node of the tree.
func (l *loader) decodeStates(n *nodeJSON, path flow.Path) error {
	if l.states == nil {
		l.states = map[*nodeJSON]*StateReader{}
	}
	r := &StateReader{version: n.Version, scalars: n.Scalars, tensors: map[string]tensor{}}
	if r.scalars == nil {
		r.scalars = map[string]scalar{}
	}
	for _, name := range slices.Sorted(maps.Keys(n.Tensors)) {
		ref := n.Tensors[name]
		t, err := decodeTensor(name, l.blobs[ref.Blob], dtype(ref.DType), ref.Shape, l.c.mem, l.c.lim.MaxTensorBytes)
		if err != nil {
			return fmt.Errorf("%w: %s (%s): tensor %q (blob %s): %w", ErrFormat, stepName(path), n.Type, name, ref.Blob, err)
		}
		r.tensors[name] = t
	}
	l.states[n] = r
	for _, ch := range n.Children {
		if err := l.decodeStates(ch, path.Child(ch.Name)); err != nil {
			return err
		}
	}
	return nil
}

// build builds the step of n and its children, bottom up.
func (l *loader) build(n *nodeJSON, path flow.Path) (flow.Step, error) {
	t, _ := l.c.reg.Lookup(n.Type) // checked by checkTypes
	where := fmt.Sprintf("%s (%s)", stepName(path), n.Type)
	var children []flow.Node
	for _, ch := range n.Children {
		s, err := l.build(ch, path.Child(ch.Name))
		if err != nil {
			return nil, err
		}
		settings, _ := ch.Settings.settings() // checked by checkManifest
		children = append(children, flow.NamedWith(ch.Name, s, settings))
	}
	params := hparams.Values{}
	for name, s := range n.Params {
		params[name], _ = s.param() // checked by checkManifest
	}
	state := l.states[n]
	spec := Spec{Type: n.Type, Version: n.Version, Params: params, Children: children, State: state}
	step, err := guarded(func() (flow.Step, error) { return t.New(spec) })
	if err == nil && isNil(step) {
		err = errors.New("its Type.New returned nil")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: build: %w", ErrFormat, where, err)
	}
	if got, want := reflect.TypeOf(step), reflect.TypeOf(t.Of); got != want {
		return nil, fmt.Errorf("persist: %s: build: New returned a %v, want a %v (the registered type)", where, got, want)
	}
	if err := sameChildren(step, n); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFormat, where, err)
	}
	if len(params) > 0 {
		tu, ok := step.(hparams.Tunable)
		if !ok {
			return nil, fmt.Errorf("%w: %s has saved hyperparameters %v but is not hparams.Tunable", ErrFormat, where, params.Keys())
		}
		if _, err := guarded(func() (flow.Step, error) { return nil, tu.SetParams(params) }); err != nil {
			return nil, fmt.Errorf("%w: %s: hyperparameters: %w", ErrFormat, where, err)
		}
	}
	if t.SaveState == nil {
		st, ok := step.(Stater)
		switch {
		case ok:
			if _, err := guarded(func() (flow.Step, error) { return nil, st.UnmarshalState(state) }); err != nil {
				return nil, fmt.Errorf("%w: %s: state: %w", ErrFormat, where, err)
			}
		case len(state.Names()) > 0:
			return nil, fmt.Errorf("%w: %s has saved state %v but is not a persist.Stater", ErrFormat, where, state.Names())
		}
	}
	return step, nil
}

// sameChildren checks that the built step has the saved children, by
// name and in order.
func sameChildren(step flow.Step, n *nodeJSON) error {
	c, ok := step.(flow.Composite)
	if !ok {
		if n.Composite {
			return errors.New("saved as a composite, but its type builds a leaf")
		}
		return nil
	}
	if !n.Composite {
		return errors.New("saved as a leaf, but its type builds a composite")
	}
	got := c.Children()
	if len(got) != len(n.Children) {
		return fmt.Errorf("built with %d children, saved with %d", len(got), len(n.Children))
	}
	for i, ch := range got {
		if ch.Name != n.Children[i].Name {
			return fmt.Errorf("child %d is %q, saved as %q", i, ch.Name, n.Children[i].Name)
		}
	}
	return nil
}

// guarded calls fn, turning a panic into an error: New, SetParams and
// UnmarshalState are user code that reads untrusted values.
func guarded(fn func() (flow.Step, error)) (s flow.Step, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

// blobUsers names, for the error about blob sum, what it holds: the
// tensors of the steps that name it and the extra blobs, as
// " (tensor "mean" of step "scale", steps.StandardScaler)".
func blobUsers(m *manifest, sum string) string {
	var users []string
	var visit func(n *nodeJSON, path flow.Path)
	visit = func(n *nodeJSON, path flow.Path) {
		for _, name := range slices.Sorted(maps.Keys(n.Tensors)) {
			if n.Tensors[name].Blob == sum {
				users = append(users, fmt.Sprintf("tensor %q of %s, %s", name, stepName(path), n.Type))
			}
		}
		for _, ch := range n.Children {
			visit(ch, path.Child(ch.Name))
		}
	}
	if m.Root != nil {
		visit(m.Root, nil)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Extra)) {
		if m.Extra[name] == sum {
			users = append(users, fmt.Sprintf("extra %q", name))
		}
	}
	if len(users) == 0 {
		return ""
	}
	return " (" + strings.Join(users, "; ") + ")"
}

// stepName names the node at path in errors.
func stepName(path flow.Path) string {
	if len(path) == 0 {
		return "the root step"
	}
	return fmt.Sprintf("step %q", path)
}

func isNil(s flow.Step) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
