package gpu

import "time"

// timeline is the batches' intervals on the device clock: uploads on the
// copy stream, training on the compute stream, each stream's in order.
type timeline struct {
	copies, computes [][2]time.Duration
}

func (t *timeline) add(copyStart, copyEnd, compStart, compEnd time.Duration) {
	t.copies = append(t.copies, [2]time.Duration{copyStart, copyEnd})
	t.computes = append(t.computes, [2]time.Duration{compStart, compEnd})
}

// stats sums the intervals and the copy time covered by compute
// intervals (each stream's intervals are ordered and disjoint).
func (t *timeline) stats() Stats {
	st := Stats{Batches: len(t.computes)}
	if st.Batches == 0 {
		return st
	}
	first, last := t.copies[0][0], t.computes[0][1]
	for _, c := range t.copies {
		st.Copy += c[1] - c[0]
		first = min(first, c[0])
	}
	for _, c := range t.computes {
		st.Compute += c[1] - c[0]
		last = max(last, c[1])
	}
	st.Span = last - first
	var covered time.Duration
	j := 0
	for _, c := range t.copies {
		for j < len(t.computes) && t.computes[j][1] <= c[0] {
			j++
		}
		for k := j; k < len(t.computes) && t.computes[k][0] < c[1]; k++ {
			covered += min(c[1], t.computes[k][1]) - max(c[0], t.computes[k][0])
		}
	}
	if st.Span > 0 {
		st.Busy = float64(st.Compute) / float64(st.Span)
	}
	if st.Copy > 0 {
		st.Overlap = float64(covered) / float64(st.Copy)
	}
	return st
}
