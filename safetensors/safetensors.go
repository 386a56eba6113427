// Package safetensors writes and reads the safetensors format of Hugging Face
// (github.com/huggingface/safetensors), in pure Go.
//
// A file is, in this order: N, the length of the header, as an 8-byte little-endian unsigned
// integer; N bytes of UTF-8 JSON, an object that maps each tensor's name to
// {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} and the optional key
// "__metadata__" to an object of strings; then the data of the tensors, little-endian and
// row-major. The offsets count from the first byte after the header, and the tensors cover that
// buffer exactly: no gap, no overlap, nothing after the last one.
//
// Write lays the tensors out contiguously in the order given and pads the header with spaces so
// that the data starts at a multiple of 8 bytes, as the reference implementation does; it
// validates everything before it writes its first byte. Read accepts exactly the files the
// specification allows (see Read) and returns the tensors in the order of their data, so that
// Read returns what Write was given.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header Read accepts, in bytes: the limit of the reference
// implementation.
const MaxHeaderSize = 100_000_000

// MetadataKey is the header key of the free-form string metadata; no tensor may have this name.
const MetadataKey = "__metadata__"

// ErrInvalid is wrapped by every error of Read that is about the content of the file (as opposed
// to an error of the reader).
var ErrInvalid = errors.New("invalid safetensors")

// Tensor is one named tensor.
type Tensor struct {
	Name  string  // unique in a file, not empty, not MetadataKey
	DType string  // an element type of the format: "F32", "F64", "F16", "BF16", "I64", ... (see DTypeSize)
	Shape []int64 // dimensions, each >= 0; empty (nil) for a scalar, which has one element
	Data  []byte  // little-endian, row-major: exactly Elements() * DTypeSize(DType) bytes
}

// dtypeSizes holds the bytes of one element of each element type of the format (the sub-byte
// types of recent versions are not supported).
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// DTypeSize returns the bytes of one element of dtype, and false for a type this package does
// not know.
func DTypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return n, ok
}

// byteSize returns the bytes of a tensor of dtype and shape, or an error naming the problem
// (unknown dtype, negative dimension, size beyond int64).
func byteSize(dtype string, shape []int64) (int64, error) {
	size, ok := dtypeSizes[dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	n := uint64(size)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("shape %v of %s is too large", shape, dtype)
		}
		n = lo
	}
	return int64(n), nil
}

// Write writes tensors, laid out in the order given, and metadata (omitted from the header when
// empty) to w as one safetensors file. It checks first that every name is unique, not empty and
// not MetadataKey, every dtype is known, and every tensor's data has exactly the bytes its dtype
// and shape need; on a problem it returns an error naming the tensor and writes nothing. Metadata
// keys are written sorted, so equal input gives equal bytes.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader validates tensors and returns the padded JSON header that describes them.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	seen := make(map[string]bool, len(tensors))
	var offset int64
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("tensor %d has no name", i)
		case t.Name == MetadataKey:
			return nil, fmt.Errorf("tensor %d: the name %q is reserved", i, MetadataKey)
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor %d: name %q is not UTF-8", i, t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("tensor %q: name used twice", t.Name)
		}
		seen[t.Name] = true
		size, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != size {
			return nil, fmt.Errorf("tensor %q: %s %v needs %d bytes, data has %d", t.Name, t.DType, t.Shape, size, len(t.Data))
		}
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, t.Name)
		shape := make([]string, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = fmt.Sprint(d)
		}
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}`, t.DType, strings.Join(shape, ","), offset, offset+size)
		offset += size
	}
	if len(metadata) > 0 {
		if len(tensors) > 0 {
			b.WriteByte(',')
		}
		writeString(&b, MetadataKey)
		b.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, fmt.Errorf("metadata %q: not UTF-8", k)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(&b, k)
			b.WriteByte(':')
			writeString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	// Pad so that the data starts 8-byte aligned: 8 + N is a multiple of 8.
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// writeString appends s as a JSON string, without escaping <, > and & (which JSON allows).
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)           // a valid UTF-8 string always encodes
	b.Truncate(b.Len() - 1) // the newline Encode appends
}
