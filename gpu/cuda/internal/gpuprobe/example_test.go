package gpuprobe_test

import (
	"fmt"
	"strings"

	"github.com/penstock-ml/penstock/gpu/cuda/internal/gpuprobe"
)

func Example() {
	why := gpuprobe.Missing()
	// Either "" (a GPU's device files exist) or a reason naming them.
	fmt.Println(why == "" || strings.HasPrefix(why, "no GPU: "))
	// Output: true
}
