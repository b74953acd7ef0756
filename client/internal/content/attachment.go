package content

import "math"

// Attachments (when Veil sends files) are padded to size buckets before
// encryption, as Signal pads them: the smallest bucket is 541 bytes, and
// above it the buckets grow by 5 % (⌊1.05^k⌋), so an attachment's padded
// size is at most 5 % larger than the file — a 10 MB photo pads by at
// most 500 KB — and the server sees one of a few hundred sizes instead of
// the exact length.
const minAttachmentBucket = 541

// AttachmentBucket returns the padded size of an attachment of n bytes:
// the smallest bucket ≥ n (n itself for n ≤ 0).
func AttachmentBucket(n int64) int64 {
	if n <= minAttachmentBucket {
		return max(n, minAttachmentBucket)
	}
	k := math.Ceil(math.Log(float64(n)) / math.Log(1.05))
	b := int64(math.Floor(math.Pow(1.05, k)))
	for b < n { // floating-point rounding at a bucket's edge
		k++
		b = int64(math.Floor(math.Pow(1.05, k)))
	}
	return b
}
