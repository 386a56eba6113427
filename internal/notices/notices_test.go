package notices

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTestBinary(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"/tmp/go-build1/b001/cmd.test", "-test.v"}, true},
		{[]string{"./cmd.test"}, true},
		{[]string{"spottrain", "train", "-test.run=x"}, true},
		{[]string{"/usr/bin/spottrain", "train", "--experiment", "lstm-ondemand"}, false},
		{nil, false},
	} {
		assert.Equal(t, c.want, testBinary(c.args), "%q", c.args)
	}
}
