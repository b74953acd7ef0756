package dr_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/veil-e2ee/veil/server/dr"
)

// ParseManifest never panics, accepts only valid manifests, and a manifest
// it accepts survives a round trip unchanged.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"veil-backup","format_version":1,"backend":"sqlite","created":"2026-01-02T03:04:05Z","schema_version":5,"file":"b.db","size":4096,"sha256":"` +
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + `","tables":{"accounts":1}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dr.ParseManifest(b)
		if err != nil {
			if !errors.Is(err, dr.ErrManifest) {
				t.Fatalf("error %v is not ErrManifest", err)
			}
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := dr.ParseManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
		b2, _ := json.Marshal(m2)
		if string(b2) != string(again) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", again, b2)
		}
	})
}
