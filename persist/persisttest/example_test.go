package persisttest_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/penstock-ml/penstock/persist"
	"github.com/penstock-ml/penstock/persist/persisttest"
	"github.com/penstock-ml/penstock/steps"
)

// An edited manifest, sealed again, gets past the checksum to the step's
// own checks: a scaler saved without centring loads with it.
func ExampleReplaceInManifest() {
	dir, _ := os.MkdirTemp("", "persisttest")
	defer os.RemoveAll(dir)
	model := filepath.Join(dir, "model")
	s, _ := steps.NewStandardScaler(steps.WithMean(false))
	if err := persist.SaveDir(model, s); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(persisttest.ReplaceInManifest(model, `"with_mean":{"bool":false}`, `"with_mean":{"bool":true}`))
	fmt.Println(persisttest.ReplaceInManifest(model, `"no such":1`, `"x":2`) != nil)
	m, err := persist.LoadDir(model)
	fmt.Println(err, m.Step.(*steps.StandardScaler).Params()["with_mean"])
	// Output:
	// <nil>
	// true
	// <nil> true
}
