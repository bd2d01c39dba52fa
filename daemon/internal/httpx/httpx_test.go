package httpx_test

import (
	"fmt"
	"testing"

	"github.com/penstock-ml/penstock/daemon/internal/httpx"
)

func TestNoCoding(t *testing.T) {
	for ce, want := range map[string]bool{
		"": true, "identity": true, "Identity": true, " IDENTITY ": true,
		"gzip": false, "identity, gzip": false, "br": false, "identityx": false,
	} {
		if got := httpx.NoCoding(ce); got != want {
			t.Errorf("NoCoding(%q) = %v; want %v", ce, got, want)
		}
	}
}

func ExampleNoCoding() {
	fmt.Println(httpx.NoCoding("Identity"), httpx.NoCoding("gzip"))
	// Output: true false
}
