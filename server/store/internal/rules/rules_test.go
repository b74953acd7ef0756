package rules

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

func TestCheckDevices(t *testing.T) {
	cur := []DeviceReg{{3, 30}, {1, 10}, {2, 20}}
	env := func(pairs ...uint32) []store.OutgoingEnvelope {
		var out []store.OutgoingEnvelope
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, store.OutgoingEnvelope{DeviceID: pairs[i], RegistrationID: pairs[i+1], Content: []byte{}})
		}
		return out
	}
	for _, c := range []struct {
		name                  string
		envs                  []store.OutgoingEnvelope
		exclude               uint32
		missing, extra, stale []uint32
	}{
		{"exact", env(2, 20, 1, 10, 3, 30), 0, nil, nil, nil},
		{"missing", env(2, 20), 0, []uint32{1, 3}, nil, nil},
		{"extra", env(1, 10, 2, 20, 3, 30, 7, 70, 5, 50), 0, nil, []uint32{5, 7}, nil},
		{"stale", env(1, 11, 2, 20, 3, 31), 0, nil, nil, []uint32{1, 3}},
		{"excluded sender device", env(2, 20, 3, 30), 1, nil, nil, nil},
		{"excluded but addressed", env(1, 10, 2, 20, 3, 30), 1, nil, []uint32{1}, nil},
		{"all", env(9, 90, 2, 21), 0, []uint32{1, 3}, []uint32{9}, []uint32{2}},
	} {
		s := store.Send{Envelopes: c.envs, ExcludeDevice: c.exclude}
		err := CheckDevices(cur, &s)
		if c.missing == nil && c.extra == nil && c.stale == nil {
			if err != nil {
				t.Errorf("%s: %v, want nil", c.name, err)
			}
			continue
		}
		var mm *store.DeviceMismatchError
		if !errors.As(err, &mm) || !slices.Equal(mm.Missing, c.missing) || !slices.Equal(mm.Extra, c.extra) || !slices.Equal(mm.Stale, c.stale) {
			t.Errorf("%s: %v, want missing %v extra %v stale %v", c.name, err, c.missing, c.extra, c.stale)
		}
	}
}

func TestValidateSend(t *testing.T) {
	ok := store.Send{Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, Content: []byte{}}, {DeviceID: 2, Content: []byte("x")}}}
	if err := ValidateSend(&ok); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]store.Send{
		"nil content":    {Envelopes: []store.OutgoingEnvelope{{DeviceID: 1}}},
		"device twice":   {Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, Content: []byte{}}, {DeviceID: 1, Content: []byte{}}}},
		"negative bound": {MaxQueue: -1},
	} {
		if err := ValidateSend(&s); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestDedupKey(t *testing.T) {
	a, b := store.AccountID{1}, store.AccountID{2}
	m := [16]byte{9}
	k := DedupKey(a, m)
	if len(k) != 32 || !bytes.Equal(k, DedupKey(a, m)) {
		t.Fatal("DedupKey is not a deterministic 32-byte digest")
	}
	if bytes.Equal(k, DedupKey(b, m)) || bytes.Equal(k, DedupKey(a, [16]byte{8})) {
		t.Fatal("DedupKey ignores the recipient or the message id")
	}
}

// TestBucket replays a bucket of burst 2, one token per second.
func TestBucket(t *testing.T) {
	const burst, iv = 2, time.Second
	s := int64(time.Second)
	tat := int64(0) // missing bucket: full
	steps := []struct {
		now   int64
		ok    bool
		retry time.Duration
	}{
		{0, true, 0}, {0, true, 0}, {0, false, time.Second},
		{s / 2, false, time.Second / 2}, {s, true, 0}, {s, false, time.Second},
		{10 * s, true, 0}, {10 * s, true, 0}, {10 * s, false, time.Second},
	}
	for i, st := range steps {
		n, ok := Spend(max(tat, st.now), st.now, burst, iv)
		if ok != st.ok {
			t.Fatalf("step %d: ok=%v, want %v", i, ok, st.ok)
		}
		if ok {
			tat = n
		} else if r := RetryAfter(tat, st.now, burst, iv); r != st.retry {
			t.Fatalf("step %d: retry %v, want %v", i, r, st.retry)
		}
	}
	if err := ValidateBucket(0, time.Second); !errors.Is(err, store.ErrInvalid) {
		t.Fatal("burst 0 accepted")
	}
}

func TestCoarseTimes(t *testing.T) {
	at := time.Date(2026, 3, 4, 23, 59, 59, 999, time.FixedZone("x", 3600))
	if got := FromUnix(Day(at)); !got.Equal(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Day = %v", got)
	}
	if got := FromUnix(Minute(at)); !got.Equal(time.Date(2026, 3, 4, 22, 59, 0, 0, time.UTC)) {
		t.Fatalf("Minute = %v", got)
	}
}

func TestMigrationsOrderAndValidation(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_later.sql":  {Data: []byte("B")},
		"m/0002_second.sql": {Data: []byte("A")},
		"m/README":          {Data: []byte("not a migration")},
	}
	list, err := Migrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Version != 2 || list[1].Version != 10 || list[0].SQL != "A" || list[1].Name != "0010_later.sql" {
		t.Fatalf("got %+v", list)
	}
	if _, err := Migrations(fstest.MapFS{"m/x_bad.sql": {}}, "m"); err == nil {
		t.Fatal("a file without a version prefix was accepted")
	}
	if _, err := Migrations(fstest.MapFS{"m/0001_a.sql": {}, "m/0001_b.sql": {}}, "m"); err == nil {
		t.Fatal("two migrations with one version were accepted")
	}
}
