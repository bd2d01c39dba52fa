// Package barrier decides what happens between two stages of a streaming
// run: in what order batches cross, and whether they may cross at all
// before everything upstream is done.
//
//   - InOrder (the zero Kind, the default): the next stage sees batches in
//     sequence order even when replicas finish out of order. A Reorder
//     buffer holds the early finishers; it is bounded.
//   - OutOfOrder: a batch passes on as soon as it is done (first done,
//     first out). Cheapest, and fastest when step times vary.
//   - Joiner: wait for all. In fit mode nothing crosses until every step
//     upstream has been fitted on the whole stream, so the steps after it
//     see data transformed by fully fitted steps (scikit-learn semantics).
//     The runners in package flow carry this out with one pass over the
//     source per Joiner (replaying it, or a spill of it on disk); on the
//     transform path a Joiner orders batches like InOrder.
//
// The types here are generic over the item and know nothing of Arrow, so
// the lower layers stay free of heavy dependencies. They are not safe for
// concurrent use: one goroutine owns each Reorder.
package barrier
