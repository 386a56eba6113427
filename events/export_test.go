package events

// File is the file seam of a Log, for tests.
type File = file

// WrapFile replaces the file of l by wrap(file), to inject failures and count calls.
func WrapFile(l *Log, wrap func(File) File) { l.f = wrap(l.f) }
