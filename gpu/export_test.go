package gpu

// DropReuseWait removes the copy stream's wait for a slot's previous
// training before its next upload: the hazard the check must catch.
func DropReuseWait(s *Stage) { s.noReuseWait = true }
