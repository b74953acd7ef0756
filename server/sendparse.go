package server

import "bytes"

// decodeSendFast decodes a send request written the way JSON encoders
// write it (no whitespace, lowercase field names, each field at most
// once, integers without exponent or fraction, strings without escapes)
// without encoding/json's reflection: the send is the server's hottest
// request. It reports false for anything else, and the caller then
// decodes through decodeStrict, which also produces the error message; so
// it never has to reject input itself. When it reports true the result
// equals decodeStrict's (FuzzParseSend compares the two).
func decodeSendFast(b []byte) (req sendRequest, ok bool) {
	p := sendParser{b: b}
	seen := 0
	ok = p.object(func(key []byte) bool {
		switch string(key) {
		case "message_id":
			return p.once(&seen, 1) && p.b64(&req.MessageID)
		case "sealed":
			return p.once(&seen, 2) && p.bool(&req.Sealed)
		case "envelopes":
			if !p.once(&seen, 4) || !p.byte('[') {
				return false
			}
			req.Envelopes = []outgoingJSON{}
			if p.byte(']') {
				return true
			}
			for {
				var e outgoingJSON
				if !p.envelope(&e) {
					return false
				}
				req.Envelopes = append(req.Envelopes, e)
				if p.byte(']') {
					return true
				}
				if !p.byte(',') {
					return false
				}
			}
		}
		return false
	})
	return req, ok && p.i == len(p.b)
}

type sendParser struct {
	b []byte
	i int
}

func (p *sendParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// once marks bit in *seen, false if it was already set.
func (p *sendParser) once(seen *int, bit int) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// object parses {"key":value,...}; member parses each value.
func (p *sendParser) object(member func(key []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') || !member(key) {
			return false
		}
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// str returns the contents of a string without escapes, control
// characters or non-ASCII bytes.
func (p *sendParser) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *sendParser) b64(dst *b64) bool {
	start := p.i
	if _, ok := p.str(); !ok {
		return false
	}
	return dst.UnmarshalJSON(p.b[start:p.i]) == nil
}

func (p *sendParser) bool(dst *bool) bool {
	rest := p.b[p.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		p.i += len("true")
		*dst = true
	case bytes.HasPrefix(rest, []byte("false")):
		p.i += len("false")
		*dst = false
	default:
		return false
	}
	return true
}

// uint parses 0 or a digit string without leading zeros up to max.
func (p *sendParser) uint(max uint64) (uint64, bool) {
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + uint64(p.b[p.i]-'0')
		p.i++
		if v > max || p.i-start > 10 {
			return 0, false
		}
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.b[start] == '0') {
		return 0, false
	}
	// A fraction or exponent makes it a number encoding/json will not
	// put into an integer; leave it to the general path.
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return v, true
}

func (p *sendParser) envelope(e *outgoingJSON) bool {
	seen := 0
	return p.object(func(key []byte) bool {
		switch string(key) {
		case "device_id":
			v, ok := p.uint(1<<32 - 1)
			e.DeviceID = uint32(v)
			return ok && p.once(&seen, 1)
		case "registration_id":
			v, ok := p.uint(1<<32 - 1)
			e.RegistrationID = uint32(v)
			return ok && p.once(&seen, 2)
		case "type":
			v, ok := p.uint(255)
			e.Type = uint8(v)
			return ok && p.once(&seen, 4)
		case "content":
			return p.once(&seen, 8) && p.b64(&e.Content)
		}
		return false
	})
}
