// Package gpu runs the multilayer perceptron of package steps/nn on an
// accelerator, as a flow step (Stage), behind a small Device interface:
// device memory, pinned staging memory, asynchronous copies on a copy
// stream, a fixed set of kernels on a compute stream, and events. CPU is
// a Device written in Go, with which everything here is tested without a
// GPU; package gpu/cuda is the Device on an NVIDIA GPU, built only with
// the build tag cuda (see its documentation for building it and running
// its tests on a GPU machine:
//
//	go test -c -tags cuda -o cuda.test ./gpu/cuda && ./cuda.test -test.v -test.bench .
//
// ). NewBuffer, NewPinned, NewEventHandle and CheckLaunch are for such a
// Device outside this package.
//
// # Thread ownership
//
// A CUDA context is current on one OS thread. Every device call is made
// by an Owner: one goroutine, locked to its OS thread with
// runtime.LockOSThread, that opens the device there and runs, in order,
// the functions given to Submit (queued, not waited for) and Do (waited
// for). A panic in one becomes an error. Close runs what is queued,
// closes the device and ends the goroutine still locked, so that the
// runtime discards its thread; Do and Submit after Close return
// ErrClosed. Submit and Do may be called from any goroutine; from a
// function that runs on the owner's goroutine, Submit queues (after that
// function), and Do and Close, which would wait for the owner and so for
// themselves, return ErrReentrant at once.
//
// # Asynchronous errors
//
// Like CUDA, a Device queues copies and launches and returns at once; an
// operation that fails on its stream makes the device's error sticky,
// returned by later calls. The Stage queues each batch's work with
// Submit, so a device error in batch n is returned by Fit n+1 (or a
// later Fit, if the device had not reached batch n yet) and at the latest
// by Teardown; once returned, every later Fit returns it, and Teardown
// does not return it again.
//
// # Slots
//
// Fit copies the batch's features and labels into a pinned slot, then
// queues, on the copy stream, the upload of the slot (after the slot's
// previous training has read it: a wait on its "consumed" event) and, on
// the compute stream after the upload (a wait on its "uploaded" event),
// the forward and backward passes, the L2 term and the Adam step. Before
// writing a slot the host waits for its previous upload. With Slots(2)
// (the default) the upload of batch n+1 runs while batch n trains; with
// Slots(1) they alternate. A slot's memory is allocated at its first
// batch, at that batch's size, and grown for a larger one. Stats reports
// the compute stream's use (busy) and the fraction of upload time hidden
// behind training (overlap), from events recorded around each batch, on
// the device's one clock.
//
// # Hazards
//
// The CPU device checks every queued access against the happens-before
// order of the streams and the host (vector clocks over queue order,
// events, waits and host synchronisations), not against timing: a kernel
// reading a buffer that an upload on the other stream writes, with no
// event ordering them, is refused with an error wrapping ErrHazard even if
// the upload has long finished. So a test with random latencies that
// passes cannot hide a missing wait, and removing one fails at once. Its
// latencies can be modelled (WithLatency): each operation then takes the
// given time on a virtual clock, and nothing is measured in wall time.
//
// # The model
//
// The Stage implements the subset of nn.Spec with ReLU hidden layers,
// softmax cross-entropy, Adam and L2, without dropout; other values are
// errors naming the field. Its initial weights are nn.Model.Init's, its
// updates nn.Model.Update's arithmetic (L2 added to the gradient, the
// Adam step size computed on the host per step), so it fits as
// steps/mlp's Classifier does with the same spec and seed (to 1e-4 after
// 100 steps on the digits). The learned state lives on the host between
// runs: the weights in the nn.Model, Adam's moments and step count in the
// stage; Setup uploads it and Teardown downloads it.
//
// # Saving
//
// The Stage has steps/mlp's hyperparameters (Params, SetParams, and a
// Space with what the device does not support fixed) and is registered
// in persist.Default as "gpu.Stage" (Register), with steps/mlp's state
// layout (the layers' w<i>, b<i> and Adam's m_… and v_… tensors), so that
// automl and persist (SaveFile, FileSaver, checkpoints) treat it as they
// treat the CPU MLP. A save during a run waits for the queued batches and
// downloads the learned state first; the run goes on. A loaded stage
// opens the CPU device until UseDevice sets another: the device is not
// saved.
package gpu
