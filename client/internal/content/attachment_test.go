package content

import (
	"math/rand/v2"
	"testing"
)

// Every size pads up, by at most 5 % above the smallest bucket, to one of
// few sizes; buckets are fixed points.
func TestAttachmentBucket(t *testing.T) {
	sizes := []int64{1, 540, 541, 542, 1000, 1 << 20, 10_000_000, 100 << 20, 2 << 30}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		sizes = append(sizes, 1+r.Int64N(1<<31))
	}
	buckets := map[int64]bool{}
	for _, n := range sizes {
		b := AttachmentBucket(n)
		if b < n {
			t.Fatalf("AttachmentBucket(%d) = %d, smaller", n, b)
		}
		if n > minAttachmentBucket && float64(b-n) > 0.05*float64(n) {
			t.Fatalf("AttachmentBucket(%d) = %d: %.2f %% overhead", n, b, 100*float64(b-n)/float64(n))
		}
		if AttachmentBucket(b) != b {
			t.Fatalf("bucket %d is not its own bucket", b)
		}
		buckets[b] = true
	}
	if AttachmentBucket(1) != minAttachmentBucket {
		t.Fatalf("a 1-byte file pads to %d", AttachmentBucket(1))
	}
	if len(buckets) > 300 {
		t.Fatalf("%d distinct sizes up to 2 GiB; buckets should be few", len(buckets))
	}
}
