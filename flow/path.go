package flow

import "strings"

// Path names a node of a step tree: the names of the nodes from the root's
// children down to it. The root itself has the empty path.
//
// A path has two string forms, both derived from it:
//
//   - String joins the names with "/" ("features/scale"): the form that
//     errors (StepError) and statistics (StageStats) print;
//   - Key joins them with "__" ("features__scale"): the form of
//     hyperparameter keys ("features__scale__with_mean" is the parameter
//     "with_mean" of that step).
//
// Node names may contain neither "/" nor "__", may neither begin nor end
// with "_", and are unique among their siblings (NewPipeline and NewUnion
// refuse any other, in every composite of the tree), so both forms are
// unambiguous and ParseKey inverts Key.
type Path []string

// Separators of the two string forms of a Path.
const (
	PathSeparator = "/"
	KeySeparator  = "__"
)

// String returns the names joined by "/"; "" for the root.
func (p Path) String() string { return strings.Join(p, PathSeparator) }

// Key returns the names joined by "__"; "" for the root.
func (p Path) Key() string { return strings.Join(p, KeySeparator) }

// Child returns the path of the child called name. It never shares memory
// with p, so paths can be kept.
func (p Path) Child(name string) Path {
	out := make(Path, len(p)+1)
	copy(out, p)
	out[len(p)] = name
	return out
}

// Equal reports whether p and q name the same node.
func (p Path) Equal(q Path) bool {
	if len(p) != len(q) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// ParseKey returns the path whose Key is key; "" gives the root.
func ParseKey(key string) Path {
	if key == "" {
		return nil
	}
	return strings.Split(key, KeySeparator)
}

// ParsePath returns the path whose String is s; "" gives the root.
func ParsePath(s string) Path {
	if s == "" {
		return nil
	}
	return strings.Split(s, PathSeparator)
}
