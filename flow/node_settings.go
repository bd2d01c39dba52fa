package flow

import "github.com/penstock-ml/penstock/barrier"

// NodeSettings are a node's options as data, for code that stores a tree
// and builds it again (package persist): what Replicas, QueueCapacity,
// Barrier and FitEpochs set. A Has field is false where the option was not
// given (the default applies).
type NodeSettings struct {
	Replicas         int
	QueueCapacity    int
	HasQueueCapacity bool
	Barrier          barrier.Kind
	HasBarrier       bool
	FitEpochs        int
	HasFitEpochs     bool
}

// Settings returns what n's options set, or the error of an impossible
// one (Replicas(-1)).
func (n Node) Settings() (NodeSettings, error) {
	c := configOf(n.opts)
	if c.err != nil {
		return NodeSettings{}, c.err
	}
	return settingsOf(c), nil
}

func settingsOf(c stageConfig) NodeSettings {
	return NodeSettings{
		Replicas: c.replicas, QueueCapacity: c.capacity, HasQueueCapacity: c.capacitySet,
		Barrier: c.barrier, HasBarrier: c.barrierSet, FitEpochs: c.fitEpochs, HasFitEpochs: c.fitSet,
	}
}

// Options returns the options that set s; NamedWith and NewPipeline
// check them.
func (s NodeSettings) Options() []Option {
	var opts []Option
	if s.Replicas != 0 {
		opts = append(opts, Replicas(s.Replicas))
	}
	if s.HasQueueCapacity {
		opts = append(opts, QueueCapacity(s.QueueCapacity))
	}
	if s.HasBarrier {
		opts = append(opts, Barrier(s.Barrier))
	}
	if s.HasFitEpochs {
		opts = append(opts, FitEpochs(s.FitEpochs))
	}
	return opts
}

// NamedWith returns the node called name that runs s with the given
// settings: Named(name, s, settings.Options()...).
func NamedWith(name string, s Step, settings NodeSettings) Node {
	return Named(name, s, settings.Options()...)
}

// Defaults returns the defaults given to NewPipeline (only QueueCapacity
// is inherited by its stages).
func (p *Pipeline) Defaults() NodeSettings { return settingsOf(p.defaults) }
