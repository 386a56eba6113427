package cifar

import "fmt"

// Kind names a data set.
type Kind string

// The data sets this package reads.
const (
	CIFAR10  Kind = "cifar10"
	CIFAR100 Kind = "cifar100"
)

// DownloadURL is where both data sets are published.
const DownloadURL = "https://www.cs.toronto.edu/~kriz/cifar.html"

// Part is one data file of a split and the number of records it must hold.
type Part struct {
	File    string // file name inside the data set's directory, e.g. "train.bin"
	Records int    // exact record count, > 0
}

// Spec describes the "binary version" of a data set: its files, their record counts and the
// record layout. Official returns the published one; a Spec with smaller counts reads small files
// of the same format (this package's tests do that), through exactly the code Load uses.
type Spec struct {
	Kind    Kind   // names the Sets: "cifar100 train"
	Title   string // for messages: "CIFAR-100"
	Archive string // the published archive: "cifar-100-binary.tar.gz"
	Dir     string // the archive's top directory, holding every file: "cifar-100-binary"
	Train   []Part // training files, concatenated in this order
	Test    []Part // test files, concatenated in this order
	// Names is the file of class names, one per line in label order (trailing blank lines are
	// ignored); it must name exactly Classes classes.
	Names string
	// Coarse is the number of coarse classes when each record starts with a coarse label byte
	// before the label (CIFAR-100: 20 superclasses), 0 when records have the label only. Coarse
	// labels are checked against it, then dropped.
	Coarse int
	// Classes is the number of classes of the label byte (the fine label of CIFAR-100), 1..256.
	Classes int
	// Norm is the customary per-channel normalization of the data set, as widely published: the
	// mean and standard deviation of the official training set's pixels, as Set.Norm computes
	// them, to 4 digits.
	Norm Norm
}

// Official returns the published Spec of kind:
//
//   - CIFAR10: cifar-10-binary.tar.gz holding cifar-10-batches-bin/data_batch_1.bin ...
//     data_batch_5.bin (10000 records each) for training, test_batch.bin (10000) and
//     batches.meta.txt; records are a label byte (0..9) and 3072 pixel bytes.
//   - CIFAR100: cifar-100-binary.tar.gz holding cifar-100-binary/train.bin (50000 records),
//     test.bin (10000) and fine_label_names.txt; records are a coarse label byte (0..19), a fine
//     label byte (0..99) and 3072 pixel bytes.
//
// Each call returns fresh slices, so a caller may edit its copy. An unknown kind is an error.
func Official(kind Kind) (Spec, error) {
	switch kind {
	case CIFAR10:
		train := make([]Part, 5)
		for i := range train {
			train[i] = Part{fmt.Sprintf("data_batch_%d.bin", i+1), 10000}
		}
		return Spec{
			Kind: kind, Title: "CIFAR-10", Archive: "cifar-10-binary.tar.gz", Dir: "cifar-10-batches-bin",
			Train: train, Test: []Part{{"test_batch.bin", 10000}}, Names: "batches.meta.txt",
			Classes: 10,
			Norm:    Norm{Mean: [3]float32{0.4914, 0.4822, 0.4465}, Std: [3]float32{0.2470, 0.2435, 0.2616}},
		}, nil
	case CIFAR100:
		return Spec{
			Kind: kind, Title: "CIFAR-100", Archive: "cifar-100-binary.tar.gz", Dir: "cifar-100-binary",
			Train: []Part{{"train.bin", 50000}}, Test: []Part{{"test.bin", 10000}}, Names: "fine_label_names.txt",
			Coarse: 20, Classes: 100,
			Norm: Norm{Mean: [3]float32{0.5071, 0.4865, 0.4409}, Std: [3]float32{0.2673, 0.2564, 0.2762}},
		}, nil
	}
	return Spec{}, fmt.Errorf("unknown CIFAR data set %q (want %q or %q)", kind, CIFAR10, CIFAR100)
}

// recordSize returns the size in bytes of one record.
func (sp *Spec) recordSize() int {
	if sp.Coarse > 0 {
		return 2 + ImageLen
	}
	return 1 + ImageLen
}

// validate reports a Spec this package cannot read.
func (sp *Spec) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid cifar.Spec %q: %s", sp.Kind, fmt.Sprintf(format, args...))
	}
	switch {
	case sp.Classes < 1 || sp.Classes > 256:
		return bad("Classes %d outside 1..256", sp.Classes)
	case sp.Coarse < 0 || sp.Coarse > 256:
		return bad("Coarse %d outside 0..256", sp.Coarse)
	case len(sp.Train) == 0 || len(sp.Test) == 0:
		return bad("no training or no test files")
	case sp.Archive == "" || sp.Dir == "" || sp.Names == "":
		return bad("Archive, Dir and Names must be set")
	}
	seen := map[string]bool{sp.Names: true}
	for _, p := range sp.parts() {
		if p.File == "" || p.Records < 1 || seen[p.File] {
			return bad("part %q with %d records (file names must be unique and counts > 0)", p.File, p.Records)
		}
		seen[p.File] = true
	}
	return nil
}

// parts returns the training then the test parts.
func (sp *Spec) parts() []Part {
	return append(sp.Train[:len(sp.Train):len(sp.Train)], sp.Test...)
}
