package serve

import "testing"

// Version 0 is what the header and Version say where no version runs:
// Publish refuses it (and negative numbers), so that "0" never names a
// model.
func TestAuditPublishVersionZero(t *testing.T) {
	m := NewModels(ModelOptions{Pool: 1, Log: quiet})
	defer m.Close()
	for _, v := range []int64{0, -1} {
		tr := &tracker{}
		if err := m.Publish(newPipe(t, tr, 1, 8), v); err == nil {
			t.Errorf("Publish version %d: nil error; want a refusal (0 means no version)", v)
		}
		if got := m.Version(); got != 0 {
			t.Errorf("after Publish(%d): Version %d; want 0 (none published)", v, got)
		}
		if got, err := m.Acquire(); err == nil {
			got.Release(t.Context())
			t.Errorf("after Publish(%d): Acquire took a version", v)
		}
	}
}
