package server

import (
	"encoding/base64"
	"testing"
)

// BenchmarkB64Unmarshal decodes a 1 KiB envelope's base64 content the
// way every send does, through the in-place path and the general one.
func BenchmarkB64Unmarshal(b *testing.B) {
	data := []byte(`"` + base64.StdEncoding.EncodeToString(make([]byte, 1024)) + `"`)
	for name, fn := range map[string]func(*b64, []byte) error{"fast": (*b64).UnmarshalJSON, "slow": (*b64).unmarshalJSONSlow} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var v b64
				if err := fn(&v, data); err != nil || len(v) != 1024 {
					b.Fatal(err)
				}
			}
		})
	}
}
