//go:build cuda

package skipnogpu

import (
	"fmt"
	"os"

	"github.com/penstock-ml/penstock/gpu/cuda/internal/gpuprobe"
)

func init() {
	why := gpuprobe.Missing()
	if why == "" || os.Getenv("PENSTOCK_CUDA_EMULATED") == "1" {
		return // a GPU, or .ci/cuda.sh's stand-in for the driver
	}
	if os.Getenv("PENSTOCK_CUDA_REQUIRE") == "1" {
		fmt.Fprintf(os.Stderr, "gpu/cuda: %s, and PENSTOCK_CUDA_REQUIRE=1\nFAIL\n", why)
		os.Exit(1)
	}
	fmt.Printf("gpu/cuda: %s: every test, benchmark and example is skipped\nPASS\n", why)
	os.Exit(0)
}
