package client

import (
	"context"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
)

type deviceListCounter struct {
	base http.RoundTripper
	n    atomic.Int64
}

func (d *deviceListCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == "GET" && r.URL.Path == "/v1/devices" {
		d.n.Add(1)
	}
	return d.base.RoundTrip(r)
}

// TestAloneDeviceSkipsDeviceList: a device with no other device on its
// account asks the server for its device list once, not before every
// send's sync transcript; after it approves a link it asks again, and the
// new device gets the transcripts.
func TestAloneDeviceSkipsDeviceList(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "sqlite")
	count := &deviceListCounter{base: http.DefaultTransport}
	cfg := testConfig(filepath.Join(t.TempDir(), "alice"), ts.URL)
	cfg.HTTPClient = &http.Client{Transport: count}
	alice, err := Register(ctx, cfg, uniqueName("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, _ := register(t, ts, "bob")
	for range 5 {
		mustSend(t, alice, bob.Self().Username, "hello")
	}
	if n := count.n.Load(); n != 1 {
		t.Fatalf("%d device-list requests for 5 sends, want 1", n)
	}
	nc, err := linkNew(t, ts, alice)
	if err != nil {
		t.Fatal(err)
	}
	drain(t, nc) // the history and anything queued
	mustSend(t, alice, bob.Self().Username, "after linking")
	if got := bodies(drain(t, nc)); len(got) != 1 || got[0] != "after linking" {
		t.Fatalf("the new device got %q", got)
	}
}
