package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/converge"
)

// BenchmarkBackup measures a backup of 100,000 messages (~100 bytes
// each) encrypted to the recovery key (no KDF): writing it, verifying it
// and restoring it on a new device through a real server. MB/s is of the
// backup file.
func BenchmarkBackup(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	ts := startServer(b, "sqlite")
	alice, _ := register(b, ts, "alice")
	peers := []string{"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"}
	err := alice.store.Update(ctx, func(tx *devicestore.Tx) error {
		for i := 0; i < n; i++ {
			id := make([]byte, 16)
			binary.BigEndian.PutUint64(id, uint64(i))
			peer := peers[i%len(peers)]
			_, err := tx.ImportMessage(ctx, devicestore.HistoryMessage{Peer: peer, Message: devicestore.Message{
				Sender: peer, SenderDevice: 1, MessageID: id, SentAt: time.UnixMilli(int64(i)), ReceivedAt: time.UnixMilli(int64(i)),
				Body: []byte(fmt.Sprintf("message %d with about a hundred bytes of text, which is a typical chat message size today…", i))},
				BodyStamp: converge.Stamp{Time: int64(i), Origin: peer + ".1"}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var file bytes.Buffer
	info, err := alice.CreateBackup(ctx, &file, BackupOptions{})
	if err != nil {
		b.Fatal(err)
	}
	secret := BackupSecret{RecoveryKey: info.NewRecoveryKey}
	size := float64(file.Len())
	b.Run("create", func(b *testing.B) {
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if _, err := alice.CreateBackup(ctx, &out, BackupOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(size*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyBackup(bytes.NewReader(file.Bytes()), secret); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(size*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			c, err := RestoreBackup(ctx, testConfig(filepath.Join(b.TempDir(), "r"), ts.URL), bytes.NewReader(file.Bytes()), secret)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			c.Close()
			b.StartTimer()
		}
		b.ReportMetric(size*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Logf("backup file: %.1f MB for %d messages", size/1e6, n)
}
