package steps

import (
	"fmt"
	"slices"
	"strings"

	"github.com/penstock-ml/penstock/hparams"
)

// This file holds the hyperparameter checks that the preprocessing steps
// and the linear models share: one function converts and validates the
// values given to a constructor's options and to SetParams against the
// step's default space, so that a step never holds a value that its own
// Space refuses (Set of Get always succeeds).

// convertParams returns p converted to the types of the parameters of a
// step: current holds every parameter's current value (Params), space the
// step's declared distributions. A name that current lacks, a value that
// does not convert to the parameter's type (its distribution's, else its
// current value's) and a value outside its distribution are errors that
// name the step (what, e.g. "steps.StandardScaler"), the parameter and
// what was expected. p itself is not changed.
func convertParams(what string, current hparams.Values, space hparams.Space, p hparams.Values) (hparams.Values, error) {
	out := make(hparams.Values, len(p))
	for _, name := range p.Keys() {
		cur, ok := current[name]
		if !ok {
			return nil, fmt.Errorf("%s: no hyperparameter %q (it has %s)", what, name, strings.Join(current.Keys(), ", "))
		}
		t, _ := hparams.TypeOf(cur)
		d := space[name]
		if d != nil {
			t = d.Type()
		}
		c, err := hparams.Convert(p[name], t)
		if err != nil {
			return nil, fmt.Errorf("%s: hyperparameter %q: %w", what, name, err)
		}
		if d != nil && !d.Contains(c) {
			return nil, fmt.Errorf("%s: hyperparameter %q is %v, outside %v", what, name, c, d)
		}
		out[name] = c
	}
	return out, nil
}

// checkOwnParams validates a freshly configured step's parameters against
// its space: what a constructor calls after applying its options, so that
// an option with an impossible value is the constructor's error.
func checkOwnParams(what string, current hparams.Values, space hparams.Space) error {
	_, err := convertParams(what, current, space, current)
	return err
}

// columnList returns names quoted and joined by ", ".
func columnList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// checkColumnNames returns an error where names is empty (and empty is not
// allowed), holds an empty name or a name twice.
func checkColumnNames(what, role string, names []string, allowEmpty bool) error {
	if len(names) == 0 && !allowEmpty {
		return fmt.Errorf("%s: no %s columns given, want at least one", what, role)
	}
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("%s: %s column %d has an empty name", what, role, i)
		}
		if slices.Index(names, n) != i {
			return fmt.Errorf("%s: %s column %q is given twice", what, role, n)
		}
	}
	return nil
}
