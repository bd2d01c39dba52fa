package steps

import (
	"fmt"

	"github.com/penstock-ml/penstock/flow"
	"github.com/penstock-ml/penstock/persist"
)

// This file registers every step of the package with persist, so that a
// tree made of them can be saved and loaded.

// Register registers every step type of the package in r, each at version
// 1, under the name "steps.<Type>". Package steps registers them in
// persist.Default when it is imported; call Register for a registry of
// your own (persist.NewRegistry).
//
// What each saves: its hyperparameters (Params) and, for the steps that
// learn or hold a configuration that Params do not (columns, classes), the
// state written by its MarshalState (see the state_*.go files) or, for the
// steps that learn nothing (SelectColumns, DropColumns, ForEach), their
// columns. The composites save their children, rebuilt by their
// constructors.
func Register(r *persist.Registry) error {
	types := []persist.Type{
		{Name: standardScalerName, Of: (*StandardScaler)(nil), New: stateNewStandardScaler},
		{Name: minMaxScalerName, Of: (*MinMaxScaler)(nil), New: stateNewMinMaxScaler},
		{Name: imputerName, Of: (*Imputer)(nil), New: stateNewImputer},
		{Name: labelEncoderName, Of: (*LabelEncoder)(nil), New: stateNewLabelEncoder},
		{Name: oneHotName, Of: (*OneHot)(nil), New: stateNewOneHot},
		{Name: linearRegressionName, Of: (*LinearRegression)(nil), New: stateNewLinearRegression},
		{Name: logisticName, Of: (*LogisticRegression)(nil), New: stateNewLogisticRegression},
		{Name: "steps.GaussianNoise", Of: (*GaussianNoise)(nil), New: stateNewGaussianNoise},
		{Name: "steps.Window", Of: (*Window)(nil), New: stateNewWindow},
		{
			Name: "steps.SelectColumns", Of: (*SelectColumns)(nil),
			SaveState: func(s flow.Step, w *persist.StateWriter) error {
				w.Strings("columns", s.(*SelectColumns).names)
				return nil
			},
			New: func(spec persist.Spec) (flow.Step, error) {
				names, err := spec.State.Strings("columns")
				if err != nil {
					return nil, err
				}
				return NewSelectColumns(names...)
			},
		},
		{
			Name: "steps.DropColumns", Of: (*DropColumns)(nil),
			SaveState: func(s flow.Step, w *persist.StateWriter) error {
				w.Strings("columns", s.(*DropColumns).names)
				return nil
			},
			New: func(spec persist.Spec) (flow.Step, error) {
				names, err := spec.State.Strings("columns")
				if err != nil {
					return nil, err
				}
				return NewDropColumns(names...)
			},
		},
		{Name: "steps.TrainOnly", Of: (*TrainOnly)(nil), New: registerOne(func(c flow.Node) (flow.Step, error) { return NewTrainOnly(c) })},
		{Name: "steps.TestOnly", Of: (*TestOnly)(nil), New: registerOne(func(c flow.Node) (flow.Step, error) { return NewTestOnly(c) })},
		{Name: "steps.OnY", Of: (*OnY)(nil), New: registerOne(func(c flow.Node) (flow.Step, error) { return NewOnY(c) })},
		{Name: "steps.ExpandDim", Of: (*ExpandDim)(nil), New: registerOne(func(c flow.Node) (flow.Step, error) { return NewExpandDim(c) })},
		{
			Name: "steps.ForEach", Of: (*ForEach)(nil),
			SaveState: func(s flow.Step, w *persist.StateWriter) error {
				w.String("column", s.(*ForEach).column)
				return nil
			},
			New: func(spec persist.Spec) (flow.Step, error) {
				column, err := spec.State.String("column")
				if err != nil {
					return nil, err
				}
				return registerOne(func(c flow.Node) (flow.Step, error) { return NewForEach(column, c) })(spec)
			},
		},
		{
			// "choice" is set from the Params after New.
			Name: "steps.ChooseOneOf", Of: (*ChooseOneOf)(nil),
			New: func(spec persist.Spec) (flow.Step, error) { return NewChooseOneOf(spec.Children...) },
		},
		{
			Name: "steps.Optional", Of: (*Optional)(nil),
			New: registerOne(func(c flow.Node) (flow.Step, error) { return NewOptional(c, true) }),
		},
	}
	for _, t := range types {
		t.Version = 1
		if err := r.Register(t); err != nil {
			return err
		}
	}
	return nil
}

// registerOne returns a Type.New for a composite of one child.
func registerOne(build func(flow.Node) (flow.Step, error)) func(persist.Spec) (flow.Step, error) {
	return func(spec persist.Spec) (flow.Step, error) {
		if len(spec.Children) != 1 {
			return nil, fmt.Errorf("%s: %d children, want 1", spec.Type, len(spec.Children))
		}
		return build(spec.Children[0])
	}
}

func init() {
	if err := Register(persist.Default); err != nil {
		panic(err) // a bug of this package: its names are its own
	}
}
