package recoverykey

import "testing"

func BenchmarkString(b *testing.B) {
	k := counting()
	for b.Loop() {
		_ = k.String()
	}
}

func BenchmarkParse(b *testing.B) {
	s := counting().String()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDerive(b *testing.B) {
	k := counting()
	for b.Loop() {
		_ = k.Derive(PurposeBackup)
	}
}
