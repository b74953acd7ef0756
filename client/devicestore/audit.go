package devicestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lukechampine.com/adiantum"
)

// DecryptedFiles returns the plaintext of the database file and of its
// WAL (if any) of the store in dir, decrypted page by page as the VFS
// does: what an attacker holding the key would read, free pages and
// stale bytes included. It is for audits and tests that check removed
// text is gone (a wrong unlock is ErrWrongPassphrase).
func DecryptedFiles(dir string, u Unlock) (db, wal []byte, err error) {
	hb, err := os.ReadFile(filepath.Join(dir, HeaderFile))
	if err != nil {
		return nil, nil, fmt.Errorf("devicestore: reading the header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, nil, err
	}
	k, err := deriveKeys(h, u)
	if err != nil {
		return nil, nil, err
	}
	defer k.clear()
	if !h.verify(k) {
		return nil, nil, ErrWrongPassphrase
	}
	c := adiantum.New(k.page[:])
	decrypt := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b))
		var tweak [8]byte
		for off := 0; off+4096 <= len(b); off += 4096 {
			binary.LittleEndian.PutUint64(tweak[:], uint64(off))
			out = append(out, c.Decrypt(append([]byte(nil), b[off:off+4096]...), tweak[:])...)
		}
		return out, nil
	}
	if db, err = decrypt(DatabaseFile); err != nil {
		return nil, nil, err
	}
	wal, err = decrypt(DatabaseFile + "-wal")
	return db, wal, err
}
