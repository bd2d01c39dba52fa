package persist

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// encoded is a saved model before it is written: the manifest and the
// blobs, by path, in a fixed order.
type encoded struct {
	manifest []byte
	paths    []string          // the blobs' paths, sorted
	blobs    map[string][]byte // by path
}

// encode walks the tree of root (flow.Walk) and returns its saved form.
func encode(root flow.Step, c config) (*encoded, error) {
	if root == nil {
		return nil, errors.New("persist: save: nil step")
	}
	m := &manifest{Format: Format, Version: FormatVersion, Blobs: map[string]blobRef{}}
	nodes := map[string]*nodeJSON{} // by path key
	type job struct {
		name string
		t    tensor
		node *nodeJSON
		blob []byte
		err  error
	}
	var jobs []*job
	err := flow.Walk(root, func(v flow.Visit) error {
		where := fmt.Sprintf("step %q (%T)", v.Path, v.Node.Step)
		t, ok := c.reg.TypeOf(v.Node.Step)
		if !ok {
			return fmt.Errorf("%w: %s is not registered; register its type (persist.Registry.Register), e.g. with its package's Register function", ErrUnknownType, where)
		}
		n := &nodeJSON{Name: v.Node.Name, Type: t.Name, Version: t.Version}
		if v.Depth > 0 {
			s, err := v.Node.Settings()
			if err != nil {
				return fmt.Errorf("%s: node settings: %w", where, err)
			}
			if n.Settings, err = settingsToJSON(s); err != nil {
				return fmt.Errorf("%s: node settings: %w", where, err)
			}
		}
		if tu, ok := v.Node.Step.(hparams.Tunable); ok {
			params := tu.Params()
			if len(params) > 0 {
				n.Params = map[string]scalar{}
			}
			for name, val := range params {
				s, err := paramScalar(val)
				if err != nil {
					return fmt.Errorf("%s: parameter %q: %w", where, name, err)
				}
				n.Params[name] = s
			}
		}
		w := newStateWriter()
		var err error
		if t.SaveState != nil {
			err = t.SaveState(v.Node.Step, w)
		} else if st, ok := v.Node.Step.(Stater); ok {
			err = st.MarshalState(w)
		}
		if err == nil {
			err = w.Err()
		}
		if err != nil {
			return fmt.Errorf("%s: save state: %w", where, err)
		}
		if len(w.scalars) > 0 {
			n.Scalars = w.scalars
		}
		for _, name := range slices.Sorted(maps.Keys(w.tensors)) {
			tt := w.tensors[name]
			if n.Tensors == nil {
				n.Tensors = map[string]tensorRef{}
			}
			jobs = append(jobs, &job{name: name, t: tt, node: n})
		}
		if _, ok := v.Node.Step.(flow.Composite); ok {
			n.Composite = true
		}
		if v.Depth == 0 {
			m.Root = n
		} else {
			parent := nodes[v.Path[:len(v.Path)-1].Key()]
			parent.Children = append(parent.Children, n)
		}
		nodes[v.Path.Key()] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("persist: save: %w", err)
	}
	// Encode the tensors in parallel: compression is the cost of a save.
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			j.blob, j.err = encodeTensor(j.name, j.t, c.mem)
		}()
	}
	wg.Wait()
	e := &encoded{blobs: map[string][]byte{}}
	add := func(data []byte, kind string) string {
		h := sha256.Sum256(data)
		sum := hex.EncodeToString(h[:])
		if _, ok := m.Blobs[sum]; ok {
			return sum // the same bytes are stored once
		}
		path := blobPath(sum, kind)
		e.blobs[path] = data
		m.Blobs[sum] = blobRef{Path: path, Size: int64(len(data))}
		return sum
	}
	for _, j := range jobs {
		if j.err != nil {
			return nil, fmt.Errorf("persist: save: %w", j.err)
		}
		j.node.Tensors[j.name] = tensorRef{DType: string(j.t.dtype), Shape: j.t.shape, Blob: add(j.blob, "arrows")}
	}
	for _, name := range slices.Sorted(maps.Keys(c.extra)) {
		if m.Extra == nil {
			m.Extra = map[string]string{}
		}
		m.Extra[name] = add(c.extra[name], "bin")
	}
	e.paths = slices.Sorted(maps.Keys(e.blobs))
	b, err := json.MarshalIndent(m, "", "  ")
	if err == nil {
		e.manifest, err = sealManifest(b)
	}
	if err != nil {
		return nil, fmt.Errorf("persist: save: manifest: %w", err)
	}
	return e, nil
}
