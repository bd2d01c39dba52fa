package minibatch

import "math/rand/v2"

// seededRand returns the PCG generator (math/rand/v2) of a seeded stage for
// seed and the stream words that tell its uses apart (a pass number; a
// batch's epoch and Seq): the same seed and words give the same numbers in
// every run, and nearby words give unrelated streams. It is the one place
// where this package mixes seeds, for every seeded stage (Shuffle,
// Permute, EasyFirst, Weighted, the splits, NewResampler).
func seededRand(seed uint64, words ...uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, mixWords(words...)))
}

// mixWords folds words into one uint64 with the splitmix64 finaliser:
// h = mix(h ^ w) for each word in turn, from h = 0.
func mixWords(words ...uint64) uint64 {
	var h uint64
	for _, w := range words {
		h = splitmix64(h ^ w)
	}
	return h
}

// splitmix64 is the finaliser of the splitmix64 generator: a bijection of
// uint64 whose outputs for nearby inputs look unrelated.
func splitmix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
