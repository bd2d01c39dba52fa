package hparams

import "github.com/penstock-ml/penstock/flow"

// Tunable is a step with hyperparameters. Get, Set and Gather find it by
// type assertion on every node of a tree (see flow.Walk).
//
// Params returns the current value of every parameter of the step, keyed
// by its bare name (a name is not empty, contains neither "__" nor "/",
// and neither begins nor ends with "_", like a node's name, so that keys
// are unambiguous); the map is the caller's. Its values are float64, int,
// bool or string (or other Go numbers, read as Convert reads them).
//
// SetParams sets some of them: p holds names that Params returns, each
// value converted to the parameter's Type (its declared distribution's, or
// else its current value's) and checked against the declared distribution
// (see Spacer). SetParams sets all of p or, returning an error, none of
// it. It is not called while the step runs (see flow.Runner: a step
// belongs to one run at a time; tune a Copy).
type Tunable interface {
	Params() Values
	SetParams(p Values) error
}

// Spacer is a Tunable step with a default search space: a distribution
// for some or all of its parameters, keyed by bare name (see Space; a
// Conditional's Key is a bare name too). Space returns a map that is the
// caller's. Set refuses values outside it; Gather collects it; a user
// narrows it with Space.Override.
type Spacer interface {
	Space() Space
}

// Switch is a composite whose choice of children is one of its own
// hyperparameters: a ChooseOneOf whose parameter "choice" names the branch
// that runs, an Optional whose parameter "enabled" says whether its child
// runs. Its Space must give a distribution to each parameter that
// ActiveWhen names.
//
// ActiveWhen returns the parameter that decides whether the child called
// name is active, and the values of it for which the child is; param ""
// means the child is always active. It agrees with Active: Active(name)
// is true exactly when Params()[param] is one of values, and Get, Set and
// Gather return an error where it does not.
//
// Gather makes the keys under each child conditional on that parameter,
// so Space.Sample draws the choice first and then only the chosen
// branch's keys, and Space.Grid counts only active combinations.
type Switch interface {
	flow.Chooser
	Tunable
	ActiveWhen(child string) (param string, values []any)
}
