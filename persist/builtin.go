package persist

import (
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/minibatch"
)

// builtinTypes are the types that every Registry knows: flow's composites
// and minibatch's step, whose packages do not import persist (so their
// state is written by Type.SaveState, here).
func builtinTypes() []Type {
	return []Type{
		{
			Name: "flow.Pipeline", Version: 1, Of: (*flow.Pipeline)(nil),
			// The pipeline's defaults (only QueueCapacity is one that its
			// stages inherit).
			SaveState: func(s flow.Step, w *StateWriter) error {
				d := s.(*flow.Pipeline).Defaults()
				if d.HasQueueCapacity {
					w.Int64("queue_capacity", int64(d.QueueCapacity))
				}
				return nil
			},
			New: func(spec Spec) (flow.Step, error) {
				var opts []flow.Option
				if spec.State.Has("queue_capacity") {
					n, err := spec.State.Int("queue_capacity")
					if err != nil {
						return nil, err
					}
					opts = append(opts, flow.QueueCapacity(n))
				}
				return flow.NewPipeline(spec.Children, opts...)
			},
		},
		{
			Name: "flow.Union", Version: 1, Of: (*flow.Union)(nil),
			SaveState: func(flow.Step, *StateWriter) error { return nil },
			New: func(spec Spec) (flow.Step, error) {
				return flow.NewUnion(spec.Children...)
			},
		},
		{
			// PackStep's Mem, an allocator, is a resource, not data: it is
			// not saved, and the loaded step allocates from the run's
			// allocator.
			Name: "minibatch.PackStep", Version: 1, Of: (*minibatch.PackStep)(nil),
			SaveState: func(s flow.Step, w *StateWriter) error {
				p := s.(*minibatch.PackStep)
				w.String("out", p.Out)
				w.Strings("cols", p.Cols)
				return nil
			},
			New: func(spec Spec) (flow.Step, error) {
				out, err := spec.State.String("out")
				if err != nil {
					return nil, err
				}
				cols, err := spec.State.Strings("cols")
				if err != nil {
					return nil, err
				}
				if out == "" || len(cols) == 0 {
					return nil, fmt.Errorf("minibatch.PackStep: output %q of %d columns; want a name and at least one column", out, len(cols))
				}
				return &minibatch.PackStep{Out: out, Cols: cols}, nil
			},
		},
	}
}
