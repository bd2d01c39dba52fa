package daemon_test

import (
	"fmt"

	"github.com/penstock-ml/penstock/daemon"
)

// A configuration is decoded strictly: a misspelt key is an error that
// names it, and -set style overrides apply before validation.
func ExampleParseConfig() {
	cfg := `{
	  "pipeline": "model.pst",
	  "schema": {"fields": [{"name": "x", "type": "float32"}, {"name": "y", "type": "int64"}],
	             "inputs": ["x"], "labels": ["y"]},
	  "sources": [{"name": "files", "type": "dir", "dir": "/in"}],
	  "checkpoint": {"dir": "/ckpt", "evry": "5s"}
	}`
	_, err := daemon.ParseConfig([]byte(cfg))
	fmt.Println(err)
	c, err := daemon.ParseConfig([]byte(cfg), "checkpoint.evry=", `checkpoint={"dir": "/ckpt", "every": "5s"}`)
	fmt.Println(c.Checkpoint.Every.D(), c.Checkpoint.Keep, err)
	// Output:
	// config: checkpoint.evry: unknown key
	// 5s 3 <nil>
}
