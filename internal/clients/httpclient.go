// Package clients is the root of contactrelay's provider adapters: one
// package per provider beneath it (instantpay, pik), each turning a
// contact.create command into that provider's HTTP calls, and this package
// for what they share.
//
// A provider package builds its requests, authenticates, parses the replies
// and classifies every failure once, as a *provider.Error whose Class
// (Transient, Permanent or Ambiguous) is all the handler needs to decide. The
// packages are leaves: they import only the standard library and
// internal/events, and return concrete types; the handler declares the
// interfaces it needs.
//
// This package provides the http.Client the adapters share (NewHTTPClient)
// and the exchange of one request with a provider (Call.Do): bounded reads of
// the reply, the classification of a call that got no answer, which depends
// on whether the request reached the wire, and the scrubbing of the client's
// own secrets from everything the provider answers, before any of it is
// read.
package clients

import (
	"net"
	"net/http"
	"time"
)

// DefaultConcurrency is the number of concurrent calls NewHTTPClient sizes
// its connection pool for when given none: the service's default
// CONCURRENCY.
const DefaultConcurrency = 64

// connHeadroom is how many connections per host NewHTTPClient allows beyond
// the concurrency: room for a token request and for connections that are
// being torn down after a timeout.
const connHeadroom = 4

// NewHTTPClient returns an http.Client for provider calls made by up to
// concurrency goroutines at once (DefaultConcurrency if concurrency is not
// positive). Its transport is a clone of http.DefaultTransport (proxy from
// the environment, HTTP/2, its dial and TLS timeouts) whose pool keeps
// concurrency idle connections per host, rather than the default of 2 that
// makes a busy service open and close a connection for most calls, and opens
// at most concurrency plus a small headroom per host. The client has no
// overall Timeout: every adapter bounds each request with its own context
// deadline. The client is safe for concurrent use; close idle connections
// with CloseIdleConnections when done.
func NewHTTPClient(concurrency int) *http.Client {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		// Someone replaced the default transport; rebuild its settings.
		t = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	t.MaxIdleConnsPerHost = concurrency
	t.MaxConnsPerHost = concurrency + connHeadroom
	// Two providers may share a pool, so the total idle bound is doubled.
	t.MaxIdleConns = max(t.MaxIdleConns, 2*concurrency)
	return &http.Client{Transport: t}
}
