package mlp

// Option configures a Classifier or a Regressor: which columns it reads
// and what it returns. Options are not hyperparameters: they do not
// change what the model learns.
type Option func(*config)

type config struct {
	features string
	label    string
	proba    bool
}

func configOf(opts []Option) config {
	c := config{features: DefaultFeatures, label: DefaultLabel}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// The default columns.
const (
	DefaultFeatures = "x" // the FixedSizeList<float32> column of X read
	DefaultLabel    = "y" // the column of Y fitted on
)

// The output columns.
const (
	ClassColumn = "class" // int64: a Classifier's predicted class
	ProbaColumn = "proba" // FixedSizeList<float32>: a Classifier's class probabilities, with WithProba
	PredColumn  = "pred"  // float32: a Regressor's prediction
)

// Features sets the tensor column of X that the model reads: a
// FixedSizeList<float32> column (see minibatch.Pack). The default is
// DefaultFeatures.
func Features(column string) Option { return func(c *config) { c.features = column } }

// Label sets the column of Y fitted on: class labels 0 to classes−1 (any
// integer column) for a Classifier, real targets for a Regressor. The
// default is DefaultLabel.
func Label(column string) Option { return func(c *config) { c.label = column } }

// WithProba makes a Classifier also return the class probabilities, the
// softmax of its outputs, as ProbaColumn. A Regressor ignores it.
func WithProba() Option { return func(c *config) { c.proba = true } }
