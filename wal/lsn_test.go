package wal

import "testing"

// lsnCases are shared with FuzzParseLSN as seeds.
var lsnCases = []struct {
	name    string
	in      string
	want    LSN
	wantStr string // String() of the result; "" means same as in
	wantErr bool
}{
	{name: "postgres docs example", in: "16/B374D848", want: 0x16_B374D848},
	{name: "zero", in: "0/0", want: 0},
	{name: "segment start", in: "0/2000000", want: 0x2000000},
	{name: "real switchpoint", in: "0/4002D98", want: 0x4002D98},
	{name: "max", in: "FFFFFFFF/FFFFFFFF", want: 1<<64 - 1},
	{name: "lower case accepted like pg_lsn", in: "16/b374d848", want: 0x16_B374D848, wantStr: "16/B374D848"},
	{name: "leading zeros accepted", in: "00000000/02000000", want: 0x2000000, wantStr: "0/2000000"},
	{name: "empty", in: "", wantErr: true},
	{name: "no slash", in: "16B374D848", wantErr: true},
	{name: "empty high", in: "/1", wantErr: true},
	{name: "empty low", in: "1/", wantErr: true},
	{name: "nine digits", in: "1/123456789", wantErr: true},
	{name: "two slashes", in: "1/2/3", wantErr: true},
	{name: "not hex", in: "1/G", wantErr: true},
	{name: "space", in: " 1/2", wantErr: true},
	{name: "trailing newline", in: "1/2\n", wantErr: true},
	{name: "sign", in: "+1/2", wantErr: true},
	{name: "0x prefix", in: "0x1/2", wantErr: true},
}

func TestParseLSN(t *testing.T) {
	for _, tc := range lsnCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLSN(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseLSN(%q) = %s, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLSN(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseLSN(%q) = %#x, want %#x", tc.in, uint64(got), uint64(tc.want))
			}
			wantStr := tc.wantStr
			if wantStr == "" {
				wantStr = tc.in
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
		})
	}
}

func TestParseLSNErrorMessage(t *testing.T) {
	_, err := ParseLSN("1/G")
	const want = `invalid LSN "1/G": invalid character 'G' (want two hex numbers separated by a slash, like 16/B374D848)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
