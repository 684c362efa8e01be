package redact

import "strings"

// URLs returns a comma-separated list of NATS URLs with the user
// information of each hidden: a password becomes xxxxx, and so does a user
// given alone (NATS reads it as a token). It works on the text, so that
// URLs that do not parse are redacted too.
func URLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if info, ok := userInfo(u); ok {
			parts[i] = strings.Replace(u, info+"@", redactUserInfo(info)+"@", 1)
		}
	}
	return strings.Join(parts, ",")
}

// userInfo returns the text between a URL's scheme (if any) and its last @.
func userInfo(u string) (string, bool) {
	start := 0
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(u, "@")
	if at < start {
		return "", false
	}
	return u[start:at], true
}

func redactUserInfo(info string) string {
	if user, _, ok := strings.Cut(info, ":"); ok {
		return user + ":xxxxx"
	}
	return "xxxxx" // a token
}

// Error returns err with the user information of urls hidden from
// its message (nats.go quotes a URL it cannot parse whole); it still
// unwraps to err.
func Error(err error, urls string) error {
	var pairs []string
	for _, u := range strings.Split(urls, ",") {
		if info, ok := userInfo(u); ok {
			pairs = append(pairs, info+"@", redactUserInfo(info)+"@")
		}
	}
	if err == nil || len(pairs) == 0 {
		return err
	}
	return &redactedError{err: err, replacer: strings.NewReplacer(pairs...)}
}

// redactedError is an error whose message is shown through replacer.
type redactedError struct {
	err      error
	replacer *strings.Replacer
}

func (e *redactedError) Error() string { return e.replacer.Replace(e.err.Error()) }

func (e *redactedError) Unwrap() error { return e.err }
