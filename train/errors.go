package train

// InputError marks an error caused by what the user gave (a device this machine lacks, a data file
// that is missing, malformed or too short), as opposed to a failure while running: the command
// exits with status 2 for it. Its message is the wrapped error's.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }
