package cifar_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/data/cifar"
	"spottrain/internal/testutil"
)

func TestOfficial(t *testing.T) {
	for _, tc := range []struct {
		kind                      cifar.Kind
		archive, dir, names       string
		train                     []string
		trainRecords, testRecords int
		test                      string
		coarse, classes           int
		mean0, std0               float32
	}{
		{cifar.CIFAR10, "cifar-10-binary.tar.gz", "cifar-10-batches-bin", "batches.meta.txt",
			[]string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
			10000, 10000, "test_batch.bin", 0, 10, 0.4914, 0.2470},
		{cifar.CIFAR100, "cifar-100-binary.tar.gz", "cifar-100-binary", "fine_label_names.txt",
			[]string{"train.bin"}, 50000, 10000, "test.bin", 20, 100, 0.5071, 0.2673},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			sp, err := cifar.Official(tc.kind)
			require.NoError(t, err)
			assert.Equal(t, tc.kind, sp.Kind)
			assert.Equal(t, tc.archive, sp.Archive)
			assert.Equal(t, tc.dir, sp.Dir)
			assert.Equal(t, tc.names, sp.Names)
			assert.Equal(t, tc.coarse, sp.Coarse)
			assert.Equal(t, tc.classes, sp.Classes)
			require.Len(t, sp.Train, len(tc.train))
			for k, p := range sp.Train {
				assert.Equal(t, cifar.Part{File: tc.train[k], Records: tc.trainRecords}, p)
			}
			assert.Equal(t, []cifar.Part{{File: tc.test, Records: tc.testRecords}}, sp.Test)
			assert.Equal(t, tc.mean0, sp.Norm.Mean[0])
			assert.Equal(t, tc.std0, sp.Norm.Std[0])

			// Each call returns fresh slices.
			sp.Train[0].Records = 1
			again, _ := cifar.Official(tc.kind)
			assert.Equal(t, tc.trainRecords, again.Train[0].Records)
		})
	}
	_, err := cifar.Official("cifar1000")
	assert.EqualError(t, err, `unknown CIFAR data set "cifar1000" (want "cifar10" or "cifar100")`)
	_, _, err = cifar.Load(t.TempDir(), "mnist")
	assert.ErrorContains(t, err, `unknown CIFAR data set "mnist"`)
}

// TestLoadLayouts reads each data set from every accepted layout.
func TestLoadLayouts(t *testing.T) {
	layouts := []struct {
		name  string
		write func(t *testing.T, f *fixture, root string) string // returns the path to give Load
	}{
		{"archive", func(t *testing.T, f *fixture, root string) string {
			p := filepath.Join(root, "downloads", "any-name.tgz")
			testutil.WriteFile(t, p, targz(t, f.entries()))
			return p
		}},
		{"dir holding the archive", func(t *testing.T, f *fixture, root string) string {
			testutil.WriteFile(t, filepath.Join(root, f.spec.Archive), targz(t, f.entries()))
			return root
		}},
		{"extracted top dir", func(t *testing.T, f *fixture, root string) string {
			dir := filepath.Join(root, "somewhere")
			f.writeDir(t, dir)
			return dir
		}},
		{"parent of the extracted dir", func(t *testing.T, f *fixture, root string) string {
			f.writeDir(t, filepath.Join(root, f.spec.Dir))
			return root
		}},
		{"extracted dir beside the archive", func(t *testing.T, f *fixture, root string) string {
			f.writeDir(t, filepath.Join(root, f.spec.Dir))
			testutil.WriteFile(t, filepath.Join(root, f.spec.Archive), []byte("not read: the extracted files come first"))
			return root
		}},
	}
	for _, kind := range []cifar.Kind{cifar.CIFAR10, cifar.CIFAR100} {
		for _, l := range layouts {
			t.Run(string(kind)+"/"+l.name, func(t *testing.T) {
				f := newFixture(t, kind)
				train, test, err := f.spec.Load(l.write(t, f, t.TempDir()))
				require.NoError(t, err)
				assert.Equal(t, f.train, train)
				assert.Equal(t, f.test, test)
			})
		}
	}
}

func TestLoadCIFAR100Labels(t *testing.T) {
	// Spelled out for one record: coarse byte then fine byte; the fine label is kept.
	f := newFixture(t, cifar.CIFAR100)
	f.setByte("train.bin", 2, 0, 19)
	f.setByte("train.bin", 2, 1, 99)
	dir := t.TempDir()
	f.writeDir(t, dir)
	train, _, err := f.spec.Load(dir)
	require.NoError(t, err)
	assert.Equal(t, int64(99), train.Labels[2])
	assert.Equal(t, "fine_99", train.ClassNames[99])
	assert.Equal(t, f.files["train.bin"][2*(2+cifar.ImageLen)+2:3*(2+cifar.ImageLen)], train.Images[2*cifar.ImageLen:3*cifar.ImageLen])
}

// TestLoadOfficialCounts goes through Load with the official counts: the tiny files are short.
func TestLoadOfficialCounts(t *testing.T) {
	f := newFixture(t, cifar.CIFAR100)
	archive := filepath.Join(t.TempDir(), "cifar-100-binary.tar.gz")
	testutil.WriteFile(t, archive, targz(t, f.entries()))
	_, _, err := cifar.Load(archive, cifar.CIFAR100)
	// test.bin comes first in the fixture's archive.
	wantDataError(t, err, archive, "cifar-100-binary/test.bin", "3 records, want 10000")
}

func TestLoadNotFound(t *testing.T) {
	const url = "https://www.cs.toronto.edu/~kriz/cifar.html"
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	other := filepath.Join(root, "other") // holds CIFAR-10, not CIFAR-100
	newFixture(t, cifar.CIFAR10).writeDir(t, filepath.Join(other, "cifar-10-batches-bin"))
	for _, tc := range []struct {
		name, path, want string
	}{
		{"NoSuchDir", filepath.Join(root, "data", "cifar100"),
			"CIFAR-100 not found: download cifar-100-binary.tar.gz from " + url + " and put it (or its extracted cifar-100-binary/ folder) in " + filepath.Join(root, "data", "cifar100")},
		{"EmptyDir", empty,
			"CIFAR-100 not found: download cifar-100-binary.tar.gz from " + url + " and put it (or its extracted cifar-100-binary/ folder) in " + empty},
		{"OtherDataSet", other,
			"CIFAR-100 not found: download cifar-100-binary.tar.gz from " + url + " and put it (or its extracted cifar-100-binary/ folder) in " + other},
		{"NoSuchArchive", filepath.Join(root, "cifar-100-binary.tar.gz"),
			"CIFAR-100 not found: download cifar-100-binary.tar.gz from " + url + " and save it as " + filepath.Join(root, "cifar-100-binary.tar.gz")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			train, test, err := cifar.Load(tc.path, cifar.CIFAR100)
			assert.Nil(t, train)
			assert.Nil(t, test)
			wantDataError(t, err, tc.path, "")
			assert.Equal(t, tc.path+": "+tc.want, err.Error())
			assert.True(t, errors.Is(err, fs.ErrNotExist), "errors.Is(%v, fs.ErrNotExist)", err)
		})
	}
	_, _, err := cifar.Load(filepath.Join(root, "data", "cifar10"), cifar.CIFAR10)
	assert.EqualError(t, err, filepath.Join(root, "data", "cifar10")+": CIFAR-10 not found: download cifar-10-binary.tar.gz from "+url+
		" and put it (or its extracted cifar-10-batches-bin/ folder) in "+filepath.Join(root, "data", "cifar10"))
}

// TestLoadBroken covers malformed data sets, in an archive (errors name the archive and the
// member) and extracted (errors name the file).
func TestLoadBroken(t *testing.T) {
	rs100 := 2 + cifar.ImageLen
	cases := []struct {
		name      string
		kind      cifar.Kind
		file      string // the file at fault
		edit      func(f *fixture)
		fragments []string
	}{
		{"Truncated", cifar.CIFAR100, "train.bin",
			func(f *fixture) { f.files["train.bin"] = f.files["train.bin"][:4*rs100+100] },
			[]string{"12396 bytes: 4 whole 3074-byte records and 100 bytes over, want 5 records"}},
		{"Short", cifar.CIFAR100, "test.bin",
			func(f *fixture) { f.files["test.bin"] = f.files["test.bin"][:2*rs100] },
			[]string{"2 records, want 3"}},
		{"Empty", cifar.CIFAR100, "train.bin",
			func(f *fixture) { f.files["train.bin"] = []byte{} },
			[]string{"0 records, want 5"}},
		{"Long", cifar.CIFAR100, "test.bin",
			func(f *fixture) { f.files["test.bin"] = append(f.files["test.bin"], f.files["test.bin"][:rs100]...) },
			[]string{"4 records, want 3"}},
		{"FineLabel", cifar.CIFAR100, "train.bin",
			func(f *fixture) { f.setByte("train.bin", 4, 1, 117) },
			[]string{"train.bin: record 4: fine label 117 out of range 0..99"}},
		{"CoarseLabel", cifar.CIFAR100, "test.bin",
			func(f *fixture) { f.setByte("test.bin", 0, 0, 20) },
			[]string{"test.bin: record 0: coarse label 20 out of range 0..19"}},
		{"Label", cifar.CIFAR10, "data_batch_3.bin",
			func(f *fixture) { f.setByte("data_batch_3.bin", 1, 0, 10) },
			[]string{"data_batch_3.bin: record 1: label 10 out of range 0..9"}},
		{"Label255", cifar.CIFAR10, "test_batch.bin",
			func(f *fixture) { f.setByte("test_batch.bin", 2, 0, 255) },
			[]string{"record 2: label 255 out of range 0..9"}},
		{"TruncatedCIFAR10", cifar.CIFAR10, "data_batch_5.bin",
			func(f *fixture) { f.files["data_batch_5.bin"] = f.files["data_batch_5.bin"][:3000] },
			[]string{"3000 bytes: 0 whole 3073-byte records and 3000 bytes over, want 2 records"}},
		{"MissingName", cifar.CIFAR10, "batches.meta.txt",
			func(f *fixture) { f.files["batches.meta.txt"] = []byte("airplane\nautomobile\n") },
			[]string{"2 class names, want 10"}},
		{"EmptyName", cifar.CIFAR100, "fine_label_names.txt",
			func(f *fixture) {
				f.files["fine_label_names.txt"] = append([]byte("apple\n\n"), f.files["fine_label_names.txt"]...)
			},
			[]string{"line 2: empty class name"}},
	}
	for _, tc := range cases {
		for _, inArchive := range []bool{false, true} {
			name := tc.name + "/extracted"
			if inArchive {
				name = tc.name + "/archive"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, tc.kind)
				tc.edit(f)
				root := t.TempDir()
				var err error
				if inArchive {
					archive := filepath.Join(root, f.spec.Archive)
					testutil.WriteFile(t, archive, targz(t, f.entries()))
					_, _, err = f.spec.Load(archive)
					wantDataError(t, err, archive, f.spec.Dir+"/"+tc.file, tc.fragments...)
				} else {
					f.writeDir(t, filepath.Join(root, f.spec.Dir))
					_, _, err = f.spec.Load(root)
					wantDataError(t, err, filepath.Join(root, f.spec.Dir, tc.file), "", tc.fragments...)
				}
			})
		}
	}
}

// TestLoadBrokenArchive covers archives that are not whole official archives.
func TestLoadBrokenArchive(t *testing.T) {
	f := newFixture(t, cifar.CIFAR100)
	good := targz(t, f.entries())
	// A tar cut inside record 2 of train.bin (the last member), then compressed.
	tarred := tarball(t, f.entries())
	at := bytes.Index(tarred, f.files["train.bin"][:2*cifar.ImageLen])
	require.Positive(t, at)
	cutTar := gzipped(t, tarred[:at+2*(2+cifar.ImageLen)+10])
	without := func(member string) []tarEntry {
		var es []tarEntry
		for _, e := range f.entries() {
			if e.name != member {
				es = append(es, e)
			}
		}
		return es
	}
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-8] ^= 0xff // the gzip trailer: CRC-32, then the size
	for _, tc := range []struct {
		name, member string
		data         []byte
		fragments    []string
	}{
		{"NotGzip", "", []byte("<html>404 Not Found</html>"),
			[]string{"not a gzip file (gzip: invalid header): want cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"}},
		{"EmptyFile", "", nil, []string{"not a gzip file (EOF)"}},
		{"NotTar", "", gzipped(t, bytes.Repeat([]byte("not a tar header "), 100)),
			[]string{"not a tar.gz archive (archive/tar: invalid tar header)"}},
		{"MissingMember", "cifar-100-binary/test.bin", targz(t, without("cifar-100-binary/test.bin")),
			[]string{"missing from the archive: want cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html"}},
		{"MissingNames", "cifar-100-binary/fine_label_names.txt", targz(t, without("cifar-100-binary/fine_label_names.txt")),
			[]string{"missing from the archive"}},
		{"WrongTopDir", "cifar-100-binary/train.bin", targz(t, []tarEntry{{"cifar-10-batches-bin/test.bin", f.files["test.bin"]}}),
			[]string{"missing from the archive"}},
		{"DuplicateMember", "cifar-100-binary/test.bin", targz(t, append(f.entries(), tarEntry{"cifar-100-binary/test.bin", f.files["test.bin"]})),
			[]string{"appears twice in the archive"}},
		{"TruncatedInMember", "cifar-100-binary/train.bin", cutTar,
			[]string{"record 2 of 5: unexpected EOF (truncated or corrupt download?)"}},
		{"TruncatedTrailer", "", good[:len(good)-4],
			[]string{"corrupt or truncated archive after cifar-100-binary/train.bin (unexpected EOF): download cifar-100-binary.tar.gz again"}},
		{"BadChecksum", "", badCRC,
			[]string{"corrupt or truncated archive after cifar-100-binary/train.bin (gzip: invalid checksum): download cifar-100-binary.tar.gz again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "cifar-100-binary.tar.gz")
			testutil.WriteFile(t, archive, tc.data)
			_, _, err := f.spec.Load(archive)
			wantDataError(t, err, archive, tc.member, tc.fragments...)
		})
	}
}

func TestLoadIncompleteDir(t *testing.T) {
	f := newFixture(t, cifar.CIFAR10)
	delete(f.files, "data_batch_4.bin")
	dir := filepath.Join(t.TempDir(), "cifar-10-batches-bin")
	f.writeDir(t, dir)
	_, _, err := f.spec.Load(dir)
	wantDataError(t, err, filepath.Join(dir, "data_batch_4.bin"), "",
		"missing: the CIFAR-10 data set in "+dir+" is incomplete (extract cifar-10-binary.tar.gz there again)")
	assert.True(t, errors.Is(err, fs.ErrNotExist))

	// A directory where a data file should be.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "data_batch_4.bin"), 0o755))
	_, _, err = f.spec.Load(dir)
	wantDataError(t, err, filepath.Join(dir, "data_batch_4.bin"), "", "not a regular file")
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(sp *cifar.Spec)
	}{
		{"NoClasses", func(sp *cifar.Spec) { sp.Classes = 0 }},
		{"TooManyClasses", func(sp *cifar.Spec) { sp.Classes = 257 }},
		{"NegativeCoarse", func(sp *cifar.Spec) { sp.Coarse = -1 }},
		{"NoTrain", func(sp *cifar.Spec) { sp.Train = nil }},
		{"NoRecords", func(sp *cifar.Spec) { sp.Test[0].Records = 0 }},
		{"SameFile", func(sp *cifar.Spec) { sp.Test[0].File = sp.Train[0].File }},
		{"NoDir", func(sp *cifar.Spec) { sp.Dir = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := cifar.Official(cifar.CIFAR100)
			require.NoError(t, err)
			tc.edit(&sp)
			_, _, err = sp.Load(t.TempDir())
			assert.ErrorContains(t, err, `invalid cifar.Spec "cifar100"`)
			var de *cifar.DataError
			assert.False(t, errors.As(err, &de), "a bad Spec is the program's fault, not the data's")
		})
	}
}
