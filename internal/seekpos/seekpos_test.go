package seekpos

import (
	"io"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		name              string
		cur, size, offset int64
		whence            int
		want              int64
		wantErr           bool
	}{
		{name: "start", cur: 5, size: 10, offset: 3, whence: io.SeekStart, want: 3},
		{name: "current", cur: 5, size: 10, offset: -2, whence: io.SeekCurrent, want: 3},
		{name: "end", cur: 5, size: 10, offset: -4, whence: io.SeekEnd, want: 6},
		{name: "past the end", cur: 0, size: 10, offset: 5, whence: io.SeekEnd, want: 15},
		{name: "negative", cur: 5, size: 10, offset: -6, whence: io.SeekCurrent, wantErr: true},
		{name: "bad whence", cur: 5, size: 10, offset: 0, whence: 7, wantErr: true},
	} {
		got, err := Resolve(c.cur, c.size, c.offset, c.whence)
		if c.wantErr {
			if err == nil {
				t.Errorf("%s: got %d, want an error", c.name, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}
