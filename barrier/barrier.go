package barrier

import "fmt"

// Kind is the barrier after a stage. The zero value is InOrder.
type Kind uint8

const (
	InOrder Kind = iota
	OutOfOrder
	Joiner
)

// String returns "in-order", "out-of-order" or "joiner", and for a value
// that is none of them (not Valid) "barrier.Kind(n)".
func (k Kind) String() string {
	switch k {
	case InOrder:
		return "in-order"
	case OutOfOrder:
		return "out-of-order"
	case Joiner:
		return "joiner"
	}
	return fmt.Sprintf("barrier.Kind(%d)", uint8(k))
}

// Ordered reports whether batches leave a barrier of this kind in sequence
// order.
func (k Kind) Ordered() bool { return k != OutOfOrder }

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool { return k <= Joiner }
