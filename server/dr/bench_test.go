package dr_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/veil-e2ee/veil/server/dr"
	"github.com/veil-e2ee/veil/server/loadgen"
)

// BenchmarkBackupSQLite times a backup of a database holding 4000 queued
// 1 KiB envelopes (about 6 MB), and the drill of it.
func BenchmarkBackupSQLite(b *testing.B) {
	dir := b.TempDir()
	db := filepath.Join(dir, "veil.db")
	st := openSQLite(b, db)
	base := startServer(b, st)
	c := loadgen.NewClient(base, 16)
	ctx := context.Background()
	devs, err := c.Register(ctx, "bench", 16)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				if err := c.Send(ctx, devs[g], devs[(g+1+i%15)%16]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	var size int64
	for i := range b.N {
		file := filepath.Join(dir, fmt.Sprintf("b%d.db", i))
		m, err := dr.Backup(ctx, db, file, nil)
		if err != nil {
			b.Fatal(err)
		}
		size = m.Size
	}
	b.ReportMetric(float64(size)/1e6, "MB")
	b.StopTimer()
	rep, err := dr.Drill(ctx, filepath.Join(dir, "b0.db"), &dr.DrillOptions{TempDir: dir})
	if err != nil || !rep.Pass {
		b.Fatalf("drill: %v %v", err, rep.Err())
	}
}
