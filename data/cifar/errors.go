package cifar

// DataError reports a CIFAR data set that is missing or malformed. Its message is one line,
// "path: msg", or "path: member: msg" for a member of a .tar.gz archive, so a command can print it
// as is and map it to a usage exit code with errors.As.
type DataError struct {
	Path   string // the file or directory at fault, as given or joined to the path given to Load
	Member string // the archive member at fault, e.g. "cifar-100-binary/train.bin"; "" outside an archive
	Msg    string // one line, without Path and Member
	Err    error  // the underlying cause, for errors.Is: fs.ErrNotExist when the data set is missing; often nil
}

func (e *DataError) Error() string {
	if e.Member != "" {
		return e.Path + ": " + e.Member + ": " + e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Unwrap returns e.Err.
func (e *DataError) Unwrap() error { return e.Err }
