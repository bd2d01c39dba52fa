package gpuprobe

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMissing(t *testing.T) {
	dev := t.TempDir()
	touch := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dev, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := "no GPU: " + filepath.Join(dev, "nvidiactl") + " and " + filepath.Join(dev, "nvidia0") + " missing (no NVIDIA driver device)"
	if got := missing(dev); got != want {
		t.Errorf("empty /dev: %q; want %q", got, want)
	}
	touch("nvidiactl")
	want = "no GPU: " + filepath.Join(dev, "nvidia0") + " missing (no NVIDIA driver device)"
	if got := missing(dev); got != want {
		t.Errorf("only nvidiactl: %q; want %q", got, want)
	}
	touch("nvidia0")
	if got := missing(dev); got != "" {
		t.Errorf("nvidiactl and nvidia0: %q; want \"\"", got)
	}
	wsl := t.TempDir()
	if err := os.WriteFile(filepath.Join(wsl, "dxg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := missing(wsl); got != "" {
		t.Errorf("WSL's dxg: %q; want \"\"", got)
	}
}
