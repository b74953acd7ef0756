package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// anonymous marks a request that goes without this device's credential
// (a sealed send whose access keys are in the body).
var anonymous = map[string]string{"Unidentified-Access-Key": ""}

// Mismatch is one recipient's device-list problem in a sealed sender v2
// send.
type Mismatch struct {
	Account               string
	Missing, Extra, Stale []uint32
}

// ServerError is an error answer of the server: its HTTP status and its
// stable error code (docs/API.md lists them).
type ServerError struct {
	Status     int
	Code       string
	Message    string
	Missing    []uint32      // 409 device_mismatch: devices the send lacked
	Extra      []uint32      // 409 device_mismatch: devices that do not exist
	Stale      []uint32      // 410 stale_devices: devices whose registration changed
	RetryAfter time.Duration // 429: when to try again
	Mismatches []Mismatch    // 409 of a sealed sender v2 send
	Accounts   []string      // 401 access_denied of a sealed sender v2 send
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("server refused the request (%d %s): %s", e.Status, e.Code, e.Message)
}

// temporary reports whether trying again later may succeed.
func (e *ServerError) temporary() bool { return e.Status == 429 || e.Status >= 500 }

// api is the server's HTTP API, authenticated as this device once
// registered.
type api struct {
	base *url.URL
	http *http.Client
	user string // "<account>.<device>", empty before registration
	cred string // base64 credential
}

func newAPI(server string, hc *http.Client) (*api, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: server URL %q: want http(s)://host[:port]", ErrInvalidArgument, server)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return &api{base: u, http: hc}, nil
}

func (a *api) url(path string) string { return a.base.String() + path }

// do sends a JSON request and decodes a JSON answer into out (if not
// nil). Error answers become *ServerError; failures to reach the server
// wrap ErrUnreachable.
func (a *api) do(ctx context.Context, method, path string, body, out any) error {
	return a.doWith(ctx, method, path, nil, body, out)
}

// doWith is do with extra headers. A request with an
// Unidentified-Access-Key header goes without this device's credential:
// the server must not learn who sends it.
func (a *api) doWith(ctx context.Context, method, path string, headers map[string]string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	data, err := a.exchange(ctx, method, path, b, "application/json", 8<<20, headers)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: the server's answer to %s %s is not what this client understands: %v", ErrProtocol, method, path, err)
	}
	return nil
}

// raw sends a raw-bytes request (blobs) and reads a raw answer into out
// (if not nil).
func (a *api) raw(ctx context.Context, method, path string, body []byte, out *[]byte) error {
	data, err := a.exchange(ctx, method, path, body, "application/octet-stream", 65<<20, nil)
	if err == nil && out != nil {
		*out = data
	}
	return err
}

// exchange sends one request (body, if not nil, as ctype) and returns the
// answer's body, read up to limit bytes.
func (a *api) exchange(ctx context.Context, method, path string, body []byte, ctype string, limit int64, headers map[string]string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url(path), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if _, sealed := headers["Unidentified-Access-Key"]; a.user != "" && !sealed {
		req.SetBasicAuth(a.user, a.cred)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, redactURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", ErrUnreachable, err)
	}
	if resp.StatusCode >= 300 {
		return nil, serverError(resp, data)
	}
	return data, nil
}

func serverError(resp *http.Response, data []byte) *ServerError {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Missing    []uint32 `json:"missing"`
		Extra      []uint32 `json:"extra"`
		Stale      []uint32 `json:"stale"`
		Accounts   []string `json:"accounts"`
		Mismatches []struct {
			Account string   `json:"account"`
			Missing []uint32 `json:"missing"`
			Extra   []uint32 `json:"extra"`
			Stale   []uint32 `json:"stale"`
		} `json:"mismatches"`
	}
	_ = json.Unmarshal(data, &e)
	se := &ServerError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message,
		Missing: e.Missing, Extra: e.Extra, Stale: e.Stale, Accounts: e.Accounts}
	for _, m := range e.Mismatches {
		se.Mismatches = append(se.Mismatches, Mismatch{Account: m.Account, Missing: m.Missing, Extra: m.Extra, Stale: m.Stale})
	}
	if se.Code == "" {
		se.Code, se.Message = "http_"+strconv.Itoa(resp.StatusCode), http.StatusText(resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}

// redactURL keeps a *url.Error's operation and cause but not the URL,
// whose path holds account ids.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// isCode reports whether err is a ServerError with one of codes.
func isCode(err error, codes ...string) bool {
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Code == c {
			return true
		}
	}
	return false
}

// ---- JSON bodies (docs/API.md) ---------------------------------------------

type keyJSON struct {
	KeyID     uint32 `json:"key_id"`
	PublicKey []byte `json:"public_key"`
	Signature []byte `json:"signature,omitempty"`
}

type prekeyUpload struct {
	SignedPreKey      *keyJSON  `json:"signed_prekey,omitempty"`
	LastResortKEM     *keyJSON  `json:"last_resort_kem_prekey,omitempty"`
	OneTimePreKeys    []keyJSON `json:"one_time_prekeys,omitempty"`
	OneTimeKEMPreKeys []keyJSON `json:"one_time_kem_prekeys,omitempty"`
}

type registerRequest struct {
	Username       string `json:"username"`
	IdentityKey    []byte `json:"identity_key"`
	RegistrationID uint32 `json:"registration_id"`
	prekeyUpload
}

type registerResponse struct {
	AccountID  string `json:"account_id"`
	DeviceID   uint32 `json:"device_id"`
	Credential string `json:"credential"`
}

type prekeyCounts struct {
	OneTime    int `json:"one_time_prekeys"`
	OneTimeKEM int `json:"one_time_kem_prekeys"`
}

type lookupResponse struct {
	AccountID   string `json:"account_id"`
	IdentityKey []byte `json:"identity_key"`
}

type bundlesResponse struct {
	AccountID        string         `json:"account_id"`
	IdentityKey      []byte         `json:"identity_key"`
	Devices          []bundleDevice `json:"devices"`
	SealedFromAnyone bool           `json:"sealed_from_anyone"`
}

type bundleDevice struct {
	DeviceID       uint32   `json:"device_id"`
	RegistrationID uint32   `json:"registration_id"`
	SignedPreKey   keyJSON  `json:"signed_prekey"`
	PreKey         *keyJSON `json:"prekey"`
	KEMPreKey      keyJSON  `json:"kem_prekey"`
	KEMLastResort  bool     `json:"kem_is_last_resort"`
	// Compliance: the compliance device of a legal hold, with the
	// certificate that explains why its keys are not the account's.
	Compliance *holdCertJSON `json:"compliance"`
}

type envelopeJSON struct {
	DeviceID       uint32 `json:"device_id"`
	RegistrationID uint32 `json:"registration_id"`
	Type           uint8  `json:"type"`
	Content        []byte `json:"content"`
}

type sendRequest struct {
	MessageID []byte         `json:"message_id"`
	Envelopes []envelopeJSON `json:"envelopes"`
}

type deviceJSON struct {
	DeviceID       uint32        `json:"device_id"`
	RegistrationID uint32        `json:"registration_id"`
	Created        string        `json:"created"`   // YYYY-MM-DD (the server keeps days only)
	LastSeen       string        `json:"last_seen"` // YYYY-MM-DD
	Name           []byte        `json:"name"`      // encrypted by the account's devices
	Compliance     *holdCertJSON `json:"compliance"`
}

// queuedEnvelope is one envelope of the device's queue.
type queuedEnvelope struct {
	Seq          int64  `json:"seq"`
	MessageID    []byte `json:"message_id"`
	Type         uint8  `json:"type"`
	Sender       string `json:"sender"`
	SenderDevice uint32 `json:"sender_device"`
	Content      []byte `json:"content"`
	ReceivedAt   int64  `json:"received_at"`
}
