package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestQuickstartLearns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 20_000); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`mean squared error ([0-9.]+) \(variance of y ([0-9.]+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no validation line in:\n%s", out.String())
	}
	mse, _ := strconv.ParseFloat(m[1], 64)
	variance, _ := strconv.ParseFloat(m[2], 64)
	if mse > variance/50 {
		t.Errorf("validation MSE %v; want under a fiftieth of the variance %v\n%s", mse, variance, out.String())
	}
	// The statistics' tables: the source and each stage a row, the
	// replicated stage with its 2 replicas.
	for _, want := range []string{`(?m)^bottleneck: `, `(?m)^(\d+\s+)?\(source\)\s+1\s`, `(?m)^(\d+\s+)?standardize\s+1\s`, `(?m)^(\d+\s+)?expand\s+2\s`} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("output lacks %s:\n%s", want, out.String())
		}
	}
}
