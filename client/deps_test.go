package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientStandsAlone holds the client to what an upstream service may be
// asked to import with it: the standard library, the public wire, rules and
// record packages, nats.go with what it brings, uuid, the validator with
// what it brings, and OpenTelemetry's API (not its SDK) for trace context.
// No service code: nothing under internal/, no circuit breaker, backoff,
// rate limiter or metrics.
func TestClientStandsAlone(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/contactrelay/contactrelay/client",
		"github.com/contactrelay/contactrelay/contact",
		"github.com/contactrelay/contactrelay/rules",
		"github.com/contactrelay/contactrelay/record",
		"github.com/nats-io/",
		"github.com/klauspost/compress",
		"golang.org/x/crypto/",
		"golang.org/x/sys/",
		"golang.org/x/text/",
		"golang.org/x/net/",
		"github.com/google/uuid",
		"github.com/go-playground/",
		"github.com/gabriel-vasile/mimetype",
		"github.com/leodido/go-urn",
		"go.opentelemetry.io/otel",
		"go.opentelemetry.io/otel/propagation",
		"go.opentelemetry.io/otel/trace",
		"go.opentelemetry.io/otel/attribute",
		"go.opentelemetry.io/otel/baggage",
		"go.opentelemetry.io/otel/codes",
		"go.opentelemetry.io/otel/internal/",
		"go.opentelemetry.io/otel/trace/",
		"go.opentelemetry.io/otel/attribute/",
		"go.opentelemetry.io/otel/propagation/",
		"go.opentelemetry.io/otel/semconv/", // the API's conventions, which trace brings; not the SDK
		"go.opentelemetry.io/auto/sdk",
		"github.com/go-logr/",
		"github.com/cespare/xxhash",
	}
	var deps, refused []string
	for _, path := range strings.Fields(string(out)) {
		deps = append(deps, path)
		if !allowedDep(path, allowed) {
			refused = append(refused, path)
		}
	}
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	if len(refused) > 0 {
		t.Errorf("the client imports %d packages outside what it may bring to an upstream service:\n  %s",
			len(refused), strings.Join(refused, "\n  "))
	}
}

// allowedDep reports whether path is one of allowed, or under one that
// ends in "/"; an entry without it also admits its subpackages named in
// allowed, and its own module's path with a version suffix (mimetype/v2).
func allowedDep(path string, allowed []string) bool {
	for _, a := range allowed {
		switch {
		case strings.HasSuffix(a, "/") && strings.HasPrefix(path, a):
			return true
		case path == a:
			return true
		case strings.HasPrefix(path, a+"/v") && !strings.Contains(path[len(a)+2:], "/"):
			return true // a major version suffix: mimetype/v2
		case strings.HasPrefix(path, a+"/") && !strings.HasPrefix(a, "go.opentelemetry.io/") && !strings.HasPrefix(a, "github.com/contactrelay/"):
			return true // the module's own packages (mimetype/internal/…)
		}
	}
	return false
}
