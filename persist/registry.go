package persist

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/hparams"
)

// Type is a step type that a Registry knows: the name that the format
// stores, the version of the step's saved form, and how to build the step
// again.
type Type struct {
	// Name identifies the type in saved files, "package.Type" by
	// convention ("steps.StandardScaler"): printable ASCII, no spaces, at
	// most 128 bytes. Keep it when the Go type is renamed.
	Name string
	// Version is the version of what the step saves (its Params, its
	// state, its children), 1 or more: raise it when that changes. Load
	// refuses a file saved by a newer version and passes an older one on
	// (Spec.Version, StateReader.Version), for the step to read or refuse.
	Version int
	// Of is a value of the step's Go type (a typed nil pointer will do):
	// Save finds a step's Type by its Go type.
	Of flow.Step
	// New builds a step of this type from what was saved: its Params, its
	// rebuilt children, and its state (see Spec). It configures the step
	// (through the step's own constructor, so that a saved value is
	// checked as a constructor's argument is); Load then sets the Params
	// (hparams.Tunable) and restores the learned state (Stater). A step
	// built by New is not set up (see flow.Setupper).
	New func(Spec) (flow.Step, error)
	// SaveState, when set, writes the state of a step of this type in
	// place of the step's own Stater methods (for a type whose state
	// cannot be written as it is, or that belongs to a package that does
	// not know persist); New then reads it back from Spec.State, and Load
	// calls no UnmarshalState.
	SaveState func(s flow.Step, w *StateWriter) error
}

// Spec is what Type.New gets: a node of a saved tree.
type Spec struct {
	Type    string
	Version int // the version that saved it: at most Type.Version
	// Params are the step's own hyperparameters as saved (bare names);
	// Load sets them after New, with SetParams.
	Params hparams.Values
	// Children are the composite's children, rebuilt, with their names
	// and node settings, in the saved order; nil for a leaf.
	Children []flow.Node
	// State is what MarshalState or Type.SaveState wrote; never nil (empty
	// where nothing was written).
	State *StateReader
}

// Registry maps step type names to their Types, and Go types to names.
// Its methods are safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]Type
	byGo   map[reflect.Type]string
}

// NewRegistry returns a registry that knows flow's composites (Pipeline,
// Union) and minibatch.PackStep; register the others (steps.Register
// registers package steps).
func NewRegistry() *Registry {
	r := &Registry{byName: map[string]Type{}, byGo: map[reflect.Type]string{}}
	for _, t := range builtinTypes() {
		if err := r.Register(t); err != nil {
			panic(err) // a bug in builtinTypes
		}
	}
	return r
}

// Default is the registry that the package's functions use unless given
// another (WithRegistry). Package steps registers its steps in it when it
// is imported.
var Default = NewRegistry()

// MaxTypeName is the longest type name a Registry accepts.
const MaxTypeName = 128

// checkTypeName checks a type name: printable ASCII without spaces.
func checkTypeName(name string) error {
	if name == "" || len(name) > MaxTypeName {
		return fmt.Errorf("type name %q: want 1 to %d bytes", name, MaxTypeName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("type name %q: byte %d is %q; want printable ASCII without spaces", name, i, c)
		}
	}
	return nil
}

// Register adds t. It returns an error for an invalid name, a version
// below 1, a nil Of or New, or a name or Go type that is already
// registered.
func (r *Registry) Register(t Type) error {
	if err := checkTypeName(t.Name); err != nil {
		return fmt.Errorf("persist: register: %w", err)
	}
	switch {
	case t.Version < 1:
		return fmt.Errorf("persist: register %s: version %d, want 1 or more", t.Name, t.Version)
	case t.Of == nil:
		return fmt.Errorf("persist: register %s: Of is nil; give a value of the step's type, e.g. (*T)(nil)", t.Name)
	case t.New == nil:
		return fmt.Errorf("persist: register %s: New is nil", t.Name)
	}
	g := reflect.TypeOf(t.Of)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[t.Name]; ok {
		return fmt.Errorf("persist: register %s: the name is already registered", t.Name)
	}
	if name, ok := r.byGo[g]; ok {
		return fmt.Errorf("persist: register %s: the Go type %v is already registered as %s", t.Name, g, name)
	}
	r.byName[t.Name] = t
	r.byGo[g] = t.Name
	return nil
}

// Lookup returns the Type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.byName[name]
	return t, ok
}

// TypeOf returns the Type of the step s, by its Go type.
func (r *Registry) TypeOf(s flow.Step) (Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	name, ok := r.byGo[reflect.TypeOf(s)]
	if !ok {
		return Type{}, false
	}
	return r.byName[name], true
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownType is wrapped by the error of a Save of a step whose Go type
// is not registered, and of a Load of a type name that is not.
var ErrUnknownType = errors.New("persist: unknown step type")
