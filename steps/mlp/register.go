package mlp

import "github.com/penstock-ml/penstock/persist"

// Register registers the Classifier and the Regressor in r, at version 1,
// as "mlp.Classifier" and "mlp.Regressor". Package mlp registers them in
// persist.Default when it is imported; call Register for a registry of
// your own (persist.NewRegistry).
//
// What each saves: its hyperparameters (Params: the nn.Spec), its columns
// (and a Classifier's classes and WithProba), and what it learned (see
// MarshalState). A loaded model is not set up: the run that sets it up
// builds its networks from the loaded weights.
func Register(r *persist.Registry) error {
	for _, t := range []persist.Type{
		{Name: classifierName, Version: 1, Of: (*Classifier)(nil), New: stateNewClassifier},
		{Name: regressorName, Version: 1, Of: (*Regressor)(nil), New: stateNewRegressor},
	} {
		if err := r.Register(t); err != nil {
			return err
		}
	}
	return nil
}

func init() {
	if err := Register(persist.Default); err != nil {
		panic(err) // a bug of this package: its names are its own
	}
}
