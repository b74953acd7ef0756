package client

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"unicode/utf8"
)

// Device names are encrypted with a key every device of the account
// derives from the identity key (HKDF-SHA256, info "veil device name v1"),
// AES-256-GCM: nonce 12 ‖ ciphertext. The server stores them opaque. A
// device whose name does not decrypt was not named by a device of this
// account — the server may have added it — and Devices reports that.

// MaxDeviceName is the longest device name in bytes.
const MaxDeviceName = 64

func (c *Client) nameAEAD() (cipher.AEAD, error) {
	priv := c.id.Private.Bytes()
	defer clear(priv)
	k, err := hkdf.Key(sha256.New, priv, nil, "veil device name v1", 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// SetDeviceName names a device of this account (0: this device), for the
// account's own device lists; the server cannot read it.
func (c *Client) SetDeviceName(ctx context.Context, deviceID uint32, name string) error {
	if name == "" || len(name) > MaxDeviceName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: a device name is 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxDeviceName)
	}
	if deviceID == 0 {
		deviceID = c.self.DeviceID
	}
	g, err := c.nameAEAD()
	if err != nil {
		return err
	}
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return err
	}
	sealed := g.Seal(nonce, nonce, []byte(name), []byte(fmt.Sprintf("%s.%d", c.self.AccountID, deviceID)))
	err = c.api.do(ctx, "PUT", fmt.Sprintf("/v1/devices/%d/name", deviceID), map[string]any{"name": sealed}, nil)
	if isCode(err, "device_not_found") {
		return fmt.Errorf("%w: no device %d", ErrInvalidArgument, deviceID)
	}
	return err
}

// openName decrypts a device's name; ok is false if it does not decrypt.
func (c *Client) openName(deviceID uint32, sealed []byte) (string, bool) {
	g, err := c.nameAEAD()
	if err != nil || len(sealed) < 12+g.Overhead() {
		return "", false
	}
	pt, err := g.Open(nil, sealed[:12], sealed[12:], []byte(fmt.Sprintf("%s.%d", c.self.AccountID, deviceID)))
	if err != nil {
		return "", false
	}
	return string(pt), true
}
