// Package hparams holds hyperparameters: their values, their
// distributions and search spaces, and the reading and writing of both on
// a tree of steps.
//
// # Keys
//
// A hyperparameter is addressed by the Key of its step's path and its
// name, joined by "__": "mlp__hidden" is the parameter "hidden" of the
// step "mlp"; "features__scale__with_mean" is "with_mean" of the step
// "scale" in the composite "features" (see flow.Path). A parameter of the
// root step is its bare name. Names follow flow's rules for node names
// (not empty, no "__" or "/", neither beginning nor ending with "_"), so a
// key names one parameter and Values.Nested and FromNested convert between
// the flat form and a tree of maps.
//
// Values are float64, int, bool or string (see Type). Convert turns other
// Go numbers into these: an int where a float is wanted, a float where an
// int is wanted when it is a whole number; nothing else is converted.
//
// # Steps
//
// A step takes part through two small capabilities, found by type
// assertion: Tunable (Params and SetParams: its parameters by bare name)
// and Spacer (Space: its own default space). A composite whose choice of
// children is itself a hyperparameter (a ChooseOneOf's "choice", an
// Optional's "enabled") is a Switch: a flow.Chooser that says, with
// ActiveWhen, which parameter value activates which child.
//
// Get, Set and Gather reach every step through flow.Walk, so a composite
// of any package takes part with no code of its own beyond flow.Composite:
//
//   - Get returns the parameters of the steps that run, as the tree is
//     configured now;
//   - Set validates every value first (an unknown key is an error that
//     lists the valid keys; a value of the wrong type or outside the
//     declared distribution is one that names the key and the
//     distribution), then sets them, restoring the steps already set if a
//     step's SetParams refuses: all or nothing;
//   - Gather collects the Spaces of all the steps that some configuration
//     of the Switches can make run, keys prefixed with their paths.
//
// Set changes steps in place: do not call it while the tree runs (tune a
// flow.Copy for each trial instead). Get, Set and Gather call only the
// steps' Params, SetParams, Space, Children, Active and ActiveWhen.
//
// # Distributions and spaces
//
// A Distribution samples from a *rand.Rand (NewRand seeds a PCG, so a seed
// gives the same draws everywhere), says whether it Contains a value, lists
// its values where it is finite (for grid search), and gives its density
// (PDF or PMF) and, over numbers, its bounds, mean and standard deviation.
// Fixed, Boolean, Choice, PriorityChoice, WeightedChoice, IntRange,
// Uniform, LogUniform, Normal, TruncatedNormal, LogNormal, Quantized and
// Mixture are provided; a distribution built with impossible arguments is
// reported by Validate, naming the argument, and refused by Gather and by
// Space.Check, Sample, Grid and Override.
//
// A Space maps keys to distributions. It is conditional where the tree is:
// Gather makes the keys under a Switch's child Conditional on the Switch's
// parameter, and a step may make its own parameters conditional on one
// another (When). Space.Sample draws a Switch's parameter first, then only
// the keys that apply, so a sample has exactly the keys that the
// configured tree reads: Set of a sample, then Get, gives the sample back
// where every parameter has a distribution. Space.Grid enumerates only
// active combinations (a choice between a branch of 3 values and one of 2
// is 5 combinations). Space.Override narrows a space from outside; it
// refuses unknown keys and distributions that leave the declared ones, so
// that Set accepts whatever the narrowed space gives.
//
// # Concurrency and cost
//
// Distributions and Spaces are not changed by their methods and may be
// shared between goroutines; a *rand.Rand and a step tree may not. Get,
// Set and Gather cost one walk of the tree and a map per parameter;
// Sample costs one draw per key that applies and a sort of the keys;
// Grid yields a new Values per combination.
package hparams
