package redact

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:s3cret@host:4222", "nats://user:xxxxx@host:4222"},
		{"nats://t0ken@host:4222", "nats://xxxxx@host:4222"},
		{"user:s3cret@host:4222", "user:xxxxx@host:4222"},
		{"nats://a:p@ss@host", "nats://a:xxxxx@host"},
		{"nats://u:s3cret@h1:4222,tls://t0ken@h2,nats://h3", "nats://u:xxxxx@h1:4222,tls://xxxxx@h2,nats://h3"},
		{"nats://u:s3cret@127.0.0.1:notaport", "nats://u:xxxxx@127.0.0.1:notaport"},
	} {
		assert.Equal(t, tc.want, URLs(tc.in), "%s", tc.in)
	}
}
