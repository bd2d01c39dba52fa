// Package automl searches the hyperparameters of a pipeline: one call,
// Search, splits the training data, runs trials — each a configuration
// fitted on the train side of every split and scored on its validation
// side — several at once, records them, and returns the best
// configuration, its scores, the whole history and, when asked, the best
// pipeline refitted on all the training data.
//
// # Trials
//
// The space is the pipeline's own (hparams.Gather: each step declares its
// space), narrowed with Config.Override or replaced by Config.Space. A
// Sampler proposes the trials, step by step: Random, Grid (the exact
// Cartesian product of a finite space, counting only active combinations
// of conditional keys), TPE (Tree-structured Parzen Estimator) and
// SuccessiveHalving (rungs of trials with more and more epochs, each the
// best 1/Eta of the one before). Each fit works on its own copy of the
// pipeline (flow.Copy, then hparams.Set of the trial's values), so the
// configured pipeline is never changed and Config.Parallel trials run at
// once without sharing a step. flow.Copy shares a leaf that is no
// flow.Copier, so a step with hyperparameters (hparams.Tunable) must be
// one: Search refuses, naming it, a pipeline whose copy would share one.
//
// A Splitter makes the folds: Holdout, KFold and WalkForward, the splits
// of package minibatch. A trial's Score is the mean of the metric over the
// folds, and Spread its standard deviation. The metric is made by
// Config.Metric (package metrics), whose HigherIsBetter gives the
// direction of the search.
//
// A trial that fails — an error or a panic in its steps, its metric or its
// callbacks — is recorded as Failed with its error, and the search goes
// on, unless Config.StopOnError.
//
// # Callbacks
//
// Callbacks run at the end of every epoch of every fit, through the
// runner's hook (flow.Runner.OnEpoch), at its consistent cut: LogEpochs
// (a line per epoch), EarlyStopping (stop a fit after N epochs without
// improvement: flow.ErrStop), BestCheckpoint (save the best model of the
// search so far through a Saver) and any CallbackFunc. EpochEnd.Score
// evaluates the validation metric of the model as fitted so far, on a
// copy of the pipeline (the pipeline itself is held by the fit: a run of
// it would fail with flow.ErrInUse), once per epoch end whatever the
// number of callbacks that ask. A TrialEnder hears of every recorded
// trial and can end the search.
//
// # Repositories and resuming
//
// Every finished trial is saved to a Repository: NewMemoryRepository, or
// OpenDir, a directory of JSON files each written atomically (temporary
// file, fsync, link under a unique name that is never replaced). A
// trial's ID hashes its hyperparameters, epochs, sampler step and the
// search's seed. A search started again with the same Study, repository
// and configuration loads the recorded trials, counts them in its budget
// and skips their steps: a search killed after 5 of 10 trials runs exactly
// the 5 others. Trials running when a search is cancelled are not
// recorded. Two searches sharing a directory never overwrite each other's
// files; a repository holding the study's trials made under another
// configuration is refused (ErrMismatch). The interface is two methods,
// Save and Trials, so that a SQL database can implement it.
//
// Searches of one study on one repository (the same value, or
// DirRepositories of one directory) that run at once in this process
// share the study: each step is claimed under the study's lock before it
// is proposed, so every trial has its own step; a trial that one records
// joins the others' histories (what their samplers see, and their
// budget, Config.Trials, which counts the study's trials recorded and
// running); a sampler that waits for a rung waits for the other searches'
// trials too. A search returns when it has nothing left to run, without
// the trials that the others still run. One of another configuration is
// refused (ErrMismatch). A Repository value that is not comparable (a
// struct holding a slice, say) is not recognised, nor are searches in
// other processes: two of them sharing a directory may record trials at
// one step, so give each its own Study.
//
// # Summary
//
// Config.Progress gets a progress bar where it is a terminal (a character
// device), a line per trial otherwise, and at the end the table of trials
// (Result.WriteTable, text/tabwriter); Config.CSV names a CSV file of the
// trials written at the end (Result.WriteCSV).
//
// # Ownership, concurrency and cost
//
// Search reads each side of each fold once and keeps its batches
// (reference counted; the copies the split makes come from the split's
// allocator, minibatch.WithAllocator) until it returns, so that trials
// read them independently through their own minibatch.Memory: memory is
// the training data once, plus what the running fits hold. A trial costs
// one fit and one scoring run per fold (plus one scoring run per epoch
// where a callback asks for EpochEnd.Score). Trials run in goroutines
// that Search owns and waits for: none is left when it returns, on
// success, error or cancellation. Samplers are called from one goroutine;
// Callback.Begin and the functions it returns from the trials'
// goroutines (each function by one fit), TrialEnd from one goroutine.
//
// # Caching a shared prefix
//
// Config.Cache (a persist/checkpoint Cache) and Config.CacheBefore (the
// top-level node before which the checkpoint goes) make trials that share
// the pipeline's prefix — the nodes before CacheBefore — with the same
// hyperparameters reuse its fit: each fit of a trial is
// checkpoint.Split(Cache, the trial's copy, CacheBefore).Fit, whose key
// chains the prefix's step types, versions and hyperparameters, the
// module version and the split's data. The first trial on a split fits
// the prefix and stores it with its outputs; the others restore the
// fitted prefix (a new value, which the trial's validation then uses) and
// fit only the suffix on the cached outputs. Validation transforms
// through the checkpoint too (its Transform, keyed also by the prefix's
// fitted state), so the prefix's outputs on each validation side are
// computed once. Scores are those of the uncached search: the restored
// state and the cached outputs are exact. A search over the model's
// hyperparameters alone thus runs the prefix once per split, not once per
// trial and split. Trials running at once that miss the same entry both
// fit the prefix (one store is kept). Every prefix step must be
// registered in the Cache's persist registry.
//
// The cached path has no end-of-epoch cut at which the whole pipeline can
// be seen (after a hit, the prefix is restored only when the suffix's fit
// has ended): Search refuses a Cache with Callbacks or with a
// Runner.OnEpoch, with a configuration error; so early stopping and the
// per-epoch callbacks are for uncached searches. Trial.EpochsRun is then
// the epochs read. The sampler's epochs (SuccessiveHalving) work: the
// repeated training data is part of the key, so each epoch count has its
// entries. Config.Refit fits uncached.
package automl
