package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/veil-e2ee/veil/server/store"
)

// Wire limits for request fields.
const (
	// MaxEnvelopeBytes is the largest envelope content accepted (96 KiB).
	MaxEnvelopeBytes = 96 << 10
	// MaxOneTimeKeys is the most one-time EC, and separately KEM, prekeys
	// one request may upload.
	MaxOneTimeKeys = 100
	// maxPublicKeyBytes bounds any opaque public key (a Kyber1024 public
	// key with its type byte is 1,569 bytes).
	maxPublicKeyBytes = 2048
	// maxSignatureBytes bounds any opaque signature (XEdDSA: 64 bytes).
	maxSignatureBytes = 128
	// maxIdentityKeyBytes bounds the identity key (33 bytes in Signal).
	maxIdentityKeyBytes = 64
	// maxRegistrationID is Signal's 14-bit registration id bound.
	maxRegistrationID = 0x3fff
	// maxAckBatch is the most seqs one ack request may carry.
	maxAckBatch = 1000
)

// b64 is a binary field carried as standard base64 with padding. Decoding
// is strict: no whitespace or line breaks, no non-zero padding bits, so
// each value has exactly one accepted encoding.
type b64 []byte

// MarshalJSON quotes the base64 text directly: its alphabet needs no
// JSON escaping, so the string encoder's copies are skipped.
func (b b64) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(b))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, b)
	return append(out, '"'), nil
}

var errBase64 = errors.New("not canonical standard base64")

// UnmarshalJSON decodes canonical standard base64. The decoder hands it
// a syntactically valid JSON value; a string without escapes (always so
// for base64 text) is decoded in place, without first copying it into a
// Go string. Anything else takes the general path, with the same result
// (FuzzB64 compares the two).
func (b *b64) UnmarshalJSON(data []byte) error {
	if n := len(data); n >= 2 && data[0] == '"' && data[n-1] == '"' && bytes.IndexByte(data[1:n-1], '\\') < 0 {
		text := data[1 : n-1]
		if bytes.ContainsAny(text, "\r\n") { // not valid JSON; base64 would skip them
			return errBase64
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
		m, err := base64.StdEncoding.Strict().Decode(out, text)
		if err != nil {
			return errBase64
		}
		*b = out[:m]
		return nil
	}
	return b.unmarshalJSONSlow(data)
}

// unmarshalJSONSlow is UnmarshalJSON through encoding/json's string
// decoding.
func (b *b64) unmarshalJSONSlow(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "\r\n") {
		return errBase64
	}
	out, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return errBase64
	}
	*b = out
	return nil
}

type preKeyJSON struct {
	KeyID     uint32 `json:"key_id"`
	PublicKey b64    `json:"public_key"`
}

type signedPreKeyJSON struct {
	KeyID     uint32 `json:"key_id"`
	PublicKey b64    `json:"public_key"`
	Signature b64    `json:"signature"`
}

// keysJSON is the prekey part shared by registration, linking and upload.
type keysJSON struct {
	SignedPreKey      *signedPreKeyJSON  `json:"signed_prekey,omitempty"`
	LastResortKEM     *signedPreKeyJSON  `json:"last_resort_kem_prekey,omitempty"`
	OneTimePreKeys    []preKeyJSON       `json:"one_time_prekeys,omitempty"`
	OneTimeKEMPreKeys []signedPreKeyJSON `json:"one_time_kem_prekeys,omitempty"`
}

type registerRequest struct {
	Username       string `json:"username"`
	IdentityKey    b64    `json:"identity_key"`
	RegistrationID uint32 `json:"registration_id"`
	keysJSON
}

type linkRequest struct {
	RegistrationID uint32 `json:"registration_id"`
	keysJSON
}

type uploadRequest struct {
	keysJSON
}

type outgoingJSON struct {
	DeviceID       uint32 `json:"device_id"`
	RegistrationID uint32 `json:"registration_id"`
	Type           uint8  `json:"type"`
	Content        b64    `json:"content"`
}

type sendRequest struct {
	MessageID b64            `json:"message_id"`
	Sealed    bool           `json:"sealed,omitempty"`
	Envelopes []outgoingJSON `json:"envelopes"`
}

type ackRequest struct {
	Seqs []int64 `json:"seqs"`
}

// readBody checks the content type and reads at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apiError) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errUnsupportedMedia
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nil, errUnsupportedMedia
		}
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBodyTooLarge(limit)
		}
		return nil, badRequest("body_unreadable", "The request body could not be read.")
	}
	return body, nil
}

// readAll is io.ReadAll with the buffer sized from the declared length
// (when it is within limit), so a body is read without regrowing.
func readAll(rd io.Reader, declared, limit int64) ([]byte, error) {
	if declared <= 0 || declared > limit {
		return io.ReadAll(rd)
	}
	// One byte more than declared, so that reading to EOF needs no growth.
	b := make([]byte, 0, declared+1)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than declared: let append grow it
		}
	}
}

// decodeStrict decodes exactly one JSON object into dst, rejecting unknown
// fields and trailing data. Its messages name the offending field but never
// echo the input.
func decodeStrict(body []byte, dst any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", "The request body must hold exactly one JSON object.")
	}
	return nil
}

func jsonError(err error) *apiError {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		if ute.Field != "" {
			return badRequest("invalid_field", "Field %q has the wrong type or is out of range.", ute.Field)
		}
		return badRequest("invalid_json", "The request body must be a JSON object.")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("invalid_json", "The request body is not valid JSON.")
	case errors.Is(err, errBase64):
		return badRequest("invalid_base64", "A binary field is not canonical standard base64 (with padding, no line breaks).")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if len(name) > 66 {
			name = name[:64] + `…"`
		}
		return badRequest("unknown_field", "The request has a field this endpoint does not know: %s.", strconv.QuoteToASCII(strings.Trim(name, `"`)))
	default:
		return badRequest("invalid_json", "The request body is not valid JSON for this endpoint.")
	}
}

var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{2,31}$`)

// validUsername: 3–32 characters, lowercase ASCII letters, digits and
// underscore, starting with a letter. A narrow charset keeps usernames
// free of look-alikes and of case-folding ambiguity.
func validUsername(s string) bool { return usernameRE.MatchString(s) }

func checkBytes(field string, b []byte, maxLen int) *apiError {
	if len(b) == 0 {
		return badRequest("invalid_field", "Field %q must not be empty.", field)
	}
	if len(b) > maxLen {
		return badRequest("invalid_field", "Field %q is longer than %d bytes.", field, maxLen)
	}
	return nil
}

func (k *signedPreKeyJSON) toStore(field string) (*store.SignedPreKey, *apiError) {
	if k == nil {
		return nil, nil
	}
	if e := checkBytes(field+".public_key", k.PublicKey, maxPublicKeyBytes); e != nil {
		return nil, e
	}
	if e := checkBytes(field+".signature", k.Signature, maxSignatureBytes); e != nil {
		return nil, e
	}
	return &store.SignedPreKey{KeyID: k.KeyID, PublicKey: k.PublicKey, Signature: k.Signature}, nil
}

// toStore validates the prekeys; full requires the signed prekey and the
// last-resort KEM prekey (registration and linking).
func (k *keysJSON) toStore(full bool) (store.PreKeyUpload, *apiError) {
	var up store.PreKeyUpload
	var e *apiError
	if full && (k.SignedPreKey == nil || k.LastResortKEM == nil) {
		return up, badRequest("missing_field", "A new device needs both \"signed_prekey\" and \"last_resort_kem_prekey\".")
	}
	if up.SignedPreKey, e = k.SignedPreKey.toStore("signed_prekey"); e != nil {
		return up, e
	}
	if up.LastResortKEM, e = k.LastResortKEM.toStore("last_resort_kem_prekey"); e != nil {
		return up, e
	}
	if len(k.OneTimePreKeys) > MaxOneTimeKeys || len(k.OneTimeKEMPreKeys) > MaxOneTimeKeys {
		return up, badRequest("too_many_prekeys", "At most %d one-time EC and %d one-time KEM prekeys may be uploaded per request.", MaxOneTimeKeys, MaxOneTimeKeys)
	}
	seen := make(map[uint32]bool, len(k.OneTimePreKeys))
	for i, pk := range k.OneTimePreKeys {
		if seen[pk.KeyID] {
			return up, badRequest("duplicate_key_id", "one_time_prekeys[%d] repeats a key_id from the same request.", i)
		}
		seen[pk.KeyID] = true
		if e := checkBytes(fmt.Sprintf("one_time_prekeys[%d].public_key", i), pk.PublicKey, maxPublicKeyBytes); e != nil {
			return up, e
		}
		up.OneTimeEC = append(up.OneTimeEC, store.PreKey{KeyID: pk.KeyID, PublicKey: pk.PublicKey})
	}
	clear(seen)
	for i := range k.OneTimeKEMPreKeys {
		pk := &k.OneTimeKEMPreKeys[i]
		if seen[pk.KeyID] {
			return up, badRequest("duplicate_key_id", "one_time_kem_prekeys[%d] repeats a key_id from the same request.", i)
		}
		seen[pk.KeyID] = true
		sk, e := pk.toStore(fmt.Sprintf("one_time_kem_prekeys[%d]", i))
		if e != nil {
			return up, e
		}
		up.OneTimeKEM = append(up.OneTimeKEM, *sk)
	}
	return up, nil
}

func checkRegistrationID(id uint32) *apiError {
	if id < 1 || id > maxRegistrationID {
		return badRequest("invalid_field", "Field \"registration_id\" must be between 1 and %d.", maxRegistrationID)
	}
	return nil
}

// parseRegister decodes and validates a registration body.
func parseRegister(body []byte) (registerRequest, store.PreKeyUpload, *apiError) {
	var req registerRequest
	if e := decodeStrict(body, &req); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	if !validUsername(req.Username) {
		return req, store.PreKeyUpload{}, badRequest("invalid_username", "A username is 3 to 32 characters: lowercase letters a-z, digits and underscore, starting with a letter.")
	}
	if e := checkBytes("identity_key", req.IdentityKey, maxIdentityKeyBytes); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	if e := checkRegistrationID(req.RegistrationID); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	up, e := req.keysJSON.toStore(true)
	return req, up, e
}

// parseLink decodes and validates a new-device body.
func parseLink(body []byte) (linkRequest, store.PreKeyUpload, *apiError) {
	var req linkRequest
	if e := decodeStrict(body, &req); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	if e := checkRegistrationID(req.RegistrationID); e != nil {
		return req, store.PreKeyUpload{}, e
	}
	up, e := req.keysJSON.toStore(true)
	return req, up, e
}

// parseUpload decodes and validates a prekey upload.
func parseUpload(body []byte) (store.PreKeyUpload, *apiError) {
	var req uploadRequest
	if e := decodeStrict(body, &req); e != nil {
		return store.PreKeyUpload{}, e
	}
	up, e := req.keysJSON.toStore(false)
	if e == nil && up.SignedPreKey == nil && up.LastResortKEM == nil && len(up.OneTimeEC) == 0 && len(up.OneTimeKEM) == 0 {
		return up, badRequest("missing_field", "The upload carries no key.")
	}
	return up, e
}

// parseSend decodes and validates a send; maxEnvelopes bounds the device
// count.
func parseSend(body []byte, maxEnvelopes int) (sendRequest, []store.OutgoingEnvelope, *apiError) {
	req, ok := decodeSendFast(body)
	if !ok {
		req = sendRequest{}
		if e := decodeStrict(body, &req); e != nil {
			return req, nil, e
		}
	}
	if len(req.MessageID) != 16 {
		return req, nil, badRequest("invalid_field", "Field \"message_id\" must be 16 bytes (24 characters of base64).")
	}
	if len(req.Envelopes) == 0 || len(req.Envelopes) > maxEnvelopes {
		return req, nil, badRequest("invalid_field", "Field \"envelopes\" must hold between 1 and %d envelopes, one per device.", maxEnvelopes)
	}
	out := make([]store.OutgoingEnvelope, 0, len(req.Envelopes))
	seen := make(map[uint32]bool, len(req.Envelopes))
	for i, e := range req.Envelopes {
		if seen[e.DeviceID] {
			return req, nil, badRequest("duplicate_device", "envelopes[%d] addresses a device that an earlier envelope already addresses.", i)
		}
		seen[e.DeviceID] = true
		if e.DeviceID == 0 {
			return req, nil, badRequest("invalid_field", "envelopes[%d].device_id must be positive.", i)
		}
		if len(e.Content) == 0 {
			return req, nil, badRequest("invalid_field", "envelopes[%d].content must not be empty.", i)
		}
		if len(e.Content) > MaxEnvelopeBytes {
			return req, nil, newError(http.StatusRequestEntityTooLarge, "envelope_too_large", "envelopes[%d].content is larger than %d bytes.", i, MaxEnvelopeBytes)
		}
		out = append(out, store.OutgoingEnvelope{DeviceID: e.DeviceID, RegistrationID: e.RegistrationID, Type: e.Type, Content: e.Content})
	}
	return req, out, nil
}

// parseAck decodes and validates an ack batch.
func parseAck(body []byte) ([]int64, *apiError) {
	var req ackRequest
	if e := decodeStrict(body, &req); e != nil {
		return nil, e
	}
	if len(req.Seqs) == 0 || len(req.Seqs) > maxAckBatch {
		return nil, badRequest("invalid_field", "Field \"seqs\" must hold between 1 and %d sequence numbers.", maxAckBatch)
	}
	for i, s := range req.Seqs {
		if s < 1 {
			return nil, badRequest("invalid_field", "seqs[%d] must be positive.", i)
		}
	}
	return req.Seqs, nil
}

// parseAccountID accepts only the canonical lowercase 8-4-4-4-12 form.
func parseAccountID(s string) (store.AccountID, bool) {
	var id store.AccountID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if strings.ToLower(h) != h {
		return id, false
	}
	n := 0
	for i := 0; i < 32; i += 2 {
		v, err := strconv.ParseUint(h[i:i+2], 16, 8)
		if err != nil {
			return id, false
		}
		id[n] = byte(v)
		n++
	}
	return id, true
}

// parseDeviceID accepts a decimal device id without sign or leading zeros.
func parseDeviceID(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0') {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint32(v), true
}
