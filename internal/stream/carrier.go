package stream

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// headerCarrier adapts NATS headers to OpenTelemetry propagation. NATS
// header names are case-sensitive; W3C trace context uses lower case.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	return nats.Header(c).Get(strings.ToLower(key))
}

func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(strings.ToLower(key), value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
