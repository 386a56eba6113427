package cifar_test

import (
	"errors"
	"fmt"

	"spottrain/data/cifar"
)

func ExampleLoad() {
	train, test, err := cifar.Load("testdata/no-such-dir", cifar.CIFAR100)
	var de *cifar.DataError
	if errors.As(err, &de) {
		fmt.Println(err) // one line; a command exits 2
		return
	}
	fmt.Println(train.Len(), test.Len())
	// Output:
	// testdata/no-such-dir: CIFAR-100 not found: download cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and put it (or its extracted cifar-100-binary/ folder) in testdata/no-such-dir
}

func ExampleNewLoader() {
	train, _ := cifar.Synthetic(1000, 0, 10, 1)
	cfg := cifar.LoaderConfig{
		BatchSize: 256,
		Norm:      train.Norm(),
		Augment:   &cifar.Augment{Pad: 4, Flip: true},
		Seed:      1,
		Workers:   2,
		Prefetch:  2,
	}
	order := make([]int, train.Len()) // from the training loop: a permutation for the epoch
	for i := range order {
		order[i] = i
	}
	l := cifar.NewLoader(train, cfg, 0, order, 1) // epoch 0, resumed at batch 1
	defer l.Close()
	for b, ok := l.Next(); ok; b, ok = l.Next() {
		// b is valid until the next Next: hand it to the device now.
		fmt.Printf("X [%d 3 32 32] Y [%d] first sample %d\n", len(b.X)/cifar.ImageLen, len(b.Y), b.Idx[0])
	}
	// Output:
	// X [256 3 32 32] Y [256] first sample 256
	// X [256 3 32 32] Y [256] first sample 512
	// X [232 3 32 32] Y [232] first sample 768
}
