package shamir

// Arithmetic in GF(2^8) with the AES reduction polynomial
// x^8 + x^4 + x^3 + x + 1 (0x11B). Addition is XOR. Multiplication is a
// carry-less shift-and-add whose every step runs regardless of the
// operands' bits (masks, not branches, and no tables), so its timing and
// memory accesses do not depend on secret data.

// mul returns a·b in GF(2^8).
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		a = (a << 1) ^ (0x1B & -(a >> 7))
		b >>= 1
	}
	return p
}

// inv returns a^-1 in GF(2^8) as a^254 (a^255 = 1 for a ≠ 0), with a
// fixed chain of squarings and multiplications. inv(0) is 0; callers
// never invert zero.
func inv(a byte) byte {
	// 254 = 0b11111110: square-and-multiply over a fixed exponent.
	r := byte(1)
	for i := 7; i >= 0; i-- {
		r = mul(r, r)
		if (254>>i)&1 == 1 { // the exponent is public
			r = mul(r, a)
		}
	}
	return r
}

// eval returns the polynomial c[0] + c[1]·x + … + c[len(c)-1]·x^(len(c)-1)
// at x, by Horner's rule.
func eval(c []byte, x byte) byte {
	var y byte
	for i := len(c) - 1; i >= 0; i-- {
		y = mul(y, x) ^ c[i]
	}
	return y
}

// lagrange returns, for the distinct non-zero points xs, the weights w
// with f(at) = Σ w[j]·f(xs[j]) for every polynomial f of degree below
// len(xs). The points are share indices, which are public.
func lagrange(xs []byte, at byte) []byte {
	w := make([]byte, len(xs))
	for j, xj := range xs {
		num, den := byte(1), byte(1)
		for m, xm := range xs {
			if m == j {
				continue
			}
			num = mul(num, at^xm)
			den = mul(den, xj^xm)
		}
		w[j] = mul(num, inv(den))
	}
	return w
}
