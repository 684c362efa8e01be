package devmode

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/contactrelay/contactrelay/internal/config"
)

// The banner names the health address it serves, and says when there is none.
func TestDevBannerHealthLine(t *testing.T) {
	cfg := config.Config{DefaultProvider: "instantpay", MaxDeliver: 3}
	var b strings.Builder
	printDevBanner(&b, cfg, "/data", "http://ip", "http://pik", "127.0.0.1:8080", "http://127.0.0.1:8081/", 4222)
	assert.Contains(t, b.String(), "http://127.0.0.1:8080/readyz, /metrics")
	b.Reset()
	printDevBanner(&b, cfg, "/data", "http://ip", "http://pik", "", "http://127.0.0.1:8081/", 4222)
	assert.Contains(t, b.String(), "health, metrics      off (--http-addr off)")
	assert.NotContains(t, b.String(), "http:///")
}
