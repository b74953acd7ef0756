// Package gcra is the token-bucket arithmetic of Veil's rate limits (the
// generic cell rate algorithm): a bucket is one number, its theoretical
// arrival time (TAT), the moment it is full again. The database-backed
// buckets (store.Store.TakeToken) and the server's in-memory ones share it.
package gcra

import "time"

// Spend is the bucket update: given the stored TAT (or now for a missing
// bucket), it returns the new TAT and whether a token was available.
// Backends that update with one SQL statement use the same formula:
// newTAT = max(tat, now) + interval, allowed iff newTAT - now <= burst*interval.
func Spend(tat, now int64, burst int, interval time.Duration) (newTAT int64, ok bool) {
	newTAT = max(tat, now) + int64(interval)
	return newTAT, newTAT-now <= int64(burst)*int64(interval)
}

// RetryAfter is how long a refused caller waits for the next token of a
// bucket whose TAT is tat.
func RetryAfter(tat, now int64, burst int, interval time.Duration) time.Duration {
	d := time.Duration(max(tat, now) + int64(interval) - now - int64(burst)*int64(interval))
	return max(d, time.Nanosecond)
}
