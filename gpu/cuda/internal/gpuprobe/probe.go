package gpuprobe

// Only os is imported: package skipnogpu must be initialised before
// gorgonia.org/cu, so its imports (and these) must be among cu's.
import "os"

// Missing returns why the machine has no usable NVIDIA GPU device file,
// or "" where it has one.
func Missing() string { return missing("/dev") }

func missing(dev string) string {
	if exists(dev + "/dxg") { // WSL 2
		return ""
	}
	var absent []string
	for _, f := range []string{"nvidiactl", "nvidia0"} {
		if p := dev + "/" + f; !exists(p) {
			absent = append(absent, p)
		}
	}
	if len(absent) == 0 {
		return ""
	}
	why := "no GPU: " + absent[0]
	for _, p := range absent[1:] {
		why += " and " + p
	}
	return why + " missing (no NVIDIA driver device)"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
