package persisttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/penstock-ml/penstock/persist"
)

// ReplaceInManifest replaces the first from by to in the compacted
// manifest of the model saved in dir (persist.SaveDir), seals it again
// (persist.ResealManifest) and writes it back. It is an error if the
// manifest does not contain from.
func ReplaceInManifest(dir, from, to string) error {
	path := filepath.Join(dir, persist.ManifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return fmt.Errorf("persisttest: %s: %w", path, err)
	}
	if !strings.Contains(compact.String(), from) {
		return fmt.Errorf("persisttest: the manifest has no %s: %s", from, b)
	}
	sealed, err := persist.ResealManifest([]byte(strings.Replace(compact.String(), from, to, 1)))
	if err != nil {
		return err
	}
	return os.WriteFile(path, sealed, 0o644)
}
