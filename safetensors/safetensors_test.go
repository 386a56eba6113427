package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/safetensors"
)

// f32 encodes float32 values little-endian.
func f32(vs ...float32) []byte {
	b := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func write(t *testing.T, tensors []safetensors.Tensor, md map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, safetensors.Write(&b, tensors, md))
	return b.Bytes()
}

// TestGolden pins the byte layout of a tiny file, computed by hand from the specification:
//
//	header: {"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[],
//	        "data_offsets":[8,16]},"__metadata__":{"k":"v"}}  (one line)
//	        = 1 + 4+15+12+21 + 1 + 4+15+11+22 + 1 + 15+9 + 1 = 132 bytes
//	8 + 132 = 140, padded with 4 spaces to 144: N = 136 = 0x88
//	data:   a = 1.0, 2.0 as F32 (00 00 80 3f, 00 00 00 40), b = 7 as I64; 160 bytes in all.
func TestGolden(t *testing.T) {
	golden := "\x88\x00\x00\x00\x00\x00\x00\x00" +
		`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
		`"b":{"dtype":"I64","shape":[],"data_offsets":[8,16]},` +
		`"__metadata__":{"k":"v"}}    ` +
		"\x00\x00\x80\x3f\x00\x00\x00\x40" +
		"\x07\x00\x00\x00\x00\x00\x00\x00"
	require.Len(t, golden, 160)
	tensors := []safetensors.Tensor{
		{Name: "a", DType: "F32", Shape: []int64{2}, Data: f32(1, 2)},
		{Name: "b", DType: "I64", Shape: nil, Data: []byte{7, 0, 0, 0, 0, 0, 0, 0}},
	}
	assert.Equal(t, golden, string(write(t, tensors, map[string]string{"k": "v"})))

	got, md, err := safetensors.Read(strings.NewReader(golden))
	require.NoError(t, err)
	assert.Equal(t, tensors, got)
	assert.Equal(t, map[string]string{"k": "v"}, md)
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name    string
		tensors []safetensors.Tensor
		md      map[string]string
	}{
		{name: "Empty"},
		{name: "MetadataOnly", md: map[string]string{"format": "pt", "": "empty key", "spec": `{"kind":"lstm"}`}},
		{name: "Kinds", tensors: []safetensors.Tensor{
			// Given out of name order and with odd sizes: the order and the unaligned layout stay.
			{Name: "z.weight", DType: "F32", Shape: []int64{2, 3}, Data: f32(1, 2, 3, 4, 5, 6)},
			{Name: "b", DType: "F16", Shape: []int64{3}, Data: []byte{0, 0x3c, 0, 0x40, 0, 0xc0}},
			{Name: "bf", DType: "BF16", Shape: []int64{1}, Data: []byte{0x80, 0x3f}},
			{Name: "mask", DType: "BOOL", Shape: []int64{1, 1, 1}, Data: []byte{1}},
			{Name: "count", DType: "I64", Data: []byte{42, 0, 0, 0, 0, 0, 0, 0}},
			{Name: "empty", DType: "F64", Shape: []int64{0, 4}, Data: []byte{}},
			{Name: "d", DType: "F64", Shape: []int64{1}, Data: []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
			{Name: "also-empty", DType: "U8", Shape: []int64{5, 0}, Data: []byte{}},
		}, md: map[string]string{"format": "pt", "step": "12"}},
		{name: "OddNames", tensors: []safetensors.Tensor{
			{Name: `quote"back\slash`, DType: "U8", Shape: []int64{1}, Data: []byte{1}},
			{Name: "<html>&amp;", DType: "I8", Shape: []int64{2}, Data: []byte{2, 0xfe}},
			{Name: "ünïcödé 名前", DType: "I32", Shape: []int64{1}, Data: []byte{3, 0, 0, 0}},
			{Name: "tab\tnew\nline", DType: "U16", Shape: []int64{1}, Data: []byte{4, 0}},
		}, md: map[string]string{"ключ": "значение\n\"quoted\""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := write(t, tt.tensors, tt.md)
			n := binary.LittleEndian.Uint64(file)
			assert.Zero(t, (8+n)%8, "the data starts 8-byte aligned")
			assert.Equal(t, byte('{'), file[8])
			assert.NotContains(t, string(file[8:8+n]), `\u003c`, "no HTML escaping")

			got, md, err := safetensors.Read(bytes.NewReader(file))
			require.NoError(t, err)
			if len(tt.tensors) == 0 {
				assert.Empty(t, got)
			} else {
				assert.Equal(t, tt.tensors, got)
			}
			assert.Equal(t, tt.md, md, "no metadata reads back as nil")
		})
	}
}

func TestWriteRejects(t *testing.T) {
	ok := safetensors.Tensor{Name: "ok", DType: "F32", Shape: []int64{1}, Data: f32(1)}
	for _, tt := range []struct {
		name    string
		tensors []safetensors.Tensor
		md      map[string]string
		want    string
	}{
		{name: "EmptyName", tensors: []safetensors.Tensor{ok, {DType: "F32", Shape: []int64{1}, Data: f32(1)}},
			want: "tensor 1 has no name"},
		{name: "ReservedName", tensors: []safetensors.Tensor{{Name: "__metadata__", DType: "U8", Shape: []int64{1}, Data: []byte{1}}},
			want: `tensor 0: the name "__metadata__" is reserved`},
		{name: "DuplicateName", tensors: []safetensors.Tensor{ok, ok}, want: `tensor "ok": name used twice`},
		{name: "NotUTF8Name", tensors: []safetensors.Tensor{{Name: "a\xff", DType: "U8", Shape: []int64{1}, Data: []byte{1}}},
			want: "is not UTF-8"},
		{name: "UnknownDType", tensors: []safetensors.Tensor{{Name: "x", DType: "F128", Shape: []int64{1}, Data: make([]byte, 16)}},
			want: `tensor "x": unknown dtype "F128"`},
		{name: "LowercaseDType", tensors: []safetensors.Tensor{{Name: "x", DType: "f32", Shape: []int64{1}, Data: f32(1)}},
			want: `tensor "x": unknown dtype "f32"`},
		{name: "ShortData", tensors: []safetensors.Tensor{{Name: "x", DType: "F32", Shape: []int64{2, 2}, Data: f32(1, 2, 3)}},
			want: `tensor "x": F32 [2 2] needs 16 bytes, data has 12`},
		{name: "LongData", tensors: []safetensors.Tensor{{Name: "x", DType: "I64", Shape: []int64{}, Data: make([]byte, 16)}},
			want: `tensor "x": I64 [] needs 8 bytes, data has 16`},
		{name: "NegativeDim", tensors: []safetensors.Tensor{{Name: "x", DType: "F32", Shape: []int64{-1}, Data: f32(1)}},
			want: `tensor "x": shape [-1] has a negative dimension`},
		{name: "HugeShape", tensors: []safetensors.Tensor{{Name: "x", DType: "F64", Shape: []int64{1 << 40, 1 << 40}}},
			want: `tensor "x": shape [1099511627776 1099511627776] of F64 is too large`},
		{name: "NotUTF8Metadata", tensors: []safetensors.Tensor{ok}, md: map[string]string{"k": "\xc3"},
			want: `metadata "k": not UTF-8`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			err := safetensors.Write(&b, tt.tensors, tt.md)
			require.Error(t, err)
			assert.Equal(t, "safetensors: ", err.Error()[:len("safetensors: ")])
			assert.Contains(t, err.Error(), tt.want)
			assert.Zero(t, b.Len(), "nothing written")
		})
	}
}

// file assembles a safetensors file from a header, written as given (no padding), and data.
func file(header string, data ...byte) string {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	return string(n[:]) + header + string(data)
}

// entry is a tensor's header entry.
func entry(dtype, shape, offsets string) string {
	return `{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offsets + `}`
}

func TestReadRejects(t *testing.T) {
	one := entry("F32", "[1]", "[0,4]")
	four := []byte{0, 0, 0x80, 0x3f}
	for _, tt := range []struct {
		name, file, want string
	}{
		{name: "Empty", file: "", want: "file ends within the 8-byte header length"},
		{name: "ShortLength", file: "\x02\x00\x00", want: "file ends within the 8-byte header length"},
		{name: "HeaderTooLarge", file: "\x01\xe1\xf5\x05\x00\x00\x00\x00{}", want: "header length 100000001 is over the limit of 100000000 bytes"},
		{name: "HeaderLengthHuge", file: "\xff\xff\xff\xff\xff\xff\xff\xff{}", want: "header length 18446744073709551615 is over the limit"},
		{name: "TruncatedHeader", file: file(`{"a":` + one + `}`)[:20], want: "file ends 12 bytes into the 54-byte header"},
		{name: "EmptyHeader", file: file(""), want: "header does not start with '{'"},
		{name: "LeadingSpace", file: file(` {}`), want: "header does not start with '{'"},
		{name: "NotAnObject", file: file(`["a"]`), want: "header does not start with '{'"},
		{name: "NotUTF8", file: file("{\"\xff\":1}"), want: "header is not UTF-8"},
		{name: "NotJSON", file: file(`{"a":`), want: `header: value of "a": unexpected EOF`},
		{name: "TrailingGarbage", file: file(`{}  x`), want: "data after the JSON object other than spaces"},
		{name: "TrailingNewline", file: file("{}\n"), want: "data after the JSON object other than spaces"},
		{name: "TwoObjects", file: file(`{}{}`), want: "data after the JSON object other than spaces"},
		{name: "DuplicateTensor", file: file(`{"a":`+one+`,"a":`+one+`}`, four...), want: `header: key "a" given twice`},
		{name: "DuplicateEntryKey", file: file(`{"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}}`, four...),
			want: `tensor "a": key "dtype" given twice`},
		{name: "EmptyName", file: file(`{"":`+one+`}`, four...), want: "a tensor has an empty name"},
		{name: "EntryNotObject", file: file(`{"a":[1,2]}`), want: `tensor "a": not a JSON object`},
		{name: "UnknownEntryKey", file: file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offset":0}}`, four...),
			want: `tensor "a": unknown key "offset"`},
		{name: "KeyCase", file: file(`{"a":{"DTYPE":"F32","shape":[1],"data_offsets":[0,4]}}`, four...),
			want: `tensor "a": unknown key "DTYPE"`},
		{name: "NoDType", file: file(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, four...), want: `tensor "a": no dtype`},
		{name: "NoShape", file: file(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, four...), want: `tensor "a": no shape`},
		{name: "NoOffsets", file: file(`{"a":{"dtype":"F32","shape":[1]}}`, four...), want: `tensor "a": no data_offsets`},
		{name: "UnknownDType", file: file(`{"a":`+entry("F31", "[1]", "[0,4]")+`}`, four...), want: `tensor "a": unknown dtype "F31"`},
		{name: "DTypeNotString", file: file(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, four...),
			want: `tensor "a": dtype is not a string: 4`},
		{name: "NegativeDim", file: file(`{"a":`+entry("F32", "[-1]", "[0,4]")+`}`, four...),
			want: `tensor "a": shape is not an array of integers >= 0: [-1]`},
		{name: "FractionalDim", file: file(`{"a":`+entry("F32", "[1.5]", "[0,4]")+`}`, four...),
			want: `tensor "a": shape is not an array of integers >= 0`},
		{name: "NullShape", file: file(`{"a":`+entry("F32", "null", "[0,4]")+`}`, four...),
			want: `tensor "a": shape is not an array of integers >= 0: null`},
		{name: "HugeDim", file: file(`{"a":`+entry("U8", "[9223372036854775808]", "[0,4]")+`}`, four...),
			want: `tensor "a": shape [9223372036854775808] is too large`},
		{name: "ShapeOverflow", file: file(`{"a":`+entry("F64", "[4294967296,4294967296]", "[0,4]")+`}`, four...),
			want: `tensor "a": shape [4294967296 4294967296] of F64 is too large`},
		{name: "OneOffset", file: file(`{"a":`+entry("F32", "[1]", "[4]")+`}`, four...),
			want: `tensor "a": data_offsets is not two integers >= 0: [4]`},
		{name: "NegativeOffset", file: file(`{"a":`+entry("F32", "[1]", "[-4,0]")+`}`, four...),
			want: `tensor "a": data_offsets is not two integers >= 0`},
		{name: "ReversedOffsets", file: file(`{"a":`+entry("F32", "[0]", "[4,0]")+`}`, four...),
			want: `tensor "a": data_offsets [4, 0] are not a range`},
		{name: "SizeMismatch", file: file(`{"a":`+entry("F32", "[2]", "[0,4]")+`}`, four...),
			want: `tensor "a": data_offsets [0, 4] hold 4 bytes, F32 [2] needs 8`},
		{name: "ScalarSizeMismatch", file: file(`{"a":`+entry("F64", "[]", "[0,4]")+`}`, four...),
			want: `tensor "a": data_offsets [0, 4] hold 4 bytes, F64 [] needs 8`},
		{name: "NotFromZero", file: file(`{"a":`+entry("F32", "[1]", "[4,8]")+`}`, append(four, four...)...),
			want: `tensor "a": data_offsets [4, 8] do not start where the previous tensor's data ends (0): a gap or an overlap`},
		{name: "Gap", file: file(`{"a":`+one+`,"b":`+entry("F32", "[1]", "[8,12]")+`}`, make([]byte, 12)...),
			want: `tensor "b": data_offsets [8, 12] do not start where the previous tensor's data ends (4)`},
		{name: "Overlap", file: file(`{"a":`+entry("F32", "[2]", "[0,8]")+`,"b":`+entry("F32", "[1]", "[4,8]")+`}`, make([]byte, 8)...),
			want: `tensor "b": data_offsets [4, 8] do not start where the previous tensor's data ends (8)`},
		{name: "SameRange", file: file(`{"a":`+one+`,"b":`+one+`}`, four...),
			want: `data_offsets [0, 4] do not start where the previous tensor's data ends (4)`},
		{name: "OutOfRange", file: file(`{"a":`+entry("U8", "[1000000000000]", "[0,1000000000000]")+`}`, four...),
			want: "file ends 4 bytes into the data, the header describes 1000000000000"},
		{name: "TruncatedData", file: file(`{"a":`+one+`}`, four[:3]...), want: "file ends 3 bytes into the data, the header describes 4"},
		{name: "TrailingData", file: file(`{"a":`+one+`}`, append(four, 0)...), want: "bytes after the 4 bytes of data the header describes"},
		{name: "DataWithoutTensors", file: file(`{}`, 1), want: "bytes after the 0 bytes of data the header describes"},
		{name: "MetadataNotObject", file: file(`{"__metadata__":"pt"}`), want: `__metadata__: not a JSON object`},
		{name: "MetadataNumber", file: file(`{"__metadata__":{"step":12}}`), want: `__metadata__: value of "step" is not a string: 12`},
		{name: "MetadataNested", file: file(`{"__metadata__":{"spec":{"kind":"lstm"}}}`), want: `__metadata__: value of "spec" is not a string`},
		{name: "MetadataDuplicate", file: file(`{"__metadata__":{"k":"a","k":"b"}}`), want: `__metadata__: key "k" given twice`},
		{name: "MetadataTwice", file: file(`{"__metadata__":{},"__metadata__":{}}`), want: `header: key "__metadata__" given twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tensors, md, err := safetensors.Read(strings.NewReader(tt.file))
			require.Error(t, err)
			assert.ErrorIs(t, err, safetensors.ErrInvalid)
			assert.Contains(t, err.Error(), tt.want)
			assert.Nil(t, tensors)
			assert.Nil(t, md)
		})
	}
}

// TestReadAccepts covers files other writers may produce that the specification allows.
func TestReadAccepts(t *testing.T) {
	// Tensors listed out of data order, no padding, spaces in the JSON, metadata first.
	f := file(`{ "__metadata__" : { } , "b" : `+entry("U8", "[2]", "[4, 6]")+`, "a":`+entry("F32", "[1]", "[0,4]")+` }   `,
		0, 0, 0x80, 0x3f, 7, 8)
	tensors, md, err := safetensors.Read(strings.NewReader(f))
	require.NoError(t, err)
	assert.Equal(t, []safetensors.Tensor{
		{Name: "a", DType: "F32", Shape: []int64{1}, Data: f32(1)},
		{Name: "b", DType: "U8", Shape: []int64{2}, Data: []byte{7, 8}},
	}, tensors, "in data order")
	assert.Equal(t, map[string]string{}, md)
}

func TestReadReaderError(t *testing.T) {
	file := write(t, []safetensors.Tensor{{Name: "a", DType: "F32", Shape: []int64{4}, Data: f32(1, 2, 3, 4)}}, nil)
	boom := errors.New("disk on fire")
	for _, cut := range []int{4, 12, len(file) - 2, len(file)} {
		_, _, err := safetensors.Read(io.MultiReader(bytes.NewReader(file[:cut]), iotest.ErrReader(boom)))
		assert.ErrorIs(t, err, boom, "cut at %d", cut)
		assert.NotErrorIs(t, err, safetensors.ErrInvalid, "cut at %d", cut)
	}
}

// FuzzRead checks that Read never panics, and that whatever it accepts, Write writes again and
// Read reads back the same.
func FuzzRead(f *testing.F) {
	var b bytes.Buffer
	safetensors.Write(&b, []safetensors.Tensor{
		{Name: "lstm.weight_ih_l0", DType: "F32", Shape: []int64{2, 2}, Data: f32(1, 2, 3, 4)},
		{Name: "s", DType: "I64", Data: make([]byte, 8)},
		{Name: "e", DType: "BF16", Shape: []int64{0}, Data: []byte{}},
	}, map[string]string{"format": "pt"})
	f.Add(b.Bytes())
	f.Add([]byte(file(`{"a":`+entry("F32", "[1]", "[0,4]")+`,"__metadata__":{"k":"v"}}`, 0, 0, 0x80, 0x3f)))
	f.Add([]byte(file(`{}`)))
	f.Add([]byte(file(`{"a":`+entry("U8", "[2]", "[0,2]")+`,"b":`+entry("U8", "[1]", "[1,2]")+`}`, 1, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, md, err := safetensors.Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, safetensors.ErrInvalid) {
				t.Fatalf("error of a bytes.Reader that does not wrap ErrInvalid: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := safetensors.Write(&out, tensors, md); err != nil {
			t.Fatalf("Write refuses what Read accepted: %v", err)
		}
		again, md2, err := safetensors.Read(&out)
		if err != nil {
			t.Fatalf("Read refuses what Write wrote: %v", err)
		}
		require.Len(t, again, len(tensors))
		for i := range tensors {
			a, b := tensors[i], again[i]
			if a.Name != b.Name || a.DType != b.DType || !bytes.Equal(a.Data, b.Data) || len(a.Shape) != len(b.Shape) {
				t.Fatalf("tensor %d: %+v became %+v", i, a, b)
			}
			assert.Equal(t, a.Shape, b.Shape)
		}
		if len(md) != len(md2) {
			t.Fatalf("metadata %v became %v", md, md2)
		}
		for k, v := range md {
			assert.Equal(t, v, md2[k], "metadata %q", k)
		}
	})
}
