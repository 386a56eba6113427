package checkpoint_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"spottrain/checkpoint"
	"spottrain/internal/gcstest"
)

// BenchmarkRemote measures the upload and the verified download of a 64 MiB checkpoint (the
// size of an LSTM-to-ResNet-18 state; ResNet-50 with Adam is about 280 MB) on this machine:
// gs:// (the Cloud Storage client against the in-process fake: the client's and this package's
// own cost, no network) and file:// (a local directory). MB/s is payload bytes.
//
//	go test -run '^$' -bench Remote -benchtime 5x ./checkpoint/
func BenchmarkRemote(b *testing.B) {
	payload := make([]byte, 64<<20)
	rand.Read(payload)
	for _, tc := range []struct{ name, url string }{
		{"gs", "gs://bench/run"},
		{"file", "file://" + filepath.Join(b.TempDir(), "mirror")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.name == "gs" {
				gcstest.Start(b, nil, "bench")
			}
			ctx := context.Background()
			r, err := checkpoint.OpenRemote(ctx, tc.url)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			s, err := checkpoint.Open(b.TempDir(), checkpoint.Options{Keep: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			step := int64(0)
			commit := func() *checkpoint.Checkpoint {
				step++
				p, err := s.Begin(step)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Write("model.pt", payload); err != nil {
					b.Fatal(err)
				}
				m := testManifest(step)
				c, err := p.Commit(m)
				if err != nil {
					b.Fatal(err)
				}
				return c
			}
			b.Run("upload", func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					b.StopTimer()
					c := commit()
					b.StartTimer()
					if _, err := r.Upload(ctx, c); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("download", func(b *testing.B) {
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					b.StopTimer()
					fresh, err := checkpoint.Open(b.TempDir(), checkpoint.Options{Keep: 1})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if _, _, err := r.Download(ctx, fresh, -1); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					fresh.Close()
					b.StartTimer()
				}
			})
		})
	}
}
