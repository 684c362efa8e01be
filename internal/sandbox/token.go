package sandbox

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// tokenHeader is the JOSE header of every token, {"alg":"HS256","typ":"JWT"},
// base64url-encoded.
const tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// Why a bearer token is refused; the messages are PIK's 401 messages.
var (
	errTokenInvalid = errors.New("invalid token")
	errTokenExpired = errors.New("token expired")
)

// tokenClaims is the payload of a PIK sandbox token.
type tokenClaims struct {
	Subject  string `json:"sub"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
	Issuer   string `json:"iss"`
	ID       string `json:"jti"`
}

// tokenSigner issues and checks HS256 JWTs with a key of its own.
type tokenSigner struct {
	key []byte
}

// newTokenSigner returns a signer with a fresh random key.
func newTokenSigner() tokenSigner {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	return tokenSigner{key: key}
}

// sign returns the JWT for c.
func (s tokenSigner) sign(c tokenClaims) string {
	payload, _ := json.Marshal(c) // plain strings and numbers cannot fail
	input := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(s.mac(input))
}

// verify checks token's header, signature and expiry at now.
func (s tokenSigner) verify(token string, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header != tokenHeader {
		return c, errTokenInvalid
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(header+"."+payload)) {
		return c, errTokenInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return c, errTokenInvalid
	}
	if !now.Before(time.Unix(c.Expires, 0)) {
		return c, errTokenExpired
	}
	return c, nil
}

// mac is the HMAC-SHA256 of input under s's key.
func (s tokenSigner) mac(input string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(input))
	return m.Sum(nil)
}
