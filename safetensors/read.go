package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"unicode/utf8"
)

// Read reads one safetensors file from r, to its end, and returns its tensors in the order of
// their data and its metadata (nil when the header has no MetadataKey). It trusts nothing: every
// problem below is an error that wraps ErrInvalid and says what is wrong, and nothing is allocated
// beyond the bytes r actually delivers plus the header length (at most MaxHeaderSize):
//
//   - a file shorter than its 8-byte header length, a header length over MaxHeaderSize, or a file
//     that ends before the header or the data the header describes does;
//   - a header that is not UTF-8, does not start with '{', is not one JSON object followed only by
//     spaces, or has a key twice (at any level);
//   - a tensor with an empty name, an entry other than exactly "dtype", "shape" and
//     "data_offsets", an unknown dtype, a dimension that is negative or not an integer, or
//     data_offsets that are not two integers [begin, end] with end - begin equal to the bytes of
//     its dtype and shape;
//   - tensors that do not cover the data exactly, each starting where the previous one ends
//     (a gap, an overlap or an offset out of range), or bytes after the last one;
//   - metadata that is not an object of strings.
//
// The data of the returned tensors shares one buffer (each slice's capacity ends with its data).
func Read(r io.Reader) ([]Tensor, map[string]string, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, invalidf("file ends within the 8-byte header length")
		}
		return nil, nil, err
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, nil, invalidf("header length %d is over the limit of %d bytes", n, MaxHeaderSize)
	}
	header, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, nil, err
	}
	if uint64(len(header)) < n {
		return nil, nil, invalidf("file ends %d bytes into the %d-byte header", len(header), n)
	}
	tensors, metadata, end, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, end))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(data)) < end {
		return nil, nil, invalidf("file ends %d bytes into the data, the header describes %d", len(data), end)
	}
	var extra [1]byte
	switch k, err := io.ReadFull(r, extra[:]); {
	case k > 0:
		return nil, nil, invalidf("bytes after the %d bytes of data the header describes", end)
	case !errors.Is(err, io.EOF):
		return nil, nil, err
	}
	for i := range tensors {
		t := &tensors[i]
		t.Data = data[t.begin:t.end:t.end]
	}
	out := make([]Tensor, len(tensors))
	for i, t := range tensors {
		out[i] = t.Tensor
	}
	return out, metadata, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// entry is a tensor of the header with where its data lies.
type entry struct {
	Tensor
	begin, end int64
}

// parseHeader checks the header and returns its tensors sorted by their data (ties in header
// order), its metadata and the bytes of data it describes.
func parseHeader(header []byte) ([]entry, map[string]string, int64, error) {
	if !utf8.Valid(header) {
		return nil, nil, 0, invalidf("header is not UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, 0, invalidf("header does not start with '{'")
	}
	fields, rest, err := objectFields(header)
	if err != nil {
		return nil, nil, 0, invalidf("header: %v", err)
	}
	if len(bytes.TrimRight(rest, " ")) > 0 {
		return nil, nil, 0, invalidf("header: data after the JSON object other than spaces")
	}
	var (
		tensors  []entry
		metadata map[string]string
	)
	for _, f := range fields {
		if f.key == MetadataKey {
			if metadata, err = parseMetadata(f.value); err != nil {
				return nil, nil, 0, invalidf("%s: %v", MetadataKey, err)
			}
			continue
		}
		e, err := parseEntry(f.value)
		if err != nil {
			return nil, nil, 0, invalidf("tensor %q: %v", f.key, err)
		}
		if f.key == "" {
			return nil, nil, 0, invalidf("a tensor has an empty name")
		}
		e.Name = f.key
		tensors = append(tensors, e)
	}
	sort.SliceStable(tensors, func(i, j int) bool {
		a, b := tensors[i], tensors[j]
		return a.begin < b.begin || a.begin == b.begin && a.end < b.end
	})
	var end int64
	for _, t := range tensors {
		if t.begin != end {
			return nil, nil, 0, invalidf("tensor %q: data_offsets [%d, %d] do not start where the previous tensor's data ends (%d): a gap or an overlap",
				t.Name, t.begin, t.end, end)
		}
		end = t.end
	}
	return tensors, metadata, end, nil
}

// parseEntry checks one tensor's entry: exactly dtype, shape and data_offsets, consistent.
func parseEntry(raw json.RawMessage) (entry, error) {
	fields, _, err := objectFields(raw)
	if err != nil {
		return entry{}, err
	}
	var (
		e                              entry
		shape, offsets                 []uint64
		hasDType, hasShape, hasOffsets bool
	)
	for _, f := range fields {
		switch f.key {
		case "dtype":
			hasDType = true
			if err := json.Unmarshal(f.value, &e.DType); err != nil {
				return entry{}, fmt.Errorf("dtype is not a string: %s", f.value)
			}
		case "shape":
			hasShape = true
			if err := json.Unmarshal(f.value, &shape); err != nil || shape == nil {
				return entry{}, fmt.Errorf("shape is not an array of integers >= 0: %s", f.value)
			}
		case "data_offsets":
			hasOffsets = true
			if err := json.Unmarshal(f.value, &offsets); err != nil || len(offsets) != 2 {
				return entry{}, fmt.Errorf("data_offsets is not two integers >= 0: %s", f.value)
			}
		default:
			return entry{}, fmt.Errorf("unknown key %q", f.key)
		}
	}
	switch {
	case !hasDType:
		return entry{}, errors.New("no dtype")
	case !hasShape:
		return entry{}, errors.New("no shape")
	case !hasOffsets:
		return entry{}, errors.New("no data_offsets")
	}
	for _, d := range shape {
		if d > math.MaxInt64 {
			return entry{}, fmt.Errorf("shape %v is too large", shape)
		}
		e.Shape = append(e.Shape, int64(d))
	}
	size, err := byteSize(e.DType, e.Shape)
	if err != nil {
		return entry{}, err
	}
	begin, end := offsets[0], offsets[1]
	if end < begin || end > math.MaxInt64 {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] are not a range", begin, end)
	}
	if end-begin != uint64(size) {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, %s %v needs %d", begin, end, end-begin, e.DType, e.Shape, size)
	}
	e.begin, e.end = int64(begin), int64(end)
	return e, nil
}

// parseMetadata checks that raw is an object of strings and returns it.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	fields, _, err := objectFields(raw)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		var s string
		if len(f.value) == 0 || f.value[0] != '"' {
			return nil, fmt.Errorf("value of %q is not a string: %s", f.key, f.value)
		}
		if err := json.Unmarshal(f.value, &s); err != nil {
			return nil, fmt.Errorf("value of %q: %v", f.key, err)
		}
		m[f.key] = s
	}
	return m, nil
}

type field struct {
	key   string
	value json.RawMessage
}

// objectFields parses the JSON object at the start of data into its fields, in order, and
// returns what follows it. A key given twice is an error.
func objectFields(data []byte) ([]field, []byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, early(err)
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not a JSON object: %.40s", data)
	}
	var fields []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, early(err)
		}
		key := tok.(string) // Token returns an object's keys as strings, or an error
		if seen[key] {
			return nil, nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, nil, fmt.Errorf("value of %q: %v", key, early(err))
		}
		fields = append(fields, field{key, value})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, early(err)
	}
	return fields, data[dec.InputOffset():], nil
}

// early names the end of the input in the middle of a JSON value as such.
func early(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
