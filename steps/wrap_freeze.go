package steps

import "github.com/penstock-ml/penstock/flow"

// This file holds Freeze: a step that stops learning.

// Freeze returns n frozen: its options with flow.FitEpochs(0) added, so
// that no fit fits its step — the runners treat the stage as one that
// only transforms (its Fit is never called), and so do a Pipeline used as
// a step and the composites of this package (see flow.Node.Fits). Its
// learned state stays as it is. Freeze a step when it is built:
//
//	steps.Freeze(flow.Named("encoder", enc))
//
// or in place after a phase (pre-training), with flow.MutateNode:
//
//	p2, err := flow.MutateNode(p, flow.Path{"model", "encoder"},
//		func(n flow.Node) (flow.Node, error) { return steps.Freeze(n), nil })
//
// Unfreeze with n.WithOptions(flow.FitEpochs(k)) (the later option wins).
//
// A frozen step inside a replicated stage (flow.Replicas on a
// sub-pipeline or metastep) is shared by the replicas with its learned
// state, like a step that learns nothing: fitting does not reach it.
func Freeze(n flow.Node) flow.Node { return n.WithOptions(flow.FitEpochs(0)) }
