package flow

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

type allocatorKey struct{}

// WithAllocator returns a context that carries mem as the run's allocator.
// The runners put their Runner.Allocator in the context that every step
// receives, so that a checked allocator given to the runner sees every byte
// that steps allocate.
func WithAllocator(ctx context.Context, mem memory.Allocator) context.Context {
	return context.WithValue(ctx, allocatorKey{}, mem)
}

// Allocator returns the allocator that ctx carries (see WithAllocator), or
// memory.DefaultAllocator. Steps allocate what they return with it.
func Allocator(ctx context.Context) memory.Allocator {
	if mem, ok := ctx.Value(allocatorKey{}).(memory.Allocator); ok && mem != nil {
		return mem
	}
	return memory.DefaultAllocator
}
