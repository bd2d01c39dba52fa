package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/penstock-ml/penstock/queue"
)

// A producer and two workers linked by a bounded queue: the producer owns
// the queue and closes it; the workers stop at io.EOF.
func Example() {
	ctx := context.Background()
	q := queue.New[int](2)
	g := queue.NewGroup(ctx)
	g.Go(func(ctx context.Context) error {
		defer q.Close()
		for i := 1; i <= 10; i++ {
			if err := q.Put(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	sums := make([]int, 2)
	g.GoN(2, func(ctx context.Context, w int) error {
		for {
			v, err := q.Get(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			sums[w] += v
		}
	}, nil)
	if err := g.Wait(); err != nil {
		fmt.Println(err)
	}
	fmt.Println(sums[0] + sums[1])
	// Output: 55
}
