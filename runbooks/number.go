package runbooks

import (
	"encoding/json"
	"math/big"
	"strings"
)

// Numbers
//
// Step outputs and node vars are text; when both sides of a comparison read
// as numbers they are compared as numbers, exactly: integers of any size
// (a uint64 etcd member id, 2^70) and decimals are compared as rationals,
// never through float64, so 10564617825209086826 and 10564617825209086827
// differ. Number literals in templates beyond int64 stay exact too.

// maxNumberLen bounds the text read as a number (digits and exponent), so a
// comparison never builds a huge rational from hostile output.
const (
	maxNumberLen = 4096
	maxExponent  = 4096
)

// parseNumber reads s as a decimal number: an optional sign, digits, an
// optional fraction and an optional exponent (1e3). Surrounding spaces are
// ignored. It refuses what is not plainly a number (hex, inf, nan, 1_000).
func parseNumber(s string) (*big.Rat, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxNumberLen {
		return nil, false
	}
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	n := digits()
	if i < len(s) && s[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return nil, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		start := i
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 || i-start > 5 {
			return nil, false
		}
		exp := 0
		for _, c := range strings.TrimLeft(s[start:i], "+-") {
			exp = exp*10 + int(c-'0')
		}
		if exp > maxExponent {
			return nil, false
		}
	}
	if i != len(s) {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// CompareNumbers compares a and b as exact decimal numbers: -1, 0 or +1,
// and ok false when either is not a number.
func CompareNumbers(a, b string) (cmp int, ok bool) {
	x, ok1 := parseNumber(a)
	y, ok2 := parseNumber(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	return x.Cmp(y), true
}

// numberLiteral returns the value of an integer literal of a template: an
// int64 when it fits, else the exact digits as a json.Number.
func numberLiteral(t string) (any, bool) {
	digits := strings.TrimPrefix(t, "-")
	if digits == "" || len(digits) > maxNumberLen || strings.TrimLeft(digits, "0123456789") != "" {
		return nil, false
	}
	if n, ok := new(big.Int).SetString(t, 10); ok {
		if n.IsInt64() {
			return n.Int64(), true
		}
		return json.Number(n.String()), true
	}
	return nil, false
}
